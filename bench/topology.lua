-- bench/topology.lua STATE_DIR: a small topology, for bench/rss.sh to
-- measure the peak RSS of `brisk run` on: two networks, three namespaces,
-- the "web" namespace on both networks (eth0 and eth1).
--
--   scripts/isolate.sh build/bin/brisk run bench/topology.lua "$(mktemp -d)"
local brisk = require "brisk"

local state = assert(arg[1], "usage: brisk run bench/topology.lua STATE_DIR")
local d <close> = assert(brisk.driver{ state_dir = state })
assert(d:create_network{ name = "front", subnet = "10.89.0.0/24" })
assert(d:create_network{ name = "back", subnet = "10.90.0.0/24" })
assert(d:create_endpoint("front", { name = "web", netns = "web" }))
assert(d:create_endpoint("back", { name = "web-back", netns = "web", ifname = "eth1" }))
assert(d:create_endpoint("front", { name = "proxy", netns = "proxy" }))
assert(d:create_endpoint("back", { name = "db", netns = "db" }))
for _, ep in ipairs(d:endpoints()) do
	print(string.format("%-9s %-6s %-5s %s", ep.name, ep.network_name, ep.ifname, ep.ipv4))
end
