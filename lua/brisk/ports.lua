--- brisk.ports: published ports (`--publish [HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO]`),
-- libnetwork's port mapping on top of brisk.firewall.
--
-- A request (what `parse` returns) names a host port, a range to pick one
-- from, or none (0: pick one from the dynamic range); a binding (what
-- `publish` writes back into `ep.ports`) is a firewall mapping with the
-- host port chosen and the container address filled in:
--
--     request  {proto=, host_ip=nil|"0.0.0.0"|"::"|addr, host_port=0..65535,
--               host_port_end=nil|n, container_port=, container_port_end=nil|n}
--     binding  {proto=, host_ip=nil|addr, host_port=, container_ip=, container_port=}
--
-- A binding's host_ip is nil for "every address of the family" (the family
-- is the container address's). A request without a host IP publishes on
-- every IPv4 address and, when the endpoint has an address in the
-- network's IPv6 subnet, on every IPv6 address with the same host port
-- (as Docker does).
--
-- Host ports are allocated from the stored endpoints' bindings (the store
-- is the port allocator's memory): a binding conflicts with another of the
-- same protocol and family whose host IP is the same or either is "any".
-- @module brisk.ports
local ipnet = require "brisk.ipnet"
local schema = require "brisk.schema"

local M = {}

local EINVAL, EADDRINUSE = 22, 98   -- Linux errno values

--- The dynamic range used when net/ipv4/ip_local_port_range cannot be read
-- (Docker's fallback).
M.DEFAULT_RANGE = { 49153, 65535 }

local PROTOS = { tcp = 6, udp = 17, sctp = 132 }   -- and their IP protocol numbers

-- --- parsing -------------------------------------------------------------

-- "N" (0..65535, decimal, no sign) -> N, or nil.
local function port_number(s)
	if math.type(s) == "integer" then return (s >= 0 and s <= 65535) and s or nil end
	if type(s) ~= "string" or not s:match("^%d+$") or #s > 5 then return nil end
	local n = tonumber(s)
	return n <= 65535 and n or nil
end

-- "N" or "N-M" -> first, last (last nil for a single port), or nil, why.
local function port_range(s)
	local a, b = s:match("^(%d+)%-(%d+)$")
	if not a then
		local n = port_number(s)
		if not n then return nil, "not a port number 0-65535" end
		return n
	end
	a, b = port_number(a), port_number(b)
	if not a or not b then return nil, "not a port number 0-65535" end
	if b < a then return nil, "range end below its start" end
	if a == 0 then return nil, "a range cannot start at 0" end
	return a, b > a and b or nil
end

-- The canonical text of a host IP ("[::1]" or "::1" or "10.0.0.1"), or
-- nil, msg.
local function host_ip(s)
	local bare = s:match("^%[(.*)%]$") or s
	local a = ipnet.parse_ip(bare)
	if not a or (bare ~= s and a.family ~= 6) then
		return nil, string.format("invalid IP address: %s", s)
	end
	local why = M.loopback(ipnet.format(a))
	if why then return nil, why end
	return ipnet.format(a)
end

-- Check the fields of a request and build it; nil, msg on bad input.
-- A container port range maps port by port onto a host range of the same
-- size, or onto allocated host ports when no host port is given (Docker).
local function request(proto, hip, hport, hport_end, cport, cport_end)
	proto = proto:lower()
	if not PROTOS[proto] then return nil, "invalid proto: " .. proto .. " (tcp, udp or sctp)" end
	if cport == 0 then return nil, "invalid containerPort: 0 (1-65535)" end
	if cport_end and hport ~= 0 and (hport_end or hport) - hport ~= cport_end - cport then
		return nil, string.format("invalid ranges specified for container and host Ports: %d-%d and %d%s",
			cport, cport_end, hport, hport_end and ("-" .. hport_end) or "")
	end
	local r = { proto = proto, host_port = hport, host_port_end = hport_end, container_port = cport,
		container_port_end = cport_end }
	if hip then
		local ip, msg = host_ip(hip)
		if not ip then return nil, msg end
		r.host_ip = ip
	end
	return r
end

-- "[ip:]host:container[/proto]", "ip::container", "container".
local function parse_string(s)
	local rest, proto = s:match("^(.*)/([^/]*)$")
	if not rest then rest, proto = s, "tcp" end
	if proto == "" then return nil, "invalid proto: (empty)" end
	local ip, hport, cport
	local bracketed, tail = rest:match("^(%[[^%]]*%]):(.*)$")
	if bracketed then
		ip = bracketed
		hport, cport = tail:match("^([^:]*):([^:]*)$")
		if not hport then return nil, "invalid port spec '" .. s .. "' (want [HOST_IP:]HOST_PORT:CONTAINER_PORT)" end
	else
		local parts = {}
		for p in (rest .. ":"):gmatch("([^:]*):") do parts[#parts + 1] = p end
		if #parts == 1 then
			hport, cport = "", parts[1]
		elseif #parts == 2 then
			hport, cport = parts[1], parts[2]
		elseif #parts == 3 then
			ip, hport, cport = parts[1], parts[2], parts[3]
		else
			return nil, "invalid port spec '" .. s .. "' (an IPv6 host IP goes in brackets: [::1]:8080:80)"
		end
		if ip == "" then return nil, "invalid IP address: (empty)" end
	end
	if cport == "" then return nil, "no port specified: " .. s .. "<empty>" end
	local c, cend = port_range(cport)
	if not c then return nil, string.format("invalid containerPort: %s (%s)", cport, cend) end
	local h, hend = 0, nil
	if hport ~= "" then
		h, hend = port_range(hport)
		if not h then return nil, string.format("invalid hostPort: %s (%s)", hport, hend) end
	end
	return request(proto, ip, h, hend, c, cend)
end

local TABLE_KEYS = {
	proto = true, host_ip = true, host_port = true, host_port_end = true, container_port = true,
	container_port_end = true,
}

-- A table's first..last port pair: `first` required unless `zero_ok`
-- (then 0 when absent); nil, msg when bad.
local function table_range(t, fk, lk, what, zero_ok)
	local first = 0
	if t[fk] == nil and not zero_ok then return nil, "no port specified: " .. fk .. " is required" end
	if t[fk] ~= nil then
		first = port_number(t[fk])
		if not first or (first == 0 and not zero_ok) then
			return nil, string.format("invalid %s: %s (%s-65535)", what, tostring(t[fk]), zero_ok and 0 or 1)
		end
	end
	if t[lk] == nil then return first end
	local last = port_number(t[lk])
	if not last then return nil, string.format("invalid %s: %s (0-65535)", what, tostring(t[lk])) end
	if first == 0 then return nil, string.format("invalid %s: 0-%d (a range cannot start at 0)", what, last) end
	if last < first then
		return nil, string.format("invalid %s: %d-%d (range end below its start)", what, first, last)
	end
	return first, last > first and last or nil
end

local function parse_table(t)
	for k in pairs(t) do
		if not TABLE_KEYS[k] then
			return nil, string.format("unknown port field '%s'%s", tostring(k), schema.suggest(tostring(k), TABLE_KEYS))
		end
	end
	local proto = t.proto or "tcp"
	if type(proto) ~= "string" then return nil, "invalid proto: " .. tostring(proto) .. " (a string)" end
	if t.host_ip ~= nil and type(t.host_ip) ~= "string" then
		return nil, "invalid IP address: " .. tostring(t.host_ip) .. " (a string)"
	end
	local c, cend = table_range(t, "container_port", "container_port_end", "containerPort", false)
	if not c then return nil, cend end
	local h, hend = table_range(t, "host_port", "host_port_end", "hostPort", true)
	if not h then return nil, hend end
	return request(proto, t.host_ip, h, hend, c, cend)
end

--- Parse one port publication.
-- @param spec a string, "[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp|sctp]"
--   ("8080:80", "127.0.0.1:8080:80/udp", "[::1]:8080:80", "0:80",
--   "8000-8010:80", "127.0.0.1::80", "80", "8000-8001:80-81"), or a table
--   {proto=, host_ip=, host_port=, host_port_end=, container_port=,
--   container_port_end=} (ports as integers or digit strings)
-- @return request {proto=, host_ip=nil|canonical text, host_port=0..65535
--   (0: allocate), host_port_end=nil|n (a range to allocate from, or the
--   host side of a container range), container_port=,
--   container_port_end=nil|n (a range, mapped port by port)}
-- @return[2] nil, msg (Docker's wording: "invalid hostPort: 70000 (...)",
--   "invalid proto: icmp (...)", "invalid IP address: 1.2.3", ...)
-- @raise when spec is neither a string nor a table
function M.parse(spec)
	if type(spec) == "string" then return parse_string(spec) end
	if type(spec) == "table" then return parse_table(spec) end
	error("bad argument #1 to 'parse' (string or table expected, got " .. type(spec) .. ")", 2)
end

--- Parse a `publish` option: one spec or a list of them.
-- @return list of requests
-- @return[2] nil, "publish N: <msg>"
function M.parse_list(publish)
	if type(publish) == "string" or (type(publish) == "table" and publish[1] == nil and next(publish) ~= nil) then
		publish = { publish }
	end
	if type(publish) ~= "table" then
		return nil, "publish must be a port spec or a list of them (got " .. type(publish) .. ")"
	end
	local out = {}
	for i, p in ipairs(publish) do
		if type(p) ~= "string" and type(p) ~= "table" then
			return nil, string.format("publish %d: a string or a table expected (got %s)", i, type(p))
		end
		local r, msg = M.parse(p)
		if not r then return nil, string.format("publish %d: %s", i, msg) end
		out[i] = r
	end
	return out
end

-- --- allocation ------------------------------------------------------------

local function family_of(b)
	local ip = ipnet.parse_ip(b.host_ip or b.container_ip)
	return ip and ip.family
end

-- Whether binding `a` and binding `b` claim the same host port.
local function clash(a, b)
	return a.proto == b.proto and a.host_port == b.host_port and family_of(a) == family_of(b) and
		(a.host_ip == nil or b.host_ip == nil or a.host_ip == b.host_ip)
end

local function bind_text(hip, family, first, last)
	local ip = hip or (family == 6 and "::" or "0.0.0.0")
	if ip:find(":", 1, true) then ip = "[" .. ip .. "]" end
	return string.format("Bind for %s:%d%s failed", ip, first, last and ("-" .. last) or "")
end

-- The dynamic range: net/ipv4/ip_local_port_range, else DEFAULT_RANGE.
local function dynamic_range(h)
	local v = h.sysctl_get and h:sysctl_get("net/ipv4/ip_local_port_range")
	local a, b = tostring(v or ""):match("^%s*(%d+)%s+(%d+)%s*$")
	a, b = tonumber(a), tonumber(b)
	if a and b and a >= 1 and a <= b and b <= 65535 then return a, b end
	return M.DEFAULT_RANGE[1], M.DEFAULT_RANGE[2]
end

-- The bare address of an endpoint's "ip/plen", or nil.
local function bare(cidr)
	if type(cidr) ~= "string" then return nil end
	local a = ipnet.parse_ip((cidr:match("^[^/]+")))
	return a and ipnet.format(a)
end

--- Why ports cannot be published on host IP `ip` (a loopback address:
-- brisk has no userland proxy, and the kernel routes no loopback traffic
-- to a bridge), or nil when they can.
-- @tparam string ip
-- @treturn string|nil
function M.loopback(ip)
	local a = ipnet.parse_ip(ip)
	if a and ((a.family == 4 and ipnet.contains(ipnet.parse_cidr("127.0.0.0/8"), a))
		or (a.family == 6 and ipnet.format(a) == "::1")) then
		return string.format("cannot publish on loopback address %s: brisk has no userland proxy, and "
			.. "loopback traffic is not routed to a bridge (publish on a host address, or all of them)",
			ipnet.format(a))
	end
	return nil
end

-- The bindings one request asks for (host ports still to be chosen), or
-- nil, msg, errno.
local function wanted(req, ep, fwnet, defhost)
	local v4, v6 = bare(ep.ipv4), bare(ep.ipv6)
	-- an IPv6 address in the network's subnet (not a link-local one)
	local v6ok = v6 and fwnet.subnet6 and ipnet.contains(fwnet.subnet6, v6)
	local list = {}
	local function add(hip, cip)
		list[#list + 1] = { proto = req.proto, host_ip = hip, container_ip = cip,
			container_port = req.container_port }
	end
	-- no host IP: the network's default binding (host_binding_ipv4) when it
	-- is not 0.0.0.0, IPv4 only, as libnetwork's DefaultBindingIP
	-- (a request's own host IP was checked when it was parsed; a network's
	-- default is checked at its create, but one stored by an older brisk was not)
	local hip = req.host_ip
	if hip == nil and defhost and defhost ~= "0.0.0.0" then
		local why = M.loopback(defhost)
		if why then return nil, why, EINVAL end
		hip = defhost
	end
	if hip == nil then
		if not v4 and not v6ok then return nil, "endpoint " .. tostring(ep.name) .. " has no address to publish to", EINVAL end
		if v4 then add(nil, v4) end
		if v6ok then add(nil, v6) end
	elseif ipnet.parse_ip(hip).family == 4 then
		if not v4 then return nil, "endpoint " .. tostring(ep.name) .. " has no IPv4 address for host IP " .. hip, EINVAL end
		add(hip ~= "0.0.0.0" and hip or nil, v4)
	else
		if not v6ok then
			return nil, "endpoint " .. tostring(ep.name) .. " has no IPv6 address in its network's subnet for host IP " .. hip, EINVAL
		end
		add(hip ~= "::" and hip or nil, v6)
	end
	return list
end

-- Choose the host port for the bindings of one request (all get the same
-- one), avoiding `taken`; sets host_port on each, or returns nil, msg, errno.
local function choose(h, req, list, taken)
	local function free(port)
		for _, b in ipairs(list) do
			b.host_port = port
			for _, t in ipairs(taken) do
				if clash(b, t) then return false end
			end
		end
		return true
	end
	local first, last
	if req.host_port ~= 0 and not req.host_port_end then
		if free(req.host_port) then return true end
		return nil, bind_text(req.host_ip, family_of(list[1]), req.host_port) .. ": port is already allocated",
			EADDRINUSE
	end
	if req.host_port ~= 0 then
		first, last = req.host_port, req.host_port_end
	else
		first, last = dynamic_range(h)
	end
	for port = first, last do
		if free(port) then return true end
	end
	return nil, bind_text(req.host_ip, family_of(list[1]), first, last) .. ": all ports are allocated", EADDRINUSE
end

-- A binding with only a firewall mapping's keys.
local function binding(b)
	return { proto = b.proto, host_ip = b.host_ip, host_port = b.host_port,
		container_ip = b.container_ip, container_port = b.container_port }
end

local function fw_net(net)
	return require("brisk.driver").fw_net(net)
end

-- The bindings of every stored endpoint except `ep`: from the summaries
-- of the store's index when the driver has them, else its endpoints.
local function stored_bindings(ctx, ep)
	local taken = {}
	local d = ctx.driver
	local all = d and (d.endpoint_summaries and d:endpoint_summaries() or d:endpoints()) or {}
	for _, e in ipairs(all) do
		if e.id ~= ep.id and type(e.ports) == "table" then
			for _, b in ipairs(e.ports) do
				if b.container_ip and b.host_port then taken[#taken + 1] = b end
			end
		end
	end
	return taken
end

-- Container port ranges as one request per port.
local function expand(reqs)
	local out = {}
	for _, r in ipairs(reqs) do
		if not r.container_port_end then
			out[#out + 1] = r
		else
			for i = 0, r.container_port_end - r.container_port do
				out[#out + 1] = { proto = r.proto, host_ip = r.host_ip, container_port = r.container_port + i,
					host_port = r.host_port ~= 0 and r.host_port + i or 0 }
			end
		end
	end
	return out
end

--- The endpoint step "publish_ports": allocate host ports and add each
-- binding's DNAT, hairpin masquerade and forward accept
-- (`h:firewall("port_add", ...)`, journaled: its undo is port_del).
-- @param h a handle wrapper (journal or recorder, brisk.handle)
-- @param ep the endpoint: `ep.ports` is a list of requests (or of specs
--   `parse` accepts), `ep.ipv4`/`ep.ipv6` its addresses ("ip/plen")
-- @param ctx {network = network record, driver = driver (its
--   `endpoint_summaries()`, else `endpoints()`, are the allocator's memory)}
-- @return true; `ep.ports` is then the list of bindings
-- @return[2] nil, msg, errno: "Bind for 0.0.0.0:8080 failed: port is
--   already allocated" (EADDRINUSE), a parse error (EINVAL), or
--   firewall.port_add's failure. Bindings added before the failure are in
--   the journal: rolling it back removes them. `ep.ports` is unchanged.
function M.publish(h, ep, ctx)
	local reqs, msg = M.parse_list(ep.ports or {})
	if not reqs then return nil, msg, EINVAL end
	if not ctx or not ctx.network then error("publish: ctx.network is required", 2) end
	local fwnet = fw_net(ctx.network)
	local taken = stored_bindings(ctx, ep)
	local out = {}
	for _, req in ipairs(expand(reqs)) do
		local list, err
		list, msg, err = wanted(req, ep, fwnet, ctx.network.host_binding_ipv4)
		if not list then return nil, msg, err end
		local ok
		ok, msg, err = choose(h, req, list, taken)
		if not ok then return nil, msg, err end
		for _, b in ipairs(list) do
			taken[#taken + 1] = b
			out[#out + 1] = binding(b)
		end
	end
	for _, b in ipairs(out) do
		local ok, err
		ok, msg, err = h:firewall("port_add", fwnet, { id = ep.id }, binding(b))
		if not ok then return nil, msg, err end
	end
	ep.ports = out
	return true
end

--- Remove an endpoint's published ports (`firewall.port_del` for each
-- binding in `ep.ports`). Idempotent.
-- @param h a handle wrapper (its `firewall` method) or a brisk.core handle
-- @param ep the stored endpoint
-- @param ctx {network = network record or nil (the endpoint's bridge and
--   addresses stand in for it)}
-- @return true
-- @return[2] nil, msg, errno of the first port_del that failed (the others
--   are still attempted)
function M.unpublish(h, ep, ctx)
	local net = ctx and ctx.network
	local fwnet = net and fw_net(net) or { bridge = ep.bridge, subnet4 = ep.ipv4, subnet6 = ep.ipv6 }
	local call = h.firewall
	if call == nil then call = require("brisk.handle").extra.firewall end
	local first
	for _, b in ipairs(type(ep.ports) == "table" and ep.ports or {}) do
		if b.container_ip and b.host_port then
			local ok, msg, err = call(h, "port_del", fwnet, { id = ep.id }, binding(b))
			if not ok and not first then first = { msg, err } end
		end
	end
	if first then return nil, first[1], first[2] end
	return true
end

--- Drop the conntrack entries a removed endpoint leaves behind, as
-- libnetwork's clearConntrackEntries does: those NATed to or from its
-- addresses, and the UDP and SCTP ones to its published host ports, so
-- that a flow still coming in (a client that keeps its source port)
-- reaches what publishes the port next rather than the endpoint gone.
-- @param h a brisk.core handle (the driver's namespace)
-- @param ep the endpoint record
-- @return the number of entries deleted
-- @return[2] nil, msg, errno when the table could not be read
function M.purge_conntrack(h, ep)
	local ips, ports = {}, {}
	for _, a in ipairs{ ep.ipv4 or false, ep.ipv6 or false } do
		local b = a and bare(a)
		if b then ips[b] = true end
	end
	for _, b in ipairs(type(ep.ports) == "table" and ep.ports or {}) do
		if (b.proto == "udp" or b.proto == "sctp") and b.host_port then
			ports[PROTOS[b.proto] .. ":" .. b.host_port] = true
		end
	end
	local list, msg, err = h:conntrack_list()
	if not list then return nil, msg, err end
	local n = 0
	for _, e in ipairs(list) do
		if ips[e.reply.src] or ips[e.reply.dst]
			or (e.proto and e.orig.dport and ports[e.proto .. ":" .. e.orig.dport]) then
			if h:conntrack_del(e) then n = n + 1 end
		end
	end
	return n
end

return M
