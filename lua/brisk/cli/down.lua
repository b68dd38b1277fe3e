--- brisk.cli.down: `brisk down SCRIPT [ARGS]`, the teardown of a topology
-- script (brisk.topo).
--
-- The script runs as under `brisk run`, with the same arguments, until it
-- calls topo.new: that call removes what the topology recorded (exactly
-- that: nothing made by hand) and stops the script, so nothing after it
-- runs. `brisk down NAME` removes a recorded topology by its name.
local cli = require "brisk.cli"
local topo = require "brisk.topo"

local function is_file(path)
	local f = io.open(path, "r")
	if not f then return false end
	-- a directory opens too, but reading it fails (an empty file reads nil, no error)
	local r, err = f:read(0)
	f:close()
	return r ~= nil or err == nil
end

cli.register {
	name = "down",
	raw = true,
	summary = "remove what a topology script built (or a recorded topology, by name)",
	usage = "SCRIPT|NAME [ARGS...]",
	description = "SCRIPT runs as under 'brisk run' (give it the same ARGS) until it calls topo.new:\n"
		.. "that call removes what the topology recorded in the state directory, and the rest\n"
		.. "of the script is skipped. Only what the topology made goes: namespaces, links and\n"
		.. "networks made by hand (or adopted) stay. NAME: a topology recorded in the state\n"
		.. "directory, removed without its script.",
	example = { "brisk down examples/router.lua", "brisk down router" },
	min_args = 1,
	passthrough = true,
	run = function(o, pos, ctx)
		local target = pos[1]
		local res
		if target ~= "-" and not is_file(target) then
			if target:find("/", 1, true) or target:match("%.lua$") or not target:match("^[%w][%w_.-]*$") then
				cli.error("cannot open " .. target)
			end
			res = topo.down(target)
		else
			local mode = {}
			topo.down_mode = mode
			local ok, err = pcall(cli.commands.run.run, o, pos, ctx)
			topo.down_mode = nil
			res = mode.result
			if not res then
				if not ok then error(err, 0) end
				cli.error(target .. " made no topology (it never called topo.new): nothing to remove")
			end
		end
		if #res.errors > 0 then
			return nil, #res.errors .. " object" .. (#res.errors == 1 and "" or "s") .. " could not be removed"
		end
		return nil
	end,
}
