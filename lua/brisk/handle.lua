--- brisk.handle: stand-ins for a netlink handle.
--
-- Flows and step functions reach the kernel only through a handle object
-- (`h:link_add{...}`, `h:addr_list{...}`, ...). This module wraps a real
-- `brisk.core` handle in two ways:
--
-- * `journal(h)` executes every state-changing call and records it together
--   with the call that undoes it, so a failed flow can be rolled back exactly
--   and a created network can later be removed in reverse order.
-- * `recorder(h)` executes nothing: state-changing calls are recorded (that
--   is the plan) and reads go to the real handle, corrected for what the
--   recorded calls would have changed, so later steps plan against the
--   state earlier steps would leave.
--
-- Both keep the real handle's failure convention: `nil, msg, errno`.
local M = {}

--- The methods that change kernel state.
M.MUTATORS = {
	link_add = true, link_del = true, link_set = true, bridge_set = true,
	brport_set = true, addr_add = true, addr_del = true, route_add = true,
	route_replace = true, route_del = true, sysctl_set = true,
	ioctl_bridge_add = true, ioctl_bridge_addif = true, ioctl_bridge_del = true,
	nft = true, firewall = true,
}

--- Methods the wrappers provide on top of any handle.
M.extra = {}

--- `h:firewall(action, ...)`: run brisk.firewall's `action` (network_add,
-- network_del, port_add, port_del) with the handle's nft as its only path
-- to the kernel. As a journaled call it is undone by its inverse action.
function M.extra.firewall(h, action, ...)
	local fw = require "brisk.firewall"
	local f = fw[action]
	if type(f) ~= "function" then error("unknown firewall action '" .. tostring(action) .. "'", 2) end
	return f(function(script, o) return h:nft(script, o) end, ...)
end

-- An address of addr_list as "ADDR/PLEN".
local function addr_text(x) return x["local"] .. "/" .. x.prefixlen end

--- Whether `op(a)` moves a link to another namespace (link_set with netns).
function M.moves(op, a)
	return op == "link_set" and type(a) == "table" and a.netns ~= nil
end

--- `h:link_set_back(a, keep)`: the undo of bringing the loopback up:
-- `link_set(a)` (down again, and whatever else it restores), then delete
-- the link's addresses that are not in `keep` ("ADDR/PLEN" strings: those
-- it had).
function M.extra.link_set_back(h, a, keep)
	local ok, msg, err = h:link_set(a)
	if not ok then return nil, msg, err end
	local dev = a.ifname or a.dev          -- its name once a.ifname put it back
	local list
	list, msg, err = h:addr_list{ dev = dev }
	if not list then return nil, msg, err end
	local had = {}
	for _, s in ipairs(keep) do had[s] = true end
	for _, x in ipairs(list) do
		local s = addr_text(x)
		if not had[s] then
			ok, msg, err = h:addr_del{ dev = dev, address = s }
			if not ok and err ~= 99 then return nil, msg, err end    -- EADDRNOTAVAIL: gone already
		end
	end
	return true
end

local function method(h, op)
	local f = h[op]
	if f == nil then f = M.extra[op] end
	return f
end

local function copy(v)
	if type(v) ~= "table" then return v end
	local t = {}
	for k, x in pairs(v) do t[k] = copy(x) end
	return t
end
M.copy = copy

local function link_name(l)
	if type(l) == "table" then return l.ifname or l.ifindex end
	return l
end

local function has_flag(link, f)
	for _, x in ipairs(link.flags or {}) do if x == f then return true end end
	return false
end

-- The call that undoes `op(args)`, computed before it runs (it may need to
-- read the state it is about to change). Returns an undo record
-- {op=, args=} or nil (and a reason) when the call cannot be undone.
local undoers = {}

function undoers.link_add(h, a)
	return { op = "link_del", args = { a.ifname } }
end

function undoers.ioctl_bridge_add(h, name)
	return { op = "link_del", args = { name } }
end

function undoers.ioctl_bridge_addif(h, bridge, link)
	return { op = "link_set", args = { { dev = link_name(link), master = false } } }
end

function undoers.link_set(h, a)
	local cur, msg = h:link_get(a.dev)
	if not cur then return nil, msg end
	local u = { dev = a.ifname or link_name(a.dev) }
	if a.ifname ~= nil then u.ifname = cur.ifname end
	if a.up ~= nil then u.up = has_flag(cur, "UP") end
	if a.mtu ~= nil then u.mtu = cur.mtu end
	if a.address ~= nil then u.address = cur.address end
	if a.txqlen ~= nil then u.txqlen = cur.txqlen end
	if a.master ~= nil then u.master = cur.master or false end
	if a.addrgenmode ~= nil then u.addrgenmode = cur.inet6_addr_gen_mode end
	if a.netns ~= nil then return nil, "moving a link to another namespace is not undone here" end
	if a.up == true and not u.up and has_flag(cur, "LOOPBACK") then
		-- the loopback gets 127.0.0.1/8 from the kernel when it goes up,
		-- and keeps it when it goes down again: the undo drops what was
		-- not there before (of lo's addresses only: no other link gets
		-- addresses of the kernel's that outlive going down)
		local list, lmsg = h:addr_list{ dev = a.dev }
		if not list then return nil, lmsg end
		local keep = {}
		for _, x in ipairs(list) do keep[#keep + 1] = addr_text(x) end
		return { op = "link_set_back", args = { u, keep } }
	end
	return { op = "link_set", args = { u } }
end

function undoers.bridge_set(h, a)
	local cur, msg = h:link_get(a.dev)
	if not cur then return nil, msg end
	local data = cur.linkinfo and cur.linkinfo.info_data or {}
	local u = { dev = link_name(a.dev) }
	for k in pairs(a) do if k ~= "dev" then u[k] = data[k] end end
	return { op = "bridge_set", args = { u } }
end

function undoers.brport_set(h, a)
	local cur, msg = h:brport_get(a.dev)
	if not cur then return nil, msg end
	local u = { dev = link_name(a.dev) }
	for k in pairs(a) do if k ~= "dev" then u[k] = cur[k] end end
	return { op = "brport_set", args = { u } }
end

function undoers.addr_add(h, a)
	return { op = "addr_del", args = { { dev = link_name(a.dev), address = a.address } } }
end

function undoers.addr_del(h, a)
	local u = { dev = link_name(a.dev), address = a.address }
	local plain = a.address:match("^[^/]+")
	for _, x in ipairs(h:addr_list{ dev = a.dev } or {}) do
		if x["local"] == plain then
			u.broadcast = x.broadcast
			u.nodad = x.nodad
			break
		end
	end
	return { op = "addr_add", args = { u } }
end

function undoers.route_add(h, a)
	return { op = "route_del", args = { copy(a) } }
end

function undoers.route_del(h, a)
	return { op = "route_add", args = { copy(a) } }
end

function undoers.route_replace(h, a)
	return nil, "route_replace is not undone"
end

-- sysctl_set returns the old value: its undo is made from the result
-- (see `after_undoers`), with no read beforehand.
function undoers.sysctl_set() return nil, "pending" end

-- Undo records made from a call's results, for calls that return what they
-- replaced.
local after_undoers = {}

function after_undoers.sysctl_set(result, path)
	return { op = "sysctl_set", args = { path, result } }
end

function undoers.link_del(h, l)
	return nil, "deleting a link is not undone"
end

function undoers.ioctl_bridge_del(h, l)
	return nil, "deleting a bridge is not undone"
end

local FW_INVERSE = { network_add = "network_del", port_add = "port_del" }

function undoers.firewall(h, action, ...)
	local inv = FW_INVERSE[action]
	if not inv then return nil, "firewall " .. tostring(action) .. " is not undone" end
	return { op = "firewall", args = { inv, ... } }
end

function undoers.nft(h, script, undo_script)
	if undo_script then return { op = "nft", args = { undo_script } } end
	return nil, "nft script without an undo script"
end

local function pack(...) return { n = select("#", ...), ... } end

--- Run one recorded call against a handle.
-- @param h handle
-- @param rec {op=, args=}
-- @return the call's results
function M.call(h, rec)
	local f = method(h, rec.op)
	if type(f) ~= "function" then
		return nil, "handle has no method '" .. tostring(rec.op) .. "'"
	end
	return f(h, table.unpack(rec.args, 1, rec.args.n or #rec.args))
end

local function forwarder(real, mutate)
	local cache = {}
	return setmetatable({}, {
		__index = function(self, k)
			if cache[k] then return cache[k] end
			local f
			if M.MUTATORS[k] then
				f = function(_, ...) return mutate(k, ...) end
			else
				local g = real[k]
				if type(g) ~= "function" then return g end
				f = function(_, ...) return g(real, ...) end
			end
			cache[k] = f
			return f
		end,
	})
end

--- A handle that executes calls and keeps a journal of them with their undo.
-- A change to a link the journal itself created (not a rename, not a move
-- to another namespace) needs no undo of its own, and so no read of the
-- link beforehand: undoing the link_add deletes the link with it. Its
-- entry says `covered = true`. `o.made` names links made elsewhere that
-- go the same way (a veth peer whose pair another journal created). With
-- `o.fresh` the handle's namespace is one the caller just made and
-- deletes whole on a rollback: every entry is covered.
-- @param real the handle to execute through
-- @param[opt] log an array to append to
-- @tparam[opt] table o {fresh=true, made={IFNAME,...}}
-- @return journal handle; `j.log` is the array of {op=, args=, undo=|nil,
--   why=, covered=true|nil}
function M.journal(real, log, o)
	log = log or {}
	local fresh = o ~= nil and o.fresh == true
	local made = {}          -- links this journal created, by name
	for _, name in ipairs(o and o.made or {}) do made[name] = true end
	local j
	j = forwarder(real, function(op, ...)
		local args = { ... }
		local a = ...
		local set = op == "link_set" and type(a) == "table" and a or nil
		-- (a move to another namespace is never covered: the namespace
		-- going whole would not bring the link back)
		local covered = not M.moves(op, a) and (fresh or (set ~= nil and set.ifname == nil
			and made[link_name(set.dev)] == true))
		local undo, why
		if not covered then undo, why = undoers[op](real, ...) end
		local r = pack(method(real, op)(real, ...))
		if r[1] == nil then return table.unpack(r, 1, r.n) end
		if after_undoers[op] and not covered then undo, why = after_undoers[op](r[1], ...), nil end
		if op == "link_add" and type(a) == "table" then
			if a.ifname then made[a.ifname] = true end
			-- a veth peer left in this namespace goes with its pair
			if type(a.peer) == "table" and a.peer.netns == nil and a.peer.ifname then
				made[a.peer.ifname] = true
			end
		elseif op == "ioctl_bridge_add" and type(a) == "string" then
			made[a] = true
		elseif op == "link_del" or (set and (set.ifname or set.netns)) then
			-- gone, renamed or moved: whatever has that name next was not made here
			local name = link_name(set and set.dev or a)
			if name ~= nil then made[name] = nil end
		end
		if op == "nft" then args = { (...) } end -- the undo script is not part of the call
		log[#log + 1] = { op = op, args = copy(args), undo = undo, why = why, covered = covered or nil }
		return table.unpack(r, 1, r.n)
	end)
	rawset(j, "log", log)
	rawset(j, "real", real)
	return j
end

--- Undo a journal, newest first. Covered entries (see `journal`) are
-- left to the undo that covers them.
-- @param h the handle to undo through
-- @param log the journal's array
-- @param[opt] skip function(entry) -> true to leave an entry alone
-- @return true, or nil and an array of failure messages
function M.undo(h, log, skip)
	local errs = {}
	for i = #log, 1, -1 do
		local e = log[i]
		if not (e.covered or (skip and skip(e))) then
			if e.undo then
				local ok, msg, err = M.call(h, e.undo)
				-- something already gone is as good as undone
				if not ok and err ~= 19 and err ~= 99 and err ~= 2 and err ~= 3 then
					errs[#errs + 1] = msg
				end
			else
				errs[#errs + 1] = string.format("%s: cannot undo (%s)", e.op, e.why or "no undo")
			end
		end
	end
	if #errs > 0 then return nil, errs end
	return true
end

--- A handle that records state-changing calls instead of running them.
-- Reads go to the real handle, corrected for links, addresses and sysctls
-- the recorded calls would have changed.
-- @param real the handle to read through
-- @return recorder; `r.ops` is the array of {op=, args=}
function M.recorder(real)
	local ops = {}
	local links, addrs, sysctls = {}, {}, {}   -- virtual state
	local function vlink(name)
		return links[name]
	end
	local r
	r = forwarder(real, function(op, ...)
		local args = { ... }
		if op == "nft" then args = { (...) } end
		ops[#ops + 1] = { op = op, args = copy(args) }
		local a = ...
		if op == "link_add" then
			links[a.ifname] = {
				ifname = a.ifname, ifindex = 0, mtu = a.mtu or 1500,
				address = a.address, txqlen = a.txqlen, master = a.master and link_name(a.master),
				flags = { "BROADCAST", "MULTICAST" },
				operstate = "DOWN",
				linkinfo = { info_kind = a.kind },
			}
			return 0
		elseif op == "ioctl_bridge_add" then
			links[a] = { ifname = a, ifindex = 0, mtu = 1500, flags = { "BROADCAST", "MULTICAST" },
				linkinfo = { info_kind = "bridge" } }
		elseif op == "link_set" then
			local l = links[link_name(a.dev)]
			if l then
				if a.mtu then l.mtu = a.mtu end
				if a.address then l.address = a.address end
				if a.up then l.flags = { "BROADCAST", "MULTICAST", "UP" } end
				if a.master ~= nil then l.master = a.master and link_name(a.master) or nil end
			end
		elseif op == "addr_add" or op == "addr_del" then
			local dev = link_name(a.dev)
			addrs[dev] = addrs[dev] or {}
			addrs[dev][#addrs[dev] + 1] = { op = op, address = a.address }
		elseif op == "sysctl_set" then
			sysctls[a] = tostring(select(2, ...))
		end
		return true
	end)

	local function real_or_empty(f, ...)
		local t = f(real, ...)
		return t or {}
	end

	rawset(r, "link_get", function(_, l)
		local v = vlink(link_name(l))
		if v then return copy(v) end
		return real:link_get(l)
	end)
	rawset(r, "addr_list", function(_, a)
		a = a or {}
		local dev = a.dev and link_name(a.dev)
		local list = {}
		if not (dev and vlink(dev)) then list = real_or_empty(real.addr_list, a) end
		for _, change in ipairs(dev and addrs[dev] or {}) do
			local ip, plen = change.address:match("^([^/]+)/?(%d*)$")
			local fam = ip:find(":") and "inet6" or "inet"
			if not a.family or a.family == fam then
				if change.op == "addr_add" then
					list[#list + 1] = { ["local"] = ip, prefixlen = tonumber(plen) or (fam == "inet" and 32 or 128),
						family = fam, dev = dev }
				else
					for i = #list, 1, -1 do
						if list[i]["local"] == ip then table.remove(list, i) end
					end
				end
			end
		end
		return list
	end)
	rawset(r, "route_list", function(_, a)
		a = a or {}
		local dev = a.dev and link_name(a.dev)
		local list = {}
		if not (dev and vlink(dev)) then list = real_or_empty(real.route_list, a) end
		-- an IPv6 address brings its prefix route (proto kernel)
		for d, changes in pairs(addrs) do
			if not dev or d == dev then
				for _, change in ipairs(changes) do
					local ip, plen = change.address:match("^([^/]+)/(%d+)$")
					if change.op == "addr_add" and ip and ip:find(":") and not ip:lower():match("^fe80:")
						and (a.family == nil or a.family == "inet6") then
						local ipnet = require "brisk.ipnet"
						local net = ipnet.network(change.address)
						list[#list + 1] = { dst = net and ipnet.format(net) or change.address,
							dev = d, protocol = "kernel" }
					end
				end
			end
		end
		return list
	end)
	rawset(r, "sysctl_get", function(_, path)
		if sysctls[path] then return sysctls[path] end
		local fam, dev, key = path:match("^net/(ipv[46])/conf/([^/]+)/(.+)$")
		if dev and vlink(dev) then return real:sysctl_get("net/" .. fam .. "/conf/default/" .. key) end
		return real:sysctl_get(path)
	end)
	rawset(r, "brport_get", function(_, l)
		if vlink(link_name(l)) then return {} end
		return real:brport_get(l)
	end)
	rawset(r, "ops", ops)
	rawset(r, "real", real)
	--- Tell the recorder about a link another recorder's call would create
	-- here (a veth peer created in this namespace).
	rawset(r, "virtual_link", function(_, l) links[l.ifname] = copy(l) end)
	return r
end

--- A handle for a namespace that does not exist yet: every read finds a
-- fresh namespace (a down lo, sysctl defaults), so a recorder over it plans
-- what would be done there.
function M.fresh_namespace()
	local ENODEV = 19
	local h = {}
	function h.link_get(_, l)
		if link_name(l) == "lo" then
			return { ifname = "lo", ifindex = 1, flags = { "LOOPBACK" }, mtu = 65536 }
		end
		return nil, "link " .. tostring(link_name(l)) .. ": No such device", ENODEV
	end
	function h.addr_list() return {} end
	function h.route_list() return {} end
	function h.link_list() return {} end
	function h.sysctl_get(_, path)
		if path:match("disable_ipv6$") then return "0" end
		return nil, "sysctl " .. path .. ": unknown in a namespace that does not exist yet", 2
	end
	return h
end

return M
