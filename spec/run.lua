#!/usr/bin/env lua5.4
-- spec/run.lua: brisk's test runner.
--
--   lua5.4 spec/run.lua [-v] [-p PATTERN] [spec/test_x.lua ...]
--
-- It re-executes itself under `unshare -n -m` unless already isolated, so
-- every spec runs in a private network namespace (and a private /run/netns
-- and /sys), never the host's. Its last line is `N passed, N failed[, N
-- skipped]`; it exits 1 on any failure, any spec file that fails to load,
-- or when no test ran.

local here = arg[0]:match("^(.*)/spec/[^/]*$") or "."

if os.getenv("BRISK_ISOLATED") ~= "1" then
	local quoted = {}
	for i = 0, #arg do quoted[#quoted + 1] = "'" .. arg[i]:gsub("'", "'\\''") .. "'" end
	local ok, how, code = os.execute("bash " .. here .. "/scripts/isolate.sh lua5.4 " ..
		table.concat(quoted, " ", 1))
	if how == "exit" then os.exit(code) end
	os.exit(1)
end

package.path = here .. "/lua/?.lua;" .. here .. "/lua/?/init.lua;" .. here .. "/spec/?.lua;" .. package.path
package.cpath = here .. "/build/lib/?.so;" .. package.cpath

local lu = require "luaunit"

local files, luargs = {}, { "-o", "text" }
local i = 1
while i <= #arg do
	local a = arg[i]
	if a == "-v" then luargs[#luargs + 1] = "-v"
	elseif a == "-p" then luargs[#luargs + 1] = "-p"; i = i + 1; luargs[#luargs + 1] = arg[i]
	elseif a:match("%.lua$") then files[#files + 1] = a
	else io.stderr:write("usage: spec/run.lua [-v] [-p PATTERN] [spec/test_x.lua ...]\n"); os.exit(2) end
	i = i + 1
end
if #files == 0 then
	local p = io.popen("ls " .. here .. "/spec/test_*.lua 2>/dev/null")
	for f in p:lines() do files[#files + 1] = f end
	p:close()
end
table.sort(files)

local load_failures = 0
for _, f in ipairs(files) do
	local ok, err = pcall(dofile, f)
	if not ok then
		load_failures = load_failures + 1
		io.stderr:write("LOAD FAILURE ", f, ": ", tostring(err), "\n")
	end
end

local runner = lu.LuaUnit.new()
runner:runSuite(table.unpack(luargs))
-- the scratch directories (H.scratch) a test left behind
local hok, helper = pcall(require, "helper")
if hok then helper.scratch_cleanup() end
local r = runner.result
local failed = r.failureCount + r.errorCount + load_failures
local line = string.format("%d passed, %d failed", r.successCount, failed)
if r.skippedCount > 0 then line = line .. string.format(", %d skipped", r.skippedCount) end
print(line)
if failed > 0 or r.runCount == 0 then os.exit(1) end
os.exit(0)
