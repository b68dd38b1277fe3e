-- spec/test_ipnet.lua: addresses, prefixes and MACs (lua/brisk/ipnet.lua).
local lu = require "luaunit"
local H = require "helper"

local ipnet = require "brisk.ipnet"

TestIpnet = {}

function TestIpnet:test_module_loads_without_globals()
	local before = H.globals_snapshot()
	package.loaded["brisk.ipnet"] = nil
	local m = require "brisk.ipnet"
	lu.assertEquals(H.new_globals(before), {})
	lu.assertIsFunction(m.parse_cidr)
	m.random_mac()                 -- loads brisk.core lazily: no globals either
	lu.assertEquals(H.new_globals(before), {})
end

-- input, canonical text (nil: invalid)
local IP_CASES = {
	{ "10.0.0.1", "10.0.0.1" },
	{ "0.0.0.0", "0.0.0.0" },
	{ "255.255.255.255", "255.255.255.255" },
	{ "300.1.1.1", nil },
	{ "256.0.0.0", nil },
	{ "1.2.3", nil },
	{ "1.2.3.4.5", nil },
	{ "01.2.3.4", nil },           -- leading zero: octal or decimal? refused
	{ "1.2.3.04", nil },
	{ "1.2.3.-4", nil },
	{ "1.2.3.4 ", nil },
	{ " 1.2.3.4", nil },
	{ "1..2.3", nil },
	{ "", nil },
	{ "abc", nil },
	{ "0x1.2.3.4", nil },
	{ "::", "::" },
	{ "::1", "::1" },
	{ "1::", "1::" },
	{ ":::1", nil },
	{ "1:::2", nil },
	{ "1::2::3", nil },
	{ ":1::2", nil },
	{ "1::2:", nil },
	{ "2001:DB8::1", "2001:db8::1" },
	{ "2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1" },
	{ "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1" },     -- tie: first run
	{ "2001:0:0:1:0:0:0:1", "2001:0:0:1::1" },            -- longest run wins
	{ "2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1" },   -- one zero group stays
	{ "1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0" },
	{ "::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8" },
	{ "1:2:3:4:5:6:7:8::", nil },  -- "::" must stand for at least one group
	{ "1:2:3:4:5:6:7:8:9", nil },
	{ "1:2:3:4:5:6:7", nil },
	{ "12345::1", nil },
	{ "g::1", nil },
	{ "fe80::1%eth0", nil },       -- zones are not addresses
	{ "::ffff:10.0.0.1", "::ffff:10.0.0.1" },
	{ "::FFFF:0a00:0001", "::ffff:10.0.0.1" },
	{ "64:ff9b::192.0.2.33", "64:ff9b::c000:221" },
	{ "::1.2.3.4", "::102:304" },
	{ "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304" },
	{ "1.2.3.4::", nil },
	{ "::1.2.3", nil },
	{ "::256.1.1.1", nil },
}

function TestIpnet:test_parse_ip_table()
	lu.assertTrue(#IP_CASES >= 30)
	for _, c in ipairs(IP_CASES) do
		local a, msg = ipnet.parse_ip(c[1])
		if c[2] then
			lu.assertNotNil(a, "should parse: '" .. c[1] .. "' (" .. tostring(msg) .. ")")
			lu.assertEquals(ipnet.format(a), c[2], c[1])
			lu.assertEquals(tostring(a), c[2])
			lu.assertEquals(a.family, c[2]:find(":") and 6 or 4)
			lu.assertEquals(#a.bytes, a.family == 4 and 4 or 16)
			lu.assertNil(a.plen)
			-- the canonical text parses back to the same address
			lu.assertEquals(ipnet.parse_ip(c[2]), a)
		else
			lu.assertNil(a, "should fail: '" .. c[1] .. "'")
			lu.assertEquals(msg, "invalid IP address '" .. c[1] .. "'")
		end
	end
end

local CIDR_CASES = {
	{ "10.0.0.1/24", "10.0.0.1/24", "10.0.0.0/24" },
	{ "10.0.0.1/32", "10.0.0.1/32", "10.0.0.1/32" },
	{ "10.1.2.3/0", "10.1.2.3/0", "0.0.0.0/0" },
	{ "172.17.255.255/12", "172.17.255.255/12", "172.16.0.0/12" },
	{ "2001:db8::1/64", "2001:db8::1/64", "2001:db8::/64" },
	{ "2001:db8:ffff::1/33", "2001:db8:ffff::1/33", "2001:db8:8000::/33" },
	{ "::/0", "::/0", "::/0" },
	{ "fe80::1/128", "fe80::1/128", "fe80::1/128" },
	{ "10.0.0.1/33" }, { "10.0.0.1/" }, { "10.0.0.1" }, { "10.0.0.1/24/1" },
	{ "10.0.0.1/08" }, { "10.0.0.1/-1" }, { "10.0.0.1/ 8" }, { "/24" },
	{ "2001:db8::/129" }, { "2001:db8::/1000" }, { "300.0.0.0/8" }, { "" },
}

function TestIpnet:test_parse_cidr_table()
	for _, c in ipairs(CIDR_CASES) do
		local a, n = ipnet.parse_cidr(c[1])
		if c[2] then
			lu.assertNotNil(a, c[1])
			lu.assertEquals(ipnet.format(a), c[2])
			lu.assertEquals(ipnet.format(n), c[3])
			lu.assertEquals(ipnet.network(a), n)
			lu.assertEquals(ipnet.network(c[1]), n)
		else
			lu.assertNil(a, c[1])
			lu.assertEquals(n, "invalid CIDR '" .. c[1] .. "'")
		end
	end
end

function TestIpnet:test_wrong_types_raise()
	lu.assertErrorMsgContains("bad argument #1 to 'parse_ip' (string expected, got number)",
		function() ipnet.parse_ip(10) end)
	lu.assertErrorMsgContains("bad argument #1 to 'parse_cidr'", function() ipnet.parse_cidr(nil) end)
	lu.assertErrorMsgContains("bad argument #1 to 'contains' (invalid CIDR '10.0.0.0/40')",
		function() ipnet.contains("10.0.0.0/40", "10.0.0.1") end)
	lu.assertErrorMsgContains("bad argument #2 to 'contains'", function() ipnet.contains("10.0.0.0/8", {}) end)
	lu.assertErrorMsgContains("bad argument #2 to 'host'", function() ipnet.host("10.0.0.0/8", 1.5) end)
	lu.assertErrorMsgContains("bad argument #2 to 'add'", function() ipnet.add("10.0.0.1", "1") end)
	lu.assertErrorMsgContains("bad argument #2 to 'prefix'", function() ipnet.prefix("10.0.0.1", 33) end)
	lu.assertErrorMsgContains("bad argument #1 to 'mask'", function() ipnet.mask(33) end)
	lu.assertErrorMsgContains("bad argument #1 to 'mac_format'", function() ipnet.mac_format("abc") end)
	lu.assertErrorMsgContains("bad argument #1 to 'mac_parse'", function() ipnet.mac_parse(false) end)
	lu.assertErrorMsgContains("bad argument #1 to 'format'",
		function() ipnet.format({ family = 4, bytes = "abc" }) end)
end

function TestIpnet:test_contains()
	local C = ipnet.contains
	lu.assertTrue(C("10.0.0.0/8", "10.255.255.255"))
	lu.assertTrue(C("10.0.0.0/8", "10.0.0.0"))
	lu.assertFalse(C("10.0.0.0/8", "11.0.0.0"))
	lu.assertFalse(C("10.0.0.0/8", "9.255.255.255"))
	lu.assertTrue(C("10.1.2.3/8", "10.9.9.9"))        -- host bits of net ignored
	lu.assertTrue(C("0.0.0.0/0", "255.255.255.255"))
	lu.assertTrue(C("10.0.0.0/8", "10.1.0.0/16"))      -- subnet
	lu.assertTrue(C("10.0.0.0/8", "10.0.0.0/8"))       -- itself
	lu.assertFalse(C("10.1.0.0/16", "10.0.0.0/8"))     -- larger
	lu.assertTrue(C("10.0.0.1", "10.0.0.1"))           -- an address is a /32
	lu.assertFalse(C("10.0.0.1", "10.0.0.2"))
	lu.assertFalse(C("::/0", "10.0.0.1"))              -- families never mix
	lu.assertFalse(C("0.0.0.0/0", "::ffff:10.0.0.1"))
	lu.assertTrue(C("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"))
	lu.assertFalse(C("2001:db8::/32", "2001:db9::"))
	lu.assertTrue(C("2001:db8::/33", "2001:db8:7fff::1"))
	lu.assertFalse(C("2001:db8::/33", "2001:db8:8000::"))
	local net = ipnet.network("192.168.1.0/24")
	lu.assertTrue(net:contains("192.168.1.7"))
end

function TestIpnet:test_overlaps()
	local O = ipnet.overlaps
	lu.assertTrue(O("10.0.0.0/8", "10.1.0.0/16"))
	lu.assertTrue(O("10.1.0.0/16", "10.0.0.0/8"))
	lu.assertTrue(O("10.0.0.0/24", "10.0.0.0/24"))
	lu.assertFalse(O("10.0.0.0/24", "10.0.1.0/24"))     -- adjacent
	lu.assertFalse(O("10.0.0.0/25", "10.0.0.128/25"))
	lu.assertTrue(O("0.0.0.0/0", "1.2.3.4/32"))
	lu.assertTrue(O("172.17.0.1/16", "172.17.200.0/24"))
	lu.assertFalse(O("10.0.0.0/8", "::/0"))
	lu.assertTrue(O("fd00::/8", "fdff::/16"))
	lu.assertFalse(O("fd00::/64", "fd00:0:0:1::/64"))
end

function TestIpnet:test_host_broadcast_first_last()
	local F = ipnet.format
	lu.assertEquals(F(ipnet.host("10.0.0.0/24", 0)), "10.0.0.0")
	lu.assertEquals(F(ipnet.host("10.0.0.77/24", 1)), "10.0.0.1")
	lu.assertEquals(F(ipnet.host("10.0.0.0/24", 255)), "10.0.0.255")
	lu.assertEquals(F(ipnet.host("10.0.0.0/24", -1)), "10.0.0.255")
	lu.assertEquals(F(ipnet.host("10.0.0.0/24", -256)), "10.0.0.0")
	lu.assertEquals(F(ipnet.host("172.16.0.0/12", 65536 + 2)), "172.17.0.2")
	local h, msg = ipnet.host("10.0.0.0/24", 256)
	lu.assertNil(h)
	lu.assertEquals(msg, "address index 256 out of range for 10.0.0.0/24")
	lu.assertNil(ipnet.host("10.0.0.0/24", -257))
	lu.assertNil(ipnet.host("255.255.255.0/24", 1 << 40))
	lu.assertNil(ipnet.host("0.0.0.0/0", math.mininteger))
	lu.assertEquals(F(ipnet.host("2001:db8::/64", 1)), "2001:db8::1")
	lu.assertEquals(F(ipnet.host("2001:db8::/64", -1)), "2001:db8::ffff:ffff:ffff:ffff")
	lu.assertEquals(F(ipnet.host("::/0", math.maxinteger)), "::7fff:ffff:ffff:ffff")

	lu.assertEquals(F(ipnet.broadcast("172.17.0.1/16")), "172.17.255.255")
	lu.assertEquals(F(ipnet.broadcast("10.0.0.5/32")), "10.0.0.5")
	lu.assertEquals(F(ipnet.broadcast("0.0.0.0/0")), "255.255.255.255")
	local b, bmsg = ipnet.broadcast("fd00::/64")
	lu.assertNil(b)
	lu.assertStrContains(bmsg, "no broadcast")

	local cases = {   -- net, first_host, last_host
		{ "10.0.0.0/24", "10.0.0.1", "10.0.0.254" },
		{ "10.0.0.0/30", "10.0.0.1", "10.0.0.2" },
		{ "10.0.0.0/31", "10.0.0.0", "10.0.0.1" },
		{ "10.0.0.9/32", "10.0.0.9", "10.0.0.9" },
		{ "fd00::/64", "fd00::1", "fd00::ffff:ffff:ffff:ffff" },
		{ "fd00::/127", "fd00::", "fd00::1" },
		{ "fd00::5/128", "fd00::5", "fd00::5" },
	}
	for _, c in ipairs(cases) do
		lu.assertEquals(F(ipnet.first_host(c[1])), c[2], c[1])
		lu.assertEquals(F(ipnet.last_host(c[1])), c[3], c[1])
	end
end

function TestIpnet:test_size_mask()
	lu.assertEquals(ipnet.size("10.0.0.0/24"), 256)
	lu.assertEquals(ipnet.size("10.0.0.1"), 1)
	lu.assertEquals(ipnet.size("0.0.0.0/0"), 1 << 32)
	lu.assertEquals(math.type(ipnet.size("fd00::/66")), "integer")
	lu.assertEquals(ipnet.size("fd00::/66"), 1 << 62)
	lu.assertEquals(math.type(ipnet.size("fd00::/64")), "float")
	lu.assertEquals(ipnet.size("fd00::/64"), 2.0 ^ 64)
	lu.assertEquals(ipnet.size("::/0"), 2.0 ^ 128)

	lu.assertEquals(ipnet.mask("10.0.0.0/24"), "255.255.255.0")
	lu.assertEquals(ipnet.mask(20), "255.255.240.0")
	lu.assertEquals(ipnet.mask(0), "0.0.0.0")
	lu.assertEquals(ipnet.mask(32), "255.255.255.255")
	lu.assertEquals(ipnet.mask(64, 6), "ffff:ffff:ffff:ffff::")
	lu.assertEquals(ipnet.mask("fd00::/57"), "ffff:ffff:ffff:ff80::")
	lu.assertEquals(ipnet.mask(0, 6), "::")
end

function TestIpnet:test_compare_add_next()
	local P = ipnet.parse_ip
	lu.assertEquals(ipnet.compare("10.0.0.1", "10.0.0.2"), -1)
	lu.assertEquals(ipnet.compare("10.0.0.2", "10.0.0.1"), 1)
	lu.assertEquals(ipnet.compare("10.0.0.1", "10.0.0.1"), 0)
	lu.assertEquals(ipnet.compare("9.0.0.0", "10.0.0.0"), -1)      -- numeric, not textual
	lu.assertEquals(ipnet.compare("255.255.255.255", "::"), -1)     -- IPv4 first
	lu.assertEquals(ipnet.compare("10.0.0.0", "10.0.0.0/8"), -1)
	lu.assertEquals(ipnet.compare("10.0.0.0/8", "10.0.0.0/16"), -1)
	lu.assertTrue(P("10.0.0.1") < P("10.0.0.2"))
	lu.assertTrue(P("fd00::1") <= P("fd00::1"))
	local list = { P("10.0.0.10"), P("fd00::"), P("10.0.0.9"), P("1.0.0.0") }
	table.sort(list)
	lu.assertEquals(tostring(list[1]) .. " " .. tostring(list[4]), "1.0.0.0 fd00::")

	lu.assertEquals(tostring(ipnet.next("10.0.0.255")), "10.0.1.0")
	lu.assertEquals(tostring(ipnet.add("10.0.0.1", -2)), "9.255.255.255")
	lu.assertEquals(tostring(ipnet.add("10.0.0.1/24", 5)), "10.0.0.6/24")
	lu.assertEquals(tostring(ipnet.next("fd00::ffff:ffff")), "fd00::1:0:0")
	lu.assertEquals(tostring(ipnet.add("::", math.maxinteger)), "::7fff:ffff:ffff:ffff")
	lu.assertEquals(tostring(ipnet.add("::1:0:0:0:0", math.mininteger)), "::8000:0:0:0")
	local x, msg = ipnet.next("255.255.255.255")
	lu.assertNil(x)
	lu.assertEquals(msg, "address overflow: 255.255.255.255 + 1")
	lu.assertNil(ipnet.add("0.0.0.0", -1))
	lu.assertNil(ipnet.add("1.0.0.0", 1 << 32))
	lu.assertNil(ipnet.next("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
	lu.assertNil(ipnet.add("::", -1))
end

function TestIpnet:test_prefix_addr()
	local p = ipnet.prefix("10.0.0.7", 24)
	lu.assertEquals(tostring(p), "10.0.0.7/24")
	lu.assertEquals(tostring(ipnet.addr(p)), "10.0.0.7")
	lu.assertEquals(tostring(p:network()), "10.0.0.0/24")
	lu.assertNil(ipnet.addr(p).plen)
end

function TestIpnet:test_mac()
	local b = ipnet.mac_parse("02:42:AC:11:00:02")
	lu.assertEquals(b, "\2\66\172\17\0\2")
	lu.assertEquals(ipnet.mac_format(b), "02:42:ac:11:00:02")
	lu.assertEquals(ipnet.mac_parse("02-42-ac-11-00-02"), b)
	for _, bad in ipairs { "", "02:42:ac:11:00", "02:42:ac:11:00:02:03", "02:42:ac:11:00:2",
		"02:42-ac:11:00:02", "02:42:ac:11:00:0g", "0242.ac11.0002", " 02:42:ac:11:00:02", "02::42:ac:11:00:02" } do
		local m, msg = ipnet.mac_parse(bad)
		lu.assertNil(m, bad)
		lu.assertEquals(msg, "invalid MAC address '" .. bad .. "'")
	end

	lu.assertEquals(ipnet.mac_from_ipv4("172.17.0.2"), "02:42:ac:11:00:02")
	lu.assertEquals(ipnet.mac_from_ipv4("10.0.0.255/24"), "02:42:0a:00:00:ff")
	local m, msg = ipnet.mac_from_ipv4("fd00::1")
	lu.assertNil(m)
	lu.assertStrContains(msg, "not an IPv4 address")

	lu.assertEquals(tostring(ipnet.ipv6_from_mac("fd00:1::/64", "02:42:ac:11:00:02")), "fd00:1::242:ac11:2/64")
	lu.assertEquals(tostring(ipnet.ipv6_from_mac("2001:db8:1::99/80", "02:42:ac:11:00:02")),
		"2001:db8:1::242:ac11:2/80")
	lu.assertNil(ipnet.ipv6_from_mac("fd00::/96", "02:42:ac:11:00:02"))
	lu.assertNil(ipnet.ipv6_from_mac("10.0.0.0/8", "02:42:ac:11:00:02"))
	local v, vmsg = ipnet.ipv6_from_mac("fd00::/64", "nope")
	lu.assertNil(v)
	lu.assertEquals(vmsg, "invalid MAC address 'nope'")

	local seen = {}
	for _ = 1, 20 do
		local r = ipnet.random_mac()
		lu.assertStrMatches(r, "02:42:%x%x:%x%x:%x%x:%x%x")
		seen[r] = true
	end
	local n = 0
	for _ in pairs(seen) do n = n + 1 end
	lu.assertTrue(n >= 19)
end
