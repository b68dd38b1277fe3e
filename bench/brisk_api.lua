-- bench/brisk_api.lua N STATE_DIR: the workload through brisk's Lua API in
-- one process: one network (10.88.0.0/16, gateway 10.88.0.1 on its bridge),
-- then N endpoints, endpoint i joined to the namespace epI (created by
-- create_endpoint, the container side created in place as eth0 with its
-- address, up, and a default route).
--
--   scripts/isolate.sh lua5.4 bench/brisk_api.lua 100 "$(mktemp -d)"
--
-- Run only inside a private network namespace (scripts/isolate.sh).
local here = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = here .. "/../lua/?.lua;" .. here .. "/../lua/?/init.lua;" .. package.path
package.cpath = here .. "/../build/lib/?.so;" .. package.cpath

if os.getenv("BRISK_ISOLATED") ~= "1" then
	io.stderr:write("brisk_api.lua: run me through scripts/isolate.sh\n")
	os.exit(2)
end
local n = assert(math.tointeger(tonumber(arg[1])), "usage: brisk_api.lua N STATE_DIR")
local state = assert(arg[2], "usage: brisk_api.lua N STATE_DIR")

local brisk = require "brisk"
local d <close> = assert(brisk.driver{ state_dir = state })
assert(d:create_network{ name = "bench", subnet = "10.88.0.0/16" })
for i = 1, n do
	assert(d:create_endpoint("bench", { name = "ep" .. i, netns = "ep" .. i }))
end
