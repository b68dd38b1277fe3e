--- brisk.cli.network: the `brisk network ...` commands.
--
-- create, plan, ls, inspect, rm, restore and check, over brisk.driver. Flag
-- names follow `docker network create`. Failures the driver returns
-- (`nil, msg`) exit 1 as `brisk: msg`; flag and argument mistakes exit 2.
--
-- The module also returns the helpers brisk.cli.endpoint shares with it
-- (opening the driver, KEY=VALUE lists, kernel operations as text).
local cli = require "brisk.cli"
-- brisk.pretty is loaded by op_text (plans), brisk.driver by open_driver:
-- the commands that need them
local pretty

local M = {}

---------------------------------------------------------------------------
-- Shared helpers
---------------------------------------------------------------------------

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

---------------------------------------------------------------------------
-- Network definitions from flags
---------------------------------------------------------------------------

local DEF_FLAGS = {
	{ "--subnet", arg = "CIDR", multi = true,
	  doc = "subnet in CIDR form (one IPv4, one IPv6); default: a free Docker pool" },
	{ "--gateway", arg = "IP", multi = true, doc = "gateway of a subnet (default: its first address)" },
	{ "--ip-range", arg = "CIDR", doc = "allocate endpoint IPv4 addresses from this range of the subnet" },
	{ "--aux-address", arg = "NAME=IP", multi = true,
	  doc = "address the IPAM must not hand out (DefaultGatewayIPv4/IPv6 set a default gateway)" },
	{ "--ipv6", doc = "enable IPv6" },
	{ "--internal", doc = "no NAT, no traffic leaving the network" },
	{ "-o", "--opt", arg = "KEY=VALUE", multi = true,
	  doc = "bridge option: a Docker label (com.docker.network.bridge.name=br0) or its short name (mtu=1400)" },
	{ "-d", "--driver", arg = "NAME", default = "bridge", choices = { "bridge" },
	  doc = "network driver (only bridge)" },
}

-- The driver's bridge options, for the help of create and plan.
local function option_lines()
	local ok, netopts = pcall(require, "brisk.netopts")
	if not ok then return {} end
	local lines = { "", "options (-o KEY=VALUE; KEY is the Docker label or the short name after it):" }
	for _, o in ipairs(netopts.network:keys()) do
		local names = o.label and (o.label .. ", " .. o.key) or o.key
		local doc = o.doc or ""
		if o.default ~= nil then doc = doc .. " (default: " .. tostring(o.default) .. ")" end
		lines[#lines + 1] = "  " .. names
		lines[#lines + 1] = "      " .. doc
	end
	return lines
end

local function definition(name, o, cmd)
	local spec = { name = name }
	if #o.subnet > 0 then spec.subnet = { table.unpack(o.subnet) } end
	if #o.gateway > 0 then spec.gateway = { table.unpack(o.gateway) } end
	spec.ip_range = o.ip_range
	spec.aux_addresses = M.key_values(o.aux_address, "--aux-address", cmd)
	spec.options = M.key_values(o.opt, "--opt", cmd)
	spec.ipv6 = o.ipv6
	spec.internal = o.internal
	return spec
end

---------------------------------------------------------------------------
-- create, plan
---------------------------------------------------------------------------

local function description_with_options(text)
	local lines = {}
	for l in (text .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
	for _, l in ipairs(option_lines()) do lines[#lines + 1] = l end
	return lines
end

cli.register {
	name = "network create",
	summary = "create a bridge network",
	usage = "[FLAGS] NAME",
	-- a function: the option list is built for the help only
	description = function()
		return description_with_options(
			"Creates the bridge, its addresses and sysctls as Docker's bridge driver does, and\n"
			.. "records the network in the state directory. Prints the network's id.")
	end,
	example = {
		"brisk network create --subnet 10.10.0.0/24 --gateway 10.10.0.1 -o com.docker.network.bridge.name=br-web web",
		"brisk network create --ipv6 --subnet 10.20.0.0/24 --subnet fd00:20::/64 dual",
	},
	min_args = 1, max_args = 1,
	flags = DEF_FLAGS,
	run = function(o, pos, ctx)
		local spec = definition(pos[1], o, "network create")
		local d <close> = M.open_driver(ctx)
		return M.must(d:create_network(spec))
	end,
	format = function(net) return net.id end,
}

--- A plan as text: each step, its kernel operations, the totals.
-- @tparam table plan as `driver:plan_network` returns it
-- @treturn string
function M.plan_text(plan)
	local net = plan.network or {}
	local head = { "network " .. tostring(net.name) .. ": bridge " .. tostring(net.bridge) }
	if net.subnet4 then head[#head + 1] = "subnet " .. net.subnet4 .. " gateway " .. tostring(net.gateway4) end
	if net.subnet6 then head[#head + 1] = "subnet " .. net.subnet6 .. " gateway " .. tostring(net.gateway6) end
	if net.creator == "user" then head[#head + 1] = "existing bridge adopted" end
	local out = { table.concat(head, ", ") }
	M.steps_text(plan.steps, out)
	return table.concat(out, "\n")
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

cli.register {
	name = "network plan",
	summary = "show what network create would do, changing nothing",
	usage = "[FLAGS] NAME",
	description = "Takes the flags of 'network create'. Lists libnetwork's steps in order with the\n"
		.. "kernel operations each would perform against the current state: 'skipped' for steps\n"
		.. "not queued, 'already matches' for queued steps with nothing to do. The bridge name\n"
		.. "and MAC are drawn afresh at create time unless given with -o.",
	example = "brisk network plan --subnet 10.10.0.0/24 -o com.docker.network.bridge.name=br-web web",
	min_args = 1, max_args = 1,
	flags = DEF_FLAGS,
	run = function(o, pos, ctx)
		local spec = definition(pos[1], o, "network plan")
		local d <close> = M.open_driver(ctx)
		return M.plain_plan(M.must(d:plan_network(spec)))
	end,
	format = function(plan) return M.plan_text(plan) end,
}

---------------------------------------------------------------------------
-- ls, inspect, rm
---------------------------------------------------------------------------

local function endpoint_counts(d)
	local counts = {}
	local eps = d.endpoint_summaries and d:endpoint_summaries() or {}
	for _, ep in ipairs(eps) do counts[ep.network] = (counts[ep.network] or 0) + 1 end
	return counts
end

cli.register {
	name = "network ls",
	summary = "list networks",
	usage = "",
	description = "Columns: id (12 characters), name, bridge, IPv4 subnet and gateway, IPv6\n"
		.. "subnet, number of endpoints. --json gives the full ids and the IPv6 gateway too.",
	example = { "brisk network ls", "brisk network ls --json" },
	max_args = 0,
	columns = {
		{ "id", title = "NETWORK ID", format = M.short },
		"name", "bridge", "subnet", "gateway",
		{ "subnet6", title = "IPV6" },
		"endpoints",
	},
	run = function(_, _, ctx)
		local d <close> = M.open_driver(ctx)
		local nets = d:network_summaries()
		local counts = endpoint_counts(d)
		local rows = cli.array()
		for _, n in ipairs(nets) do
			rows[#rows + 1] = {
				id = n.id, name = n.name, bridge = n.bridge,
				subnet = n.subnet4, gateway = n.gateway4,
				subnet6 = n.subnet6, gateway6 = n.gateway6,
				internal = n.internal and true or false, ipv6 = n.enable_ipv6 and true or false,
				endpoints = counts[n.id] or 0,
			}
		end
		-- by name: names are unique (create sees to it), so the names sort
		-- natively (no Lua comparison function per step) and the rows
		-- follow them; a store edited into two of a name (or none) sorts the
		-- slow way
		local names, by, twice = {}, {}, false
		for i, r in ipairs(rows) do
			local name = r.name
			if type(name) ~= "string" or by[name] then
				twice = true
			else
				names[i], by[name] = name, r
			end
		end
		if twice then
			table.sort(rows, function(a, b) return tostring(a.name) < tostring(b.name) end)
		else
			table.sort(names)
			for i, name in ipairs(names) do rows[i] = by[name] end
		end
		return rows
	end,
}

cli.register {
	name = "network inspect",
	summary = "show a network's record",
	usage = "NAME|ID",
	description = "Text: the record without its journal, with the network's endpoints.\n"
		.. "--json: the stored record exactly (journal of kernel operations included).",
	example = { "brisk network inspect web", "brisk network inspect --json 3f2a9c" },
	min_args = 1, max_args = 1,
	run = function(_, pos, ctx)
		local d <close> = M.open_driver(ctx)
		local net = M.must(d:network(pos[1]))
		if ctx.json then return net end
		local view = {}
		for k, v in pairs(net) do view[k] = v end
		view.journal = net.journal and (#net.journal .. " kernel operations (see --json)") or nil
		view.ipam = nil
		view.dbIndex = nil
		if d.endpoints then
			local eps = {}
			for _, ep in ipairs(M.must(d:endpoints(net.id))) do
				eps[ep.name] = table.concat({ ep.ipv4, ep.ipv6 }, " ")
			end
			view.endpoints = eps
		end
		return view
	end,
}

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

local function lines(t) return table.concat(t, "\n") end

cli.register {
	name = "network rm",
	summary = "delete networks",
	usage = "[FLAGS] NAME|ID...",
	description = "Undoes what brisk did, newest first: a bridge brisk created is deleted, one it\n"
		.. "adopted is left with its own settings. Prints each network removed; a network\n"
		.. "that cannot be removed is reported and the others are still tried (exit 1).",
	example = { "brisk network rm web", "brisk network rm --force web db" },
	min_args = 1,
	list = true,
	flags = {
		{ "--force", "-f", doc = "delete the network's endpoints first" },
	},
	run = function(o, pos, ctx)
		local d <close> = M.open_driver(ctx)
		return M.each(pos, function(k) return d:delete_network(k, { force = o.force or false }) end, ctx)
	end,
	format = lines,
}

---------------------------------------------------------------------------
-- restore, check
---------------------------------------------------------------------------

cli.register {
	name = "network restore",
	summary = "re-create the stored networks in the kernel (after a reboot)",
	usage = "",
	description = "Re-runs create for every stored network, adopting what already matches.\n"
		.. "A network whose create was interrupted (the process was killed) is undone and\n"
		.. "created again; an endpoint whose create was interrupted is removed.\n"
		.. "Exit 1 when any network could not be restored.",
	example = "brisk network restore",
	max_args = 0,
	list = true,
	run = function(_, _, ctx)
		local d <close> = M.open_driver(ctx)
		local p <close> = cli.progress(#d:networks(), "restore")
		local res = d:restore{ on_network = function(r) p:step(r.name) end } or {}
		p:done()
		local code = 0
		for _, r in ipairs(res) do if not r.ok then code = 1 end end
		return setmetatable(res, cli.array_mt), code
	end,
	format = function(res)
		if #res == 0 then return "no networks" end
		local out = {}
		for _, r in ipairs(res) do
			if r.ok and r.undone then
				out[#out + 1] = string.format("%s: ok (interrupted create undone)", r.name)
			elseif r.ok and r.finished then
				out[#out + 1] = string.format("%s: ok (interrupted create finished)", r.name)
			elseif r.ok then
				local n = r.changes or 0
				out[#out + 1] = string.format("%s: ok (%s)", r.name,
					n == 0 and "already matches" or (n .. " change" .. (n == 1 and "" or "s")))
			else
				out[#out + 1] = string.format("%s: failed: %s", r.name, tostring(r.msg))
			end
		end
		return lines(out)
	end,
}

cli.register {
	name = "network check",
	summary = "compare the stored networks with the kernel",
	usage = "",
	description = "Prints each difference (drift) between the state directory and the kernel and\n"
		.. "exits 1, or prints 'no drift' and exits 0. A create that was interrupted (the\n"
		.. "process was killed between its first kernel change and its final store write)\n"
		.. "is reported with what it left: 'network restore' finishes a network, 'rm' undoes it.",
	example = { "brisk network check", "brisk network check --json" },
	max_args = 0,
	list = true,
	run = function(_, _, ctx)
		local d <close> = M.open_driver(ctx)
		local drift = M.must(d:check())
		return setmetatable(drift, cli.array_mt), #drift > 0 and 1 or 0
	end,
	format = function(drift)
		if #drift == 0 then return "no drift" end
		return lines(drift)
	end,
}

---------------------------------------------------------------------------
-- REPL completion of network and endpoint names (inside string literals)
---------------------------------------------------------------------------

--- Names of the stored networks and endpoints in $BRISK_STATE_DIR (or the
-- default state directory); empty when there is none. Reads the store's
-- files only: creates nothing.
function M.stored_names(dir)
	dir = dir or os.getenv("BRISK_STATE_DIR") or cli.default_state_dir
	local names = {}
	local okc, core = pcall(require, "brisk.core")
	if not okc or not core.listdir then return names end
	local store = require "brisk.store"
	for _, kind in ipairs{ "network", "endpoint" } do
		local files = core.listdir(dir .. "/" .. kind)
		for _, f in ipairs(files or {}) do
			local h = store.doc_id(f) and io.open(dir .. "/" .. kind .. "/" .. f, "rb")
			if h then
				local doc = store.decode(h:read("a") or "")
				h:close()
				if type(doc) == "table" and type(doc.name) == "string" then names[#names + 1] = doc.name end
			end
		end
	end
	return names
end

--- The REPL completer: names, when the word follows a quote.
function M.complete(text, line)
	line = line or text
	local esc = text:gsub("%p", "%%%0")
	if not line:find("[\"']" .. esc .. "$") and not line:find("[\"']" .. esc .. "[^%w_.-]") then
		return {}
	end
	return M.stored_names()
end

-- Registered with a REPL that is already loaded; this module does not load
-- it (the network commands do not need it, and `brisk repl` sets up its own
-- name completer over its state directory).
do
	local repl = package.loaded["brisk.repl"]
	if type(repl) == "table" and type(repl.completers) == "table" then
		local present = false
		for _, f in ipairs(repl.completers) do present = present or f == M.complete end
		if not present then table.insert(repl.completers, M.complete) end
	end
end

return M
