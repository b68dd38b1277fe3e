-- examples/override.lua: a step replaced, to adopt a bridge that exists.
--
--   scripts/isolate.sh build/bin/brisk run examples/override.lua
--
-- The machine already has a bridge, br-lan, with an address of its own
-- (made by hand here, as an administrator would have). A network naming an
-- existing bridge adopts it: brisk does not make it and never deletes it.
-- But the stock setup_bridge_ipv4 step makes the network's gateway *the*
-- bridge's IPv4 address, replacing 192.168.77.1. The replacement below
-- keeps the bridge's address and adds the gateway next to it. What it adds
-- is journaled, so teardown leaves br-lan exactly as it was found.
local brisk = require "brisk"
local topo = require "brisk.topo"

local h <close> = assert(brisk.open())

local function addresses(dev)
	local t = {}
	for _, a in ipairs(assert(h:addr_list{ dev = dev, family = "inet" })) do
		t[#t + 1] = a["local"] .. "/" .. a.prefixlen
	end
	return table.concat(t, " ")
end

-- the bridge "made by hand" (this example removes it again only if it made it)
local made_here = h:link_get("br-lan") == nil
if made_here then
	assert(h:link_add{ ifname = "br-lan", kind = "bridge", up = true })
	assert(h:addr_add{ dev = "br-lan", address = "192.168.77.1/24" })
end
print("before: br-lan " .. addresses("br-lan"))

do
	local t <close> = topo.new{ name = "override" }
	t.driver:replace_step("setup_bridge_ipv4", function(jh, net)
		for _, a in ipairs(jh:addr_list{ dev = net.bridge, family = "inet" } or {}) do
			if a["local"] .. "/" .. a.prefixlen == net.address_ipv4 then return true end
		end
		return jh:addr_add{ dev = net.bridge, address = net.address_ipv4, broadcast = true }
	end)
	t:network{ name = "lan", bridge = "br-lan", subnet = "10.77.0.0/24" }
	t:host "h1"
	t:host "h2"
	t:connect("h1", "lan")
	t:connect("h2", "lan")
	t:up()
	print("during: br-lan " .. addresses("br-lan"))
	assert(t:ping("h1", "h2", { count = 1 }), "h1 could not reach h2")
	assert(t:ping("h1", "10.77.0.1", { count = 1 }), "h1 could not reach its gateway")
end

local after = addresses("br-lan")
print("after: br-lan " .. after)
assert(h:link_get("br-lan"), "the adopted bridge was deleted")
assert(after == "192.168.77.1/24", "the adopted bridge was not left as it was")
if made_here then assert(h:link_del("br-lan")) end
