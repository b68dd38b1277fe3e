--- brisk.ipnet: IPv4/IPv6 addresses, prefixes and MAC addresses in pure Lua.
--
-- An address is a table `{family = 4|6, bytes = <4 or 16 byte string>}`;
-- a prefix is the same with `plen` (0..32 or 0..128). Both carry a
-- metatable giving `tostring` (canonical text, RFC 5952 for IPv6), `==`,
-- `<`, `<=` and the functions below as methods (`net:contains(ip)`).
--
-- Functions that take an address or a prefix also accept its text
-- ("10.0.0.1", "10.0.0.0/24"); an address given where a network is
-- expected counts as a /32 (or /128). Parse functions return `nil, msg` on
-- bad input; every other function raises on wrong Lua types and on text
-- that does not parse, and returns `nil, msg` when the request makes no
-- sense for valid input (out of range, wrong family).
--
-- MAC addresses are text ("02:42:ac:11:00:02") at the interface and
-- 6-byte strings inside (`mac_parse`, `mac_format`).
-- @module brisk.ipnet

local sbyte, schar, sfmt, concat, unpack = string.byte, string.char, string.format, table.concat, table.unpack
local type, tonumber, setmetatable, error, pcall, require, ipairs =
	type, tonumber, setmetatable, error, pcall, require, ipairs
local math = math

local M = {}

local mt = { __index = M }

local BITS = { [4] = 32, [6] = 128 }
local ZERO10 = ("\0"):rep(10)

local function new(family, bytes, plen)
	return setmetatable({ family = family, bytes = bytes, plen = plen }, mt)
end

local function argerror(n, fname, msg)
	error(sfmt("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
end

local function checkstring(v, n, fname)
	if type(v) ~= "string" then argerror(n, fname, "string expected, got " .. type(v)) end
	return v
end

-- --- parsing -----------------------------------------------------------

local function parse_v4(s)
	local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
	if not a then return nil end
	local t = { a, b, c, d }
	for i = 1, 4 do
		local p = t[i]
		-- no leading zeros: "01" is octal to some parsers, decimal to others
		if #p > 3 or (#p > 1 and p:sub(1, 1) == "0") then return nil end
		local v = tonumber(p)
		if v > 255 then return nil end
		t[i] = v
	end
	return schar(t[1], t[2], t[3], t[4])
end

-- The 16-bit groups of one side of "::" (nil when malformed). An IPv4
-- tail is allowed in the last field when `v4tail`.
local function groups(part, v4tail)
	local g = {}
	if part == "" then return g end
	local fields = {}
	for f in (part .. ":"):gmatch("([^:]*):") do fields[#fields + 1] = f end
	for k, f in ipairs(fields) do
		if k == #fields and v4tail and f:find(".", 1, true) then
			local b = parse_v4(f)
			if not b then return nil end
			local b1, b2, b3, b4 = sbyte(b, 1, 4)
			g[#g + 1] = b1 * 256 + b2
			g[#g + 1] = b3 * 256 + b4
		elseif f:match("^%x%x?%x?%x?$") then
			g[#g + 1] = tonumber(f, 16)
		else
			return nil
		end
	end
	return g
end

local function parse_v6(s)
	if s:find("[^%x:%.]") then return nil end
	local head, tail = s, nil
	local i = s:find("::", 1, true)
	if i then
		head, tail = s:sub(1, i - 1), s:sub(i + 2)
		if tail:find("::", 1, true) then return nil end
	end
	local hg = groups(head, tail == nil)
	if not hg then return nil end
	local tg = {}
	if tail then
		tg = groups(tail, true)
		if not tg then return nil end
		-- "::" stands for at least one group of zeros
		if #hg + #tg > 7 then return nil end
		for _ = 1, 8 - #hg - #tg do hg[#hg + 1] = 0 end
		for _, v in ipairs(tg) do hg[#hg + 1] = v end
	elseif #hg ~= 8 then
		return nil
	end
	local out = {}
	for k = 1, 8 do
		out[2 * k - 1] = hg[k] >> 8
		out[2 * k] = hg[k] & 0xff
	end
	return schar(unpack(out))
end

local function parse_addr(s)
	if s:find(":", 1, true) then
		local b = parse_v6(s)
		return b and 6, b
	end
	local b = parse_v4(s)
	return b and 4, b
end

--- Parse an IPv4 or IPv6 address (no prefix length, no zone).
-- @tparam string s e.g. "10.0.0.1", "fe80::1", "::ffff:10.0.0.1"
-- @return address
-- @return[2] nil, "invalid IP address 's'"
function M.parse_ip(s)
	checkstring(s, 1, "parse_ip")
	local fam, b = parse_addr(s)
	if not fam then return nil, sfmt("invalid IP address '%s'", s) end
	return new(fam, b)
end

--- Parse "address/plen".
-- @tparam string s e.g. "10.0.0.1/24"
-- @return the address with its plen (host bits kept: "10.0.0.1/24")
-- @return the network (host bits cleared: "10.0.0.0/24")
-- @return[2] nil, "invalid CIDR 's'"
function M.parse_cidr(s)
	checkstring(s, 1, "parse_cidr")
	local a, p = s:match("^([^/]+)/(%d%d?%d?)$")
	local fam, b
	if a then fam, b = parse_addr(a) end
	if not fam or (#p > 1 and p:sub(1, 1) == "0") or tonumber(p) > BITS[fam] then
		return nil, sfmt("invalid CIDR '%s'", s)
	end
	local plen = tonumber(p)
	return new(fam, b, plen), M.network(new(fam, b, plen))
end

-- --- helpers over byte strings ---------------------------------------------

local function mask_byte(plen, i)
	local left = plen - (i - 1) * 8
	if left >= 8 then return 0xff end
	if left <= 0 then return 0 end
	return (0xff << (8 - left)) & 0xff
end

local function masked(b, plen)
	local out = {}
	for i = 1, #b do out[i] = sbyte(b, i) & mask_byte(plen, i) end
	return schar(unpack(out))
end

local function filled(b, plen)
	local out = {}
	for i = 1, #b do out[i] = sbyte(b, i) | (~mask_byte(plen, i) & 0xff) end
	return schar(unpack(out))
end

-- b + n (n a Lua integer), or nil on wrap-around.
local function add_bytes(b, n)
	local out = { sbyte(b, 1, -1) }
	-- n's bits taken as an unsigned magnitude (>> is a logical shift, so
	-- math.mininteger works too)
	local neg = n < 0
	local m = neg and -n or n
	local carry = 0
	for i = #out, 1, -1 do
		local v
		if neg then
			v = out[i] - (m & 0xff) - carry
			carry = v < 0 and 1 or 0
		else
			v = out[i] + (m & 0xff) + carry
			carry = v > 0xff and 1 or 0
		end
		out[i] = v & 0xff
		m = m >> 8
	end
	if carry ~= 0 or m ~= 0 then return nil end
	return schar(unpack(out))
end

local function valid_obj(x)
	if type(x) ~= "table" then return false end
	local bits = BITS[x.family]
	if not bits or type(x.bytes) ~= "string" or #x.bytes ~= bits // 8 then return false end
	local p = x.plen
	return p == nil or (math.type(p) == "integer" and p >= 0 and p <= bits)
end

-- An address or prefix from an object or text; raises otherwise.
local function coerce(x, n, fname)
	if type(x) == "string" then
		local v, err
		if x:find("/", 1, true) then v, err = M.parse_cidr(x) else v, err = M.parse_ip(x) end
		if not v then argerror(n, fname, err) end
		return v
	end
	if not valid_obj(x) then
		argerror(n, fname, "address or prefix expected, got " ..
			(type(x) == "table" and "a malformed table" or type(x)))
	end
	return x
end

local function plen_of(x)
	return x.plen or BITS[x.family]
end

-- --- prefixes ------------------------------------------------------------

--- The network of a prefix: host bits cleared.
-- @param p prefix (or address: its /32 or /128)
-- @return prefix
function M.network(p)
	p = coerce(p, 1, "network")
	local plen = plen_of(p)
	return new(p.family, masked(p.bytes, plen), plen)
end

--- Build a prefix from an address and a prefix length.
-- @param ip address (a prefix's plen is replaced)
-- @tparam integer plen 0..32 or 0..128
-- @return prefix (host bits kept)
function M.prefix(ip, plen)
	ip = coerce(ip, 1, "prefix")
	if math.type(plen) ~= "integer" or plen < 0 or plen > BITS[ip.family] then
		argerror(2, "prefix", "prefix length must be 0.." .. BITS[ip.family])
	end
	return new(ip.family, ip.bytes, plen)
end

--- The bare address of an address or prefix (plen dropped).
-- @param x address or prefix
-- @return address
function M.addr(x)
	x = coerce(x, 1, "addr")
	return new(x.family, x.bytes)
end

--- Whether `net` contains `x` (an address, or a prefix no larger than net).
-- Different families never contain each other.
-- @param net prefix
-- @param x address or prefix
-- @return boolean
function M.contains(net, x)
	net = coerce(net, 1, "contains")
	x = coerce(x, 2, "contains")
	if net.family ~= x.family then return false end
	local np, xp = plen_of(net), plen_of(x)
	if xp < np then return false end
	return masked(x.bytes, np) == masked(net.bytes, np)
end

--- Whether two prefixes share at least one address.
-- @param a prefix
-- @param b prefix
-- @return boolean
function M.overlaps(a, b)
	a = coerce(a, 1, "overlaps")
	b = coerce(b, 2, "overlaps")
	if a.family ~= b.family then return false end
	local p = math.min(plen_of(a), plen_of(b))
	return masked(a.bytes, p) == masked(b.bytes, p)
end

--- The number of addresses in a prefix: an integer below 2^63, a float
-- (exact power of two) above.
-- @param net prefix
-- @return number
function M.size(net)
	net = coerce(net, 1, "size")
	local hb = BITS[net.family] - plen_of(net)
	if hb <= 62 then return 1 << hb end
	return 2.0 ^ hb
end

--- The n-th address of a network: 0 is the network address, -1 the last.
-- @param net prefix
-- @tparam integer n
-- @return address
-- @return[2] nil, "address index N out of range for NET"
function M.host(net, n)
	net = coerce(net, 1, "host")
	if math.type(n) ~= "integer" then argerror(2, "host", "integer expected, got " .. (math.type(n) or type(n))) end
	local plen = plen_of(net)
	local b
	if n >= 0 then
		b = add_bytes(masked(net.bytes, plen), n)
	else
		b = add_bytes(filled(net.bytes, plen), n + 1)
	end
	if not b or masked(b, plen) ~= masked(net.bytes, plen) then
		return nil, sfmt("address index %d out of range for %s", n, M.format(M.network(net)))
	end
	return new(net.family, b)
end

--- The IPv4 broadcast address (the last address) of a network.
-- @param net IPv4 prefix
-- @return address
-- @return[2] nil, "IPv6 networks have no broadcast address"
function M.broadcast(net)
	net = coerce(net, 1, "broadcast")
	if net.family ~= 4 then return nil, "IPv6 networks have no broadcast address" end
	return new(4, filled(net.bytes, plen_of(net)))
end

--- The first address a host may use: network + 1, or the network address
-- itself for /31, /32, /127 and /128.
-- @param net prefix
-- @return address
function M.first_host(net)
	net = coerce(net, 1, "first_host")
	local plen = plen_of(net)
	local b = masked(net.bytes, plen)
	if BITS[net.family] - plen >= 2 then b = add_bytes(b, 1) end
	return new(net.family, b)
end

--- The last address a host may use: broadcast - 1 for IPv4 (the last
-- address for /31 and /32), the last address for IPv6.
-- @param net prefix
-- @return address
function M.last_host(net)
	net = coerce(net, 1, "last_host")
	local plen = plen_of(net)
	local b = filled(net.bytes, plen)
	if net.family == 4 and plen <= 30 then b = add_bytes(b, -1) end
	return new(net.family, b)
end

--- The netmask as text: "255.255.255.0", "ffff:ffff:ffff:ffff::".
-- @param p a prefix, or a prefix length
-- @tparam[opt=4] integer family with a prefix length
-- @return string
function M.mask(p, family)
	local fam, plen
	if math.type(p) == "integer" then
		fam = family or 4
		if not BITS[fam] then argerror(2, "mask", "family must be 4 or 6") end
		if p < 0 or p > BITS[fam] then argerror(1, "mask", "prefix length must be 0.." .. BITS[fam]) end
		plen = p
	else
		p = coerce(p, 1, "mask")
		fam, plen = p.family, plen_of(p)
	end
	return M.format(new(fam, masked(("\255"):rep(BITS[fam] // 8), plen)))
end

-- --- text ----------------------------------------------------------------

local function fmt4(b)
	return sfmt("%d.%d.%d.%d", sbyte(b, 1, 4))
end

local function fmt6(b)
	if b:sub(1, 10) == ZERO10 and b:sub(11, 12) == "\255\255" then
		return "::ffff:" .. fmt4(b:sub(13))   -- RFC 5952 section 5
	end
	local g = {}
	for i = 1, 16, 2 do g[#g + 1] = sbyte(b, i) * 256 + sbyte(b, i + 1) end
	-- the longest run of two or more zero groups, the first on a tie
	local bs, bl, cs, cl = 0, 0, 0, 0
	for i = 1, 8 do
		if g[i] == 0 then
			if cl == 0 then cs = i end
			cl = cl + 1
			if cl > bl then bs, bl = cs, cl end
		else
			cl = 0
		end
	end
	local function hex(from, to)
		local t = {}
		for i = from, to do t[#t + 1] = sfmt("%x", g[i]) end
		return concat(t, ":")
	end
	if bl < 2 then return hex(1, 8) end
	return hex(1, bs - 1) .. "::" .. hex(bs + bl, 8)
end

--- Canonical text of an address or prefix ("10.0.0.1", "2001:db8::1/64").
-- @param x address or prefix
-- @return string
function M.format(x)
	x = coerce(x, 1, "format")
	local s = x.family == 4 and fmt4(x.bytes) or fmt6(x.bytes)
	if x.plen then s = s .. "/" .. x.plen end
	return s
end

--- Order addresses and prefixes: IPv4 before IPv6, then by address, then
-- a bare address before prefixes, shorter prefixes first.
-- @param a address or prefix
-- @param b address or prefix
-- @return -1, 0 or 1
function M.compare(a, b)
	a = coerce(a, 1, "compare")
	b = coerce(b, 2, "compare")
	if a.family ~= b.family then return a.family < b.family and -1 or 1 end
	if a.bytes ~= b.bytes then
		for i = 1, #a.bytes do
			local x, y = sbyte(a.bytes, i), sbyte(b.bytes, i)
			if x ~= y then return x < y and -1 or 1 end
		end
	end
	local pa, pb = a.plen or -1, b.plen or -1
	if pa ~= pb then return pa < pb and -1 or 1 end
	return 0
end

--- The address n after ip (n may be negative); a prefix keeps its plen.
-- @param ip address
-- @tparam integer n
-- @return address
-- @return[2] nil, "address overflow: IP + n"
function M.add(ip, n)
	ip = coerce(ip, 1, "add")
	if math.type(n) ~= "integer" then argerror(2, "add", "integer expected, got " .. (math.type(n) or type(n))) end
	local b = add_bytes(ip.bytes, n)
	if not b then return nil, sfmt("address overflow: %s + %d", M.format(ip), n) end
	return new(ip.family, b, ip.plen)
end

--- The next address: add(ip, 1).
-- @param ip address
-- @return address
-- @return[2] nil, "address overflow: ..."
function M.next(ip)
	return M.add(coerce(ip, 1, "next"), 1)
end

mt.__tostring = M.format
mt.__eq = function(a, b) return valid_obj(a) and valid_obj(b) and M.compare(a, b) == 0 end
mt.__lt = function(a, b) return M.compare(a, b) < 0 end
mt.__le = function(a, b) return M.compare(a, b) <= 0 end

-- --- MAC addresses ---------------------------------------------------------

--- Parse a 48-bit MAC address, "02:42:ac:11:00:02" or "02-42-AC-11-00-02".
-- @tparam string s
-- @return 6-byte string
-- @return[2] nil, "invalid MAC address 's'"
function M.mac_parse(s)
	checkstring(s, 1, "mac_parse")
	local sep = s:sub(3, 3)
	if sep == ":" or sep == "-" then
		local p = "^(%x%x)" .. ("%" .. sep .. "(%x%x)"):rep(5) .. "$"
		local t = { s:match(p) }
		if #t == 6 then
			for i = 1, 6 do t[i] = tonumber(t[i], 16) end
			return schar(unpack(t))
		end
	end
	return nil, sfmt("invalid MAC address '%s'", s)
end

--- Format a 6-byte MAC as lower-case text with colons.
-- @tparam string b 6 bytes
-- @return string
function M.mac_format(b)
	checkstring(b, 1, "mac_format")
	if #b ~= 6 then argerror(1, "mac_format", "6-byte string expected") end
	return sfmt("%02x:%02x:%02x:%02x:%02x:%02x", sbyte(b, 1, 6))
end

--- The MAC libnetwork derives from an IPv4 address: 02:42 + its 4 bytes.
-- @param ip IPv4 address
-- @return string "02:42:ac:11:00:02"
-- @return[2] nil, msg for an IPv6 address
function M.mac_from_ipv4(ip)
	ip = coerce(ip, 1, "mac_from_ipv4")
	if ip.family ~= 4 then return nil, sfmt("not an IPv4 address: %s", M.format(M.addr(ip))) end
	return M.mac_format("\2\66" .. ip.bytes)
end

--- The address libnetwork gives an endpoint in an IPv6 network: the
-- network's bytes with bytes 10..15 replaced by the MAC.
-- @param prefix IPv6 prefix of length 80 or less
-- @tparam string mac text
-- @return address with the prefix's plen ("fd00::242:ac11:2/64")
-- @return[2] nil, msg (bad MAC, IPv4 prefix, prefix longer than /80)
function M.ipv6_from_mac(prefix, mac)
	prefix = coerce(prefix, 1, "ipv6_from_mac")
	checkstring(mac, 2, "ipv6_from_mac")
	local m, err = M.mac_parse(mac)
	if not m then return nil, err end
	if prefix.family ~= 6 then return nil, sfmt("not an IPv6 prefix: %s", M.format(prefix)) end
	local plen = plen_of(prefix)
	if plen > 80 then
		return nil, sfmt("prefix %s is longer than /80: no room for a MAC", M.format(prefix))
	end
	return new(6, masked(prefix.bytes, plen):sub(1, 10) .. m, plen)
end

local core_random   -- false when brisk.core is not available

--- A random MAC: 02:42 followed by 4 random bytes (from the kernel through
-- brisk.core when it is loaded, else math.random).
-- @return string
function M.random_mac()
	if core_random == nil then
		local ok, core = pcall(require, "brisk.core")
		core_random = ok and type(core) == "table" and core.random_bytes or false
	end
	local r = core_random and core_random(4)
	if not r then
		r = schar(math.random(0, 255), math.random(0, 255), math.random(0, 255), math.random(0, 255))
	end
	return M.mac_format("\2\66" .. r)
end

return M
