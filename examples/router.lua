-- examples/router.lua: two networks with a router namespace between them.
--
--   scripts/isolate.sh sh -c 'export BRISK_STATE_DIR=/tmp/brisk-router
--       build/bin/brisk run examples/router.lua     # builds it, pings across
--       build/bin/brisk run examples/router.lua     # "nothing to do"
--       build/bin/brisk down examples/router.lua'   # removes exactly it
--
-- The topology stays up after the script (keep = true): it is recorded in
-- the state directory, a second run changes nothing and says so, and
-- `brisk down` removes what it made. An error still removes what the run made.
local topo = require "brisk.topo"

local t <close> = topo.new{ name = "router", keep = true }
t:network{ name = "left", subnet = "10.1.0.0/24" }
t:network{ name = "right", subnet = "10.2.0.0/24" }
t:host "a"
t:host "b"
t:connect("a", "left")
t:connect("b", "right")
-- r1: on both networks, forwarding; a and b get a route to the other side through it
t:router{ "r1", nets = { "left", "right" }, ips = { left = "10.1.0.254", right = "10.2.0.254" } }
t:up()

local _, routes = t:run("a", "ip route")
print("\nroutes in a:\n" .. routes)
assert(t:ping("a", "b"), "a could not reach b through r1")
print()
assert(t:ping("b", "a"), "b could not reach a through r1")
