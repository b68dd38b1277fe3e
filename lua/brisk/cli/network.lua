--- brisk.cli.network: the `brisk network ...` commands.
--
-- create, plan, ls, inspect, rm, restore and check, over brisk.driver. Flag
-- names follow `docker network create`. Failures the driver returns
-- (`nil, msg`) exit 1 as `brisk: msg`; flag and argument mistakes exit 2.
--
-- The module also returns the helpers of brisk.cliutil (opening the
-- driver, KEY=VALUE lists, kernel operations as text), which the other
-- command modules share with it, and name completion for the REPL.
local cli = require "brisk.cli"
local U = require "brisk.cliutil"

local M = {}
for k, v in pairs(U) do M[k] = v end

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

cli.register {
	name = "network plan",
	summary = "show what network create would do, changing nothing",
	usage = "[FLAGS] NAME",
	description = "Takes the flags of 'network create'. Lists libnetwork's steps in order with the\n"
		.. "kernel operations each would perform against the current state: 'skipped' for steps\n"
		.. "not queued, 'already matches' for queued steps with nothing to do. The network's id\n"
		.. "(and with it the default bridge name, br-<id>) and the bridge's MAC are drawn afresh\n"
		.. "at create time; -o com.docker.network.bridge.name=NAME fixes the name.",
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
		.. "created again; an endpoint whose create was interrupted is removed. Each network's\n"
		.. "firewall is rebuilt whole, as libnetwork does when it starts; what the network's\n"
		.. "record did not hold yet, and firewall drift it repaired, count as changes.\n"
		.. "Exit 1 when any network could not be restored.",
	example = "brisk network restore",
	max_args = 0,
	list = true,
	run = function(_, _, ctx)
		local d <close> = M.open_driver(ctx)
		local p <close> = cli.progress(#d:networks(), "restore")
		local res, msg = d:restore{ on_network = function(r) p:step(r.name) end }
		p:done()
		if not res then cli.error(msg) end
		local code = 0
		for _, r in ipairs(res) do if not r.ok then code = 1 end end
		return setmetatable(res, cli.array_mt), code
	end,
	format = function(res)
		if #res == 0 then return "no networks" end
		local out = {}
		for _, r in ipairs(res) do
			if r.ok and r.undone then
				out[#out + 1] = string.format("%s: ok (interrupted %s undone)", r.name, r.what or "create")
			elseif r.ok and r.finished then
				out[#out + 1] = string.format("%s: ok (interrupted %s finished)", r.name, r.what or "create")
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
