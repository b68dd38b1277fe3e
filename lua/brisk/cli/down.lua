--- brisk.cli.down: `brisk down SCRIPT [ARGS]`, the teardown of a topology
-- script's topologies (brisk.topo), and `brisk down NAME`.
--
-- The script does not run: every topology recorded in the state directory
-- as made by it (by its absolute path) is removed, as `brisk down NAME`
-- removes one: what the topology recorded, nothing made by hand. With
-- ARGS, only the topologies the script made when run with exactly those
-- arguments (a script that names its topology after them).
local cli = require "brisk.cli"
local topo = require "brisk.topo"

local sfmt, concat = string.format, table.concat

local function is_file(path)
	local f = io.open(path, "r")
	if not f then return false end
	-- a directory opens too, but reading it fails (an empty file reads nil, no error)
	local r, err = f:read(0)
	f:close()
	return r ~= nil or err == nil
end

-- "NAME (script PATH, arguments A B)" for the error's list of records.
local function record_text(r)
	local t = { r.script and ("script " .. r.script) or "no script" }
	if r.args and #r.args > 0 then t[#t + 1] = "arguments " .. concat(r.args, " ") end
	return sfmt("%s (%s)", r.name, concat(t, ", "))
end

cli.register {
	name = "down",
	raw = true,
	summary = "remove the topologies a topology script built (or a recorded topology, by name)",
	usage = "SCRIPT|NAME [ARGS...]",
	description = "SCRIPT does not run: every topology recorded in the state directory as made by it\n"
		.. "is removed, each as 'brisk down NAME' removes one. With ARGS, only those it made when\n"
		.. "run with exactly these arguments. Only what the topologies made goes: namespaces, links\n"
		.. "and networks made by hand (or adopted) stay. NAME: a topology recorded in the state\n"
		.. "directory, removed whatever script made it.",
	example = { "brisk down examples/router.lua", "brisk down lab.lua site2", "brisk down router" },
	min_args = 1,
	passthrough = true,
	run = function(_, pos)
		local target = pos[1]
		local failed = 0
		local file = is_file(target)
		if target == "-" then
			cli.error("a script read from stdin records no path: give the topology's name (brisk down NAME)")
		elseif not file and target:match("^[%w][%w_.-]*$") and not target:match("%.lua$") then
			if #pos > 1 then cli.error("brisk down NAME takes no arguments (ARGS go with a SCRIPT)") end
			failed = #topo.down(target).errors
		else
			local args = #pos > 1 and { table.unpack(pos, 2) } or nil
			local names, all = topo.recorded(target, args)
			if #names == 0 then
				local recs = {}
				for _, r in ipairs(all) do recs[#recs + 1] = record_text(r) end
				cli.error(sfmt("%sno topology is recorded as made by %s%s: nothing removed (recorded: %s; "
					.. "'brisk down NAME' removes one by its name)", file and "" or ("cannot open " .. target .. ", and "),
					topo.script_path(target), args and (" with arguments " .. concat(args, " ")) or "",
					#recs > 0 and concat(recs, ", ") or "none"))
			end
			for _, name in ipairs(names) do
				failed = failed + #topo.down(name).errors
			end
		end
		if failed > 0 then
			return nil, failed .. " object" .. (failed == 1 and "" or "s") .. " could not be removed"
		end
		return nil
	end,
}
