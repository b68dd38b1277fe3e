-- bench/netcreate.lua STATE_DIR: a brisk driver that creates networks on
-- command, for bench/netcreate.sh, which times it. It reads lines from
-- stdin and answers each on stdout once done:
--
--   fill K     create networks until K exist (untimed by the caller)
--   make W     create W more networks (the caller times this)
--   skip W     count W networks made meanwhile by someone else (the CLI)
--   quit
--
-- Network i is "n<i>" on 10.(100 + i // 256).(i % 256).0/24 (no subnet
-- search: the subnet is given, as a runtime does). The driver is brisk's
-- default one: firewall on, so every create is also one nftables
-- transaction. Run only inside a private network namespace.
local here = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = here .. "/../lua/?.lua;" .. here .. "/../lua/?/init.lua;" .. package.path
package.cpath = here .. "/../build/lib/?.so;" .. package.cpath

if os.getenv("BRISK_ISOLATED") ~= "1" then
	io.stderr:write("netcreate.lua: run me through scripts/isolate.sh\n")
	os.exit(2)
end
local state = assert(arg[1], "usage: netcreate.lua STATE_DIR")
local firewall = os.getenv("BENCH_FIREWALL") ~= "0"

local brisk = require "brisk"
local d <close> = assert(brisk.driver{ state_dir = state, firewall = firewall })
local count = #d:networks()   -- numbering goes on from a filled store

local function create_one()
	local i = count + 1
	assert(d:create_network{ name = "n" .. i,
		subnet = string.format("10.%d.%d.0/24", 100 + i // 256, i % 256) })
	count = i
end

io.stdout:setvbuf("line")
for line in io.lines() do
	local cmd, k = line:match("^(%a+)%s*(%d*)$")
	k = tonumber(k)
	if cmd == "fill" then
		while count < k do create_one() end
	elseif cmd == "make" then
		for _ = 1, k do create_one() end
	elseif cmd == "skip" then
		count = count + k
	elseif cmd == "quit" then
		break
	else
		error("netcreate.lua: unknown command " .. line)
	end
	io.stdout:write("done ", count, "\n")
end
