--- brisk.cliutil: helpers the command modules (brisk.cli.network,
-- brisk.cli.endpoint, ...) share: opening the driver over the command's
-- state directory, KEY=VALUE flag lists, driver results to brisk errors,
-- kernel operations and plan steps as text, short ids, and running a
-- command over several keys. Kept apart from any command group, so that a
-- command loads its own group's module and this one only.
local cli = require "brisk.cli"
-- brisk.pretty is loaded by op_text (plans), brisk.driver by open_driver:
-- the commands that need them
local pretty

local M = {}

--- Open the driver over the command's state directory; raises a brisk
-- error (exit 1) when it cannot be opened.
-- @tparam table ctx the command context
-- @return driver (close it, or hold it in a `<close>` variable)
function M.open_driver(ctx)
	local driver = require "brisk.driver"
	local d, msg = driver.open{ state_dir = ctx.state_dir }
	if not d then cli.error(msg) end
	return d
end

--- Turn repeated `KEY=VALUE` flag values into a table.
-- A value without `=`, or a key given twice, is a usage error.
-- @tparam table list the flag's values
-- @tparam string flag the flag's name, for messages
-- @tparam string cmd the command's name, for its usage line
-- @treturn table|nil KEY -> VALUE, nil when the list is empty
function M.key_values(list, flag, cmd)
	local t
	for _, kv in ipairs(list or {}) do
		local k, v = kv:match("^([^=]+)=(.*)$")
		if not k then cli.usage_error("flag " .. flag .. ": '" .. kv .. "' is not KEY=VALUE", cmd) end
		t = t or {}
		if t[k] ~= nil then cli.usage_error("flag " .. flag .. ": " .. k .. " given more than once", cmd) end
		t[k] = v
	end
	return t
end

--- Pass a driver result through, or raise a brisk error (exit 1, `brisk:
-- msg`) when it is the failure `nil, msg, errno`.
-- @return the results unchanged
function M.must(v, msg, ...)
	if v == nil and msg ~= nil then cli.error(msg) end
	return v, msg, ...
end

-- Key order inside one operation argument: the object first.
local FIRST = { ifname = 1, dev = 2, kind = 3, master = 4 }

local function word(v)
	pretty = pretty or require "brisk.pretty"
	if type(v) == "string" then
		if v == "" or v:find("[%s\"'=]") then return pretty.quote(v) end
		return v
	end
	if type(v) == "table" then
		local parts, n = {}, 0
		for _ in pairs(v) do n = n + 1 end
		if n == #v then
			for i, x in ipairs(v) do parts[i] = word(x) end
			return table.concat(parts, ",")
		end
		return pretty.format(v):gsub("%s*\n%s*", " ")
	end
	return tostring(v)
end

local function arg_text(v, blocks)
	if type(v) == "string" and v:find("\n") then
		blocks[#blocks + 1] = v
		local lines = select(2, v:gsub("\n", "")) + (v:sub(-1) == "\n" and 0 or 1)
		return "<script: " .. lines .. " line" .. (lines == 1 and "" or "s") .. ">"
	end
	if type(v) ~= "table" then return word(v) end
	local keys = {}
	for k in pairs(v) do keys[#keys + 1] = k end
	table.sort(keys, function(a, b)
		local ra, rb = FIRST[a] or 99, FIRST[b] or 99
		if ra ~= rb then return ra < rb end
		return tostring(a) < tostring(b)
	end)
	local parts = {}
	for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. word(v[k]) end
	return table.concat(parts, " ")
end

--- One kernel operation `{op=, args={...}}` as a line of text:
-- `link_add ifname=br-x kind=bridge address=02:42:... txqlen=0`.
-- Multi-line string arguments (nft scripts) print as indented lines below.
-- @tparam table op
-- @tparam[opt=""] string indent prefix of the continuation lines
-- @treturn string
function M.op_text(op, indent)
	indent = indent or ""
	local parts, blocks = { tostring(op.op) }, {}
	local args = op.args or {}
	for i = 1, math.tointeger(args.n) or #args do
		parts[#parts + 1] = arg_text(args[i], blocks)
	end
	local out = { table.concat(parts, " ") }
	for _, b in ipairs(blocks) do
		for l in b:gsub("\n$", ""):gmatch("[^\n]*") do out[#out + 1] = indent .. "  | " .. l end
	end
	return table.concat(out, "\n")
end

--- Give every operation's arguments as a plain array, for JSON: the
-- recorder keeps the argument count `n` in them, and a missing argument
-- becomes null.
-- @tparam table ops array of `{op=, args=}` (changed in place)
function M.plain_ops(ops)
	local null = require("cjson").null
	for _, op in ipairs(ops or {}) do
		local a = op.args or {}
		if getmetatable(a) ~= cli.array_mt then
			local t = cli.array()
			for i = 1, math.tointeger(a.n) or #a do
				if a[i] == nil then t[i] = null else t[i] = a[i] end
			end
			op.args = t
		end
	end
	return ops
end

--- A plan with plain-array operation arguments (for JSON).
function M.plain_plan(plan)
	M.plain_ops(plan.ops)
	for _, s in ipairs(plan.steps or {}) do M.plain_ops(s.ops) end
	return plan
end

--- The first 12 characters of an id (as `docker network ls` shows it).
function M.short(id)
	return type(id) == "string" and id:sub(1, 12) or ""
end

--- The steps of a plan as text lines appended to `out`: each step, its
-- kernel operations ("already matches" when there are none, "skipped" when
-- it is not queued), and the totals.
-- @tparam table steps plan.steps
-- @tparam table out array of lines
-- @treturn table out
function M.steps_text(steps, out)
	local nops, nsteps = 0, 0
	local w = 0
	for _, s in ipairs(steps or {}) do if #s.name > w then w = #s.name end end
	for _, s in ipairs(steps or {}) do
		local pad = string.rep(" ", w - #s.name + 2)
		if s.skipped then
			out[#out + 1] = "  " .. s.name .. pad .. "skipped"
		elseif #(s.ops or {}) == 0 then
			out[#out + 1] = "  " .. s.name .. pad .. "already matches"
		else
			out[#out + 1] = "  " .. s.name
			nsteps = nsteps + 1
			for _, op in ipairs(s.ops) do
				out[#out + 1] = "      " .. (op.netns and ("[netns " .. tostring(op.netns) .. "] ") or "") ..
					M.op_text(op, "      ")
				nops = nops + 1
			end
		end
	end
	out[#out + 1] = string.format("%d operation%s in %d step%s; nothing was changed",
		nops, nops == 1 and "" or "s", nsteps, nsteps == 1 and "" or "s")
	return out
end

-- Run `fn(key)` for every key; failures go to stderr and make the exit 1.
-- Returns the keys that succeeded and the exit code.
function M.each(keys, fn, ctx)
	local done, failed = cli.array(), false
	for _, k in ipairs(keys) do
		local ok, msg = fn(k)
		if ok then
			done[#done + 1] = k
		else
			ctx.err("brisk: " .. tostring(msg) .. "\n")
			failed = true
		end
	end
	return done, failed and 1 or 0
end

return M
