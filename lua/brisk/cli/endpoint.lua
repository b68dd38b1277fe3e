--- brisk.cli.endpoint: the `brisk endpoint ...` commands.
--
-- create, plan, ls, inspect, rm, join and leave, over brisk.driver. An
-- endpoint is a veth pair on a network's bridge; with --netns (or `join`)
-- its other end sits in a network namespace with the endpoint's addresses
-- and a default route through the bridge.
local cli = require "brisk.cli"
local N = require "brisk.cliutil"

local must, key_values = N.must, N.key_values

---------------------------------------------------------------------------
-- Flags -> endpoint definition
---------------------------------------------------------------------------

local DEF_FLAGS = {
	{ "--name", arg = "NAME", doc = "endpoint name (default: the first 12 characters of its id)" },
	{ "--ip", arg = "IP", doc = "IPv4 address (default: the next free one of the network)" },
	{ "--ip6", arg = "IP", doc = "IPv6 address (IPv6 networks; default: allocated)" },
	{ "--mac", arg = "MAC", doc = "MAC address of the namespace side (default: 02:42 + the IPv4 address)" },
	{ "--netns", arg = "NAME|PATH|PID",
	  doc = "join this namespace too: a name (created when missing), a path or a pid (not brisk's own;"
		.. " digits name a namespace of that name when there is one, as in ip)" },
	{ "--ifname", arg = "NAME", doc = "interface name inside the namespace (default: the first free ethN)" },
	{ "-o", "--opt", arg = "KEY=VALUE", multi = true,
	  doc = "endpoint option: mac (com.docker.network.endpoint.macaddress), hairpin" },
	{ "-p", "--publish", arg = "SPEC", multi = true,
	  doc = "publish a port as docker run -p does: [IP:]HOSTPORT[-END]:PORT[-END][/tcp|udp|sctp]"
		.. " (no IP: the network's host_binding_ipv4, else every address; not loopback)" },
}

local function port_range(s)
	local a, b = s:match("^(%d+)%-(%d+)$")
	if not a then a = s:match("^(%d+)$") end
	if not a then return nil end
	a, b = tonumber(a), tonumber(b or a)
	if a < 1 or b > 65535 or b < a then return nil end
	return a, b
end

--- Parse a `docker run -p` port specification into the port mappings of
-- brisk.firewall (`container_ip` is the endpoint's, filled in by the driver).
-- @tparam string s `[IP:]HOSTPORT[-END]:PORT[-END][/PROTO]`, an IPv6 host
--   address in brackets; ranges of equal size map port by port
-- @return array of `{proto=, host_ip=|nil, host_port=, container_port=}`
-- @return[2] nil, msg
local function parse_publish(s)
	local r, m = require("brisk.ports").parse(s)
	if not r then return nil, "invalid port specification '" .. s .. "' (" .. m .. ")" end
	return { r }
end

local function definition(o, cmd)
	local spec = {
		name = o.name, ip = o.ip, ip6 = o.ip6, mac = o.mac, netns = o.netns, ifname = o.ifname,
		options = key_values(o.opt, "--opt", cmd),
	}
	if o.ifname and not o.netns then
		cli.usage_error("--ifname needs --netns (or give it to 'endpoint join')", cmd)
	end
	if #o.publish > 0 then
		spec.publish = cli.array()
		for _, s in ipairs(o.publish) do
			local list, msg = parse_publish(s)
			if not list then cli.error("flag --publish: " .. msg) end
			for _, m in ipairs(list) do spec.publish[#spec.publish + 1] = m end
		end
	end
	return spec
end

---------------------------------------------------------------------------
-- create, plan
---------------------------------------------------------------------------

cli.register {
	name = "endpoint create",
	summary = "create an endpoint on a network (and join a namespace with --netns)",
	usage = "[FLAGS] NETWORK",
	description = "Creates a veth pair with one end on the network's bridge. With --netns the other\n"
		.. "end is created inside that namespace, named ethN, with the endpoint's addresses and\n"
		.. "a default route through the gateway. Prints the endpoint's id.",
	example = {
		"brisk endpoint create --name web1 --netns h1 web",
		"brisk endpoint create --ip 10.10.0.5 --netns /run/netns/h2 --ifname eth1 -p 8080:80 web",
	},
	min_args = 1, max_args = 1,
	flags = DEF_FLAGS,
	run = function(o, pos, ctx)
		local spec = definition(o, "endpoint create")
		local d <close> = N.open_driver(ctx)
		return must(d:create_endpoint(pos[1], spec))
	end,
	format = function(ep) return ep.id end,
}

local function plan_text(plan)
	local ep = plan.endpoint
	local out = { string.format("endpoint %s on network %s (bridge %s)", ep.name, ep.network_name, ep.bridge) }
	local rows = {
		{ "ipv4", ep.ipv4 }, { "ipv6", ep.ipv6 }, { "mac", ep.mac }, { "gateway", ep.gateway4 },
		{ "netns", ep.netns }, { "ifname", ep.ifname }, { "host", ep.host_ifname },
	}
	for _, r in ipairs(rows) do
		if r[2] ~= nil then out[#out + 1] = string.format("  %-8s %s", r[1], tostring(r[2])) end
	end
	for _, p in ipairs(ep.ports or {}) do
		out[#out + 1] = string.format("  %-8s %s%s:%s/%s", "publish",
			p.host_ip and (p.host_ip .. ":") or "", p.host_port, p.container_port, p.proto)
	end
	out[#out + 1] = "steps:"
	N.steps_text(plan.steps, out)
	return table.concat(out, "\n")
end

cli.register {
	name = "endpoint plan",
	summary = "show what endpoint create would do, changing nothing",
	usage = "[FLAGS] NETWORK",
	description = "Takes the flags of 'endpoint create'. Resolves the endpoint as create would (the\n"
		.. "addresses the network's IPAM would hand out now, the MAC, the namespace) and lists\n"
		.. "the endpoint steps that would run, with the kernel operations each would perform\n"
		.. "('skipped' for steps not queued, 'already matches' for those with nothing to do).\n"
		.. "The endpoint's id, and with it the host-side name, is drawn afresh at create time.",
	example = "brisk endpoint plan --netns h1 web",
	min_args = 1, max_args = 1,
	flags = DEF_FLAGS,
	run = function(o, pos, ctx)
		local spec = definition(o, "endpoint plan")
		local d <close> = N.open_driver(ctx)
		return N.plain_plan(must(d:plan_endpoint(pos[1], spec)))
	end,
	format = plan_text,
}

---------------------------------------------------------------------------
-- ls, inspect, rm
---------------------------------------------------------------------------

cli.register {
	name = "endpoint ls",
	summary = "list endpoints (of one network when given)",
	usage = "[NETWORK]",
	example = { "brisk endpoint ls", "brisk endpoint ls --json web" },
	max_args = 1,
	columns = {
		{ "id", title = "ENDPOINT ID", format = N.short },
		"name",
		{ "network_name", title = "NETWORK" },
		{ "host_ifname", title = "HOST IFNAME" },
		"netns", "ifname", "mac", "ipv4", "ipv6",
	},
	run = function(_, pos, ctx)
		local d <close> = N.open_driver(ctx)
		local eps
		if pos[1] then
			local net = must(d:network(pos[1]))
			eps = must(d:endpoints(net.id))
		else
			eps = must(d:endpoints())
		end
		table.sort(eps, function(a, b)
			if a.network_name ~= b.network_name then return tostring(a.network_name) < tostring(b.network_name) end
			return a.name < b.name
		end)
		return setmetatable(eps, cli.array_mt)
	end,
}

cli.register {
	name = "endpoint inspect",
	summary = "show an endpoint's record",
	usage = "NAME|ID",
	description = "Text: the record, readably. --json: the stored record exactly.",
	example = { "brisk endpoint inspect web1", "brisk endpoint inspect --json 5d1e07" },
	min_args = 1, max_args = 1,
	run = function(_, pos, ctx)
		local d <close> = N.open_driver(ctx)
		return must(d:endpoint(pos[1]))
	end,
}

cli.register {
	name = "endpoint rm",
	summary = "delete endpoints",
	usage = "NAME|ID...",
	description = "Deletes the veth pair (wherever its other end is), frees the addresses, removes\n"
		.. "its published ports and its flows' conntrack entries (NATed to or from its addresses,\n"
		.. "UDP and SCTP to its host ports, as Docker does), and deletes a namespace the endpoint\n"
		.. "created (unless another endpoint is in it, which then owns it). Prints each endpoint\n"
		.. "removed; one that cannot be removed is reported and the others are still tried (exit 1).",
	example = "brisk endpoint rm web1 web2",
	min_args = 1,
	list = true,
	run = function(_, pos, ctx)
		local d <close> = N.open_driver(ctx)
		return N.each(pos, function(k) return d:delete_endpoint(k) end, ctx)
	end,
	format = function(t) return table.concat(t, "\n") end,
}

---------------------------------------------------------------------------
-- join, leave
---------------------------------------------------------------------------

cli.register {
	name = "endpoint join",
	summary = "move an endpoint's other end into a namespace",
	usage = "[FLAGS] NAME|ID NETNS",
	description = "For an endpoint created without --netns: its other end moves into NETNS (a name,\n"
		.. "created when missing, a path or a pid: digits name a namespace of that name\n"
		.. "when there is one), is renamed ethN, gets the endpoint's\n"
		.. "addresses, comes up, and gets a default route through the gateway.",
	example = "brisk endpoint join --ifname eth1 web1 h1",
	min_args = 2, max_args = 2,
	flags = {
		{ "--ifname", arg = "NAME", doc = "interface name inside the namespace (default: the first free ethN)" },
	},
	run = function(o, pos, ctx)
		local d <close> = N.open_driver(ctx)
		return must(d:join(pos[1], pos[2], { ifname = o.ifname }))
	end,
	format = function(ep)
		return string.format("%s joined %s as %s", ep.name, tostring(ep.netns), tostring(ep.ifname))
	end,
}

cli.register {
	name = "endpoint leave",
	summary = "bring an endpoint's other end back from its namespace",
	usage = "NAME|ID",
	description = "The namespace side loses its addresses, goes down and returns under its host\n"
		.. "name; a namespace the endpoint created is deleted (unless another endpoint is in\n"
		.. "it, which then owns it). The endpoint stays on its network, and the namespace's\n"
		.. "default routes go to its next endpoint that can carry them. A join or a leave that\n"
		.. "was cut short (a killed process; 'network check' reports it) is undone here.",
	example = "brisk endpoint leave web1",
	min_args = 1, max_args = 1,
	run = function(_, pos, ctx)
		local d <close> = N.open_driver(ctx)
		local before = must(d:endpoint(pos[1]))
		ctx.left = before.netns
		return must(d:leave(pos[1]))
	end,
	format = function(ep, ctx) return string.format("%s left %s", ep.name, tostring(ctx.left)) end,
}

return { parse_publish = parse_publish }
