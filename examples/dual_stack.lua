-- examples/dual_stack.lua: IPv6 alongside IPv4, across a router.
--
--   scripts/isolate.sh build/bin/brisk run examples/dual_stack.lua
--
-- Both networks have an IPv4 and an IPv6 subnet: every endpoint gets an
-- address of each family, and the router forwards both (its IPv6
-- forwarding is switched on, and a and b get IPv6 routes through it too).
local topo = require "brisk.topo"

local t <close> = topo.new{ name = "dualstack" }
t:network{ name = "north", subnet = { "10.61.0.0/24", "fd00:61::/64" }, ipv6 = true }
t:network{ name = "south", subnet = { "10.62.0.0/24", "fd00:62::/64" }, ipv6 = true }
t:host "a"
t:host "b"
t:connect("a", "north")
t:connect("b", "south", { ip6 = "fd00:62::b" })
t:router{ "r", nets = { "north", "south" } }
t:up()

print(string.format("\na: %s and %s; b: %s and %s\n", t:ip("a"), t:ip("a", nil, 6), t:ip("b"), t:ip("b", nil, 6)))
assert(t:ping("a", "b", { count = 2 }), "IPv4: a could not reach b")
print()
assert(t:ping("a", "b", { count = 2, family = 6 }), "IPv6: a could not reach b")
