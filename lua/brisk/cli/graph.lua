--- brisk.cli.graph: `brisk graph`, the topology as a Graphviz picture.
--
-- The model (`G.model(d)`) is read from the driver's store and the kernel:
-- the networks (bridge, addresses, whether the bridge is there), their
-- endpoints (veth pair, namespace, addresses, MAC, published ports) and
-- the named namespaces. `G.dot(model)` writes it as a Graphviz `graph`: the
-- driver's namespace and every other namespace are clusters, bridges are
-- boxes, an endpoint is an edge from its bridge (labelled with the host
-- side's name) to its interface in its namespace, a published port is a
-- node in the host cluster with an arrow to the endpoint. `--format svg`
-- or `png` renders through Graphviz's `dot`, which Debian packages as
-- graphviz; without it the command says what to install and exits 1.
local cli = require "brisk.cli"
local N = require "brisk.cliutil"

local G = {}

-- Model -----------------------------------------------------------------------

local function sorted(list, key)
	table.sort(list, function(a, b) return tostring(a[key]) < tostring(b[key]) end)
	return list
end

--- The topology the driver knows, with the kernel's view of the bridges.
-- @param d a driver
-- @treturn table `{ networks = {...}, endpoints = {...}, namespaces = {...} }`:
--   networks `{id, name, bridge, subnet4, gateway4, address_ipv4, subnet6,
--   address_ipv6, internal, present}`, endpoints `{id, name, network,
--   host_ifname, netns, ifname, ipv4, ipv6, mac, ports}`, namespaces the
--   names in /run/netns and those the endpoints name, sorted
-- @return[2] nil, msg
function G.model(d)
	local nets, msg = d:networks()
	if not nets then return nil, msg end
	local eps
	eps, msg = d:endpoints()
	if not eps then return nil, msg end
	local m = { networks = cli.array(), endpoints = cli.array(), namespaces = cli.array() }
	for _, n in ipairs(nets) do
		local present = d.h and d.h:link_get(n.bridge) ~= nil or false
		m.networks[#m.networks + 1] = {
			id = n.id, name = n.name, bridge = n.bridge, subnet4 = n.subnet4, gateway4 = n.gateway4,
			address_ipv4 = not n.inhibit_ipv4 and n.address_ipv4 or nil,
			subnet6 = n.subnet6, address_ipv6 = n.address_ipv6,
			internal = n.internal and true or false, present = present,
		}
	end
	local ns = {}
	-- a namespace however an endpoint named it (a name, a path, a pid) is
	-- drawn once, under its name in /run/netns when it has one
	local ok, core = pcall(require, "brisk.core")
	local named = {}
	if ok and core.netns_list then
		for _, n in ipairs(core.netns_list() or {}) do
			ns[n] = true
			local id = core.netns_id(n)
			if id and not named[id] then named[id] = n end
		end
	end
	-- unnamed: under the shortest way an endpoint named it (a pid before
	-- /proc/PID/ns/net), the same whatever the endpoints' order
	local ids, unnamed = {}, {}   -- endpoint index -> its namespace's identity
	for i, e in ipairs(eps) do
		local id = e.netns ~= nil and ok and core.netns_id and core.netns_id(e.netns)
		ids[i] = id or nil
		if id and not named[id] then
			local r, best = tostring(e.netns), unnamed[id]
			if not best or #r < #best or (#r == #best and r < best) then unnamed[id] = r end
		end
	end
	for i, e in ipairs(eps) do
		local ports = cli.array()
		for _, p in ipairs(e.ports or {}) do
			ports[#ports + 1] = { proto = p.proto, host_ip = p.host_ip, host_port = p.host_port,
				container_ip = p.container_ip, container_port = p.container_port }
		end
		local id = ids[i]
		local netns = id and (named[id] or unnamed[id]) or (e.netns ~= nil and tostring(e.netns) or nil)
		m.endpoints[#m.endpoints + 1] = {
			id = e.id, name = e.name, network = e.network, host_ifname = e.host_ifname,
			netns = netns, ifname = e.ifname,
			peer_ifname = e.peer_ifname, ipv4 = e.ipv4, ipv6 = e.ipv6, mac = e.mac, ports = ports,
		}
		if netns ~= nil then ns[netns] = true end
	end
	for n in pairs(ns) do m.namespaces[#m.namespaces + 1] = n end
	table.sort(m.namespaces)
	sorted(m.networks, "name")
	sorted(m.endpoints, "name")
	return m
end

-- Dot -------------------------------------------------------------------------

--- A string as a dot quoted string (labels: `\n` breaks the line).
-- @tparam string s
-- @treturn string
function G.quote(s)
	s = tostring(s):gsub("[\\\"]", "\\%0"):gsub("\n", "\\n"):gsub("%c", " ")
	return '"' .. s .. '"'
end

local q = G.quote

-- A label of the lines given (nil and "" left out).
local function label(...)
	local t = {}
	for i = 1, select("#", ...) do
		local l = select(i, ...)
		if l ~= nil and l ~= "" then t[#t + 1] = tostring(l) end
	end
	return q(table.concat(t, "\n"))
end

local function attrs(t)
	local keys = {}
	for k in pairs(t) do keys[#keys + 1] = k end
	table.sort(keys)
	local parts = {}
	for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. t[k] end
	return "[" .. table.concat(parts, ", ") .. "]"
end

--- The model as a Graphviz `graph` (undirected; published ports have arrows).
-- @tparam table model as `G.model` returns it
-- @treturn string dot source, ending in a newline
function G.dot(model)
	local out = {
		"graph brisk {",
		"  graph [rankdir=LR, fontname=\"Helvetica\", label=\"brisk topology\", labelloc=t];",
		"  node [fontname=\"Helvetica\", fontsize=10];",
		"  edge [fontname=\"Helvetica\", fontsize=9];",
	}
	local function add(indent, s) out[#out + 1] = string.rep("  ", indent) .. s end
	local net_by_id = {}
	for _, n in ipairs(model.networks) do net_by_id[n.id] = n end

	-- the endpoints' other ends: in their namespace's cluster, or in the
	-- host's when they have none
	local by_ns, loose = {}, {}
	for _, e in ipairs(model.endpoints) do
		if e.netns then
			by_ns[e.netns] = by_ns[e.netns] or {}
			table.insert(by_ns[e.netns], e)
		else
			loose[#loose + 1] = e
		end
	end
	local function ep_node(indent, e)
		add(indent, q("ep:" .. e.id) .. " " .. attrs {
			shape = "box", style = "filled", fillcolor = "\"#e4f2dc\"",
			label = label((e.ifname or e.peer_ifname or "?") .. " (" .. e.name .. ")", e.ipv4, e.ipv6, e.mac),
		} .. ";")
	end
	-- the driver's namespace: bridges, published ports, endpoints without
	-- a namespace
	add(1, "subgraph cluster_host {")
	add(2, "label=\"host namespace\"; style=rounded; color=gray50;")
	for _, n in ipairs(model.networks) do
		local a = {
			shape = "box", style = n.present and "\"rounded,filled\"" or "\"rounded,dashed\"",
			fillcolor = "\"#dce9f7\"",
			label = label(n.bridge, "network " .. n.name, n.address_ipv4, n.address_ipv6,
				n.internal and "internal" or nil, not n.present and "(bridge missing)" or nil),
		}
		if not n.present then a.color = "red" end
		add(2, q("net:" .. n.id) .. " " .. attrs(a) .. ";")
	end
	-- one node per published host port of an endpoint: a dual-stack
	-- binding (one for IPv4, one for IPv6) is one node with two edges
	local port_node = {}      -- endpoint id -> binding index -> node id
	for _, e in ipairs(model.endpoints) do
		local seen = {}
		port_node[e.id] = {}
		for i, p in ipairs(e.ports or {}) do
			local host = (p.host_ip and (tostring(p.host_ip):find(":", 1, true) and ("[" .. p.host_ip .. "]")
				or p.host_ip) or "*") .. ":" .. tostring(p.host_port) .. "/" .. tostring(p.proto)
			if not seen[host] then
				seen[host] = "port:" .. e.id .. ":" .. i
				add(2, q(seen[host]) .. " " .. attrs {
					shape = "cds", style = "filled", fillcolor = "\"#fbe3c2\"", label = q(host),
				} .. ";")
			end
			port_node[e.id][i] = seen[host]
		end
	end
	for _, e in ipairs(loose) do ep_node(2, e) end
	add(1, "}")

	for i, name in ipairs(model.namespaces) do
		add(1, "subgraph " .. q("cluster_ns_" .. i) .. " {")
		add(2, "label=" .. q("netns " .. name) .. "; style=rounded; color=gray50;")
		local list = by_ns[name] or {}
		if #list == 0 then
			add(2, q("ns:" .. name) .. " [shape=plaintext, label=\"(no brisk endpoints)\"];")
		end
		for _, e in ipairs(list) do ep_node(2, e) end
		add(1, "}")
	end

	-- edges: bridge -- endpoint (the veth pair), port -> endpoint
	for _, e in ipairs(model.endpoints) do
		local from = net_by_id[e.network] and ("net:" .. e.network) or nil
		if from then
			add(1, q(from) .. " -- " .. q("ep:" .. e.id) .. " " .. attrs { label = q(e.host_ifname or "") } .. ";")
		end
		for i, p in ipairs(e.ports or {}) do
			local to = p.container_ip and (tostring(p.container_ip):find(":", 1, true)
				and ("[" .. p.container_ip .. "]:") or (p.container_ip .. ":")) or ""
			add(1, q(port_node[e.id][i]) .. " -- " .. q("ep:" .. e.id) .. " " .. attrs {
				dir = "forward", style = "dashed", color = "darkorange",
				label = q(to .. tostring(p.container_port) .. "/" .. tostring(p.proto)),
			} .. ";")
		end
	end
	add(0, "}")
	return table.concat(out, "\n") .. "\n"
end

-- Rendering -------------------------------------------------------------------

--- The path of Graphviz's `dot` on $PATH, or nil.
function G.find_dot()
	for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
		local p = dir .. "/dot"
		if os.execute("test -x " .. "'" .. p:gsub("'", "'\\''") .. "'") then return p end
	end
	return nil
end

local function sq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Render dot source with `dot -T<format>` into `file` (stdout when nil).
local function render(src, format, file)
	local dot = G.find_dot()
	if not dot then
		cli.error("--format " .. format .. " needs Graphviz's dot: install graphviz (apt-get install graphviz)")
	end
	local tmp = os.tmpname()
	local f = assert(io.open(tmp, "wb"))
	f:write(src)
	f:close()
	io.stdout:flush()
	local ok, how, code = os.execute(sq(dot) .. " -T" .. format .. " " .. (file and ("-o " .. sq(file) .. " ") or "")
		.. sq(tmp))
	os.remove(tmp)
	if not ok then
		cli.error("dot -T" .. format .. " failed (" .. tostring(how) .. " " .. tostring(code) .. ")")
	end
end

cli.register {
	name = "graph",
	raw = true,
	summary = "draw the topology (bridges, endpoints, namespaces, addresses, ports) with Graphviz",
	usage = "[--format dot|svg|png] [-o FILE]",
	description = "Writes the networks and endpoints of the state directory, the named namespaces, the\n"
		.. "addresses and the published ports as a Graphviz graph: dot source by default, or an\n"
		.. "SVG or PNG picture rendered by Graphviz's dot (Debian: apt-get install graphviz).\n"
		.. "A bridge missing from the kernel is drawn dashed red. --json prints the model the\n"
		.. "picture is drawn from.",
	example = { "brisk graph | dot -Tsvg >net.svg", "brisk graph --format png -o net.png" },
	max_args = 0,
	flags = {
		{ "--format", "-f", arg = "FORMAT", default = "dot", choices = { "dot", "svg", "png" },
		  doc = "what to write" },
		{ "--output", "-o", arg = "FILE", doc = "write to FILE instead of stdout" },
	},
	run = function(o, _, ctx)
		local d <close> = N.open_driver(ctx)
		local model = N.must(G.model(d))
		if ctx.json then
			ctx.out(cli.json(model) .. "\n")
			return nil
		end
		if o.format == "png" and not o.output then
			local ok, host = pcall(require, "brisk.host")
			if ok and type(host) == "table" and host.isatty and host.isatty(1) then
				cli.usage_error("not writing PNG to a terminal: give -o FILE or redirect stdout", "graph")
			end
		end
		local src = G.dot(model)
		if o.format == "dot" then
			if o.output then
				local f, msg = io.open(o.output, "wb")
				if not f then cli.error(msg) end
				f:write(src)
				f:close()
			else
				ctx.out(src)
			end
			return nil
		end
		render(src, o.format, o.output)
		return nil
	end,
}

return G
