-- examples/scale.lua: 100 hosts on one network, timed.
--
--   scripts/isolate.sh build/bin/brisk run examples/scale.lua [COUNT]
--
-- Each host is a namespace with one endpoint; the veth's container side is
-- created directly inside it, and the bridge ports carry no IPv6 of their
-- own, so each host costs a few milliseconds. Teardown deletes the
-- namespaces (their veths go with them), then the network.
local topo = require "brisk.topo"

local count = math.tointeger(tonumber((...))) or 100

local t <close> = topo.new{ name = "scale", quiet = true }
t:network{ name = "big", subnet = "10.100.0.0/16" }
for i = 1, count do
	t:host("h" .. i)
	t:connect("h" .. i, "big")
end

local t0 = topo.clock()
t:up()
local up = topo.clock() - t0
print(string.format("%d hosts up in %.2f s (%.1f ms a host)", count, up, up * 1000 / count))

assert(t:ping("h1", "h" .. count, { count = 1, quiet = true }), "h1 could not reach h" .. count)
print(string.format("h1 reached h%d at %s", count, t:ip("h" .. count)))

t0 = topo.clock()
t:down()
print(string.format("%d hosts down in %.2f s", count, topo.clock() - t0))
