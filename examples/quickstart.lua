-- examples/quickstart.lua: one network, two hosts that ping each other.
--
--   bash scripts/demo.sh                      (installs, builds, runs this)
--   scripts/isolate.sh build/bin/brisk run examples/quickstart.lua
--
-- Run it only inside a network namespace of its own (scripts/isolate.sh
-- makes one): it creates a bridge, two namespaces and a veth pair for each.
local brisk = require "brisk"

local state = os.getenv("BRISK_STATE_DIR") or os.tmpname() .. ".d"
local d <close> = assert(brisk.driver{ state_dir = state })

local net = assert(d:create_network{ name = "demo", subnet = "10.88.0.0/24" })
local h1 = assert(d:create_endpoint("demo", { name = "h1", netns = "h1" }))
local h2 = assert(d:create_endpoint("demo", { name = "h2", netns = "h2" }))

print(string.format("network %s: bridge %s, subnet %s, gateway %s",
	net.name, net.bridge, net.subnet4, net.gateway4))
for _, ep in ipairs{ h1, h2 } do
	print(string.format("endpoint %s: netns %s, %s %s, mac %s, host side %s",
		ep.name, ep.netns, ep.ifname, ep.ipv4, ep.mac, ep.host_ifname))
end

local peer = h2.ipv4:match("^[^/]+")
print("\n$ ip netns exec h1 ping -c 3 " .. peer)
local ok = os.execute("ip netns exec h1 ping -c 3 -i 0.2 -W 1 " .. peer)

assert(d:delete_network("demo", { force = true }))
os.execute("rm -rf " .. state)
if not ok then error("h1 could not reach h2") end
print("\nok: h1 reached h2 across " .. net.bridge .. "; everything was removed again")
