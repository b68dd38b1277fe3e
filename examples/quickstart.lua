-- examples/quickstart.lua: one network, two hosts that ping each other.
--
--   bash scripts/demo.sh                      (installs, builds, runs this)
--   scripts/isolate.sh build/bin/brisk run examples/quickstart.lua
--
-- Run it only inside a network namespace of its own (scripts/isolate.sh
-- makes one): it creates a bridge, two namespaces and a veth pair for each,
-- and removes them all again when `t` goes out of scope (an error included).
local topo = require "brisk.topo"

-- brisk keeps its state here; a scratch directory unless told otherwise
local state = os.getenv("BRISK_STATE_DIR")
local scratch = state == nil
if scratch then state = os.tmpname(); os.remove(state) end

local ok
do
	local t <close> = topo.new{ name = "quickstart", state_dir = state }
	t:network{ name = "demo", subnet = "10.88.0.0/24" }
	t:host "h1"
	t:host "h2"
	t:connect("h1", "demo")
	t:connect("h2", "demo")
	t:up()

	print()
	ok = t:ping("h1", "h2", { count = 3 })
	print()
end   -- t is closed here: the topology is torn down

if scratch then os.execute("rm -rf " .. state) end
if not ok then error("h1 could not reach h2") end
print("\nok: h1 reached h2 across the demo bridge; everything was removed again")
