-- spec/test_addr.lua: interface addresses (csrc/addr.c).
-- Links are made with `ip link add` (veth pairs: this kernel has no dummy
-- driver); `ip -j addr show` is the independent witness.
local lu = require "luaunit"
local H = require "helper"
local core = require "brisk.core"
local E = core.errno

TestAddr = {}

function TestAddr:setUp()
	self.h = assert(core.open())
	self.links = {}
end

function TestAddr:tearDown()
	for _, l in ipairs(self.links) do H.sh("ip link del dev " .. l) end
	self.h:close()
end

-- A veth pair, left down (IPv6 addresses then stay put: no DAD, no
-- link-local address), returns the name of one end.
function TestAddr:link()
	local name = H.name("ad")
	H.must("ip link add " .. name .. " type veth peer name " .. name .. "p")
	self.links[#self.links + 1] = name
	return name
end

-- brisk's entries for `dev` without the keys ip prints elsewhere.
local function strip(list, dev)
	local out = {}
	for _, a in ipairs(list) do
		if not dev or a.dev == dev then
			local c = {}
			for k, v in pairs(a) do c[k] = v end
			c.ifindex, c.dev = nil, nil
			out[#out + 1] = c
		end
	end
	return out
end

local function ip_addrs(dev, fam)
	local l = H.ip((fam and fam .. " " or "") .. "addr show dev " .. dev)
	return l[1] and l[1].addr_info or {}
end

local function find(list, addr)
	for _, a in ipairs(list) do
		if a["local"] == addr then return a end
	end
end

function TestAddr:test_add_list_ipv4_and_ipv6_match_ip()
	local h, d = self.h, self:link()
	lu.assertEquals(h:addr_list{ dev = d }, {})
	lu.assertTrue(h:addr_add{ dev = d, address = "10.10.0.1/24" })
	lu.assertTrue(h:addr_add{ dev = d, address = "10.10.1.1/16", scope = "link" })
	lu.assertTrue(h:addr_add{ dev = d, address = "2001:db8:10::1/64" })
	lu.assertTrue(h:addr_add{ dev = d, address = "2001:db8:11::1" })
	local got = h:addr_list{ dev = d }
	lu.assertEquals(#got, 4)
	lu.assertEquals(strip(got), ip_addrs(d))
	local ifindex = H.iplink(d).ifindex
	for _, a in ipairs(got) do
		lu.assertEquals(a.dev, d)
		lu.assertEquals(a.ifindex, ifindex)
	end
	local a = find(got, "10.10.1.1")
	lu.assertEquals(a.scope, "link")
	lu.assertEquals(a.prefixlen, 16)
	lu.assertEquals(find(got, "2001:db8:11::1").prefixlen, 128)
	lu.assertEquals(find(got, "2001:db8:10::1").family, "inet6")
end

function TestAddr:test_list_by_ifindex_link_table_and_family()
	local h, d = self.h, self:link()
	assert(h:addr_add{ dev = d, address = "10.11.0.1/24" })
	assert(h:addr_add{ dev = d, address = "2001:db8:12::1/64" })
	local ifindex = H.iplink(d).ifindex
	local by_name = h:addr_list{ dev = d }
	lu.assertEquals(h:addr_list{ dev = ifindex }, by_name)
	lu.assertEquals(h:addr_list{ dev = { ifindex = ifindex } }, by_name)
	lu.assertEquals(h:addr_list{ dev = { ifname = d } }, by_name)
	local v4 = h:addr_list{ dev = d, family = "inet" }
	lu.assertEquals(strip(v4), ip_addrs(d, "-4"))
	lu.assertEquals(#v4, 1)
	local v6 = h:addr_list{ dev = d, family = "inet6" }
	lu.assertEquals(strip(v6), ip_addrs(d, "-6"))
	lu.assertEquals(#v6, 1)
end

function TestAddr:test_list_all_links_matches_ip()
	local h = self.h
	local d1, d2 = self:link(), self:link()
	assert(h:addr_add{ dev = d1, address = "10.12.0.1/24" })
	assert(h:addr_add{ dev = d2, address = "10.12.1.1/24" })
	local all = assert(h:addr_list())
	local seen = 0
	for _, l in ipairs(H.ip("addr show")) do
		lu.assertEquals(strip(all, l.ifname), l.addr_info or {}, l.ifname)
		seen = seen + #(l.addr_info or {})
	end
	lu.assertEquals(#all, seen)
	lu.assertNotNil(find(all, "127.0.0.1"))
	lu.assertEquals(find(all, "10.12.1.1").dev, d2)
	local v6 = {}
	for _, a in ipairs(all) do
		if a.family == "inet6" then v6[#v6 + 1] = a end
	end
	lu.assertEquals(h:addr_list{ family = "inet6" }, v6)
end

function TestAddr:test_broadcast_given_and_computed_like_brd_plus()
	local h, d, w = self.h, self:link(), self:link()
	lu.assertTrue(h:addr_add{ dev = d, address = "10.13.0.1/24", broadcast = "10.13.0.77" })
	lu.assertEquals(find(h:addr_list{ dev = d }, "10.13.0.1").broadcast, "10.13.0.77")
	lu.assertEquals(find(ip_addrs(d), "10.13.0.1").broadcast, "10.13.0.77")
	-- computed: the same as `ip addr add ... brd +` on a witness link
	local cases = { "10.14.0.1/24", "10.15.0.5/30", "10.16.0.0/31", "10.17.0.1/32",
		"10.18.200.1/17", "10.19.0.1/8" }
	for _, c in ipairs(cases) do
		lu.assertTrue(h:addr_add{ dev = d, address = c, broadcast = true })
		H.must("ip addr add " .. c .. " brd + dev " .. w)
	end
	local mine, theirs = ip_addrs(d), ip_addrs(w)
	for _, c in ipairs(cases) do
		local addr = c:match("^[^/]+")
		lu.assertEquals(find(mine, addr).broadcast, find(theirs, addr).broadcast, c)
	end
	lu.assertEquals(find(mine, "10.14.0.1").broadcast, "10.14.0.255")
	lu.assertEquals(find(mine, "10.15.0.5").broadcast, "10.15.0.7")
	lu.assertNil(find(mine, "10.16.0.0").broadcast)
	lu.assertNil(find(mine, "10.17.0.1").broadcast)
	-- broadcast = false and absent: none
	lu.assertTrue(h:addr_add{ dev = d, address = "10.20.0.1/24", broadcast = false })
	lu.assertNil(find(h:addr_list{ dev = d }, "10.20.0.1").broadcast)
end

function TestAddr:test_flags_nodad_noprefixroute_visible_in_ip()
	local h, d = self.h, self:link()
	lu.assertTrue(h:addr_add{ dev = d, address = "2001:db8:20::1/64", nodad = true })
	lu.assertTrue(h:addr_add{ dev = d, address = "2001:db8:21::1/64" })
	lu.assertTrue(h:addr_add{ dev = d, address = "10.21.0.1/24", noprefixroute = true })
	lu.assertTrue(h:addr_add{ dev = d, address = "2001:db8:22::1/64", noprefixroute = true,
		nodad = true })
	local ipv = ip_addrs(d)
	lu.assertTrue(find(ipv, "2001:db8:20::1").nodad)
	lu.assertNil(find(ipv, "2001:db8:21::1").nodad)
	lu.assertTrue(find(ipv, "10.21.0.1").noprefixroute)
	lu.assertTrue(find(ipv, "2001:db8:22::1").noprefixroute)   -- IFA_FLAGS (> 8 bits)
	lu.assertTrue(find(ipv, "2001:db8:22::1").nodad)
	lu.assertEquals(strip(h:addr_list{ dev = d }), ipv)
	-- noprefixroute really means no prefix route
	local H4 = H.ip("route show table all")
	for _, r in ipairs(H4) do lu.assertNotEquals(r.dst, "10.21.0.0/24") end
end

function TestAddr:test_label_scope_lifetimes_secondary()
	local h, d = self.h, self:link()
	lu.assertTrue(h:addr_add{ dev = d, address = "10.22.0.1/24", label = d .. ":x" })
	lu.assertTrue(h:addr_add{ dev = d, address = "10.22.0.2/24" })
	lu.assertTrue(h:addr_add{ dev = d, address = "127.0.0.5/8" })
	lu.assertTrue(h:addr_add{ dev = d, address = "10.23.0.1/24", scope = 200 })
	lu.assertTrue(h:addr_add{ dev = d, address = "10.24.0.1/24", valid_lft = 100,
		preferred_lft = 50 })
	local got, ipv = h:addr_list{ dev = d }, ip_addrs(d)
	lu.assertEquals(find(got, "10.22.0.1").label, d .. ":x")
	lu.assertEquals(find(ipv, "10.22.0.1").label, d .. ":x")
	lu.assertTrue(find(got, "10.22.0.2").secondary)
	lu.assertTrue(find(ipv, "10.22.0.2").secondary)
	lu.assertEquals(find(got, "127.0.0.5").scope, "host")        -- ip's default for 127/8
	lu.assertEquals(find(ipv, "127.0.0.5").scope, "host")
	lu.assertEquals(find(got, "10.23.0.1").scope, "site")
	local a, b = find(got, "10.24.0.1"), find(ipv, "10.24.0.1")
	lu.assertTrue(a.dynamic)
	lu.assertTrue(b.dynamic)
	lu.assertTrue(a.valid_life_time <= 100 and a.valid_life_time >= 95)
	lu.assertTrue(a.preferred_life_time <= 50 and a.preferred_life_time >= 45)
	lu.assertNil(find(got, "10.22.0.1").dynamic)
end

function TestAddr:test_replace_updates_instead_of_eexist()
	local h, d = self.h, self:link()
	assert(h:addr_add{ dev = d, address = "10.25.0.1/24" })
	lu.assertTrue(h:addr_add{ dev = d, address = "10.25.0.1/24", replace = true,
		valid_lft = 200 })
	local a = find(ip_addrs(d), "10.25.0.1")
	lu.assertTrue(a.dynamic)
	lu.assertTrue(a.valid_life_time <= 200 and a.valid_life_time > 190)
	-- replace also creates
	lu.assertTrue(h:addr_add{ dev = d, address = "10.25.0.9/24", replace = true })
	lu.assertNotNil(find(ip_addrs(d), "10.25.0.9"))
end

function TestAddr:test_del()
	local h, d = self.h, self:link()
	assert(h:addr_add{ dev = d, address = "10.26.0.1/24" })
	assert(h:addr_add{ dev = d, address = "10.26.1.1/24" })
	assert(h:addr_add{ dev = d, address = "2001:db8:26::1/64" })
	lu.assertTrue(h:addr_del{ dev = d, address = "10.26.0.1/24" })
	lu.assertTrue(h:addr_del{ dev = d, address = "10.26.1.1" })   -- any prefix (IPv4)
	lu.assertTrue(h:addr_del{ dev = d, address = "2001:db8:26::1/64" })
	lu.assertEquals(ip_addrs(d), {})
	lu.assertEquals(h:addr_list{ dev = d }, {})
end

function TestAddr:test_in_other_namespace()
	local ns = H.netns_add("addrns1")
	local h = assert(core.open(ns))
	H.must("ip -n " .. ns .. " link add nsd0 type veth peer name nsd0p")
	lu.assertTrue(h:addr_add{ dev = "nsd0", address = "10.27.0.1/24" })
	local l = H.ip("-n " .. ns .. " addr show dev nsd0")
	lu.assertEquals(l[1].addr_info[1]["local"], "10.27.0.1")
	lu.assertEquals(#h:addr_list{ dev = "nsd0" }, 1)
	lu.assertNil(H.iplink("nsd0"))   -- not in ours
	local r, msg, err = self.h:addr_list{ dev = "nsd0" }
	lu.assertNil(r)
	lu.assertEquals(err, E.ENODEV)
	h:close()
	H.netns_del(ns)
end

-- --- errors ---

function TestAddr:test_eexist_leaves_state()
	local h, d = self.h, self:link()
	assert(h:addr_add{ dev = d, address = "10.30.0.1/24" })
	assert(h:addr_add{ dev = d, address = "2001:db8:30::1/64" })
	local before = H.snapshot()
	local ok, msg, err = h:addr_add{ dev = d, address = "10.30.0.1/24" }
	lu.assertNil(ok)
	lu.assertEquals(err, E.EEXIST)
	lu.assertStrContains(msg, "addr_add " .. d .. " 10.30.0.1/24: ")
	ok, msg, err = h:addr_add{ dev = d, address = "2001:db8:30::1/64" }
	lu.assertNil(ok)
	lu.assertEquals(err, E.EEXIST)
	lu.assertEquals(H.snapshot(), before)
end

function TestAddr:test_enodev_and_bad_names_leave_state()
	local h = self.h
	local before = H.snapshot()
	local ok, msg, err = h:addr_add{ dev = "nosuchdev", address = "10.31.0.1/24" }
	lu.assertNil(ok)
	lu.assertEquals(err, E.ENODEV)
	lu.assertStrContains(msg, "addr_add nosuchdev")
	ok, msg, err = h:addr_add{ dev = 99999, address = "10.31.0.1/24" }
	lu.assertNil(ok)
	lu.assertEquals(err, E.ENODEV)
	ok, msg, err = h:addr_add{ dev = "a-name-far-too-long", address = "10.31.0.1/24" }
	lu.assertNil(ok)
	lu.assertEquals(err, E.ENAMETOOLONG)
	ok, msg, err = h:addr_add{ dev = "bad/name", address = "10.31.0.1/24" }
	lu.assertNil(ok)
	lu.assertEquals(err, E.EINVAL)
	ok, msg, err = h:addr_del{ dev = "nosuchdev", address = "10.31.0.1/24" }
	lu.assertNil(ok)
	lu.assertEquals(err, E.ENODEV)
	ok, msg, err = h:addr_list{ dev = "nosuchdev" }
	lu.assertNil(ok)
	lu.assertEquals(err, E.ENODEV)
	lu.assertStrContains(msg, "addr_list nosuchdev")
	ok, msg, err = h:addr_list{ dev = 99999 }
	lu.assertNil(ok)
	lu.assertEquals(err, E.ENODEV)
	lu.assertEquals(H.snapshot(), before)
end

function TestAddr:test_del_absent_eaddrnotavail()
	local h, d = self.h, self:link()
	assert(h:addr_add{ dev = d, address = "10.32.0.1/24" })
	local before = H.snapshot()
	for _, a in ipairs{ "10.32.0.2/24", "10.32.0.1/25", "2001:db8:32::1/64", "10.33.0.1" } do
		local ok, msg, err = h:addr_del{ dev = d, address = a }
		lu.assertNil(ok, a)
		lu.assertEquals(err, E.EADDRNOTAVAIL, a)
		lu.assertStrContains(msg, "addr_del " .. d .. " " .. a)
	end
	lu.assertEquals(H.snapshot(), before)
end

function TestAddr:test_invalid_addresses_send_nothing()
	local h, d = self.h, self:link()
	local before = H.snapshot()
	for _, a in ipairs{ "10.0.0.1/33", "300.1.1.1/24", "abc", "", "10.0.0.1/", "10.0.0.1/-1",
		"10.0.0.1/2x", "1.2.3/24", "2001:db8::1/129", "2001:db8:::1/64", " 10.0.0.1/24",
		"10.0.0.1/24 " } do
		for _, op in ipairs{ "addr_add", "addr_del" } do
			local ok, msg, err = h[op](h, { dev = d, address = a })
			lu.assertNil(ok, a)
			lu.assertEquals(err, E.EINVAL, a)
			lu.assertEquals(msg, op .. " " .. d .. ": invalid address '" .. a .. "'")
		end
	end
	-- bad input wins over a missing link: nothing is even looked up
	local ok, msg, err = h:addr_add{ dev = "nosuchdev", address = "abc" }
	lu.assertEquals(err, E.EINVAL)
	lu.assertEquals(msg, "addr_add nosuchdev: invalid address 'abc'")
	for _, bad in ipairs{
		{ address = "10.0.0.1/24", broadcast = "10.0.0.300" },
		{ address = "10.0.0.1/24", broadcast = "10.0.0.255/24" },
		{ address = "10.0.0.1/24", broadcast = "2001:db8::ff" },
		{ address = "2001:db8::1/64", broadcast = true },
		{ address = "2001:db8::1/64", broadcast = "10.0.0.255" },
		{ address = "2001:db8::1/64", label = "x" },
		{ address = "10.0.0.1/24", label = "" },
		{ address = "10.0.0.1/24", label = "sixteen-chars-xx" },
	} do
		bad.dev = d
		ok, msg, err = h:addr_add(bad)
		lu.assertNil(ok, msg)
		lu.assertEquals(err, E.EINVAL, bad.address)
		lu.assertStrContains(msg, "addr_add " .. d .. ": ")
	end
	lu.assertEquals(H.snapshot(), before)
end

function TestAddr:test_bad_arguments_raise()
	local h, d = self.h, self:link()
	local before = H.snapshot()
	local function raises(pat, f) lu.assertErrorMsgContains(pat, f) end
	raises("table expected", function() h:addr_add() end)
	raises("table expected", function() h:addr_add("10.0.0.1/24") end)
	raises("table expected", function() h:addr_del(nil) end)
	raises("table expected", function() h:addr_list("eth0") end)
	raises("no more arguments", function() h:addr_add({ dev = d, address = "10.0.0.1/24" }, 1) end)
	raises("no more arguments", function() h:addr_list(nil, 1) end)
	raises("unknown field 'adress'", function() h:addr_add{ dev = d, adress = "10.0.0.1/24" } end)
	raises("unknown field 'broadcast'", function() h:addr_del{ dev = d, address = "10.0.0.1/24",
		broadcast = true } end)
	raises("unknown field 'ifname'", function() h:addr_list{ ifname = d } end)
	raises("field 'address' is required", function() h:addr_add{ dev = d } end)
	raises("field 'address' is required", function() h:addr_del{ dev = d } end)
	raises("field 'dev' is required", function() h:addr_add{ address = "10.0.0.1/24" } end)
	raises("field 'address' must be a string", function() h:addr_add{ dev = d, address = 10 } end)
	raises("field 'dev' must be", function() h:addr_add{ dev = true, address = "10.0.0.1/24" } end)
	raises("field 'dev' must be", function() h:addr_add{ dev = 1.5, address = "10.0.0.1/24" } end)
	raises("ifindex must be a positive", function() h:addr_add{ dev = -3, address = "10.0.0.1/24" } end)
	raises("field 'nodad' must be a boolean", function()
		h:addr_add{ dev = d, address = "10.0.0.1/24", nodad = 1 } end)
	raises("field 'replace' must be a boolean", function()
		h:addr_add{ dev = d, address = "10.0.0.1/24", replace = "yes" } end)
	raises("field 'broadcast' must be", function()
		h:addr_add{ dev = d, address = "10.0.0.1/24", broadcast = 5 } end)
	raises("unknown scope 'galaxy'", function()
		h:addr_add{ dev = d, address = "10.0.0.1/24", scope = "galaxy" } end)
	raises("field 'scope' must be 0..255", function()
		h:addr_add{ dev = d, address = "10.0.0.1/24", scope = 256 } end)
	raises("field 'valid_lft' must be", function()
		h:addr_add{ dev = d, address = "10.0.0.1/24", valid_lft = -1 } end)
	raises("field 'label' must be a string", function()
		h:addr_add{ dev = d, address = "10.0.0.1/24", label = {} } end)
	raises("field 'family' must be \"inet\" or \"inet6\"", function() h:addr_list{ family = "ipv4" } end)
	h:close()
	raises("closed netlink handle", function() h:addr_list() end)
	raises("closed netlink handle", function() h:addr_add{ dev = d, address = "10.0.0.1/24" } end)
	self.h = assert(core.open())
	lu.assertEquals(H.snapshot(), before)
end
