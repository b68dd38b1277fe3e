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

-- A test that forgets its state directory must not write the default one
-- (/var/lib/brisk, the host's): unless BRISK_STATE_DIR is set, the run gets
-- a scratch directory as its default, and anything left in it fails the run
-- (BRISK_SPEC_STATE names it to the run; it is removed after).
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
if os.getenv("BRISK_ISOLATED") ~= "1" or not os.getenv("BRISK_STATE_DIR") then
	local quoted, env, scratch = {}, "", nil
	for i = 0, #arg do quoted[#quoted + 1] = q(arg[i]) end
	if not os.getenv("BRISK_STATE_DIR") then
		local p = io.popen("mktemp -d /tmp/brisk-spec-state.XXXXXX")
		scratch = p:read("l")
		p:close()
		if not scratch or scratch == "" then
			io.stderr:write("spec/run.lua: cannot make a scratch state directory\n")
			os.exit(1)
		end
		env = "BRISK_STATE_DIR=" .. q(scratch) .. " BRISK_SPEC_STATE=" .. q(scratch) .. " "
	end
	local ok, how, code = os.execute("env " .. env .. "bash " .. here .. "/scripts/isolate.sh lua5.4 " ..
		table.concat(quoted, " ", 1))
	if scratch then os.execute("rm -rf " .. q(scratch)) end
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
-- the scratch directories (H.scratch) a test left behind, and every
-- H.tmppath of the run
local hok, helper = pcall(require, "helper")
if hok then
	helper.scratch_cleanup()
	helper.run_cleanup()
end
local r = runner.result
local failed = r.failureCount + r.errorCount + load_failures
-- what a test wrote to the default state directory (see the top)
local spec_state = os.getenv("BRISK_SPEC_STATE")
if spec_state and os.getenv("BRISK_STATE_DIR") == spec_state then
	local p = io.popen("find " .. q(spec_state) .. " -mindepth 1 -maxdepth 2 2>/dev/null | head -n 5")
	local left = p:read("a")
	p:close()
	if left ~= "" then
		failed = failed + 1
		io.stderr:write("FAILURE: a test used the default state directory (BRISK_STATE_DIR unset "
			.. "would be /var/lib/brisk); left there:\n", left)
	end
end
local line = string.format("%d passed, %d failed", r.successCount, failed)
if r.skippedCount > 0 then line = line .. string.format(", %d skipped", r.skippedCount) end
print(line)
if failed > 0 or r.runCount == 0 then os.exit(1) end
os.exit(0)
