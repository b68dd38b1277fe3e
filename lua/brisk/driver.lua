--- brisk.driver: libnetwork's bridge driver as a Lua flow over C steps.
--
-- One driver per state directory. It owns the step lists (network and
-- endpoint); a user may replace, wrap, insert or remove steps on a driver
-- object without touching any other. The flows reach the kernel only
-- through a handle: a journal (apply, with exact rollback) or a recorder
-- (plan, a dry run).
--
--     local driver = require "brisk.driver"
--     local d = assert(driver.open{ state_dir = "/tmp/brisk" })
--     local net = assert(d:create_network{ name = "web", subnet = "10.10.0.0/24" })
--     d:delete_network("web")
local core = require "brisk.core"
local handle = require "brisk.handle"
local ipnet = require "brisk.ipnet"
local schema = require "brisk.schema"

local function same_ip(a, b)
	return ipnet.compare(ipnet.addr(a), ipnet.addr(b)) == 0
end
local storemod = require "brisk.store"
-- brisk.netopts (the network options' schema) is loaded by the first
-- network definition resolved: most runs of the brisk program create or
-- read endpoints and never need it
local netopts

local M = {}
local D = {}
D.__index = D

local ENODEV, EEXIST, EINVAL, ENOENT, EBUSY = core.errno.ENODEV, core.errno.EEXIST,
	core.errno.EINVAL, core.errno.ENOENT, core.errno.EBUSY

local unpack = table.unpack

-- An error value: a message with an errno and, for step failures, the step.
local function fail(msg, err, extra)
	return nil, msg, err or EINVAL, extra
end

-- The store's failure codes as errno numbers.
local STORE_ERRNO = { notfound = "ENOENT", exists = "EEXIST", modified = "EAGAIN", corrupt = "EBADMSG",
	invalid = "EINVAL", io = "EIO" }
function M.store_errno(code)
	if type(code) == "number" then return code end
	return core.errno[STORE_ERRNO[code] or "EIO"]
end

local function random_hex(nbytes)
	local b = core.random_bytes(nbytes)
	return (b:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function random_mac()
	local b = core.random_bytes(4)
	return string.format("02:42:%02x:%02x:%02x:%02x", b:byte(1, 4))
end

---------------------------------------------------------------------------
-- Step lists
---------------------------------------------------------------------------

local steps = core.steps

-- The firewall module, loaded when a flow first uses it (a command that
-- only reads the store, or an endpoint without published ports, never
-- pays for it).
local function firewall()
	return package.loaded["brisk.firewall"] or setmetatable({}, { __index = function(t, k)
		local fw = require "brisk.firewall"
		setmetatable(t, { __index = fw })
		return fw[k]
	end })
end

--- A record that does not parse, named by its full id, is deleted as it
-- is: what it named cannot be read, so what it made in the kernel stays.
-- Every command that reads the kind fails until then (the index cannot be
-- built), and this is how it is mended (`brisk network|endpoint rm ID`).
-- @return true when `key` named such a record and it was deleted; nil,
--   msg, errno when that failed; nothing when `key` names no damaged record
function M.delete_damaged(d, kind, key)
	if type(key) ~= "string" or not key:match("^" .. string.rep("%x", 64) .. "$") then return end
	local doc, _, code = d.store:get(kind, key)
	if doc or code ~= "corrupt" then return end
	local ok, msg, err = d.store:delete(kind, key)
	if not ok then return nil, msg, M.store_errno(err) end
	return true
end

-- The firewall's view of a network.
function M.fw_net(n)
	return { id = n.id, bridge = n.bridge, subnet4 = n.subnet4, subnet6 = n.subnet6, icc = n.icc,
		masquerade = n.masquerade, internal = n.internal, host_ipv4 = n.host_ipv4 }
end

-- Write a sysctl through the handle only when it differs.
local function sysctl_ensure(h, path, value)
	local cur, msg, err = h:sysctl_get(path)
	if not cur then return nil, msg, err end
	if cur == value then return true end
	local old
	old, msg, err = h:sysctl_set(path, value)
	if not old then return nil, msg, err end
	return true
end
M.sysctl_ensure = sysctl_ensure

-- Forwarding in the namespace the driver manages (libnetwork's
-- EnableIPForwarding), IPv6 too on an IPv6 network.
local function setup_ip_forwarding(h, n)
	local ok, msg, err = sysctl_ensure(h, "net/ipv4/ip_forward", "1")
	if ok and n.enable_ipv6 then
		ok, msg, err = sysctl_ensure(h, "net/ipv6/conf/all/forwarding", "1")
	end
	return ok, msg, err
end

-- libnetwork's queue, in its order. `when(net, ctx)` decides whether a step
-- is queued; `run(h, net, ctx)` performs it and returns true or nil, msg,
-- errno. The firewall steps sit in their libnetwork places.
local function default_network_steps()
	return {
		{ name = "setup_device", run = steps.setup_device,
		  when = function(n, c) return not c.exists end },
		{ name = "setup_default_sysctl", run = steps.setup_default_sysctl,
		  when = function(n, c) return not c.exists or n.default_bridge end },
		{ name = "setup_bridge_ipv4", run = steps.setup_bridge_ipv4,
		  when = function(n) return not n.inhibit_ipv4 end },
		{ name = "setup_bridge_ipv6", run = steps.setup_bridge_ipv6,
		  when = function(n) return n.enable_ipv6 end },
		{ name = "setup_verify_and_reconcile", run = steps.setup_verify_and_reconcile,
		  when = function(n, c) return c.exists and not n.inhibit_ipv4 end },
		{ name = "setup_ipv6_forwarding", run = steps.setup_ipv6_forwarding,
		  when = function(n) return n.address_ipv6 ~= nil end },
		{ name = "setup_loopback_addresses_routing", run = steps.setup_loopback_addresses_routing,
		  when = function(n, c) return not c.driver.userland_proxy end },
		{ name = "setup_ip_forwarding", firewall = true, run = setup_ip_forwarding,
		  when = function(n, c) return c.firewall ~= nil end },
		-- the network's rules, its ICC set elements and its isolation: one
		-- nftables transaction. Isolation between networks is membership of
		-- the bridge in the `brisk_bridges` set, so it costs the same for
		-- the 500th network as for the 2nd (libnetwork's isolation step).
		{ name = "setup_ip_tables", firewall = true,
		  run = function(h, n) return h:firewall("network_add", M.fw_net(n)) end,
		  when = function(n, c) return c.firewall ~= nil end },
		{ name = "setup_gateway_ipv4", run = steps.setup_gateway_ipv4,
		  when = function(n) return n.default_gateway_ipv4 ~= nil end },
		{ name = "setup_gateway_ipv6", run = steps.setup_gateway_ipv6,
		  when = function(n) return n.default_gateway_ipv6 ~= nil end },
		{ name = "setup_bridge_netfiltering", run = steps.setup_bridge_netfiltering,
		  when = function(n, c) return not n.icc and c.firewall ~= nil end },
		{ name = "setup_mtu", run = steps.setup_mtu,
		  when = function(n) return (n.mtu or 0) > 0 end },
		{ name = "setup_device_up", run = steps.setup_device_up,
		  when = function() return true end },
	}
end
M.default_network_steps = default_network_steps

---------------------------------------------------------------------------
-- Opening a driver
---------------------------------------------------------------------------

--- The fields of the store's index (brisk.store `summaries`): what the
-- flows read of every network (names, ids, bridges and subnets for the
-- conflict checks and the pool choice, and what `network ls` shows) and
-- of every endpoint (names,
-- addresses and published ports for IPAM, name checks and the port
-- allocator), so a flow reads the index and the few documents it changes
-- rather than every document. `state` lets them see unfinished records.
M.INDEX = {
	network = { "name", "bridge", "subnet4", "subnet6", "state", "gateway4", "gateway6", "internal",
		"enable_ipv6" },
	endpoint = { "name", "network", "ipv4", "ipv6", "ports", "state" },
}

--- The summaries of a kind (read-only, sorted by id); a store that cannot
-- be read raises its message.
function M.summaries(d, kind)
	local all, msg = d.store:summaries(kind, true)
	if not all then error(msg, 0) end
	return all
end

--- The summary of a kind whose `field` is `value`, or nil (brisk.store
-- `first`); raises as `summaries`.
function M.first(d, kind, field, value)
	local s, msg = d.store:first(kind, field, value)
	if s == nil and msg then error(msg, 0) end
	return s
end

--- fn(id, ...) for every summary of a kind, with the values of `fields`
-- (brisk.store `scan`); raises as `summaries`.
function M.scan(d, kind, fields, fn)
	local ok, msg = d.store:scan(kind, fields, fn)
	if not ok then error(msg, 0) end
end

--- A lookup the store keeps in step with a kind's summaries (brisk.store
-- `derived`); raises as `summaries`.
function M.derived(d, kind, name, build, update)
	local lk, msg = d.store:derived(kind, name, build, update)
	if not lk then error(msg, 0) end
	return lk
end

--- The summary of a kind whose id, else name, is `key` (from `lk`, a
-- brisk.store `by_fields` lookup over "id" and "name"; without one, from
-- the store's `first`), else the one whose id starts with `key` (4
-- characters or more; a walk); nil if none, and nil, N when N ids start
-- with it (ambiguous: Docker refuses it too).
function M.find_summary(d, kind, lk, key)
	local s
	if lk then
		s = storemod.first(lk, "id", key) or storemod.first(lk, "name", key)
	else
		s = M.first(d, kind, "id", key) or M.first(d, kind, "name", key)
	end
	if s or #key < 4 then return s end
	local found, n = nil, 0
	for _, x in ipairs(M.summaries(d, kind)) do
		if x.id:sub(1, #key) == key then found, n = x, n + 1 end
	end
	if n > 1 then return nil, n end
	return found
end

--- The message for a key that matched `n` ids by prefix.
function M.ambiguous(kind, key, n)
	return string.format("%s %s is ambiguous (%d matches found based on ID prefix)", kind, key, n)
end

local open_schema = {
	state_dir = "string", netns = "any", firewall = "boolean", userland_proxy = "boolean",
}

--- Open a driver over a state directory.
-- @tparam[opt] table o
--   `state_dir` (default $BRISK_STATE_DIR or /var/lib/brisk),
--   `netns` the namespace it manages (name, path, pid; default current),
--   `firewall` (default true when brisk.firewall is present),
--   `userland_proxy` (default true, as Docker: no route_localnet step)
-- @return driver, or nil, msg, errno
function M.open(o)
	o = o or {}
	if type(o) ~= "table" then error("bad argument #1 to 'open' (table expected)", 2) end
	for k, v in pairs(o) do
		local t = open_schema[k]
		if not t then
			error(string.format("open: unknown option '%s'%s", tostring(k),
				schema.suggest(k, open_schema)), 2)
		end
		if t ~= "any" and type(v) ~= t then
			error(string.format("open: option '%s' must be a %s", k, t), 2)
		end
	end
	-- endpoints are kernel state that does not outlive a reboot: their
	-- documents are written atomically but not fsync'd
	local st, msg, err = storemod.open(o.state_dir, { volatile = { "endpoint" }, index = M.INDEX })
	if not st then return nil, msg, M.store_errno(err) end
	local h, hmsg, herr = core.open(o.netns)
	if not h then return nil, hmsg, herr end
	local fw = nil
	if o.firewall ~= false then fw = firewall() end
	local d = setmetatable({
		store = st,
		h = h,
		netns = o.netns,
		userland_proxy = o.userland_proxy ~= false,
		fw = fw,
		network_steps = default_network_steps(),
		endpoint_steps = M.default_endpoint_steps and M.default_endpoint_steps() or {},
	}, D)
	return d
end

--- Close the driver's handle (harmless twice).
function D:close()
	if self.h then self.h:close() end
	return true
end
D.__close = D.close
D.__gc = D.close

---------------------------------------------------------------------------
-- Step list editing: replace, wrap, insert, remove
---------------------------------------------------------------------------

local function find_step(self, name)
	for _, listname in ipairs{ "network_steps", "endpoint_steps" } do
		for i, s in ipairs(self[listname]) do
			if s.name == name then return self[listname], i, s end
		end
	end
	return nil
end

local function need_step(self, name, level)
	local list, i, s = find_step(self, name)
	if not list then
		local names = {}
		for _, ln in ipairs{ "network_steps", "endpoint_steps" } do
			for _, x in ipairs(self[ln]) do names[x.name] = true end
		end
		error(string.format("no step named '%s'%s", tostring(name), schema.suggest(name, names)),
			(level or 2) + 1)
	end
	return list, i, s
end

--- The names of the steps, in order.
-- @tparam[opt="network"] string which "network" or "endpoint"
function D:step_names(which)
	local t = {}
	for _, s in ipairs(self[(which or "network") .. "_steps"]) do t[#t + 1] = s.name end
	return t
end

--- Replace a step's function. The replacement gets the same arguments as
-- the original, `(h, net, ctx)` (endpoints: `(h, ep, ctx)`), and returns
-- true or nil, msg, errno. `ctx.original` is the function it replaced.
function D:replace_step(name, fn)
	assert(type(fn) == "function", "replace_step: function expected")
	local _, _, s = need_step(self, name)
	local orig = s.run
	s.run = function(h, obj, ctx)
		ctx.original = orig
		return fn(h, obj, ctx)
	end
	return self
end

--- Run `fn(h, obj, ctx)` before a step (when it is queued). A hook that
-- returns nil, msg fails the step.
function D:before(name, fn)
	assert(type(fn) == "function", "before: function expected")
	local _, _, s = need_step(self, name)
	s.before = s.before or {}
	s.before[#s.before + 1] = fn
	return self
end

--- Run `fn(h, obj, ctx)` after a step succeeded. A hook that returns nil,
-- msg fails the step (and the flow rolls back, the step's work included).
function D:after(name, fn)
	assert(type(fn) == "function", "after: function expected")
	local _, _, s = need_step(self, name)
	s.after = s.after or {}
	s.after[#s.after + 1] = fn
	return self
end

--- Insert a new named step.
-- @tparam table s {name=, run=fn(h, obj, ctx), before=NAME | after=NAME,
--   when=fn(obj, ctx) (default always)}
function D:insert_step(s)
	assert(type(s) == "table" and type(s.name) == "string" and type(s.run) == "function",
		"insert_step: {name=, run=, before=|after=} expected")
	if find_step(self, s.name) then error("a step named '" .. s.name .. "' exists", 2) end
	local anchor = s.before or s.after
	if not anchor then error("insert_step: 'before' or 'after' expected", 2) end
	local list, i = need_step(self, anchor)
	table.insert(list, s.before and i or i + 1,
		{ name = s.name, run = s.run, when = s.when or function() return true end })
	return self
end

--- Remove a step.
function D:remove_step(name)
	local list, i = need_step(self, name)
	table.remove(list, i)
	return self
end

---------------------------------------------------------------------------
-- Running a step list
---------------------------------------------------------------------------

local function call_step(fn, h, obj, ctx)
	local r = table.pack(xpcall(fn, debug.traceback, h, obj, ctx))
	if not r[1] then
		local m = tostring(r[2])
		if not os.getenv("BRISK_DEBUG") then m = m:match("^[^\n]*") end
		return nil, m, EINVAL
	end
	return unpack(r, 2, r.n)
end

-- Run the queued steps of `list` with handle `h`. `on_step(name)` is told
-- when each step starts (the recorder uses it). Returns true, or nil, the
-- failing step's name, msg, errno.
local function run_steps(list, h, obj, ctx, on_step)
	for _, s in ipairs(list) do
		if s.when(obj, ctx) then
			if on_step then on_step(s.name) end
			ctx.step = s.name
			for _, fn in ipairs(s.before or {}) do
				local ok, msg, err = call_step(fn, h, obj, ctx)
				if not ok then return nil, s.name, msg, err end
			end
			local ok, msg, err = call_step(s.run, h, obj, ctx)
			if not ok then return nil, s.name, msg, err end
			for _, fn in ipairs(s.after or {}) do
				ok, msg, err = call_step(fn, h, obj, ctx)
				if not ok then return nil, s.name, msg, err end
			end
		elseif on_step then
			on_step(s.name, true)
		end
	end
	return true
end
M.run_steps = run_steps

---------------------------------------------------------------------------
-- Networks: resolving a definition
---------------------------------------------------------------------------

local function as_list(v)
	if v == nil then return {} end
	if type(v) == "table" then return v end
	return { v }
end

local lookup

local function find_network(self, key)
	return M.find_summary(self, "network", lookup(self, "names"), key)
end

--- An IPv4 prefix as the integers of its first and last address.
function M.v4_range(pfx)
	local lo = string.unpack(">I4", ipnet.network(pfx).bytes)
	return lo, lo + (1 << (32 - pfx.plen)) - 1
end

-- --- the conflict lookup ----------------------------------------------------
--
-- What network create checks against every stored network (a name, an id
-- or a bridge taken; an overlapping subnet), answered from a lookup the
-- store keeps in step with its index (Store:derived) rather than by a walk
-- over all of them, so that a create costs the same with 1000 networks as
-- with 10. Names, ids and bridges are maps. Subnets are prefix sets, one
-- per family: two prefixes overlap only when one contains the other, so a
-- new prefix N overlaps a stored one when a stored prefix of N's length or
-- shorter is N's address cut to that length (one map lookup per length in
-- use), or when the first stored prefix at or after N's address is inside N
-- (a binary search over the stored prefixes sorted by address).

-- Names, ids and bridges (stored records may share one: a set each).
local by_build, by_update = storemod.by_fields{ "name", "id", "bridge" }
local first = storemod.first

-- The families: an address as a key that sorts as the address does
-- (IPv4: an integer; IPv6: 32 hex digits), cut to a prefix length.
local V4 = {}
function V4.parse(str)
	-- stored subnets are canonical "a.b.c.d/p": read without brisk.ipnet
	local a1, a2, a3, a4, p = str:match("^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)/(%d%d?)$")
	a1, a2, a3, a4, p = tonumber(a1), tonumber(a2), tonumber(a3), tonumber(a4), tonumber(p)
	if p and p <= 32 and a1 < 256 and a2 < 256 and a3 < 256 and a4 < 256 then
		return V4.cut((a1 << 24) | (a2 << 16) | (a3 << 8) | a4, p), p
	end
	local c = ipnet.parse_cidr(str)
	if not c or c.family ~= 4 then return nil end
	return V4.key(c), c.plen
end
function V4.key(pfx) return (M.v4_range(pfx)) end
function V4.cut(k, p) return k & ~((1 << (32 - p)) - 1) end

local V6 = {}
local function hex(b) return (b:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
function V6.key(pfx) return hex(ipnet.network(pfx).bytes) end
-- Eight hextets, each as 4 lower-case hex digits, from "a:b::c" (nil for
-- anything else: an embedded IPv4 address, a bad group).
local function hextets(a)
	local out = {}
	local head, tail = a:match("^(.-)::(.*)$")
	local parts = head and { head, tail } or { a }
	local groups = {}
	for i, part in ipairs(parts) do
		groups[i] = {}
		for g in part:gmatch("[^:]+") do
			if #g > 4 or not g:match("^%x+$") then return nil end
			groups[i][#groups[i] + 1] = ("000" .. g:lower()):sub(-4)
		end
	end
	local n = #groups[1] + (groups[2] and #groups[2] or 0)
	if (head and n > 7) or (not head and n ~= 8) then return nil end
	for _, g in ipairs(groups[1]) do out[#out + 1] = g end
	if head then
		for _ = 1, 8 - n do out[#out + 1] = "0000" end
		for _, g in ipairs(groups[2]) do out[#out + 1] = g end
	end
	return table.concat(out)
end

function V6.parse(str)
	-- stored subnets are canonical "x:y::/p": read without brisk.ipnet
	local a, p = str:match("^([%x:]+)/(%d%d?%d?)$")
	p = tonumber(p)
	local k = a and p and p <= 128 and hextets(a)
	if k then return V6.cut(k, p), p end
	local c = ipnet.parse_cidr(str)
	if not c or c.family ~= 6 then return nil end
	return V6.key(c), c.plen
end
local ZEROS = string.rep("0", 32)
function V6.cut(k, p)
	local whole, rest = p // 4, p % 4
	if rest == 0 then return k:sub(1, whole) .. ZEROS:sub(whole + 1) end
	local nib = tonumber(k:sub(whole + 1, whole + 1), 16) & (0xf0 >> rest) & 0xf
	return k:sub(1, whole) .. string.format("%x", nib) .. ZEROS:sub(whole + 2)
end

-- A prefix set: at[plen][key] is a summary with that prefix; keys holds
-- the distinct keys (addresses) of all of them, sorted when `sorted` is
-- true (a bulk build appends, and the first search sorts), and owners[key]
-- the summaries with that address (one, or an array).
local function pset() return { at = {}, keys = {}, owners = {}, sorted = true } end

-- The first position in keys whose key is >= k.
local function pset_pos(set, k)
	local a = set.keys
	if not set.sorted then
		table.sort(a)
		set.sorted = true
	end
	local lo, hi = 1, #a
	while lo <= hi do
		local mid = (lo + hi) // 2
		if a[mid] < k then lo = mid + 1 else hi = mid - 1 end
	end
	return lo
end

local one_add, one_del, one_any = storemod.one_add, storemod.one_del, storemod.one

local function pset_add(set, fam, str, s, bulk)
	local k, p = fam.parse(str)
	if not k then return end
	local at = set.at[p]
	if not at then at = {}; set.at[p] = at end
	one_add(at, k, s)
	if one_add(set.owners, k, s) then
		if bulk or not set.sorted then
			set.keys[#set.keys + 1] = k
			set.sorted = false
		else
			table.insert(set.keys, pset_pos(set, k), k)
		end
	end
end

local function pset_del(set, fam, str, s)
	local k, p = fam.parse(str)
	if not k then return end
	local at = set.at[p]
	if at then
		one_del(at, k, s)
		if next(at) == nil then set.at[p] = nil end
	end
	if one_del(set.owners, k, s) then
		local i = pset_pos(set, k)
		if set.keys[i] == k then table.remove(set.keys, i) end
	end
end

-- A stored summary whose prefix overlaps the prefix (key k, length p).
local function pset_overlap(set, fam, k, p)
	for q = 0, p do
		local at = set.at[q]
		local s = at and one_any(at[fam.cut(k, q)])
		if s then return s end
	end
	local e = set.keys[pset_pos(set, k)]
	if e and fam.cut(e, p) == k then return one_any(set.owners[e]) end
	return nil
end

-- The prefix set of one field (subnet4 or subnet6) of the summaries, as
-- build/update functions for Store:derived.
local function prefix_lookup(field, fam)
	local function build(summaries)
		local set = pset()
		for _, s in ipairs(summaries) do
			if s[field] then pset_add(set, fam, s[field], s, true) end
		end
		return set
	end
	local function update(set, old, new)
		if old and old[field] then pset_del(set, fam, old[field], old) end
		if new and new[field] then pset_add(set, fam, new[field], new) end
	end
	return build, update
end
local LOOKUPS = {
	names = { by_build, by_update },
	subnet4 = { prefix_lookup("subnet4", V4) },
	subnet6 = { prefix_lookup("subnet6", V6) },
}

--- One of the stored networks' lookups (see above): "names" (name, id,
-- bridge), "subnet4" or "subnet6" (prefix sets), each made on first use;
-- raises as summaries.
function lookup(self, which)
	local l = LOOKUPS[which]
	return M.derived(self, "network", which, l[1], l[2])
end

--- A stored network that a network (a record's name, id, bridge, subnet4,
-- subnet6) conflicts with, and why; nil when none does.
-- @return summary, reason
function D:conflict(net)
	local lk = lookup(self, "names")
	local o = first(lk, "name", net.name)
	if o then return o, "a network named " .. net.name .. " exists" end
	o = first(lk, "id", net.id)
	if o then return o, "network " .. net.id .. " exists" end
	o = first(lk, "bridge", net.bridge)
	if o then return o, "networks have same bridge name " .. net.bridge end
	for _, f in ipairs{ { "subnet4", V4, "IPv4" }, { "subnet6", V6, "IPv6" } } do
		local field, fam = f[1], f[2]
		local str = net[field]
		if str then
			local k, p = fam.parse(str)
			o = k and pset_overlap(lookup(self, field), fam, k, p)
			if o then
				return o, string.format("networks have overlapping %s (%s and %s)", f[3], o[field], str)
			end
		end
	end
	return nil
end

-- IPv6 prefixes no network's subnet may overlap (resolve_network)
local RESERVED6 = {
	{ "ff00::/8", "multicast" },
	{ "fe80::/64", "link-local: every bridge has fe80::1 there" },
	{ "::1/128", "loopback" },
	{ "::/128", "the unspecified address" },
}

-- Docker's default local pools: 172.17-31.0.0/16, then 192.168.0.0/20 slices.
local function default_pools()
	local t = {}
	for i = 17, 31 do t[#t + 1] = string.format("172.%d.0.0/16", i) end
	for i = 0, 240, 16 do t[#t + 1] = string.format("192.168.%d.0/20", i) end
	return t
end

local function pick_pool(self)
	local routes = self.h:route_list{ family = "inet", table = "all" } or {}
	local v4 = lookup(self, "subnet4")
	for _, cand in ipairs(default_pools()) do
		local c = ipnet.parse_cidr(cand)
		local free = not pset_overlap(v4, V4, V4.key(c), c.plen)
		if free then
			for _, r in ipairs(routes) do
				if r.dst and r.dst ~= "default" and r.type ~= "local" and r.type ~= "broadcast" then
					local rn = ipnet.parse_cidr(r.dst:find("/") and r.dst or (r.dst .. "/32"))
					if rn and ipnet.overlaps(c, rn) then free = false; break end
				end
			end
		end
		if free then return cand end
	end
	return nil
end

-- Build the network record from a definition. Does not touch the kernel
-- (it reads it) nor the store.
function D:resolve_network(spec)
	if type(spec) ~= "table" then error("network definition must be a table", 3) end
	netopts = netopts or require "brisk.netopts"
	local allowed = {}
	for _, k in ipairs(netopts.spec_keys) do allowed[k] = true end
	for k in pairs(spec) do
		if not allowed[k] then
			return fail(string.format("unknown network field '%s'%s", tostring(k),
				schema.suggest(tostring(k), allowed)))
		end
	end
	-- misuse (a wrong Lua type) raises, naming the field
	local function strings(k)
		local v = spec[k]
		if v == nil or type(v) == "string" then return end
		local ok = type(v) == "table"
		if ok then for i, x in pairs(v) do ok = ok and math.type(i) == "integer" and type(x) == "string" end end
		if not ok then error(string.format("field '%s' must be a string or an array of strings", k), 4) end
	end
	strings("subnet")
	strings("gateway")
	if spec.ip_range ~= nil and type(spec.ip_range) ~= "string" then
		error("field 'ip_range' must be a string", 3)
	end
	for _, k in ipairs{ "options", "aux_addresses" } do
		if spec[k] ~= nil and type(spec[k]) ~= "table" then
			error(string.format("field '%s' must be a table", k), 3)
		end
	end
	local name = spec.name
	if type(name) ~= "string" or not name:match("^[%w][%w_.-]*$") or #name > 64 then
		return fail(string.format("invalid network name '%s' (letters, digits, '_', '.', '-'; 1..64)",
			tostring(name)))
	end
	local id = spec.id or random_hex(32)
	if type(id) ~= "string" or not id:match("^%x+$") or #id < 12 or #id > 64 then
		return fail("invalid network id " .. tostring(id))
	end

	-- options (labels and aliases) and the top-level booleans
	local opts = {}
	for k, v in pairs(spec.options or {}) do opts[k] = v end
	local cfg, msg = netopts.network:parse(opts)
	if not cfg then return fail(msg) end
	if spec.ipv6 ~= nil then
		if type(spec.ipv6) ~= "boolean" then return fail("field 'ipv6' must be a boolean") end
		cfg.enable_ipv6 = spec.ipv6
	end
	if spec.internal ~= nil then
		if type(spec.internal) ~= "boolean" then return fail("field 'internal' must be a boolean") end
		cfg.internal = cfg.internal or spec.internal
	end

	-- pools: one per family
	local v4, v6 = {}, {}
	for _, s in ipairs(as_list(spec.subnet)) do
		local c, err = ipnet.parse_cidr(s)
		if not c then return fail(err) end
		if c.family == 4 then v4[#v4 + 1] = c else v6[#v6 + 1] = c end
	end
	if #v4 > 1 or #v6 > 1 then return fail("bridge driver doesn't support multiple subnets", EINVAL) end
	if v4[1] and v4[1].plen == 0 then return fail("ipv4 pool is empty") end
	if v6[1] and not cfg.enable_ipv6 then
		return fail("an IPv6 subnet needs --ipv6 (com.docker.network.enable_ipv6)")
	end
	-- the kernel takes IPv6 off a device whose MTU is below IPv6's minimum
	if cfg.enable_ipv6 and (cfg.mtu or 0) > 0 and cfg.mtu < 1280 then
		return fail(string.format("invalid MTU number: %d (an IPv6 network needs at least 1280)", cfg.mtu))
	end

	local gws = {}
	for _, g in ipairs(as_list(spec.gateway)) do
		local ip, err = ipnet.parse_ip(g)
		if not ip then return fail(err) end
		if gws[ip.family] then return fail("more than one gateway for IPv" .. ip.family) end
		gws[ip.family] = ip
	end

	if not v4[1] then
		local pick = pick_pool(self)
		if not pick then
			return fail("could not find an available, non-overlapping IPv4 address pool among the defaults",
				core.errno.ENOSPC)
		end
		v4[1] = ipnet.parse_cidr(pick)
	end

	local net = {
		id = id, name = name, driver = "bridge",
		bridge = cfg.bridge or ("br-" .. id:sub(1, 12)),
		mtu = cfg.mtu, enable_ipv6 = cfg.enable_ipv6, icc = cfg.icc, masquerade = cfg.masquerade,
		host_binding_ipv4 = cfg.host_binding_ipv4, default_bridge = cfg.default_bridge,
		inhibit_ipv4 = cfg.inhibit_ipv4, internal = cfg.internal,
		container_iface_prefix = cfg.container_iface_prefix, host_ipv4 = cfg.host_ipv4,
		ipv6_alloc = cfg.ipv6_alloc,
		options = spec.options and handle.copy(spec.options) or {},
		mac = random_mac(),
	}
	if cfg.default_bridge and not cfg.bridge then net.bridge = "docker0" end

	-- processIPAM: the bridge address is the gateway with the pool mask
	local s4 = ipnet.network(v4[1])
	net.subnet4 = ipnet.format(s4)
	if s4.plen > 30 then
		return fail(string.format("subnet %s has no room for a gateway and endpoints (at most /30)",
			ipnet.format(s4)))
	end
	local gw4 = gws[4] or ipnet.host(s4, 1)
	if not ipnet.contains(s4, gw4) then
		return fail(string.format("gateway %s is not inside subnet %s", ipnet.format(gw4), net.subnet4))
	end
	if same_ip(gw4, s4) or (s4.plen < 31 and same_ip(gw4, ipnet.broadcast(s4))) then
		return fail(string.format("gateway %s cannot be the network or broadcast address of %s",
			ipnet.format(gw4), net.subnet4))
	end
	net.gateway4 = ipnet.format(gw4)
	net.address_ipv4 = net.gateway4 .. "/" .. s4.plen
	if spec.ip_range then
		local r, err = ipnet.parse_cidr(spec.ip_range)
		if not r then return fail(err) end
		if r.family ~= 4 then
			return fail(string.format("ip range %s: an IPv4 range only (IPv6 addresses are handed out "
				.. "from the IPv6 subnet)", spec.ip_range))
		end
		r = ipnet.network(r)
		if not ipnet.contains(s4, r) then
			return fail(string.format("ip range %s is not inside subnet %s", ipnet.format(r), net.subnet4))
		end
		net.ip_range = ipnet.format(r)
	end
	if v6[1] then
		local s6 = ipnet.network(v6[1])
		net.subnet6 = ipnet.format(s6)
		if s6.plen > 126 then
			return fail(string.format("subnet %s has no room for a gateway and endpoints (at most /126)",
				net.subnet6))
		end
		-- prefixes the kernel keeps for itself (newer moby refuses the first
		-- two as well): the bridge's gateway address would be refused
		for _, r in ipairs(RESERVED6) do
			local p = ipnet.parse_cidr(r[1])
			if ipnet.contains(p, s6) or ipnet.contains(s6, p) then
				return fail(string.format("subnet %s overlaps %s (%s)", net.subnet6, r[1], r[2]))
			end
		end
		local gw6 = gws[6] or ipnet.host(s6, 1)
		if not ipnet.contains(s6, gw6) then
			return fail(string.format("gateway %s is not inside subnet %s", ipnet.format(gw6), net.subnet6))
		end
		net.gateway6 = ipnet.format(gw6)
		net.address_ipv6 = net.gateway6 .. "/" .. s6.plen
	elseif gws[6] then
		return fail("an IPv6 gateway needs an IPv6 subnet")
	end
	net.aux_addresses = {}
	for k, v in pairs(spec.aux_addresses or {}) do
		if type(k) ~= "string" or type(v) ~= "string" then
			return fail("aux_addresses must map NAME = IP (strings), e.g. { host = \"10.1.0.5\" }")
		end
		local ip, err = ipnet.parse_ip(v)
		if not ip then return fail(err) end
		local inside = (ip.family == 4 and ipnet.contains(s4, ip)) or
			(ip.family == 6 and net.subnet6 and ipnet.contains(ipnet.parse_cidr(net.subnet6), ip))
		if k == "DefaultGatewayIPv4" then
			if ip.family ~= 4 then return fail("DefaultGatewayIPv4 must be an IPv4 address") end
			net.default_gateway_ipv4 = ipnet.format(ip)
		elseif k == "DefaultGatewayIPv6" then
			if ip.family ~= 6 then return fail("DefaultGatewayIPv6 must be an IPv6 address") end
			net.default_gateway_ipv6 = ipnet.format(ip)
		elseif not inside then
			return fail(string.format("aux address %s=%s is not inside the network's subnets", k, v))
		end
		net.aux_addresses[k] = ipnet.format(ip)
	end

	-- conflicts with the networks brisk already has
	local o, why = self:conflict(net)
	if o then
		return fail(string.format("cannot create network %s (%s): conflicts with network %s (%s): %s",
			net.name, net.id:sub(1, 12), o.name, o.id:sub(1, 12), why), EEXIST)
	end

	-- the bridge: made by brisk, or by the user
	local link, lmsg, lerr = self.h:link_get(net.bridge)
	if link then
		local kind = link.linkinfo and link.linkinfo.info_kind
		if kind ~= "bridge" then
			return fail(string.format("existing interface %s is not a bridge", net.bridge), EEXIST)
		end
		net.creator = "user"
	elseif lerr == ENODEV then
		net.creator = "brisk"
	else
		return fail("failed to check bridge interface existence: " .. tostring(lmsg), lerr)
	end
	return net
end

---------------------------------------------------------------------------
-- Networks: plan, create, delete
---------------------------------------------------------------------------

local function new_ctx(self, net, h)
	local l = self.h:link_get(net.bridge)
	return { driver = self, exists = l ~= nil, firewall = self.fw, handle = h }
end

-- Apply the network steps through a journal; roll back on failure.
local function apply_network(self, net)
	local j = handle.journal(self.h)
	local ctx = new_ctx(self, net, j)
	local ok, step, msg, err = run_steps(self.network_steps, j, net, ctx)
	if ok then return j.log end
	local full = string.format("create network %s: step %s failed: %s", net.name, step, tostring(msg))
	local rok, rerrs = handle.undo(self.h, j.log)
	if not rok then full = full .. "; rollback failed: " .. table.concat(rerrs, "; ") end
	return nil, full, err or EINVAL, { step = step, rollback = rerrs }
end

--- Plan a network: the steps that would run and the kernel operations each
-- would perform against the current state, touching nothing.
-- @tparam table spec network definition (as for create_network)
-- @return plan {network=, steps={{name=, ops={{op=, args=}}, skipped=bool}}}
-- @return[2] nil, msg, errno
function D:plan_network(spec)
	local net, msg, err = self:resolve_network(spec)
	if not net then return nil, msg, err end
	return self:plan_resolved(net)
end

function D:plan_resolved(net)
	local r = handle.recorder(self.h)
	local ctx = new_ctx(self, net, r)
	ctx.plan = true
	local plan = { network = net, steps = {} }
	local marks = {}
	local ok, step, msg, err = run_steps(self.network_steps, r, net, ctx, function(name, skipped)
		plan.steps[#plan.steps + 1] = { name = name, skipped = skipped or nil, ops = {} }
		marks[#plan.steps] = #r.ops + 1
	end)
	if not ok then
		return nil, string.format("plan network %s: step %s would fail: %s", net.name, step, tostring(msg)), err
	end
	-- the recorder appends in order: each step owns the ops up to the next mark
	for i, s in ipairs(plan.steps) do
		for k = marks[i], (marks[i + 1] or #r.ops + 1) - 1 do s.ops[#s.ops + 1] = r.ops[k] end
	end
	plan.ops = r.ops
	return plan
end

--- Create a network.
-- @tparam table spec {name=, subnet=CIDR|{CIDR,...}, gateway=IP|{...},
--   ip_range=CIDR, aux_addresses={NAME=IP}, ipv6=bool, internal=bool,
--   options={label or alias = value}}
-- @return the stored network record
-- @return[2] nil, msg, errno
function D:create_network(spec)
	return self.store:transaction(function(st)
		local net, msg, err = self:resolve_network(spec)
		if not net then return nil, msg, err end
		return self:apply_resolved(net)
	end)
end

local function is_up(l)
	for _, f in ipairs(l.flags or {}) do if f == "UP" then return true end end
	return false
end

-- The per-bridge sysctls a create may change on an adopted bridge.
local ADOPTED_SYSCTLS = { "net/ipv6/conf/%s/disable_ipv6", "net/ipv4/conf/%s/route_localnet",
	"net/ipv6/conf/%s/accept_ra" }

-- What an adopted (user-made) bridge has before a create changes it, kept
-- in the intent record: an interrupted create is undone back to it.
local function adopted_state(h, net)
	local l = h:link_get(net.bridge)
	if not l then return nil end
	local f = { addrs = {}, mtu = l.mtu, up = is_up(l), sysctls = {} }
	for _, a in ipairs(h:addr_list{ dev = net.bridge } or {}) do
		-- (a kernel-made IPv6 link-local address comes back by itself)
		if a.family == "inet" or not a["local"]:match("^fe80:") or a["local"] == "fe80::1" then
			f.addrs[#f.addrs + 1] = { address = a["local"] .. "/" .. a.prefixlen, broadcast = a.broadcast }
		end
	end
	for _, p in ipairs(ADOPTED_SYSCTLS) do
		local path = p:format(net.bridge)
		f.sysctls[path] = h:sysctl_get(path)
	end
	return f
end

-- Undo on an adopted bridge what an interrupted create may have done (as
-- far as net.found, from the intent, says what it had): the network's
-- addresses go, the ones it replaced come back, its sysctls, MTU and state
-- are as they were.
local function undo_adopted(self, net)
	local h, f = self.h, net.found
	local l = f and h:link_get(net.bridge)
	if not l then return true end
	local had, mine, have = {}, { ["fe80::1/64"] = true }, {}
	for _, a in ipairs(f.addrs or {}) do had[a.address] = true end
	if net.address_ipv4 then mine[net.address_ipv4] = true end
	if net.address_ipv6 then mine[net.address_ipv6] = true end
	for _, a in ipairs(h:addr_list{ dev = net.bridge } or {}) do
		local s = a["local"] .. "/" .. a.prefixlen
		have[s] = true
		if mine[s] and not had[s] then
			local ok, msg, err = h:addr_del{ dev = net.bridge, address = s }
			if not ok and err ~= core.errno.EADDRNOTAVAIL then return nil, msg, err end
		end
	end
	for _, a in ipairs(f.addrs or {}) do
		if not have[a.address] then
			local ok, msg, err = h:addr_add{ dev = net.bridge, address = a.address, broadcast = a.broadcast }
			if not ok and err ~= EEXIST then return nil, msg, err end
		end
	end
	for path, v in pairs(f.sysctls or {}) do
		if h:sysctl_get(path) ~= v then
			local ok, msg, err = h:sysctl_set(path, v)
			if not ok then return nil, msg, err end
		end
	end
	if f.mtu and l.mtu ~= f.mtu then
		local ok, msg, err = h:link_set{ dev = net.bridge, mtu = f.mtu }
		if not ok then return nil, msg, err end
	end
	if f.up == false and is_up(l) then
		local ok, msg, err = h:link_set{ dev = net.bridge, up = false }
		if not ok then return nil, msg, err end
	end
	return true
end

-- Apply an already-resolved network record (the one a plan carries).
--
-- The record is stored first, in the state "creating" (the intent), and
-- only then do the steps touch the kernel; the final record replaces it.
-- A process killed in between leaves the intent: `check` reports it, and
-- `restore` finishes the create or `delete_network` undoes it. A failed
-- step rolls back and removes the intent.
function D:apply_resolved(net)
	net.state, net.dbIndex = "creating", nil
	if net.creator ~= "brisk" then net.found = adopted_state(self.h, net) end
	local ok, smsg, serr = self.store:put("network", net, { volatile = true })
	if not ok then
		net.state = nil
		return nil, "create network " .. net.name .. ": store: " .. tostring(smsg), M.store_errno(serr)
	end
	local log, msg, err, extra = apply_network(self, net)
	if not log then
		local dok, dmsg = self.store:delete("network", net.id)
		if not dok then msg = msg .. "; removing its record failed: " .. tostring(dmsg) end
		net.state, net.dbIndex = nil, nil
		return nil, msg, err, extra
	end
	net.state, net.found = nil, nil
	net.journal = log
	net.created_at = os.date("!%Y-%m-%dT%H:%M:%SZ")
	ok, smsg, serr = self.store:put("network", net)
	if not ok then
		local uok, uerrs = handle.undo(self.h, log)
		if uok then self.store:delete("network", net.id) end
		return nil, "create network " .. net.name .. ": store: " .. tostring(smsg) ..
			(uok and "" or ("; rollback failed: " .. table.concat(uerrs, "; "))), M.store_errno(serr)
	end
	return net
end

--- The nftables runner the firewall module takes: the driver's handle.
function D:nft_runner()
	return function(s, o) return self.h:nft(s, o) end
end

-- The bridge an interrupted create (a record still "creating") was making,
-- when brisk was making it, or what it did to an adopted one: the journal
-- died with the process, so this goes by the record.
local function del_interrupted_bridge(self, net)
	if net.creator == "brisk" then
		local ok, msg, err = self.h:link_del(net.bridge)
		if not ok and err ~= core.errno.ENODEV then return nil, msg, err end
		return true
	end
	return undo_adopted(self, net)
end

-- Undo what an interrupted create may have left: its firewall elements and
-- its bridge.
local function undo_interrupted(self, net)
	if self.fw then
		local ok, msg, err = self.fw.network_del(self:nft_runner(), M.fw_net(net))
		if not ok then return nil, msg, err end
	end
	return del_interrupted_bridge(self, net)
end

--- Apply a plan made by plan_network (the same operations, if the state
-- has not changed since).
function D:apply(plan)
	return self.store:transaction(function()
		local again, msg, err = self:check_conflicts(plan.network)
		if not again then return nil, msg, err end
		return self:apply_resolved(plan.network)
	end)
end

function D:check_conflicts(net)
	local o, why = self:conflict(net)
	if o then
		return nil, string.format("network %s conflicts with network %s: %s", net.name, o.name, why), EEXIST
	end
	return true
end

--- Run `fn(driver)` as one batch: the store stays locked for the whole of
-- it and its writes become durable together at the end (one syncfs) rather
-- one by one. For scripts that create many endpoints or networks at once.
-- @return what fn returns
function D:batch(fn)
	return self.store:batch(function() return fn(self) end)
end

--- The stored networks.
function D:networks()
	return self.store:list("network")
end

--- The summaries of the stored networks (brisk.store's index): `id` and
-- the fields of `M.INDEX.network`, sorted by id. Read-only tables; one
-- read of the index instead of every document.
function D:network_summaries()
	return M.summaries(self, "network")
end

--- One network by name, id or id prefix.
-- @return network or nil, msg, ENOENT
function D:network(key)
	if type(key) == "table" then key = key.id end
	if type(key) ~= "string" or key == "" then
		return nil, "invalid network id " .. tostring(key), EINVAL
	end
	local n, many = find_network(self, key)
	if many then return nil, M.ambiguous("network", key, many), EINVAL end
	if not n then return nil, "network " .. key .. " not found", ENOENT end
	local doc, msg, code = self.store:get("network", n.id)
	if not doc then
		if code == "notfound" then return nil, "network " .. key .. " not found", ENOENT end
		return nil, msg, M.store_errno(code)
	end
	return doc
end

local function global_sysctl(e)
	return e.op == "sysctl_set" and
		(e.args[1]:match("^net/ipv[46]/conf/all/") or e.args[1]:match("^net/ipv[46]/conf/default/")
		 or e.args[1] == "net/ipv4/ip_forward")
end

local function on_bridge(net, e)
	local a = e.args[1]
	if type(a) == "table" then return a.dev == net.bridge or a.ifname == net.bridge end
	if type(a) == "string" then return a == net.bridge or a:match("/conf/" .. net.bridge:gsub("%p", "%%%0") .. "/") ~= nil end
	return false
end

--- Delete a network: undo what brisk did, newest first, then the store
-- entry. A bridge the user made is never deleted (what brisk changed on it
-- is undone). Endpoints must be gone unless `force`.
-- @param key name, id or id prefix
-- @tparam[opt] table o {force=bool}
-- @return true, or nil, msg, errno
function D:delete_network(key, o)
	if o ~= nil and type(o) ~= "table" then
		error("bad argument #2 to 'delete_network' (table expected, got " .. type(o) .. ")", 2)
	end
	o = o or {}
	return self.store:transaction(function()
		local gone, gmsg, gerr = M.delete_damaged(self, "network", key)
		if gone ~= nil then return gone, gmsg, gerr end
		local net, msg, err = self:network(key)
		if not net then return nil, msg, err end
		if net.state == "creating" then
			local ok, umsg, uerr = undo_interrupted(self, net)
			if not ok then return nil, "delete network " .. net.name .. ": " .. tostring(umsg), uerr end
			local dok, dmsg, derr = self.store:delete("network", net.id)
			if not dok then return nil, dmsg, M.store_errno(derr) end
			return true
		end
		local eps = self.endpoints and self:endpoints(net.id) or {}
		if #eps > 0 then
			if not o.force then
				-- named, so that the caller knows what keeps it (a few of them)
				local names = {}
				for i = 1, math.min(#eps, 3) do names[i] = eps[i].name or eps[i].id:sub(1, 12) end
				table.sort(names)
				if #eps > 3 then names[#names + 1] = "..." end
				return nil, string.format("network %s has %d active endpoint%s (%s)", net.name, #eps,
					#eps == 1 and "" or "s", table.concat(names, ", ")), EBUSY
			end
			for _, ep in ipairs(eps) do
				local ok, emsg, eerr = self:delete_endpoint(ep.id)
				if not ok then return nil, emsg, eerr end
			end
			net = assert(self:network(net.id))
		end
		local log = net.journal or {}
		local errs
		if net.creator == "brisk" then
			-- the bridge takes its addresses, routes and sysctls with it
			local ok, rerrs = handle.undo(self.h, log, function(e)
				return global_sysctl(e) or (on_bridge(net, e) and e.op ~= "link_add")
			end)
			if not ok then errs = rerrs end
		else
			local ok, rerrs = handle.undo(self.h, log, global_sysctl)
			if not ok then errs = rerrs end
		end
		if errs then
			return nil, "delete network " .. net.name .. ": " .. table.concat(errs, "; "), core.errno.EIO
		end
		local ok, dmsg, derr = self.store:delete("network", net.id)
		if not ok then return nil, dmsg, M.store_errno(derr) end
		return true
	end)
end

---------------------------------------------------------------------------
-- Restore and check
---------------------------------------------------------------------------

-- The firewall's drift from what the stored networks (records) and their
-- endpoints' ports want (brisk.firewall check); nil, msg when it cannot be
-- listed.
function D:_fw_drift(nets)
	local fwnets, ports = {}, {}
	for _, net in ipairs(nets) do
		-- what an interrupted create programmed is not expected: it shows as extra
		if net.state ~= "creating" then fwnets[#fwnets + 1] = M.fw_net(net) end
		for _, ep in ipairs(self.endpoints and self:endpoints(net.id) or {}) do
			for _, p in ipairs(ep.state ~= "creating" and ep.ports or {}) do
				ports[#ports + 1] = { net = M.fw_net(net), ep = { id = ep.id }, mapping = p }
			end
		end
	end
	return self.fw.check(self:nft_runner(), fwnets, ports)
end

-- How many of the firewall drift messages `drift` concern each network:
-- those naming its bridge or a subnet of its (whole: br0 is not in br01,
-- fd00::/8 not in fd00::/80), and those naming no network (the shared
-- tables, chains and sets, the ports), which concern every one. Returns
-- the counts by network record and the shared count, from one pass over
-- the messages' words.
local function fw_drift_counts(drift, nets)
	local owner = {}
	for _, n in ipairs(nets) do
		for _, w in pairs{ n.bridge, n.subnet4 or false, n.subnet6 or false } do
			if w then
				owner[w] = owner[w] or {}
				owner[w][#owner[w] + 1] = n
			end
		end
	end
	local counts, shared = {}, 0
	for _, m in ipairs(drift) do
		local named = {}
		for w in m:gmatch("[%w_.:/-]+") do
			for _, n in ipairs(owner[w] or {}) do named[n] = true end
		end
		if next(named) == nil then shared = shared + 1 end
		for n in pairs(named) do counts[n] = (counts[n] or 0) + 1 end
	end
	return counts, shared
end

--- Re-run create for every stored network (after a reboot or a namespace
-- rebuild), adopting a bridge that exists and matches.
-- @tparam[opt] table o {on_network=function(result)} called after each network
-- @return array of {name=, ok=bool, msg=, changes=}
-- @return[2] nil, msg, errno when the store cannot be locked or read
function D:restore(o)
	o = o or {}
	local out = {}
	local done, tmsg, terr = self.store:transaction(function()
		local nets, lmsg, lerr = self.store:list("network")
		if not nets then return nil, lmsg, lerr end
		-- the firewall is rebuilt whole, as libnetwork does when it starts:
		-- brisk's tables go (their constant chains too: another network's
		-- part would keep them), and each network, then its endpoints'
		-- ports, programs its part again
		-- (what it repairs of the firewall, drift check found before, is
		-- each network's change: its own elements and the shared part)
		local fwcounts, fwshared = {}, 0
		if self.fw and #nets > 0 then
			fwcounts, fwshared = fw_drift_counts(self:_fw_drift(nets) or {}, nets)
			local fok, fmsg, ferr = self.fw.remove(self:nft_runner())
			if not fok then return nil, fmsg, ferr end
		end
		for _, net in ipairs(nets) do
			local log, msg
			local interrupted = net.state == "creating"
			if interrupted then
				-- an interrupted create: undone (its firewall just went), then run
				-- again from the start
				log, msg = del_interrupted_bridge(self, net)
				if log then log, msg = apply_network(self, net) end
				if log then
					net.state, net.journal, net.found = nil, nil, nil
					net.created_at = net.created_at or os.date("!%Y-%m-%dT%H:%M:%SZ")
				end
			else
				log, msg = apply_network(self, net)
			end
			if log then
				-- keep the original journal: it says what brisk created, each
				-- thing once. The firewall, rebuilt whole every time, is a
				-- change only when the journal does not hold it yet.
				-- (entries compared as the store writes them: keys sorted)
				net.journal = net.journal or {}
				local have, new, changes = {}, 0, 0
				for _, e in ipairs(net.journal) do have[storemod.encode(e)] = true end
				for _, e in ipairs(log) do
					local known = have[storemod.encode(e)]
					if not known then
						new = new + 1
						net.journal[#net.journal + 1] = e
					end
					if not (known and e.op == "firewall") then changes = changes + 1 end
				end
				changes = changes + (fwcounts[net] or 0) + fwshared
				local pok, pmsg = true, nil
				if new > 0 or interrupted then pok, pmsg = self.store:put("network", net) end
				if pok then
					out[#out + 1] = { name = net.name, ok = true, changes = changes, finished = interrupted or nil }
				else
					log = nil
					out[#out + 1] = { name = net.name, ok = false, msg = "store: " .. tostring(pmsg) }
				end
			else
				out[#out + 1] = { name = net.name, ok = false, msg = msg }
			end
			if o.on_network then o.on_network(out[#out]) end
			if self.restore_endpoints then self:restore_endpoints(net, out, log ~= nil) end
		end
		return true
	end)
	if not done then return nil, tmsg, M.store_errno(terr) end
	return out
end

--- Report drift between the store and the kernel, including creates that
-- were interrupted (a record still "creating": the process died between
-- its first kernel change and its final store write). Runs under the store
-- lock, so a create in progress elsewhere is waited for, not reported.
-- @return array of messages (empty when all agrees)
-- @return[2] nil, msg, errno when the store cannot be locked or read
function D:check()
	local drift, msg, err = self.store:transaction(function() return self:_check() end)
	if drift == nil then return nil, msg, M.store_errno(err) end
	return drift
end

function D:_check()
	local drift = {}
	local function add(fmt, ...) drift[#drift + 1] = string.format(fmt, ...) end
	local nets = self.store:list("network", true)
	for _, net in ipairs(nets) do
		local l = self.h:link_get(net.bridge)
		if net.state == "creating" then
			add("network %s: its create was interrupted (bridge %s %s); 'brisk network restore' "
				.. "finishes it, 'brisk network rm %s' undoes it", net.name, net.bridge,
				l and "exists" or "not created", net.name)
		elseif not l then
			add("network %s: bridge %s is missing", net.name, net.bridge)
		else
			if not (l.linkinfo and l.linkinfo.info_kind == "bridge") then
				add("network %s: %s is not a bridge", net.name, net.bridge)
			end
			if not is_up(l) then add("network %s: bridge %s is down", net.name, net.bridge) end
			if (net.mtu or 0) > 0 and l.mtu ~= net.mtu then
				add("network %s: bridge %s has mtu %d, expected %d", net.name, net.bridge, l.mtu, net.mtu)
			end
			local have = {}
			for _, a in ipairs(self.h:addr_list{ dev = net.bridge } or {}) do
				have[a["local"] .. "/" .. a.prefixlen] = true
			end
			if not net.inhibit_ipv4 and not have[net.address_ipv4] then
				add("network %s: bridge %s lacks address %s", net.name, net.bridge, net.address_ipv4)
			end
			if net.enable_ipv6 then
				if not have["fe80::1/64"] then
					add("network %s: bridge %s lacks address fe80::1/64", net.name, net.bridge)
				end
				if net.address_ipv6 and not have[net.address_ipv6] then
					add("network %s: bridge %s lacks address %s", net.name, net.bridge, net.address_ipv6)
				end
			end
		end
		if self.check_endpoints then self:check_endpoints(net, add) end
	end
	for _, m in ipairs(self.fw and self:_fw_drift(nets) or {}) do add("firewall: %s", m) end
	return drift
end


require("brisk.endpoint")(M, D)

return M
