--- brisk.firewall: libnetwork's bridge firewall (libnetwork-bridge.md §6)
-- expressed in nftables.
--
-- Pure policy: this module builds nft text and reaches the kernel only
-- through a `run(script[, opts])` function passed in (`core.nft` bound to a
-- namespace, or a recorder in tests). `run` returns the output text, or
-- nil, message, errno.
--
-- What brisk owns: `table inet brisk` (filter and nat, both families) and
-- `table bridge brisk` (ICC between ports of one bridge). Nothing else is
-- read or written; `firewall.remove` deletes both tables whole.
--
-- Layout of `table inet brisk`:
--
--   set brisk_bridges  ifname          every brisk bridge
--   set icc_accept     ifname . ifname "X" . "X" for ICC-on networks
--   set icc_drop       ifname . ifname "X" . "X" for ICC-off networks
--   set host_ports4/6  proto . addr . port   bound host ports (duplicates fail)
--   chain forward      (filter, hook forward) constant rules only:
--       iifname . oifname @icc_accept accept    same bridge, ICC on
--       iifname . oifname @icc_drop drop        same bridge, ICC off
--       iifname @brisk_bridges oifname @brisk_bridges drop
--                                               isolation (different bridges:
--                                               same-bridge pairs were decided
--                                               by the two rules above)
--       jump internal                           internal networks' drops
--       oifname @brisk_bridges ct state established,related accept
--       oifname @brisk_bridges jump port_accept published ports
--       iifname @brisk_bridges accept           outbound
--       oifname @brisk_bridges drop             nothing else reaches a bridge
--                                               (Docker: FORWARD policy DROP)
--   chain internal     internal networks: drops leaving the subnet (groups)
--   chain port_accept  per published port: accept towards the container
--   chain postrouting  (nat) masquerade/snat (groups); per port: hairpin
--   chain prerouting   (nat) fib daddr type local jump port_dnat
--   chain output       (nat) the same for locally originated, not loopback
--   chain port_dnat    per published port: dnat
--
-- Every packet crosses the forward chain, so it holds a constant number of
-- rules and looks networks up in hashed sets: the 500th network adds set
-- elements there, never a rule, let alone a rule per network pair.
--
-- Rules that need a network's subnet (masquerade, SNAT, internal) do not
-- name it either: they look the masked address up in hashed sets, one
-- group of sets and rules per family and prefix length in use. Group
-- `nat4_24` serves every masquerading /24 network with
--
--   set nat4_24    ipv4_addr . ifname      "10.1.0.0 . br-x": subnet, bridge
--   set masq4_24   ipv4_addr               "10.1.0.0": masquerading subnets
--   map snat4_24   ipv4_addr : ipv4_addr   "10.2.0.0 : 192.0.2.10" (host_ipv4)
--   ip saddr & 255.255.255.0 . oifname != @nat4_24 ip saddr & 255.255.255.0 == @masq4_24 masquerade
--   ip saddr & 255.255.255.0 . oifname != @nat4_24 snat ip to ip saddr & 255.255.255.0 map @snat4_24
--
-- (Docker's `-s S ! -o X -j MASQUERADE`: brisk subnets do not overlap, so
-- the masked source names the network). `int4_24` does the same for
-- internal networks (`intbr4_24` their bridges, `int4_24` "br-x .
-- 10.1.0.0"), `int6_none` for internal networks without an IPv6 subnet.
-- A group comes with its first network and goes with its last. So adding
-- a network adds set elements and nothing else, which costs the same for
-- the 1000th network as for the 10th: a rule per network would not (the
-- kernel copies the chain and walks every base chain on each rule added),
-- nor would prefix sets (flags interval: libnftables 1.0.6 lists every
-- element of every such set before any element command, and adding to a
-- concatenated one grows dearer with its size too, as measured).
--
-- Every rule carries a comment: "brisk base <what>" for the constant rules,
-- "brisk group <group> <what>" for a group's, "brisk port <bridge> <ep12>
-- <proto> <hostip|*>:<hostport> <what>" per published port; a network's
-- group elements carry "brisk net <bridge> <what>". Deletion finds rules
-- and elements by comment and deletes them by handle and key, in one
-- transaction.
local cjson = require "cjson"
local ipnet = require "brisk.ipnet"
local schema = require "brisk.schema"

local M = {}

local ENOENT, EINVAL = 2, 22 -- Linux errno values

local T = "inet brisk"
local TB = "bridge brisk"

-- --- addresses -----------------------------------------------------------

-- nft prints addresses with glibc's inet_ntop: RFC 5952 text (brisk.ipnet)
-- except that an IPv4-compatible address (::a.b.c.d, a.b not 0.0) keeps a
-- dotted tail.
local function nft_text(a)
	local b = a.bytes
	if a.family == 6 and b:sub(1, 12) == ("\0"):rep(12) and b:sub(13, 14) ~= "\0\0" then
		return string.format("::%d.%d.%d.%d", b:byte(13, 16))
	end
	return ipnet.format(ipnet.addr(a))
end

local BITS = { [4] = 32, [6] = 128 }

-- Parse "addr/plen" of `family`, mask the host bits; returns the text nft
-- prints (no "/32" or "/128"), the network address as nft prints it, and
-- the prefix length.
local function parse_prefix(s, family, what, level)
	if type(s) ~= "string" then
		error(string.format("%s must be a string (got %s)", what, type(s)), level)
	end
	local _, net = ipnet.parse_cidr(s)
	if not net or net.family ~= family or net.plen < 1 then
		error(string.format("%s: invalid IPv%d prefix '%s'", what, family, s), level)
	end
	local txt = nft_text(net)
	return net.plen == BITS[family] and txt or (txt .. "/" .. net.plen), txt, net.plen
end

-- The netmask of a prefix length, as nft prints it.
local function mask_text(family, plen)
	local b = {}
	for i = 1, BITS[family] // 8 do
		local left = plen - (i - 1) * 8
		b[i] = left >= 8 and 0xff or left <= 0 and 0 or (0xff << (8 - left)) & 0xff
	end
	return nft_text({ family = family, bytes = string.char(table.unpack(b)) })
end

-- An address of either family: returns family (4|6), the text nft prints.
local function parse_addr(s, what, level)
	if type(s) ~= "string" then
		error(string.format("%s must be an address string (got %s)", what, type(s)), level)
	end
	local a = ipnet.parse_ip(s)
	if not a then error(string.format("%s: invalid address '%s'", what, s), level) end
	return a.family, nft_text(a)
end

-- --- arguments -----------------------------------------------------------

local function check_keys(t, what, fields, level)
	for k in pairs(t) do
		if fields[k] == nil then
			error(string.format("%s: unknown field '%s'%s", what, tostring(k),
				schema.suggest(tostring(k), fields)), level + 1)
		end
	end
	for k, ty in pairs(fields) do
		local v = t[k]
		if v ~= nil and type(v) ~= ty then
			error(string.format("%s: field '%s' must be a %s (got %s)", what, k, ty, type(v)), level + 1)
		end
	end
end

-- Interface names go into nft strings: no quotes, backslashes or the
-- trailing '*' that nft reads as a wildcard.
local function check_ifname(s, what, level)
	if type(s) ~= "string" or #s < 1 or #s > 15 or not s:match("^[%w_.%-]+$") or s == "." or s == ".." then
		error(string.format("%s: invalid interface name %s (1-15 of A-Z a-z 0-9 _ . -)",
			what, type(s) == "string" and ("'" .. s .. "'") or type(s)), level + 1)
	end
	return s
end

local net_schema = {
	bridge = "string", subnet4 = "string", subnet6 = "string", icc = "boolean",
	masquerade = "boolean", internal = "boolean", host_ipv4 = "string", id = "string",
}

-- Validate and normalise a network; returns a private copy.
local function check_net(net, level)
	level = level + 1
	if type(net) ~= "table" then error("net must be a table", level) end
	check_keys(net, "net", net_schema, level)
	local n = { bridge = check_ifname(net.bridge, "net.bridge", level), id = net.id }
	if n.id and not n.id:match("^[%w_.%-]+$") then
		error("net.id: only A-Z a-z 0-9 _ . - allowed", level)
	end
	if net.subnet4 == nil and net.subnet6 == nil then
		error("net needs subnet4 or subnet6", level)
	end
	if net.subnet4 then n.subnet4, n.addr4, n.plen4 = parse_prefix(net.subnet4, 4, "net.subnet4", level + 1) end
	if net.subnet6 then n.subnet6, n.addr6, n.plen6 = parse_prefix(net.subnet6, 6, "net.subnet6", level + 1) end
	n.icc = net.icc ~= false                    -- a label map starts with ICC=true
	n.masquerade = net.masquerade ~= false      -- ... and Masquerade=true
	n.internal = net.internal == true
	if net.host_ipv4 then
		local fam, txt = parse_addr(net.host_ipv4, "net.host_ipv4", level + 1)
		if fam ~= 4 then error("net.host_ipv4 must be an IPv4 address", level) end
		n.host_ipv4 = txt
	end
	return n
end

local mapping_schema = {
	proto = "string", host_ip = "string", host_port = "number",
	container_ip = "string", container_port = "number",
}

local function check_port(v, what, level)
	if math.type(v) ~= "integer" or v < 1 or v > 65535 then
		error(string.format("%s must be an integer 1-65535", what), level + 1)
	end
	return v
end

local function check_mapping(m, level)
	level = level + 1
	if type(m) ~= "table" then error("mapping must be a table", level) end
	check_keys(m, "mapping", mapping_schema, level)
	local p = {}
	p.proto = m.proto
	if p.proto ~= "tcp" and p.proto ~= "udp" and p.proto ~= "sctp" then
		error("mapping.proto must be 'tcp', 'udp' or 'sctp'", level)
	end
	if m.container_ip == nil then error("mapping.container_ip is required", level) end
	p.family, p.container_ip = parse_addr(m.container_ip, "mapping.container_ip", level + 1)
	if m.host_ip ~= nil then
		local fam
		fam, p.host_ip = parse_addr(m.host_ip, "mapping.host_ip", level + 1)
		if fam ~= p.family then
			error("mapping.host_ip and mapping.container_ip must be of one family", level)
		end
	end
	p.host_port = check_port(m.host_port, "mapping.host_port", level)
	p.container_port = check_port(m.container_port, "mapping.container_port", level)
	return p
end

local function check_ep(ep, level)
	local id = type(ep) == "table" and ep.id or ep
	if type(id) ~= "string" or not id:match("^[%w_.%-]+$") or #id > 64 then
		error("ep must be an endpoint id (1-64 of A-Z a-z 0-9 _ . -) or a table with one", level + 1)
	end
	return id
end

-- port_add's and port_del's arguments: the network, the endpoint id, the
-- mapping, and "bridge proto/port" for messages.
local function check_port_args(net, ep, mapping, level)
	local n = check_net(net, level + 1)
	local epid = check_ep(ep, level + 1)
	local p = check_mapping(mapping, level + 1)
	return n, epid, p, string.format("%s %s/%d", n.bridge, p.proto, p.host_port)
end

-- --- rule text ----------------------------------------------------------
-- Rules are written exactly as `nft list` prints them, so `check` can
-- compare the live ruleset with the expected one line by line.

local function q(s) return '"' .. s .. '"' end

-- The constant part: tables, sets, chains and the constant rules, as
-- {chain, rule} pairs (the base spec of a base chain as rule "type ...").
local base_chains = {
	{ T, "forward", "type filter hook forward priority filter; policy accept;" },
	{ T, "internal" },
	{ T, "port_accept" },
	{ T, "postrouting", "type nat hook postrouting priority srcnat; policy accept;" },
	{ T, "prerouting", "type nat hook prerouting priority dstnat; policy accept;" },
	{ T, "output", "type nat hook output priority -100; policy accept;" },
	{ T, "port_dnat" },
	{ TB, "forward", "type filter hook forward priority filter; policy accept;" },
}

local base_sets = {
	{ T, "brisk_bridges", "type ifname;" },
	{ T, "icc_accept", "type ifname . ifname;" },
	{ T, "icc_drop", "type ifname . ifname;" },
	{ T, "host_ports4", "type inet_proto . ipv4_addr . inet_service;" },
	{ T, "host_ports6", "type inet_proto . ipv6_addr . inet_service;" },
	{ TB, "icc_off4", "type ipv4_addr . ipv4_addr; flags interval;" },
	{ TB, "icc_off6", "type ipv6_addr . ipv6_addr; flags interval;" },
}

-- Chains made only of constant rules: flushed and rewritten by `setup`.
local base_rules = {
	{ T, "forward", 'iifname . oifname @icc_accept accept comment "brisk base icc-accept"' },
	{ T, "forward", 'iifname . oifname @icc_drop drop comment "brisk base icc-drop"' },
	{ T, "forward", 'iifname @brisk_bridges oifname @brisk_bridges drop comment "brisk base isolation"' },
	{ T, "forward", 'jump internal comment "brisk base internal"' },
	{ T, "forward", 'oifname @brisk_bridges ct state established,related accept comment "brisk base established"' },
	{ T, "forward", 'oifname @brisk_bridges jump port_accept comment "brisk base published"' },
	{ T, "forward", 'iifname @brisk_bridges accept comment "brisk base outbound"' },
	{ T, "forward", 'oifname @brisk_bridges drop comment "brisk base inbound"' },
	{ T, "prerouting", 'fib daddr type local jump port_dnat comment "brisk base dnat"' },
	-- Locally originated: no loopback (brisk has no userland proxy, and a
	-- connection from 127.0.0.1 cannot be routed to a bridge).
	{ T, "output", 'ip daddr != 127.0.0.0/8 fib daddr type local jump port_dnat comment "brisk base dnat-local4"' },
	{ T, "output", 'ip6 daddr != ::1 fib daddr type local jump port_dnat comment "brisk base dnat-local6"' },
	-- ICC off between ports of one bridge. Bridged frames between two
	-- ports never reach the inet forward hook unless br_netfilter is loaded
	-- with bridge-nf-call-ip(6)tables=1 (what Docker turns on); a bridge
	-- family table sees them always. It cannot match the bridge's name
	-- (meta ibrname needs CONFIG_NFT_BRIDGE_META, missing on some kernels,
	-- this CI kernel among them) and iifname/oifname here are the ports, so
	-- it matches traffic between two addresses of the network's subnet:
	-- brisk subnets do not overlap, so the pair names the network.
	{ TB, "forward", 'ip saddr . ip daddr @icc_off4 drop comment "brisk base icc-off4"' },
	{ TB, "forward", 'ip6 saddr . ip6 daddr @icc_off6 drop comment "brisk base icc-off6"' },
}

-- "table chain" of the chains made only of constant rules.
local constant_chains = {}
for _, r in ipairs(base_rules) do constant_chains[r[1] .. " " .. r[2]] = true end

local function setup_script()
	local s = {}
	local function add(fmt, ...) s[#s + 1] = string.format(fmt, ...) end
	add("add table %s", T)
	add("add table %s", TB)
	for _, set in ipairs(base_sets) do add("add set %s %s { %s }", set[1], set[2], set[3]) end
	for _, c in ipairs(base_chains) do
		if c[3] then
			add("add chain %s %s { %s }", c[1], c[2], c[3])
		else
			add("add chain %s %s", c[1], c[2])
		end
		if constant_chains[c[1] .. " " .. c[2]] then add("flush chain %s %s", c[1], c[2]) end
	end
	for _, r in ipairs(base_rules) do add("add rule %s %s %s", r[1], r[2], r[3]) end
	return table.concat(s, "\n") .. "\n"
end

local function net_tag(n) return "brisk net " .. n.bridge .. " " end

-- --- groups --------------------------------------------------------------

-- The key of a group's lookups: "ip saddr & 255.255.255.0" (the bare field
-- for a full-length prefix, as nft prints it), and the operator nft prints
-- before a set on it.
local function masked(family, field, plen)
	local k = (family == 4 and "ip " or "ip6 ") .. field
	if plen == BITS[family] then return k, "" end
	return k .. " & " .. mask_text(family, plen), "== "
end

-- The group `name` ("nat4_24", "int6_64", "int4_none"), or nil:
-- {name=, sets={{name, "set"|"map", type}, ...}, rules={{chain, body, comment=}, ...}}.
-- sets[1] holds one element per network of the group.
local function group(name)
	local kind, family, plen = name:match("^(%l+)([46])_(%w+)$")
	if not kind then return nil end
	family = tonumber(family)
	if plen == "none" then
		if kind ~= "int" then return nil end
	else
		plen = math.tointeger(tonumber(plen))
		if not plen or plen < 1 or plen > (BITS[family] or 0) or (kind ~= "nat" and kind ~= "int") then
			return nil
		end
	end
	local g = { name = name, sets = {}, rules = {} }
	local addr = "ipv" .. family .. "_addr"
	local sfx = family .. "_" .. plen
	local function rule(chain, body, what)
		local c = "brisk group " .. name .. " " .. what
		g.rules[#g.rules + 1] = { chain, body .. " comment " .. q(c), comment = c }
	end
	if kind == "nat" then
		-- Docker: POSTROUTING `-s S ! -o X -j MASQUERADE` (SNAT with HostIP)
		local key, op = masked(family, "saddr", plen)
		g.sets[1] = { "nat" .. sfx, "set", addr .. " . ifname" }
		g.sets[2] = { "masq" .. sfx, "set", addr }
		rule("postrouting", string.format("%s . oifname != @nat%s %s %s@masq%s masquerade",
			key, sfx, key, op, sfx), "masq")
		if family == 4 then
			g.sets[3] = { "snat" .. sfx, "map", addr .. " : " .. addr }
			rule("postrouting", string.format("%s . oifname != @nat%s snat ip to %s map @snat%s",
				key, sfx, key, sfx), "snat")
		end
	elseif plen == "none" then
		-- an internal network without a subnet of this family: none of it
		local proto = "ipv" .. family
		g.sets[1] = { "int" .. sfx, "set", "ifname" }
		rule("internal", string.format("iifname @int%s meta nfproto %s drop", sfx, proto), "out")
		rule("internal", string.format("oifname @int%s meta nfproto %s drop", sfx, proto), "in")
	else
		-- Docker: STAGE-1 `-i X ! -d S -j DROP` and `-o X ! -s S -j DROP`
		g.sets[1] = { "intbr" .. sfx, "set", "ifname" }
		g.sets[2] = { "int" .. sfx, "set", "ifname . " .. addr }
		rule("internal", string.format("iifname @intbr%s iifname . %s != @int%s drop",
			sfx, masked(family, "daddr", plen), sfx), "out")
		rule("internal", string.format("oifname @intbr%s oifname . %s != @int%s drop",
			sfx, masked(family, "saddr", plen), sfx), "in")
	end
	return g
end

-- The group whose sets[1] is the set `name`, or nil.
local function group_of_member(name)
	local f, p = name:match("^intbr([46])_(%d+)$")
	if f then return group("int" .. f .. "_" .. p) end
	if name:match("^nat[46]_%d+$") or name:match("^int[46]_none$") then return group(name) end
	return nil
end

-- The names of the groups network `n` belongs to.
local function net_groups(n)
	local g = {}
	if n.internal then
		g[1] = n.subnet4 and ("int4_" .. n.plen4) or "int4_none"
		g[2] = n.subnet6 and ("int6_" .. n.plen6) or "int6_none"
	elseif n.masquerade then
		if n.subnet4 then g[#g + 1] = "nat4_" .. n.plen4 end
		if n.subnet6 then g[#g + 1] = "nat6_" .. n.plen6 end
	end
	return g
end

-- The lines that make what the groups `names` lack in the JSON listing
-- `objs` (all of them when objs is empty), as one string.
local function group_script(names, objs)
	local have = {}
	for _, o in ipairs(objs) do
		local set = o.set or o.map
		if set then have["set " .. set.name] = true end
		if o.rule and type(o.rule.comment) == "string" then have["rule " .. o.rule.comment] = true end
	end
	local s = {}
	for _, name in ipairs(names) do
		local g = group(name)
		for _, set in ipairs(g.sets) do
			if not have["set " .. set[1]] then
				s[#s + 1] = string.format("add %s %s %s { type %s; }", set[2], T, set[1], set[3])
				have["set " .. set[1]] = true
			end
		end
		for _, r in ipairs(g.rules) do
			if not have["rule " .. r.comment] then
				s[#s + 1] = string.format("add rule %s %s %s", T, r[1], r[2])
				have["rule " .. r.comment] = true
			end
		end
	end
	return #s > 0 and (table.concat(s, "\n") .. "\n") or ""
end

-- The per-network set elements as {table, set, key, value=, comment=}
-- (keys and values as nft reads them).
local function net_elements(n)
	local e, X = {}, q(n.bridge)
	local function add(tbl, set, key, what, value)
		e[#e + 1] = { tbl, set, key, value = value, comment = what and (net_tag(n) .. what) }
	end
	add(T, "brisk_bridges", X)
	e[1].comment = n.id
	add(T, n.icc and "icc_accept" or "icc_drop", X .. " . " .. X)
	if not n.icc then
		if n.subnet4 then add(TB, "icc_off4", n.subnet4 .. " . " .. n.subnet4) end
		if n.subnet6 then add(TB, "icc_off6", n.subnet6 .. " . " .. n.subnet6) end
	end
	if n.internal then
		for _, f in ipairs({ 4, 6 }) do
			local a, p = n["addr" .. f], n["plen" .. f]
			if a then
				add(T, "intbr" .. f .. "_" .. p, X, "internal" .. f)
				add(T, "int" .. f .. "_" .. p, X .. " . " .. a, "internal" .. f)
			else
				add(T, "int" .. f .. "_none", X, "internal" .. f)
			end
		end
	elseif n.masquerade then
		for _, f in ipairs({ 4, 6 }) do
			local a, p = n["addr" .. f], n["plen" .. f]
			if a then
				local sfx = f .. "_" .. p
				add(T, "nat" .. sfx, a .. " . " .. X, "nat" .. f)
				if f == 4 and n.host_ipv4 then
					add(T, "snat" .. sfx, a, "snat" .. f, n.host_ipv4)
				else
					add(T, "masq" .. sfx, a, "masq" .. f)
				end
			end
		end
	end
	return e
end

-- An element as nft reads it between braces.
local function elem_text(e)
	local s = e[3]
	if e.comment then s = s .. " comment " .. q(e.comment) end
	if e.value then s = s .. " : " .. e.value end
	return s
end

local function port_tag(n, epid, p)
	local hip = p.host_ip or "*"
	if p.family == 6 and p.host_ip then hip = "[" .. hip .. "]" end
	return string.format("brisk port %s %s %s %s:%d ", n.bridge, epid:sub(1, 12), p.proto, hip, p.host_port)
end

local function port_rules(n, epid, p)
	local tag, r = port_tag(n, epid, p), {}
	local ipk = p.family == 4 and "ip" or "ip6"
	local dest = p.family == 4 and (p.container_ip .. ":" .. p.container_port)
		or ("[" .. p.container_ip .. "]:" .. p.container_port)
	local match = string.format("%s dport %d", p.proto, p.host_port)
	if p.host_ip then
		match = ipk .. " daddr " .. p.host_ip .. " " .. match
	elseif p.family == 6 then
		match = "meta nfproto ipv6 " .. match
	end
	-- Docker: nat DOCKER `-p P -d H --dport hp -j DNAT --to-destination C:cp`
	-- (without `! -i X`: brisk has no userland proxy, hairpin goes through nat).
	r[#r + 1] = { "port_dnat", string.format("%s dnat %s to %s comment %s", match, ipk, dest, q(tag .. "dnat")) }
	-- Docker: POSTROUTING `-p P -s C -d C --dport cp -j MASQUERADE`.
	r[#r + 1] = { "postrouting", string.format("%s saddr %s %s daddr %s %s dport %d masquerade comment %s",
		ipk, p.container_ip, ipk, p.container_ip, p.proto, p.container_port, q(tag .. "hairpin")) }
	-- Docker: filter DOCKER `! -i X -o X -p P -d C --dport cp -j ACCEPT`
	-- (same-bridge traffic was decided by the ICC sets before this chain).
	r[#r + 1] = { "port_accept", string.format("oifname %s %s daddr %s %s dport %d accept comment %s",
		q(n.bridge), ipk, p.container_ip, p.proto, p.container_port, q(tag .. "accept")) }
	return r
end

local function port_element(p)
	local any = p.family == 4 and "0.0.0.0" or "::"
	return { T, "host_ports" .. p.family,
		string.format("%s . %s . %d", p.proto, p.host_ip or any, p.host_port) }
end

-- --- running -------------------------------------------------------------

local function fail(op, obj, msg, err)
	return nil, string.format("firewall %s %s: %s", op, obj, tostring(msg)), err or EINVAL
end

-- The JSON listing of table inet brisk; nil (no error) when it is absent.
local function list_json(run, tbl)
	local out, msg, err = run("list table " .. tbl, { json = true })
	if not out then
		if err == ENOENT then return false end
		return nil, msg, err
	end
	local ok, doc = pcall(cjson.decode, out)
	if not ok or type(doc) ~= "table" or type(doc.nftables) ~= "table" then
		return nil, "cannot parse the JSON listing of " .. tbl, EINVAL
	end
	return doc.nftables
end

-- Render a JSON set element's key (or value) the way `nft` prints it
-- ("10.1.0.0 . br-x": strings bare).
local function elem_key(v)
	if type(v) == "table" then
		if v.elem then return elem_key(v.elem.val) end
		if v.concat then
			local parts = {}
			for i, x in ipairs(v.concat) do parts[i] = elem_key(x) end
			return table.concat(parts, " . ")
		end
		if v.prefix then return v.prefix.addr .. "/" .. math.tointeger(v.prefix.len) end
		if v.range then return elem_key(v.range[1]) .. "-" .. elem_key(v.range[2]) end
		return "?"
	end
	if math.type(v) == "float" then v = math.tointeger(v) or v end
	return tostring(v)
end

-- A JSON set or map element: its key, its value (maps: the element is a
-- [key, value] pair) and its comment.
local function elem_parts(v)
	local value
	if type(v) == "table" and v[1] ~= nil and v.elem == nil and v.concat == nil then
		v, value = v[1], v[2]
	end
	return v, value, type(v) == "table" and v.elem and v.elem.comment or nil
end

-- An element's key as nft reads it: the fields of type ifname quoted.
-- `types` is the set's JSON "type" (a name or a list of names).
local function elem_input(v, types)
	if type(types) ~= "table" then types = { types } end
	if type(v) == "table" and v.elem then v = v.elem.val end
	local parts = type(v) == "table" and v.concat or { v }
	local out = {}
	for i, x in ipairs(parts) do
		out[i] = types[i] == "ifname" and q(elem_key(x)) or elem_key(x)
	end
	return table.concat(out, " . ")
end

-- Delete an element whether or not it is there: `add` then `delete` in one
-- transaction (nft 1.0.6 has no `destroy`).
local function drop_element(s, e)
	s[#s + 1] = string.format("add element %s %s { %s }", e[1], e[2], e[3])
	s[#s + 1] = string.format("delete element %s %s { %s }", e[1], e[2], e[3])
end

-- Whether a rule's or element's comment starts with one of `tags`.
local function tagged(comment, tags)
	if type(comment) ~= "string" then return false end
	for _, tag in ipairs(tags) do
		if comment:sub(1, #tag) == tag then return true end
	end
	return false
end

-- Append to `s` the deletion (by handle) of every rule of the JSON
-- listing `objs` tagged with one of `tags`.
local function delete_tagged_rules(s, objs, tags)
	for _, o in ipairs(objs) do
		local r = o.rule
		if r and tagged(r.comment, tags) then
			s[#s + 1] = string.format("delete rule %s %s handle %d", T, r.chain, math.tointeger(r.handle))
		end
	end
end

-- Send the lines `s` as one transaction through `send`; true, or the
-- failure of `op` on `what`.
local function transact(send, s, op, what)
	local out, msg, err = send(table.concat(s, "\n") .. "\n")
	if not out then return fail(op, what, msg, err) end
	return true
end

-- --- the API ---------------------------------------------------------------

--- Program a network's firewall (libnetwork setupIP4Tables/setupIP6Tables
-- and the isolation step) in one transaction of set elements. The first
-- network also makes brisk's tables, sets and chains, the first of a
-- family and prefix length its group (see above): then the transaction
-- is sent again with what was missing.
-- @param run function(script[, opts]) -> output | nil, msg, errno
-- @param net {bridge=, subnet4=, subnet6=, icc=true, masquerade=true,
--   internal=false, host_ipv4=, id=}
-- @return true
-- @return[2] nil, "firewall network_add X: <nft error>", errno (EEXIST when
--   the network is already programmed; nothing changed)
function M.network_add(run, net)
	local n = check_net(net, 2)
	local s = {}
	-- `create` (not `add`) the bridge element first: a network programmed
	-- twice fails with EEXIST instead of duplicating its elements.
	for i, e in ipairs(net_elements(n)) do
		s[i] = string.format("%s element %s %s { %s }", i == 1 and "create" or "add", e[1], e[2], elem_text(e))
	end
	local script = table.concat(s, "\n") .. "\n"
	local out, msg, err = run(script)
	if out then return true end
	if err ~= ENOENT then return fail("network_add", n.bridge, msg, err) end
	-- Something is missing: brisk's tables, or this network's groups. The
	-- setup is not sent when the tables are there: re-adding an existing
	-- chain costs a kernel RCU grace period (~15 ms) per transaction.
	local objs
	objs, msg, err = list_json(run, T)
	if objs == nil then return fail("network_add", n.bridge, msg, err) end
	script = group_script(net_groups(n), objs or {}) .. script
	if not objs then script = setup_script() .. script end
	out, msg, err = run(script)
	if not out and err == ENOENT and objs then
		-- a set or chain of the setup is missing too
		out, msg, err = run(setup_script() .. script)
	end
	if not out then return fail("network_add", n.bridge, msg, err) end
	return true
end

--- Remove a network's set elements and its published ports, in one
-- transaction; a group left without a network goes with them, the last
-- network takes brisk's tables. What is missing of the groups that stay is
-- put back (so `restore`, which deletes and adds every network, repairs
-- them). Idempotent: a network that is not programmed is not an error.
-- @param run as for network_add
-- @param net as for network_add (the bridge finds the elements; the
--   subnets only its ICC-off pairs)
-- @return true
-- @return[2] nil, "firewall network_del X: <error>", errno (nothing changed)
function M.network_del(run, net)
	local n = check_net(net, 2)
	local objs, msg, err = list_json(run, T)
	if objs == nil then return fail("network_del", n.bridge, msg, err) end
	if objs == false then return true end
	local ntag, ptag = net_tag(n), "brisk port " .. n.bridge .. " "
	local s, others, left, have = {}, 0, {}, {}
	-- port rules, and per-network rules of brisk versions before the groups
	delete_tagged_rules(s, objs, { ntag, ptag })
	for _, o in ipairs(objs) do
		local set = o.set or o.map
		if set then
			have[set.name] = o.set and "set" or "map"
			if group_of_member(set.name) then left[set.name] = left[set.name] or 0 end
			for _, e in ipairs(type(set.elem) == "table" and set.elem or {}) do
				local k, _, c = elem_parts(e)
				if set.name == "brisk_bridges" and elem_key(k) ~= n.bridge then
					others = others + 1
				elseif tagged(c, { ntag }) or (set.name:match("^host_ports") and tagged(c, { ptag })) then
					s[#s + 1] = string.format("delete element %s %s { %s }", T, set.name, elem_input(k, set.type))
				elseif left[set.name] then
					left[set.name] = left[set.name] + 1
				end
			end
		end
	end
	if others == 0 then
		-- The last network: brisk's tables go whole.
		s = { "delete table " .. T, "add table " .. TB, "delete table " .. TB }
		return transact(run, s, "network_del", n.bridge)
	end
	-- Whatever ICC was when the network was added, its elements go.
	local X = q(n.bridge)
	drop_element(s, { T, "brisk_bridges", X })
	drop_element(s, { T, "icc_accept", X .. " . " .. X })
	drop_element(s, { T, "icc_drop", X .. " . " .. X })
	if n.subnet4 then drop_element(s, { TB, "icc_off4", n.subnet4 .. " . " .. n.subnet4 }) end
	if n.subnet6 then drop_element(s, { TB, "icc_off6", n.subnet6 .. " . " .. n.subnet6 }) end
	local gone, keep = {}, {}
	for member, count in pairs(left) do
		local g = group_of_member(member)
		if count == 0 then gone[g.name] = g else keep[#keep + 1] = g.name end
	end
	-- a group's rules first (by handle), then the sets they used
	local names, tags = {}, {}
	for name in pairs(gone) do names[#names + 1] = name end
	table.sort(names)
	for i, name in ipairs(names) do tags[i] = "brisk group " .. name .. " " end
	delete_tagged_rules(s, objs, tags)
	for _, name in ipairs(names) do
		for _, set in ipairs(gone[name].sets) do
			if have[set[1]] then s[#s + 1] = string.format("delete %s %s %s", have[set[1]], T, set[1]) end
		end
	end
	table.sort(keep)
	local fix = group_script(keep, objs)
	if fix ~= "" then s[#s + 1] = fix:sub(1, -2) end
	return transact(run, s, "network_del", n.bridge)
end

--- Publish a port (libnetwork allocatePort's forwarding rules): DNAT in
-- prerouting and output, hairpin masquerade, accept in forward.
-- @param run as for network_add
-- @param net the network the endpoint is on (must be programmed)
-- @param ep endpoint id, or a table with `id` (the comments carry its first
--   12 characters)
-- @param mapping {proto="tcp"|"udp"|"sctp", host_ip=nil|addr, host_port=,
--   container_ip=, container_port=}
-- @return true
-- @return[2] nil, "firewall port_add ...: <error>", errno (EEXIST when the
--   host port is already published; ENOENT when brisk's tables are not
--   there; EINVAL for an internal network). It does not check that this
--   network was added: that is the caller's flow.
function M.port_add(run, net, ep, mapping)
	local n, epid, p, what = check_port_args(net, ep, mapping, 2)
	if n.internal then
		return fail("port_add", what, "network is internal: no published ports", EINVAL)
	end
	if p.family == 4 and not n.subnet4 or p.family == 6 and not n.subnet6 then
		return fail("port_add", what, "network has no IPv" .. p.family .. " subnet", EINVAL)
	end
	local tag = port_tag(n, epid, p)
	local e = port_element(p)
	-- `create` the host port element first: publishing a host port twice
	-- fails with EEXIST instead of duplicating rules.
	local s = {}
	s[#s + 1] = string.format("create element %s %s { %s comment %s }", e[1], e[2], e[3], q(tag:sub(1, -2)))
	for _, r in ipairs(port_rules(n, epid, p)) do
		s[#s + 1] = string.format("add rule %s %s %s", T, r[1], r[2])
	end
	return transact(run, s, "port_add", what)
end

--- Unpublish a port: deletes the rules port_add made (found by comment,
-- deleted by handle) and the host port element, in one transaction.
-- Idempotent.
-- @return true
-- @return[2] nil, "firewall port_del ...: <error>", errno
function M.port_del(run, net, ep, mapping)
	local n, epid, p, what = check_port_args(net, ep, mapping, 2)
	local objs, msg, err = list_json(run, T)
	if objs == nil then return fail("port_del", what, msg, err) end
	if objs == false then return true end
	local tag = port_tag(n, epid, p)
	local s = {}
	delete_tagged_rules(s, objs, { tag })
	drop_element(s, port_element(p))
	return transact(run, s, "port_del", what)
end

--- Remove every published port of one endpoint, found by the tag of its
-- rules and host port elements rather than by its bindings: for an
-- endpoint whose create was interrupted, whose bindings were never stored.
-- One transaction; idempotent.
-- @param run as for network_add
-- @tparam string bridge the endpoint's bridge
-- @tparam string epid the endpoint id
-- @return true
-- @return[2] nil, "firewall ports_purge ...: <error>", errno
function M.ports_purge(run, bridge, epid)
	if type(bridge) ~= "string" or bridge == "" then error("bad argument #2 to 'ports_purge' (bridge name expected)", 2) end
	if type(epid) ~= "string" or #epid < 12 then error("bad argument #3 to 'ports_purge' (endpoint id expected)", 2) end
	local what = bridge .. " " .. epid:sub(1, 12)
	local objs, msg, err = list_json(run, T)
	if objs == nil then return fail("ports_purge", what, msg, err) end
	if objs == false then return true end
	local tag = "brisk port " .. bridge .. " " .. epid:sub(1, 12) .. " "
	local s = {}
	delete_tagged_rules(s, objs, { tag })
	for _, o in ipairs(objs) do
		local set = o.set
		if set and set.name:match("^host_ports") and type(set.elem) == "table" then
			for _, e in ipairs(set.elem) do
				local k, _, c = elem_parts(e)
				if tagged(c, { tag }) then
					s[#s + 1] = string.format("delete element %s %s { %s }", T, set.name, elem_input(k, set.type))
				end
			end
		end
	end
	if #s == 0 then return true end
	return transact(run, s, "ports_purge", what)
end

--- Make brisk's tables, sets and chains, and rewrite the constant rules
-- (repairs what `check` reports in them); per-network rules and elements
-- are left alone. Idempotent. network_add calls it when needed.
-- @return true
-- @return[2] nil, "firewall setup: <error>", errno
function M.setup(run)
	local out, msg, err = run(setup_script())
	if not out then return fail("setup", "tables", msg, err) end
	return true
end

--- Remove brisk's tables whole (both families). Idempotent.
-- @return true
-- @return[2] nil, "firewall remove: <error>", errno
function M.remove(run)
	local out, msg, err = run(string.format("add table %s\ndelete table %s\nadd table %s\ndelete table %s\n",
		T, T, TB, TB))
	if not out then return fail("remove", "tables", msg, err) end
	return true
end

-- Parse `nft list table` text into {["chain"] = {lines...}}.
local function parse_rules(text)
	local chains, cur = {}, nil
	for line in text:gmatch("[^\n]+") do
		local name = line:match("^\tchain (%S+) {$")
		if name then
			cur = {}
			chains[name] = cur
		elseif line == "\t}" then
			cur = nil
		elseif cur and line:match("^\t\t%S") then
			cur[#cur + 1] = line:sub(3)
		end
	end
	return chains
end

--- Compare the live ruleset with what `nets` and `ports` call for.
-- @param run as for network_add
-- @param nets list of networks (as for network_add)
-- @param[opt] ports list of {net=, ep=, mapping=} (as for port_add)
-- @return list of drift messages ("missing rule inet brisk postrouting:
--   <rule>", "extra element ...", ...); empty when all is as expected
-- @return[2] nil, "firewall check: <error>", errno when listing failed
function M.check(run, nets, ports)
	if type(nets) ~= "table" then error("nets must be a list of networks", 2) end
	if ports ~= nil and type(ports) ~= "table" then error("ports must be a list", 2) end
	local want_rules, want_elems, want_chains, want_sets = {}, {}, {}, {}
	local function want_rule(tbl, chain, body)
		local k = tbl .. " " .. chain
		want_rules[k] = want_rules[k] or {}
		table.insert(want_rules[k], body)
	end
	local function want_elem(tbl, set, key)
		local k = tbl .. " " .. set
		want_elems[k] = want_elems[k] or {}
		want_elems[k][key] = (want_elems[k][key] or 0) + 1
	end
	local any = #nets > 0
	if any then
		for _, c in ipairs(base_chains) do
			want_chains[c[1] .. " " .. c[2]] = true
			if c[3] then want_rule(c[1], c[2], c[3]) end
		end
		for _, set in ipairs(base_sets) do
			want_sets[set[1] .. " " .. set[2]] = true
			want_elems[set[1] .. " " .. set[2]] = want_elems[set[1] .. " " .. set[2]] or {}
		end
		for _, r in ipairs(base_rules) do want_rule(r[1], r[2], r[3]) end
	end
	local unq = function(s) return (s:gsub('"', "")) end
	local groups = {}
	for _, net in ipairs(nets) do
		local n = check_net(net, 2)
		for _, name in ipairs(net_groups(n)) do
			if not groups[name] then
				groups[name] = true
				local g = group(name)
				for _, set in ipairs(g.sets) do
					want_sets[T .. " " .. set[1]] = true
					want_elems[T .. " " .. set[1]] = want_elems[T .. " " .. set[1]] or {}
				end
				for _, r in ipairs(g.rules) do want_rule(T, r[1], r[2]) end
			end
		end
		for _, e in ipairs(net_elements(n)) do
			want_elem(e[1], e[2], unq(e[3]) .. (e.value and (" : " .. e.value) or ""))
		end
	end
	for _, pm in ipairs(ports or {}) do
		local n = check_net(pm.net, 2)
		local epid = check_ep(pm.ep, 2)
		local p = check_mapping(pm.mapping, 2)
		for _, r in ipairs(port_rules(n, epid, p)) do want_rule(T, r[1], r[2]) end
		local e = port_element(p)
		want_elem(e[1], e[2], e[3])
	end

	local drift = {}
	local function note(fmt, ...) drift[#drift + 1] = string.format(fmt, ...) end
	for _, tbl in ipairs({ T, TB }) do
		local objs, msg, err = list_json(run, tbl)
		local text
		if objs then
			text, msg, err = run("list table " .. tbl)
			if not text and err == ENOENT then objs = false end
		end
		if objs == nil or (objs and not text) then
			return fail("check", tbl, msg, err)
		elseif objs == false then
			if any then note("missing table %s", tbl) end
		else
			if not any then note("extra table %s", tbl) end
			-- chains and rules, compared as text
			local live = parse_rules(text)
			local seen = {}
			for name, lines in pairs(live) do
				local k = tbl .. " " .. name
				seen[k] = true
				if any and not want_chains[k] then note("extra chain %s", k) end
				local want, before = {}, #drift
				for _, b in ipairs(want_rules[k] or {}) do want[b] = (want[b] or 0) + 1 end
				for _, l in ipairs(lines) do
					if want[l] and want[l] > 0 then
						want[l] = want[l] - 1
					else
						note("extra rule %s: %s", k, l)
					end
				end
				for _, b in ipairs(want_rules[k] or {}) do
					if want[b] > 0 then
						want[b] = want[b] - 1
						note("missing rule %s: %s", k, b)
					end
				end
				-- the constant chains decide by order (ICC before isolation)
				if #drift == before and constant_chains[k] and want_rules[k] and
					table.concat(lines, "\n") ~= table.concat(want_rules[k], "\n") then
					note("rules out of order in chain %s", k)
				end
			end
			for k in pairs(want_chains) do
				if k:sub(1, #tbl + 1) == tbl .. " " and not seen[k] then note("missing chain %s", k) end
			end
			-- sets and elements, compared as rendered keys
			local sseen = {}
			for _, o in ipairs(objs) do
				local set = o.set or o.map
				if set then
					local k = tbl .. " " .. set.name
					sseen[k] = true
					local want = {}
					for key, c in pairs(want_elems[k] or {}) do want[key] = c end
					if any and not want_sets[k] then note("extra set %s", k) end
					for _, e in ipairs(set.elem or {}) do
						local ek, ev = elem_parts(e)
						local key = elem_key(ek) .. (ev ~= nil and (" : " .. elem_key(ev)) or "")
						if want[key] and want[key] > 0 then
							want[key] = want[key] - 1
						else
							note("extra element %s: %s", k, key)
						end
					end
					local keys = {}
					for key, c in pairs(want) do if c > 0 then keys[#keys + 1] = key end end
					table.sort(keys)
					for _, key in ipairs(keys) do note("missing element %s: %s", k, key) end
				end
			end
			for k in pairs(want_sets) do
				if k:sub(1, #tbl + 1) == tbl .. " " and not sseen[k] then note("missing set %s", k) end
			end
		end
	end
	table.sort(drift)
	return drift
end

--- Turn on forwarding (libnetwork's EnableIPForwarding, and
-- setupIPv6Forwarding when `ipv6`). Docker also sets the FORWARD policy to
-- DROP; brisk's equivalent is the "brisk base inbound" rule, which drops
-- what is not accepted only on the way into brisk bridges.
-- @param sysctl_set function(key, value) -> previous value | nil, msg, errno;
--   keys are paths under /proc/sys ("net/ipv4/ip_forward")
-- @param[opt] ipv6 also net/ipv6/conf/{all,default}/forwarding
-- @return the previous values {[key] = value} (for restore_forwarding)
-- @return[2] nil, msg, errno; whatever was already written is restored
function M.enable_forwarding(sysctl_set, ipv6)
	if type(sysctl_set) ~= "function" then error("sysctl_set must be a function", 2) end
	local keys = { "net/ipv4/ip_forward" }
	if ipv6 then
		keys[2] = "net/ipv6/conf/default/forwarding"
		keys[3] = "net/ipv6/conf/all/forwarding"
	end
	local old = {}
	for _, k in ipairs(keys) do
		local prev, msg, err = sysctl_set(k, "1")
		if prev == nil then
			M.restore_forwarding(sysctl_set, old)
			return nil, string.format("firewall enable_forwarding %s: %s", k, tostring(msg)), err
		end
		old[k] = prev
	end
	return old
end

--- Write back the values enable_forwarding returned.
-- @return true, or nil, msg, errno for the first write that failed (the
--   others are still attempted)
function M.restore_forwarding(sysctl_set, old)
	local first
	for k, v in pairs(old) do
		local ok, msg, err = sysctl_set(k, v)
		if ok == nil and not first then first = { msg, err } end
	end
	if first then return nil, "firewall restore_forwarding: " .. tostring(first[1]), first[2] end
	return true
end

--- The endpoint steps for published ports, as the endpoint flow calls them
-- (`ctx.firewall.publish_ports(h, ep, ctx)`): brisk.ports.publish and
-- brisk.ports.unpublish (loaded on first use).
function M.publish_ports(h, ep, ctx) return require("brisk.ports").publish(h, ep, ctx) end
function M.unpublish_ports(h, ep, ctx) return require("brisk.ports").unpublish(h, ep, ctx) end

-- For tests and the REPL: the setup script as it would be sent.
M.setup_script = setup_script

-- Exposed for tests: address helpers (nft's printing rules).
M._format_prefix = function(s, family) return (parse_prefix(s, family, "prefix", 2)) end

return M
