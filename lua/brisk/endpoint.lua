--- brisk.endpoint: libnetwork's CreateEndpoint, Join, Leave and
-- DeleteEndpoint as Lua flows over C steps, with the IPAM that feeds them.
--
-- Loaded by brisk.driver, which it extends with `create_endpoint`,
-- `delete_endpoint`, `join`, `leave`, `endpoints`, `endpoint`.
--
-- The endpoint steps are on the driver's `endpoint_steps` list and can be
-- replaced, wrapped, inserted and removed like the network steps. Host-side
-- steps get `(h, ep, ctx)` where h is a journal over the driver's handle;
-- sandbox steps get `(ctx.sandbox, ep, ctx)` through their run function.
local core = require "brisk.core"
local handle = require "brisk.handle"
local ipnet = require "brisk.ipnet"
local schema = require "brisk.schema"

local function same_ip(a, b)
	return ipnet.compare(ipnet.addr(a), ipnet.addr(b)) == 0
end

local steps = core.steps
local errno = core.errno

return function(M, D)

local function fail(msg, err)
	return nil, msg, err or errno.EINVAL
end

-- Why a record that an operation cut short cannot be joined (or, when its
-- create was, left): what mends it. nil for a finished record.
local function interrupted(ep)
	if ep.state == "creating" then
		return string.format("endpoint %s: its create was interrupted; 'brisk endpoint rm %s' or "
			.. "'brisk network restore' undoes it", ep.name, ep.name)
	elseif ep.state == "joining" or ep.state == "leaving" then
		return string.format("endpoint %s: its %s was interrupted; 'brisk endpoint leave %s' brings it back "
			.. "first", ep.name, ep.state == "joining" and "join" or "leave", ep.name)
	end
	return nil
end

local function copy(t)
	local c = {}
	for k, v in pairs(t) do c[k] = v end
	return c
end

-- A join or leave refused after its intent was stored: the record as it
-- was (`was`) goes back over the intent (`ep`, whose dbIndex it takes);
-- returns nil, msg, err, with what the store said when it could not.
local function put_back(self, was, ep, msg, err)
	was.dbIndex = ep.dbIndex
	local ok, pmsg = self.store:put("endpoint", was)
	if not ok then msg = tostring(msg) .. "; putting its record back failed: " .. tostring(pmsg) end
	return nil, msg, err
end

local function random_hex(nbytes)
	local b = core.random_bytes(nbytes)
	return (b:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function veth_name()
	return "veth" .. random_hex(4):sub(1, 7)
end
--- The generator of veth names ("veth" and 7 hex digits); replaceable (tests).
M.veth_name = veth_name

---------------------------------------------------------------------------
-- IPAM: the addresses in use are those of the stored endpoints, so they
-- persist with them and are allocated under the store lock. The book of a
-- network (address -> endpoint id) is built from the endpoints' summaries
-- (the store's index) and kept, for every driver of the process over that
-- state directory, while no other process changes the store (the store's
-- generation says so; this process's own writes keep it valid). The
-- cursors (where the next allocation starts) live in a driver: a new
-- driver, as a new process, hands out the first free address. The book
-- knows where that is (`low4`/`low6`: no address below it is free, the
-- hint reset when an address is released or the book rebuilt), so a long
-- running process (brisk daemon) does not walk every address in use on
-- every create.
---------------------------------------------------------------------------

local ipam = {}
M.ipam = ipam

-- Books by store cache (one per state directory), then network id.
local books = setmetatable({}, { __mode = "k" })

local BOOK_FIELDS = { "network", "ipv4", "ipv6" }

--- The address book of a network, and the driver's cursors for it.
function ipam.book(d, net)
	local c = d.store._c
	local per = books[c]
	if not per then per = {}; books[c] = per end
	local gen = c.gen
	local b = per[net.id]
	if not (b and b.gen == gen) then
		b = { v4 = {}, v6 = {}, gen = gen }
		local v4, v6, nid = b.v4, b.v6, net.id
		M.scan(d, "endpoint", BOOK_FIELDS, function(id, network, ip4, ip6)
			if network == nid then
				if ip4 then v4[ip4:match("^[^/]+")] = id end
				if ip6 then v6[ip6:match("^[^/]+")] = id end
			end
		end)
		per[net.id] = b
	end
	d._cursors = d._cursors or {}
	local cur = d._cursors[net.id]
	if not cur then cur = {}; d._cursors[net.id] = cur end
	return b, cur
end

-- Addresses that are never handed out: network, broadcast, gateway, aux.
local function reserved(net, family)
	local r = {}
	if family == 4 then
		r[net.gateway4] = true
	elseif net.gateway6 then
		r[net.gateway6] = true
	end
	for _, a in pairs(net.aux_addresses or {}) do r[a] = true end
	return r
end

-- "0" to "255", made on first use: the walk below names each address it
-- passes, a /24's prefix once and the last octet from here.
local oct_names
local function octets()
	if not oct_names then
		oct_names = {}
		for i = 0, 255 do oct_names[i] = tostring(i) end
	end
	return oct_names
end

--- Allocate the next free address of `family` in the network's range.
-- @return the address string, or nil, msg, errno
function ipam.allocate(net, family, owner)
	local book = net.ipam[family == 4 and "v4" or "v6"]
	local range = ipnet.network(ipnet.parse_cidr(family == 4 and (net.ip_range or net.subnet4) or net.subnet6))
	local subnet = ipnet.network(ipnet.parse_cidr(family == 4 and net.subnet4 or net.subnet6))
	local res = reserved(net, family)
	local bcast = family == 4 and subnet.plen < 31 and ipnet.format(ipnet.broadcast(subnet))
	local size = ipnet.size(range)
	local limit = size
	if limit > 1 << 24 then limit = 1 << 24 end
	local key = family == 4 and "next4" or "next6"
	local lowkey = family == 4 and "low4" or "low6"
	-- the driver's cursor, else the first address that may be free
	local low = net.ipam[lowkey]
	local start = net.ipam[key] or low or 0
	-- the n-th address of the range as text, and whether it is the
	-- subnet's own address. IPv4 counts in integers: a new process walks
	-- from the first address past every one in use, so each step must be
	-- cheap.
	local nth
	if family == 4 then
		local base, net_lo = M.v4_range(range), M.v4_range(subnet)
		local oct, hi, prefix = octets(), -1, nil
		nth = function(n)
			local a = base + n
			if a >> 8 ~= hi then
				hi = a >> 8
				prefix = string.format("%d.%d.%d.", a >> 24, (a >> 16) & 255, (a >> 8) & 255)
			end
			return prefix .. oct[a & 255], a == net_lo
		end
	else
		nth = function(n)
			local ip = ipnet.host(range, n)
			return ipnet.format(ip), same_ip(ip, subnet)
		end
	end
	-- every address of the range, its first too (10.9.0.128 of
	-- 10.9.0.128/25, as libnetwork's SetAnyInRange), but the subnet's own
	-- and its broadcast address
	for i = 0, limit - 1 do
		local n = (start + i) % limit
		if n < size then
			local s, is_net = nth(n)
			if not book[s] and not res[s] and s ~= bcast and not is_net then
				book[s] = owner
				net.ipam[key] = n + 1
				-- a walk from the hint that did not wrap passed only
				-- addresses that cannot be handed out
				if start == (low or 0) and n >= start then net.ipam[lowkey] = n + 1 end
				return s
			end
		end
	end
	return fail(string.format("address pool of network %s exhausted", net.name), errno.ENOSPC)
end

--- Reserve a requested address.
function ipam.request(net, ip, owner)
	local fam = ip.family
	local s = ipnet.format(ip)
	local subnet = fam == 4 and net.subnet4 or net.subnet6
	if not subnet then return fail("network " .. net.name .. " has no IPv" .. fam .. " subnet") end
	local sn = ipnet.network(ipnet.parse_cidr(subnet))
	if not ipnet.contains(sn, ip) then
		return fail(string.format("address %s is outside the subnet %s of network %s", s, subnet, net.name))
	end
	local book = net.ipam[fam == 4 and "v4" or "v6"]
	if book[s] or reserved(net, fam)[s] then
		return fail(string.format("address %s is already in use on network %s", s, net.name), errno.EADDRINUSE)
	end
	if same_ip(ip, sn) or (fam == 4 and sn.plen < 31 and same_ip(ip, ipnet.broadcast(sn))) then
		return fail(string.format("address %s is the network or broadcast address of %s", s, subnet))
	end
	book[s] = owner
	return s
end

function ipam.release(book, ep)
	for _, fam in ipairs{ "v4", "v6" } do
		for ip, owner in pairs(book[fam]) do
			if owner == ep.id then book[fam][ip] = nil end
		end
	end
	book.low4, book.low6 = nil, nil     -- a free address may be below them now
end

-- A scratch copy of a book and the driver's cursors: what a create
-- allocates goes into the copy, so a failed (or planned) create leaves the
-- book as it was.
local function scratch_ipam(book, cur)
	return { v4 = setmetatable({}, { __index = book.v4 }), v6 = setmetatable({}, { __index = book.v6 }),
		next4 = cur.next4, next6 = cur.next6, low4 = book.low4, low6 = book.low6 }
end

-- Keep the book valid past this process's own write.
local function book_written(d, net)
	local per = books[d.store._c]
	local b = per and per[net.id]
	if b then b.gen = d.store._c.gen end
end

---------------------------------------------------------------------------
-- The endpoint step list
---------------------------------------------------------------------------

local function sandbox_step(fn)
	return function(h, ep, ctx) return fn(ctx.sandbox, ep) end
end

local function in_sandbox(ep, ctx) return ctx.sandbox ~= nil end

-- create_veth, with new names when a generated one is taken (EEXIST, up
-- to three tries): the flow's `ctx.renamed(ep)` records them (the intent)
-- before the next try, so that a crash can only leave links that the
-- record names.
local function create_veth(h, ep, ctx)
	for tries = 1, 3 do
		local ok, msg, err = steps.create_veth(h, ep, ctx)
		if ok or err ~= errno.EEXIST or not ep.generated_names or tries == 3 then return ok, msg, err end
		ep.host_ifname = M.veth_name()
		if not ep.sandbox then ep.peer_ifname = M.veth_name() end
		if ctx.renamed then
			ok, msg, err = ctx.renamed(ep)
			if not ok then return nil, msg, err end
		end
	end
end

function M.default_endpoint_steps()
	return {
		-- first: the host ports are chosen (and a taken one refused) before
		-- anything else changes; the rules need only the addresses
		{ name = "publish_ports", firewall = true,
		  when = function(ep, ctx) return ctx.firewall ~= nil and ep.ports ~= nil and #ep.ports > 0 end,
		  run = function(h, ep, ctx) return ctx.firewall.publish_ports(h, ep, ctx) end },
		{ name = "create_veth", run = create_veth, when = function() return true end },
		{ name = "add_to_bridge", run = steps.add_to_bridge, when = function() return true end },
		{ name = "set_hairpin", run = steps.set_hairpin, when = function(ep) return ep.hairpin end },
		{ name = "host_up", run = steps.host_up, when = function() return true end },
		{ name = "join_move", when = function(ep, ctx) return ctx.move end,
		  run = function(h, ep, ctx)
			return h:link_set{ dev = ep.peer_ifname, netns = ctx.sandbox_ref }
		  end },
		{ name = "sandbox_rename", run = sandbox_step(steps.sandbox_rename), when = in_sandbox },
		{ name = "sandbox_addresses", run = sandbox_step(steps.sandbox_addresses), when = in_sandbox },
		{ name = "sandbox_up", run = sandbox_step(steps.sandbox_up), when = in_sandbox },
		{ name = "sandbox_routes", run = sandbox_step(steps.sandbox_routes), when = in_sandbox },
	}
end

---------------------------------------------------------------------------
-- Endpoint options
---------------------------------------------------------------------------

-- A MAC an interface can have: the kernel refuses a group (multicast or
-- broadcast) address, and all zeros, at the veth's create.
local function mac_check(s)
	local b = ipnet.mac_parse(s)
	if b and b:byte(1) & 1 == 1 then
		return nil, string.format("invalid MAC address '%s' (a multicast address: the first byte is odd)", s)
	end
	if b == string.rep("\0", 6) then return nil, string.format("invalid MAC address '%s' (all zeros)", s) end
	return true
end

local epopts = schema.new{
	{ key = "mac", type = "mac", label = "com.docker.network.endpoint.macaddress",
	  aliases = { "macaddress" }, check = mac_check, doc = "MAC address of the container side" },
	{ key = "hairpin", type = "bool", aliases = { "hairpin_mode" },
	  doc = "hairpin mode on the host side's bridge port (default: on when the endpoint publishes "
		.. "ports, as Docker without its userland proxy: it reaches its own ports through the host)" },
}
M.endpoint_options = epopts

local spec_keys = { name = true, id = true, ip = true, ip6 = true, mac = true, netns = true,
	ifname = true, options = true, publish = true }

-- The sandbox: a namespace given by name (created when missing), path or pid.
-- A string of digits names the namespace of that name when there is one,
-- else a process (as iproute2 reads `netns N`).
local function sandbox_ref(ns)
	if type(ns) == "number" then
		if ns <= 0 or math.type(ns) ~= "integer" then return nil, "invalid netns pid " .. ns end
		return ns
	end
	if type(ns) ~= "string" or ns == "" then return nil, "invalid netns " .. tostring(ns) end
	if ns:match("^%d+$") and not core.netns_exists(ns) then return sandbox_ref(tonumber(ns)) end
	return ns
end

-- An endpoint by id, else by name, else by id prefix (M.find_summary); nil,
-- "endpoint not found: KEY", ENOENT, or nil, msg, EINVAL when the prefix is
-- ambiguous.
local function find_endpoint(self, key)
	local k = type(key) == "table" and key.id or key
	local e, many
	if type(k) == "string" and k ~= "" then e, many = M.find_summary(self, "endpoint", nil, k) end
	if many then return nil, M.ambiguous("endpoint", k, many), errno.EINVAL end
	local ep = e and self.store:get("endpoint", e.id)
	if not ep then return nil, "endpoint not found: " .. tostring(k), errno.ENOENT end
	return ep
end

-- The first free prefix+N inside the sandbox.
local function free_ifname(hs, prefix)
	for n = 0, 999 do
		local name = prefix .. n
		local l, _, err = hs:link_get(name)
		if not l and err == errno.ENODEV then return name end
	end
	return nil
end

-- The container side's name, given by the caller: nil, msg, errno when the
-- kernel would refuse it or read it as a template ('%d').
local function check_ifname(name)
	if type(name) ~= "string" then return fail("ifname must be a string") end
	if schema.ifname_invalid(name) then
		return fail(string.format("invalid interface name '%s'", name),
			#name > 15 and errno.ENAMETOOLONG or errno.EINVAL)
	end
	return true
end

-- Build the endpoint record (touches nothing but the in-memory IPAM book).
local function resolve_endpoint(self, net, spec)
	for _, k in ipairs{ "ip", "ip6", "mac", "name", "id" } do
		if spec[k] ~= nil and type(spec[k]) ~= "string" then
			error(string.format("field '%s' must be a string (got %s)", k, type(spec[k])), 0)
		end
	end
	if spec.options ~= nil and type(spec.options) ~= "table" then
		error("field 'options' must be a table", 0)
	end
	for k in pairs(spec) do
		if not spec_keys[k] then
			return fail(string.format("unknown endpoint field '%s'%s", tostring(k), schema.suggest(tostring(k), spec_keys)))
		end
	end
	local id = spec.id or random_hex(32)
	if type(id) ~= "string" or not id:match("^%x+$") or #id < 12 or #id > 64 then
		return fail("invalid endpoint id: " .. tostring(id))
	end
	local name = spec.name or id:sub(1, 12)
	if type(name) ~= "string" or not name:match("^[%w][%w_.-]*$") or #name > 64 then
		return fail(string.format("invalid endpoint name '%s'", tostring(name)))
	end
	-- (the store's `first`: a fresh process reads no summary but these)
	if M.first(self, "endpoint", "id", id) then return fail("endpoint with id " .. id .. " exists", errno.EEXIST) end
	if M.first(self, "endpoint", "name", name) then return fail("endpoint " .. name .. " exists", errno.EEXIST) end
	local opts, msg = epopts:parse(spec.options or {})
	if not opts then return fail(msg) end
	if spec.mac ~= nil then
		local m, mmsg = ipnet.mac_parse(spec.mac)
		if not m then return fail(mmsg) end
		m = ipnet.mac_format(m)
		local ok, cmsg = mac_check(m)
		if not ok then return fail(cmsg) end
		if opts.mac and opts.mac ~= m then
			return fail(string.format("MAC address given twice: %s (mac) and %s (option mac)", m, opts.mac))
		end
		opts.mac = m
	end
	local ep = {
		id = id, name = name, network = net.id, network_name = net.name, bridge = net.bridge,
		mtu = net.mtu, hairpin = opts.hairpin, enable_ipv6 = net.enable_ipv6, internal = net.internal,
		-- the aux address DefaultGatewayIPv4 is the gateway when given
		-- (libnetwork's setupGatewayIPv4), the network's otherwise
		gateway4 = net.default_gateway_ipv4 or net.gateway4,
		host_ifname = M.veth_name(), generated_names = true,
	}
	if spec.publish ~= nil then
		if not self.fw then return fail("publishing ports needs the firewall") end
		local reqs, pmsg = require("brisk.ports").parse_list(spec.publish)
		if not reqs then return fail(pmsg) end
		ep.ports = reqs
	end
	-- a connection to one of its own published ports through the host's
	-- address comes back through its own bridge port (brisk has no proxy)
	if ep.hairpin == nil then ep.hairpin = ep.ports ~= nil and #ep.ports > 0 end
	-- addresses: given or allocated
	local v4
	if spec.ip ~= nil then
		local ip, ierr = ipnet.parse_ip(spec.ip)
		if not ip or ip.family ~= 4 then return fail(ierr or ("not an IPv4 address: " .. tostring(spec.ip))) end
		local s, rmsg, rerr = ipam.request(net, ip, id)
		if not s then return nil, rmsg, rerr end
		v4 = s
	else
		local s, amsg, aerr = ipam.allocate(net, 4, id)
		if not s then return nil, amsg, aerr end
		v4 = s
	end
	local plen4 = ipnet.parse_cidr(net.subnet4).plen
	ep.ipv4 = v4 .. "/" .. plen4
	ep.mac = opts.mac or ipnet.mac_from_ipv4(ipnet.parse_ip(v4))
	if net.enable_ipv6 then
		if spec.ip6 ~= nil then
			local ip, ierr = ipnet.parse_ip(spec.ip6)
			if not ip or ip.family ~= 6 then return fail(ierr or ("not an IPv6 address: " .. tostring(spec.ip6))) end
			local s, rmsg, rerr = ipam.request(net, ip, id)
			if not s then return nil, rmsg, rerr end
			ep.ipv6 = s .. "/" .. ipnet.parse_cidr(net.subnet6).plen
		elseif net.subnet6 and net.ipv6_alloc ~= false then
			local s, amsg, aerr = ipam.allocate(net, 6, id)
			if not s then return nil, amsg, aerr end
			ep.ipv6 = s .. "/" .. ipnet.parse_cidr(net.subnet6).plen
		else
			-- libnetwork: self-generated from the MAC, needs 48 host bits
			local base = net.address_ipv6 or "fe80::1/64"
			local p = ipnet.parse_cidr(base)
			if p.plen > 80 then
				return fail(string.format("Cannot self generate an IPv6 address on network %s: At least 48 host bits are needed.",
					net.name), errno.EPERM)
			end
			local a = assert(ipnet.ipv6_from_mac(p, ep.mac))
			local s = ipnet.format(ipnet.addr(a))
			-- taken: by an endpoint with the same MAC, or one given this
			-- address (libnetwork hands it out twice)
			if net.ipam.v6[s] or reserved(net, 6)[s] then
				return fail(string.format("address %s (made from MAC %s) is already in use on network %s", s,
					ep.mac, net.name), errno.EADDRINUSE)
			end
			ep.ipv6 = ipnet.format(a)
			net.ipam.v6[s] = id
		end
		-- DefaultGatewayIPv6, else the network's, else the bridge's fe80::1
		-- (libnetwork's gatewayIPv6 when the network has no IPv6 subnet)
		ep.gateway6 = net.default_gateway_ipv6 or net.gateway6 or "fe80::1"
	elseif spec.ip6 ~= nil then
		return fail("network " .. net.name .. " has no IPv6")
	end
	ep.prefix = net.container_iface_prefix or "eth"
	if spec.ifname ~= nil then
		local ok, msg, err = check_ifname(spec.ifname)
		if not ok then return nil, msg, err end
		ep.ifname = spec.ifname
	end
	return ep
end

-- Whether a sandbox reference names a namespace that does not exist yet
-- (the flow then creates it).
local function netns_to_create(ref)
	return type(ref) == "string" and not ref:find("/") and not core.netns_exists(ref)
end

-- A handle in the namespace `ref` names, which exists; refused when it is
-- the driver's own (the container side would land next to the bridge).
local function open_other(self, ref)
	local hs, msg, err = core.open(ref)
	if not hs then return nil, msg, err end
	if core.netns_id(hs) == core.netns_id(self.h) then
		hs:close()
		return fail(string.format("netns %s is the namespace the driver manages, not a sandbox", tostring(ref)))
	end
	return hs
end

local function open_sandbox(self, ref, ctx)
	if netns_to_create(ref) then
		local ok, msg, err = core.netns_add(ref)
		if not ok then return nil, msg, err end
		ctx.created_netns = ref
		return core.open(ref)
	end
	return open_other(self, ref)
end

local function host_ref(self)
	return "/proc/self/fd/" .. self.h:netns_fd()
end

local function moved(e) return handle.moves(e.op, e.args[1]) end

-- Roll back an endpoint flow: sandbox journal, the link a join moved into
-- the sandbox back to the host namespace (under its name again, the
-- sandbox's undo having renamed it back), host journal, namespace.
local function rollback(self, ctx)
	local errs = {}
	if ctx.sandbox then
		local ok, e = handle.undo(ctx.sandbox.real, ctx.sandbox.log)
		if not ok then for _, m in ipairs(e) do errs[#errs + 1] = m end end
		for i = #ctx.journal.log, 1, -1 do
			local m = ctx.journal.log[i]
			if moved(m) then
				local mok, mmsg = ctx.sandbox.real:link_set{ dev = m.args[1].dev, netns = host_ref(self) }
				if not mok then errs[#errs + 1] = mmsg end
			end
		end
	end
	local ok, e = handle.undo(self.h, ctx.journal.log, moved)
	if not ok then for _, m in ipairs(e) do errs[#errs + 1] = m end end
	if ctx.created_netns then
		local dok, dmsg = core.netns_del(ctx.created_netns)
		if not dok then errs[#errs + 1] = dmsg end
	end
	return errs
end

local function run_endpoint_steps(self, ep, ctx, what)
	local ok, step, msg, err = M.run_steps(self.endpoint_steps, ctx.journal, ep, ctx)
	if ok then return true end
	local full = string.format("%s endpoint %s: step %s failed: %s", what, ep.name, step, tostring(msg))
	local errs = rollback(self, ctx)
	if #errs > 0 then full = full .. "; rollback failed: " .. table.concat(errs, "; ") end
	return nil, full, err or errno.EINVAL
end

local function close_sandbox(ctx)
	if ctx.sandbox then ctx.sandbox.real:close() end
end

local function interrupted_network(net)
	return fail(string.format("network %s: its create was interrupted: 'brisk network restore' "
		.. "finishes it, 'brisk network rm %s' undoes it", net.name, net.name), errno.EBUSY)
end

-- Store an endpoint's intent (its record in the state "creating").
local function store_intent(self, intent)
	local ok, msg, err = self.store:put("endpoint", intent)
	if not ok then
		return nil, "create endpoint " .. intent.name .. ": store: " .. tostring(msg), M.store_errno(err)
	end
	return true
end

-- The record of an endpoint create in progress (state "creating"): what
-- the flow is about to make, stored before it makes any of it, so that a
-- process killed half way leaves something `check` reports and
-- `delete_endpoint` / `restore` undo: the host veth (the pair goes with
-- it), the namespace when the flow creates it, the published ports.
local function write_intent(self, ep, ref, creates_netns)
	local intent = {}
	for k, v in pairs(ep) do intent[k] = v end
	intent.generated_names, intent.prefix, intent.sandbox = nil, nil, nil
	intent.state = "creating"
	intent.netns = ref
	if creates_netns then intent.created_netns = ref end
	local ok, msg, err = store_intent(self, intent)
	if not ok then return nil, msg, err end
	return intent
end

-- A create that failed cleanly (rolled back): its intent goes too.
local function drop_intent(self, intent, msg, err)
	local ok, dmsg = self.store:delete("endpoint", intent.id)
	if not ok then msg = tostring(msg) .. "; removing its record failed: " .. tostring(dmsg) end
	return nil, msg, err
end

--- Create an endpoint on a network, and join it to a namespace when
-- `netns` is given (the container side is then created in place).
-- @param netkey network name, id or id prefix
-- @tparam table spec {name=, id=, ip=, ip6=, mac=, netns=NAME|PATH|PID,
--   ifname=, options={mac=, hairpin=}, publish={...}} (netns: a name is
--   created when missing; a string of digits names the namespace of that
--   name when there is one, else a pid, as does a number)
-- @return the stored endpoint record, or nil, msg, errno
function D:create_endpoint(netkey, spec)
	spec = spec or {}
	if type(spec) ~= "table" then error("bad argument #2 to 'create_endpoint' (table expected)", 2) end
	return self.store:transaction(function()
		local net, msg, err = self:network(netkey)
		if not net then return nil, msg, err end
		if net.state == "creating" then return interrupted_network(net) end
		-- a copy of the book: a failed create must not leave its addresses in it
		local book, cur = ipam.book(self, net)
		net.ipam = scratch_ipam(book, cur)
		local ep
		ep, msg, err = resolve_endpoint(self, net, spec)
		if not ep then return nil, msg, err end
		local ctx = { driver = self, firewall = self.fw, network = net }
		ctx.journal = handle.journal(self.h)
		local ref, rmsg, hs, creates_netns
		if spec.netns ~= nil then
			ref, rmsg = sandbox_ref(spec.netns)
			if not ref then return fail(rmsg) end
			creates_netns = netns_to_create(ref)
			-- a namespace that exists is opened now: a bad one fails having written nothing
			if not creates_netns then
				local smsg, serr
				hs, smsg, serr = open_other(self, ref)
				if not hs then return nil, smsg, serr end
			end
		else
			ep.peer_ifname = M.veth_name()
		end
		-- the intent, stored before the first kernel change (see apply_resolved)
		local intent, imsg, ierr = write_intent(self, ep, ref, creates_netns)
		if not intent then
			if hs then hs:close() end
			return nil, imsg, ierr
		end
		if spec.netns ~= nil then
			if not hs then
				local smsg, serr
				hs, smsg, serr = open_sandbox(self, ref, ctx)
				if not hs then return drop_intent(self, intent, smsg, serr) end
			end
			ep.netns = ref
			ep.sandbox = type(ref) == "string" and ref:find("/") == nil and ref or
				("/proc/self/fd/" .. hs:netns_fd())
			-- a namespace this flow just made has no interfaces yet
			ep.ifname = ep.ifname or (ctx.created_netns and ep.prefix .. "0") or free_ifname(hs, ep.prefix)
			ep.peer_ifname = ep.ifname
			-- a namespace this flow made goes whole on a rollback, the
			-- container side with its pair
			ctx.sandbox = handle.journal(hs, nil, { fresh = ctx.created_netns ~= nil, made = { ep.ifname } })
		end
		-- names drawn again after a collision are stored before they are used
		function ctx.renamed(e)
			intent.host_ifname, intent.peer_ifname = e.host_ifname, e.peer_ifname
			return store_intent(self, intent)
		end
		local ok
		ok, msg, err = run_endpoint_steps(self, ep, ctx, "create")
		if not ok then
			close_sandbox(ctx)
			return drop_intent(self, intent, msg, err)
		end
		ep.sandbox, ep.generated_names, ep.prefix = nil, nil, nil
		ep.created_netns = ctx.created_netns
		ep.created_at = os.date("!%Y-%m-%dT%H:%M:%SZ")
		ep.dbIndex = intent.dbIndex
		local pok, pmsg, perr = self.store:put("endpoint", ep)
		-- (a rollback runs through the sandbox's handle: it is closed after)
		if not pok then rollback(self, ctx) end
		close_sandbox(ctx)
		if not pok then
			return drop_intent(self, intent, "create endpoint " .. ep.name .. ": store: " .. tostring(pmsg),
				M.store_errno(perr))
		end
		for _, fam in ipairs{ "v4", "v6" } do
			for ip, owner in pairs(net.ipam[fam]) do book[fam][ip] = owner end
		end
		cur.next4, cur.next6 = net.ipam.next4, net.ipam.next6
		book.low4, book.low6 = net.ipam.low4, net.ipam.low6
		book_written(self, net)
		return ep
	end)
end

--- Plan an endpoint: resolve it (addresses from IPAM, MAC, names) and
-- record the kernel operations each step would perform, changing nothing
-- (not the store, not the address book).
-- @return plan {endpoint=, steps={{name=, skipped=, ops=}}, ops=}, or nil, msg, errno
function D:plan_endpoint(netkey, spec)
	spec = spec or {}
	if type(spec) ~= "table" then error("bad argument #2 to 'plan_endpoint' (table expected)", 2) end
	return self.store:transaction(function()
		local net, msg, err = self:network(netkey)
		if not net then return nil, msg, err end
		net.ipam = scratch_ipam(ipam.book(self, net))
		local ep
		ep, msg, err = resolve_endpoint(self, net, spec)
		if not ep then return nil, msg, err end
		local r = handle.recorder(self.h)
		local ctx = { driver = self, firewall = self.fw, network = net, journal = r, plan = true }
		local hs
		if spec.netns ~= nil then
			local ref, rmsg = sandbox_ref(spec.netns)
			if not ref then return fail(rmsg) end
			if netns_to_create(ref) then
				r.ops[#r.ops + 1] = { op = "netns_add", args = { ref } }
				ctx.sandbox = handle.recorder(handle.fresh_namespace())
			else
				hs, msg, err = open_other(self, ref)
				if not hs then return nil, msg, err end
				ctx.sandbox = handle.recorder(hs)
			end
			ep.netns = ref
			ep.sandbox = ref
			ep.ifname = ep.ifname or free_ifname(ctx.sandbox, ep.prefix)
			ep.peer_ifname = ep.ifname
			ctx.sandbox:virtual_link{ ifname = ep.ifname, ifindex = 0, mtu = ep.mtu or 1500, address = ep.mac,
				flags = { "BROADCAST", "MULTICAST" } }
		else
			ep.peer_ifname = M.veth_name()
		end
		ep.generated_names = nil
		-- the host side is created by the first step: the recorder knows it
		local plan = { endpoint = ep, steps = {} }
		local marks = {}
		if #r.ops > 0 then   -- the namespace the flow would create first
			plan.steps[1] = { name = "netns_add", ops = {} }
			marks[1] = 1
		end
		local ops = r.ops
		-- sandbox ops are recorded separately: merge them in step order
		local merged = {}
		local seen_host, seen_sb = 0, 0
		local function collect()
			for i = seen_host + 1, #ops do merged[#merged + 1] = ops[i] end
			seen_host = #ops
			if ctx.sandbox then
				local sops = ctx.sandbox.ops
				for i = seen_sb + 1, #sops do
					local o = handle.copy(sops[i])
					o.netns = ep.netns
					merged[#merged + 1] = o
				end
				seen_sb = #sops
			end
		end
		collect()
		local ok, step
		ok, step, msg, err = M.run_steps(self.endpoint_steps, r, ep, ctx, function(name, skipped)
			collect()
			plan.steps[#plan.steps + 1] = { name = name, skipped = skipped or nil, ops = {} }
			marks[#plan.steps] = #merged + 1
		end)
		collect()
		if hs then hs:close() end
		if not ok then
			return nil, string.format("plan endpoint %s: step %s would fail: %s", ep.name, step, tostring(msg)), err
		end
		for i, st in ipairs(plan.steps) do
			for k = marks[i], (marks[i + 1] or #merged + 1) - 1 do st.ops[#st.ops + 1] = merged[k] end
		end
		plan.ops = merged
		ep.sandbox, ep.prefix = nil, nil
		return plan
	end)
end

--- Join an endpoint created without a namespace: move the container side
-- into `netns`, name it prefix+N, set MAC, MTU, addresses, up, routes.
-- @return the updated endpoint, or nil, msg, errno
function D:join(epkey, netns, o)
	o = o or {}
	return self.store:transaction(function()
		local ep, emsg, eerr = find_endpoint(self, epkey)
		if not ep then return nil, emsg, eerr end
		local busy = interrupted(ep)
		if busy then return nil, busy, errno.EBUSY end
		if ep.netns then return fail("endpoint " .. ep.name .. " is already joined to " .. tostring(ep.netns), errno.EBUSY) end
		local net = assert(self:network(ep.network))
		local ref, rmsg = sandbox_ref(netns)
		if not ref then return fail(rmsg) end
		if o.ifname ~= nil then
			local ok, imsg, ierr = check_ifname(o.ifname)
			if not ok then return nil, imsg, ierr end
		end
		local ctx = { driver = self, move = true, network = net }
		ctx.journal = handle.journal(self.h)
		-- the intent (state "joining", the namespace, and whether the join
		-- makes it), stored before the first kernel change: a process
		-- killed half way leaves a record that check reports and that leave,
		-- rm and restore undo (bring_back)
		-- (a namespace that exists is opened first: a join refused there
		-- changes nothing, not even the record)
		local was, hs, smsg, serr = copy(ep), nil, nil, nil
		local creates = netns_to_create(ref)
		if not creates then
			hs, smsg, serr = open_sandbox(self, ref, ctx)
			if not hs then return nil, smsg, serr end
		end
		ep.state, ep.netns = "joining", ref
		if creates then ep.created_netns = ref end
		local iok, imsg, ierr = self.store:put("endpoint", ep)
		if not iok then
			if hs then hs:close() end
			return nil, "join endpoint " .. ep.name .. ": store: " .. tostring(imsg), M.store_errno(ierr)
		end
		local function refused(msg, err) return put_back(self, was, ep, msg, err) end
		if creates then
			hs, smsg, serr = open_sandbox(self, ref, ctx)
			if not hs then return refused(smsg, serr) end
		end
		-- (not fresh even in a namespace the join made: a failure must bring
		-- the container side back, renamed back first)
		ctx.sandbox = handle.journal(hs)
		ctx.sandbox_ref = type(ref) == "string" and ref or ("/proc/self/fd/" .. hs:netns_fd())
		ep.ifname = o.ifname or free_ifname(hs, net.container_iface_prefix or "eth")
		iok, imsg, ierr = self.store:put("endpoint", ep)
		if not iok then
			close_sandbox(ctx)
			if ctx.created_netns then core.netns_del(ctx.created_netns) end
			return refused("join endpoint " .. ep.name .. ": store: " .. tostring(imsg), M.store_errno(ierr))
		end
		-- only the join part of the list runs
		local list = {}
		for _, s in ipairs(self.endpoint_steps) do
			if s.name == "join_move" or s.name:match("^sandbox_") then list[#list + 1] = s end
		end
		local ok, step, msg, err = M.run_steps(list, ctx.journal, ep, ctx)
		if not ok then
			-- the link may sit in the sandbox now: the rollback brings it back
			-- (through the sandbox's handle: it is closed afterwards)
			local errs = rollback(self, ctx)
			close_sandbox(ctx)
			msg = string.format("join endpoint %s: step %s failed: %s%s", ep.name, step, tostring(msg),
				#errs > 0 and ("; rollback failed: " .. table.concat(errs, "; ")) or "")
			-- a rollback that failed leaves the intent, for leave or rm to finish
			if #errs > 0 then return nil, msg, err end
			return refused(msg, err)
		end
		close_sandbox(ctx)
		ep.state = nil
		ep.netns = ref
		ep.created_netns = ctx.created_netns
		local pok, pmsg, perr = self.store:put("endpoint", ep)
		if not pok then return nil, pmsg, M.store_errno(perr) end
		return ep
	end)
end

-- The other stored endpoints in the namespace an endpoint was in, however
-- they named it (a name, a path such as /var/run/netns/N, a pid). The
-- endpoints are read only when the namespace still holds a link other than
-- lo (the endpoint's own is gone by now); a namespace gone holds none.
-- Nor are they when neither of their readers needs them: an endpoint that
-- made no namespace and carries no default route. The records are the
-- store's own (read-only).
local function others_in_netns(self, ep)
	if not ep.created_netns and (ep.internal or not ep.netns) then return {} end
	local ns = ep.netns or ep.created_netns
	local hs = core.open(ns)
	if not hs then return {} end
	local busy = false
	for _, l in ipairs(hs:link_list() or {}) do
		if l.ifname ~= "lo" then busy = true end
	end
	hs:close()
	local out = {}
	if not busy then return out end
	local id = core.netns_id(ns)
	for _, o in ipairs(self.store:list("endpoint", true) or {}) do
		if o.id ~= ep.id and o.netns ~= nil and (o.netns == ns or (id and core.netns_id(o.netns) == id)) then
			out[#out + 1] = o
		end
	end
	return out
end

-- The namespace an endpoint's create made goes when the endpoint leaves
-- it, unless another stored endpoint was connected into it since (a second
-- `--netns` of the same name; `others`, from others_in_netns): that one
-- then owns it, and removes it when it goes in turn.
local function release_netns(self, ep, others)
	local ns = ep.created_netns
	if not ns then return true end
	if others[1] then
		local heir = copy(others[1])
		heir.created_netns = ns
		local ok, msg, err = self.store:put("endpoint", heir)
		if not ok then return nil, msg, M.store_errno(err) end
		return true
	end
	core.netns_del(ns)
	return true
end

-- The namespace's default routes went with the endpoint's link: the next
-- endpoint there (`others`, from others_in_netns) that can carry them (not
-- internal nor unfinished; by network name, as libnetwork's sandbox orders
-- its endpoints) takes them, as libnetwork's updateGateway does.
local function hand_over_gateway(self, ep, others)
	if not ep.netns or ep.internal then return end
	local next = {}
	for _, o in ipairs(others) do
		if not o.internal and o.state == nil then next[#next + 1] = o end
	end
	if not next[1] then return end
	table.sort(next, function(a, b) return (a.network_name or "") < (b.network_name or "") end)
	local hs = core.open(ep.netns)
	if not hs then return end
	-- the first takes each family's default route, the others find it taken
	for _, o in ipairs(next) do steps.sandbox_routes(hs, o) end
	hs:close()
end

-- Bring an endpoint's container side back to the driver's namespace under
-- its host-side name, down (the move drops its addresses), wherever a join
-- or a leave, done or cut short, left it: here already, or in its namespace
-- under either name. A link is taken for the endpoint's only when it is the
-- other end of the endpoint's host side. Nothing changes when the name it
-- takes back is another link's here; a failed move puts it back as it was.
local function bring_back(self, ep)
	local host = self.h:link_get(ep.host_ifname)
	-- the pair is gone with its host side (a reboot): nothing to bring back
	-- (check reports the link missing; rm removes the record)
	if not host then return true end
	local here = self.h:link_get(ep.peer_ifname)
	if here then
		if here.link == ep.host_ifname then return true end
		return fail(string.format("leave endpoint %s: %s exists in the host's namespace", ep.name,
			ep.peer_ifname), errno.EEXIST)
	end
	local hs, msg, err = core.open(ep.netns)
	if not hs then return nil, "leave endpoint " .. ep.name .. ": " .. tostring(msg), err end
	local function ours(name)
		local l = name and hs:link_get(name)
		return l and l.link_index == host.ifindex and l.link_netnsid ~= nil
	end
	local name = (ours(ep.peer_ifname) and ep.peer_ifname) or (ours(ep.ifname) and ep.ifname)
	if not name then
		hs:close()
		return fail(string.format("leave endpoint %s: its link is neither in the host's namespace nor in %s",
			ep.name, tostring(ep.netns)), errno.ENODEV)
	end
	local ok = true
	if name ~= ep.peer_ifname then
		ok, msg, err = hs:link_set{ dev = name, up = false, ifname = ep.peer_ifname }
	end
	if ok then
		ok, msg, err = hs:link_set{ dev = ep.peer_ifname, netns = host_ref(self) }
		if not ok and name ~= ep.peer_ifname and hs:link_set{ dev = ep.peer_ifname, ifname = name, up = true } then
			steps.sandbox_routes(hs, ep)
		end
	end
	hs:close()
	if not ok then return nil, "leave endpoint " .. ep.name .. ": " .. tostring(msg), err end
	return true
end

--- Leave: move the container side back to the driver's namespace under its
-- original name, down, without addresses. It also undoes a join or a leave
-- that was cut short (the record's state "joining" or "leaving").
function D:leave(epkey)
	return self.store:transaction(function()
		local ep, emsg, eerr = find_endpoint(self, epkey)
		if not ep then return nil, emsg, eerr end
		if ep.state == "creating" then return nil, interrupted(ep), errno.EBUSY end
		if not ep.netns then return fail("endpoint " .. ep.name .. " is not joined", errno.EINVAL) end
		-- the name it takes back must be free here (a move under a taken name
		-- fails half way: the kernel moves the link, then cannot rename it):
		-- when it is not (an endpoint made in its namespace has its inside
		-- name there, eth0), the link gets a name of its own, in the intent
		-- (a leave or join cut short may have renamed it already: bring_back
		-- then refuses, with the record as it is)
		local was = copy(ep)
		local here = self.h:link_get(ep.peer_ifname)
		if here and here.link ~= ep.host_ifname and not ep.state then ep.peer_ifname = M.veth_name() end
		if not ep.state then
			-- the intent, as join's
			ep.state = "leaving"
			local iok, imsg, ierr = self.store:put("endpoint", ep)
			if not iok then return nil, "leave endpoint " .. ep.name .. ": store: " .. tostring(imsg), M.store_errno(ierr) end
		end
		local ok, msg, err = bring_back(self, ep)
		if not ok then
			if was.state then return nil, msg, err end
			return put_back(self, was, ep, msg, err)
		end
		local others = others_in_netns(self, ep)
		hand_over_gateway(self, ep, others)
		local rok, rmsg, rerr = release_netns(self, ep, others)
		if not rok then return nil, rmsg, rerr end
		ep.netns, ep.ifname, ep.created_netns, ep.state = nil, nil, nil, nil
		local pok, pmsg, perr = self.store:put("endpoint", ep)
		if not pok then return nil, pmsg, M.store_errno(perr) end
		return ep
	end)
end

--- Delete an endpoint: its veth wherever the peer is, its addresses, its
-- published ports, its store entry. A second delete reports "not found".
-- @return true, or nil, msg, errno
function D:delete_endpoint(epkey)
	return self.store:transaction(function()
		local gone, gmsg, gerr = M.delete_damaged(self, "endpoint", epkey)
		if gone ~= nil then return gone, gmsg, gerr end
		local ep, emsg, eerr = find_endpoint(self, epkey)
		if not ep then return nil, emsg, eerr end
		local net = self:network(ep.network)
		if ep.state == "creating" and self.fw and ep.ports then
			-- an interrupted create: its bindings were never stored, its rules go by their tag
			local ok, msg, err = self.fw.ports_purge(self:nft_runner(), ep.bridge, ep.id)
			if not ok then return nil, "delete endpoint " .. ep.name .. ": " .. tostring(msg), err end
		elseif self.fw and ep.ports and #ep.ports > 0 and self.fw.unpublish_ports then
			local ok, msg, err = self.fw.unpublish_ports(self.h, ep, { driver = self, network = net })
			if not ok then return nil, "delete endpoint " .. ep.name .. ": " .. tostring(msg), err end
		end
		-- the host side takes the pair with it; gone already is fine
		local ok, msg, err = self.h:link_del(ep.host_ifname)
		if not ok and err ~= errno.ENODEV then
			return nil, "delete endpoint " .. ep.name .. ": " .. tostring(msg), err
		end
		local others = others_in_netns(self, ep)
		hand_over_gateway(self, ep, others)
		-- its flows' conntrack entries go too (best effort, as libnetwork)
		if self.fw then require("brisk.ports").purge_conntrack(self.h, ep) end
		local rok, rmsg, rerr = release_netns(self, ep, others)
		if not rok then return nil, rmsg, rerr end
		local ok2, dmsg, derr = self.store:delete("endpoint", ep.id)
		if not ok2 then return nil, dmsg, M.store_errno(derr) end
		if net then
			local book = ipam.book(self, net)
			ipam.release(book, ep)
			book_written(self, net)
		end
		return true
	end)
end

--- The stored endpoints, of one network when given (then only its
-- endpoints' documents are read).
function D:endpoints(netkey)
	if not netkey then return self.store:list("endpoint") end
	local net = self:network(netkey)
	if not net then return {} end
	local t = {}
	for _, e in ipairs(M.summaries(self, "endpoint")) do
		if e.network == net.id then t[#t + 1] = self.store:get("endpoint", e.id) end
	end
	return t
end

--- The summaries of the stored endpoints (brisk.store's index): `id`
-- and the fields of `M.INDEX.endpoint`, sorted by id. Read-only tables.
function D:endpoint_summaries()
	return M.summaries(self, "endpoint")
end

--- One endpoint by name, id or id prefix.
function D:endpoint(key)
	return find_endpoint(self, key)
end

--- Undo the interrupted creates of a network's endpoints (used by restore):
-- each adds {name = "endpoint NAME", ok =, undone = true, msg =} to `out`.
-- When the network itself was restored (`net_ok`), its endpoints' published
-- ports are programmed again.
function D:restore_endpoints(net, out, net_ok)
	for _, ep in ipairs(self:endpoints(net.id)) do
		if ep.state == "creating" then
			local ok, msg = self:delete_endpoint(ep.id)
			out[#out + 1] = { name = "endpoint " .. ep.name, ok = ok == true, undone = true, msg = msg }
		else
			if ep.state == "joining" or ep.state == "leaving" then
				-- brought back to this namespace: a join undone, a leave finished
				local joining = ep.state == "joining"
				local ok, msg = self:leave(ep.id)
				out[#out + 1] = { name = "endpoint " .. ep.name, ok = ok ~= nil, msg = msg,
					what = joining and "join" or "leave", undone = joining or nil, finished = not joining or nil }
			end
			if net_ok and self.fw and type(ep.ports) == "table" then
				-- restore rebuilt the network's firewall, which took the
				-- endpoint's published ports with it: they are published again
				for _, b in ipairs(ep.ports) do
					local ok, msg = self.fw.port_add(self:nft_runner(), M.fw_net(net), { id = ep.id }, b)
					if not ok then
						out[#out + 1] = { name = "endpoint " .. ep.name, ok = false, msg = msg }
						break
					end
				end
			end
		end
	end
end

--- Drift of the endpoints of a network (used by check).
function D:check_endpoints(net, add)
	for _, ep in ipairs(self:endpoints(net.id)) do
		local l = self.h:link_get(ep.host_ifname)
		if ep.state == "creating" then
			add("endpoint %s: its create was interrupted (host link %s %s); 'brisk endpoint rm %s' "
				.. "or 'brisk network restore' undoes it", ep.name, ep.host_ifname,
				l and "exists" or "not created", ep.name)
		elseif ep.state == "joining" or ep.state == "leaving" then
			add("endpoint %s: its %s %s was interrupted; 'brisk endpoint leave %s' or 'brisk network "
				.. "restore' brings it back, 'brisk endpoint rm %s' removes it", ep.name,
				ep.state == "joining" and "join to" or "leave from", tostring(ep.netns), ep.name, ep.name)
		elseif not l then
			add("endpoint %s: host link %s is missing", ep.name, ep.host_ifname)
		elseif l.master ~= net.bridge then
			add("endpoint %s: %s is not attached to %s", ep.name, ep.host_ifname, net.bridge)
		end
	end
end

end
