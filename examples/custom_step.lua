-- examples/custom_step.lua: a step of your own in the network flow, and a
-- hook on every step that logs it with its time.
--
--   scripts/isolate.sh build/bin/brisk run examples/custom_step.lua
--
-- The driver's network flow is a list of named steps (libnetwork's
-- setupDevice, setupBridgeIPv4, ... in snake_case). `t.driver` is the
-- topology's driver: insert_step adds one, before/after hook one,
-- replace_step swaps one (see examples/override.lua).
local topo = require "brisk.topo"

local t <close> = topo.new{ name = "custom" }

-- right after the bridge is made: a bridge option the network definition
-- has no field for (MAC ageing 60 s instead of 300; centiseconds). What a
-- step does through `h` is journaled, and undone when the network goes.
t.driver:insert_step{
	name = "setup_bridge_ageing", after = "setup_device",
	run = function(h, net)
		return h:bridge_set{ dev = net.bridge, ageing_time = 6000 }
	end,
}

-- every network step, logged with its time as it runs
local started
for _, name in ipairs(t.driver:step_names("network")) do
	t.driver:before(name, function()
		started = topo.clock()
		return true
	end)
	t.driver:after(name, function(h, net)
		print(string.format("  step %-34s %7.3f ms", name, (topo.clock() - started) * 1000))
		return true
	end)
end

t:network{ name = "lan", subnet = "10.90.0.0/24" }
t:host "h1"
t:host "h2"
t:connect("h1", "lan")
t:connect("h2", "lan")
t:up()

local bridge = t:net("lan").bridge
local h <close> = assert(require("brisk").open())
local info = assert(h:link_get(bridge)).linkinfo.info_data
print(string.format("\nbridge %s: ageing_time %d (default 30000)", bridge, info.ageing_time))
assert(info.ageing_time == 6000, "the custom step did not run")
assert(t:ping("h1", "h2", { count = 1 }))
