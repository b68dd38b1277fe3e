-- spec/test_route.lua: routes (csrc/route.c).
-- Links are veth pairs made with `ip link add` (this kernel has no dummy
-- driver), up, without IPv6 link-local addresses (addrgenmode none) and with
-- nodad addresses, so nothing changes behind the tests' backs. `ip -j route
-- show` is the independent witness.
local lu = require "luaunit"
local H = require "helper"
local core = require "brisk.core"
local E = core.errno

TestRoute = {}

function TestRoute:setUp()
	self.h = assert(core.open())
	self.links = {}
	self.cleanup = {}
end

function TestRoute:tearDown()
	for _, c in ipairs(self.cleanup) do H.sh(c) end
	for _, l in ipairs(self.links) do H.sh("ip link del dev " .. l) end
	self.h:close()
end

-- An up veth pair whose end `d` has 10.N.0.1/24 and 2001:db8:N::1/64.
function TestRoute:link(n)
	local d = H.name("rt")
	H.must("ip link add " .. d .. " type veth peer name " .. d .. "p")
	self.links[#self.links + 1] = d
	for _, x in ipairs{ d, d .. "p" } do
		H.must("ip link set " .. x .. " addrgenmode none")
		H.must("ip link set " .. x .. " up")
	end
	H.must(("ip addr add 10.%d.0.1/24 dev %s"):format(n, d))
	H.must(("ip addr add 2001:db8:%d::1/64 dev %s nodad"):format(n, d))
	return d
end

local function find(list, dst, extra)
	for _, r in ipairs(list) do
		if r.dst == dst then
			local ok = true
			for k, v in pairs(extra or {}) do
				if r[k] ~= v then ok = false end
			end
			if ok then return r end
		end
	end
end

-- Routes of table `t` ("100", "local"...) from `ip -j route show table all`.
local function ip_table(t, fam)
	local out = {}
	for _, r in ipairs(H.ip((fam or "") .. " route show table all")) do
		if r.table == t then out[#out + 1] = r end
	end
	return out
end

function TestRoute:test_list_main_matches_ip_both_families()
	local h, d = self.h, self:link(40)
	assert(h:route_add{ dst = "10.140.0.0/16", dev = d })
	assert(h:route_add{ dst = "2001:db8:140::/48", dev = d })
	lu.assertEquals(h:route_list{ family = "inet" }, H.ip("-4 route show"))
	lu.assertEquals(h:route_list{ family = "inet6" }, H.ip("-6 route show"))
	local both = h:route_list()
	local expect = H.ip("-4 route show")
	for _, r in ipairs(H.ip("-6 route show")) do expect[#expect + 1] = r end
	lu.assertEquals(both, expect)
	lu.assertNotNil(find(both, "10.40.0.0/24", { dev = d, protocol = "kernel", scope = "link",
		prefsrc = "10.40.0.1" }))
	lu.assertNotNil(find(both, "2001:db8:40::/64", { dev = d, metric = 256, pref = "medium" }))
	-- table "all" is ip's `route show table all`, in the same order
	local all = h:route_list{ table = "all" }
	lu.assertEquals(all, H.ip("route show table all"))
	lu.assertNotNil(find(all, "10.40.0.1", { table = "local", type = "local", scope = "host" }))
	lu.assertEquals(h:route_list{ table = "local", family = "inet" }, ip_table("local", "-4"))
end

function TestRoute:test_default_route_via_gateway_v4_v6()
	local h, d = self.h, self:link(41)
	lu.assertTrue(h:route_add{ dst = "default", gateway = "10.41.0.254" })
	lu.assertTrue(h:route_add{ dst = "default", gateway = "2001:db8:41::fe", dev = d })
	local r4 = find(h:route_list{ family = "inet" }, "default")
	lu.assertEquals(r4, { dst = "default", gateway = "10.41.0.254", dev = d, flags = {} })
	lu.assertEquals(r4, find(H.ip("-4 route show"), "default"))
	local r6 = find(h:route_list{ family = "inet6" }, "default")
	lu.assertEquals(r6.gateway, "2001:db8:41::fe")
	lu.assertEquals(r6.metric, 1024)
	lu.assertEquals(r6, find(H.ip("-6 route show"), "default"))
	lu.assertTrue(h:route_del{ dst = "default", gateway = "10.41.0.254" })
	lu.assertTrue(h:route_del{ dst = "default", family = "inet6" })
	lu.assertNil(find(H.ip("-4 route show"), "default"))
	lu.assertNil(find(H.ip("-6 route show"), "default"))
end

function TestRoute:test_onlink_host_metric_protocol_prefsrc_scope()
	local h, d = self.h, self:link(42)
	local ifindex = math.tointeger(H.iplink(d).ifindex)
	lu.assertTrue(h:route_add{ dst = "192.168.42.0/24", gateway = "192.0.2.1", dev = d,
		onlink = true })
	lu.assertTrue(h:route_add{ dst = "192.168.43.7", dev = ifindex, metric = 7,
		protocol = "static" })
	lu.assertTrue(h:route_add{ dst = "192.168.44.0/24", dev = { ifname = d },
		prefsrc = "10.42.0.1", protocol = 99, scope = "host" })
	lu.assertTrue(h:route_add{ dst = "2001:db8:4242::5", dev = d, protocol = "bird" })
	local mine = h:route_list()
	local onlink = find(mine, "192.168.42.0/24")
	lu.assertEquals(onlink.flags, { "onlink" })
	lu.assertEquals(onlink.gateway, "192.0.2.1")
	lu.assertEquals(find(mine, "192.168.43.7"), { dst = "192.168.43.7", dev = d, metric = 7,
		protocol = "static", scope = "link", flags = {} })
	lu.assertEquals(find(mine, "192.168.44.0/24").protocol, "openr")
	lu.assertEquals(find(mine, "192.168.44.0/24").scope, "host")
	lu.assertEquals(find(mine, "192.168.44.0/24").prefsrc, "10.42.0.1")
	lu.assertEquals(find(mine, "2001:db8:4242::5").protocol, "bird")
	local theirs = H.ip("-4 route show")
	for _, r in ipairs(H.ip("-6 route show")) do theirs[#theirs + 1] = r end
	lu.assertEquals(mine, theirs)
end

function TestRoute:test_types()
	local h = self.h
	for _, t in ipairs{ "blackhole", "unreachable", "prohibit", "throw" } do
		lu.assertTrue(h:route_add{ dst = "198.51.100.0/24", type = t, table = 142 }, t)
		lu.assertTrue(h:route_add{ dst = "2001:db8:ff::/48", type = t, table = 142 }, t)
		local mine = h:route_list{ table = 142 }
		lu.assertEquals(mine, ip_table("142"), t)
		lu.assertEquals(mine[1].type, t)
		lu.assertEquals(#mine, 2)
		lu.assertTrue(h:route_del{ dst = "198.51.100.0/24", table = 142 })
		lu.assertTrue(h:route_del{ dst = "2001:db8:ff::/48", table = "142" })
		lu.assertEquals(h:route_list{ table = 142 }, {})
	end
end

function TestRoute:test_non_main_table()
	local h, d = self.h, self:link(43)
	lu.assertTrue(h:route_add{ dst = "default", gateway = "10.43.0.254", table = 100 })
	lu.assertTrue(h:route_add{ dst = "10.143.0.0/16", dev = d, table = 100 })
	lu.assertTrue(h:route_add{ dst = "2001:db8:143::/48", dev = d, table = 100 })
	lu.assertTrue(h:route_add{ dst = "10.144.0.0/16", dev = d, table = 70000 })
	local t100 = h:route_list{ table = 100 }
	lu.assertEquals(#t100, 3)
	lu.assertEquals(t100, ip_table("100"))
	lu.assertEquals(find(t100, "default").table, "100")
	lu.assertEquals(h:route_list{ table = 100, family = "inet6" }, ip_table("100", "-6"))
	lu.assertEquals(h:route_list{ table = 70000 }, ip_table("70000"))
	lu.assertEquals(#h:route_list{ table = 70000 }, 1)
	-- not in main; in "all"
	lu.assertNil(find(h:route_list(), "10.143.0.0/16"))
	lu.assertNotNil(find(h:route_list{ table = "all" }, "10.143.0.0/16", { table = "100" }))
	-- ip's own filter drops the table key; everything else is equal
	local ip100 = H.ip("route show table 100")
	for _, r in ipairs(t100) do
		if r.dst ~= "2001:db8:143::/48" then r.table = nil end
	end
	t100[#t100] = nil
	lu.assertEquals(t100, ip100)
	-- delete needs the table: main has no such route
	local ok, _, err = h:route_del{ dst = "10.143.0.0/16" }
	lu.assertNil(ok)
	lu.assertEquals(err, E.ESRCH)
	lu.assertTrue(h:route_del{ dst = "10.143.0.0/16", table = 100 })
	lu.assertTrue(h:route_del{ dst = "10.144.0.0/16", table = 70000 })
	lu.assertNil(find(ip_table("100"), "10.143.0.0/16"))
	-- a table nobody made is empty, not an error
	lu.assertEquals(h:route_list{ table = 4242 }, {})
	lu.assertEquals(h:route_list{ table = 4242, family = "inet" }, {})
end

function TestRoute:test_replace_changes_gateway()
	local h, d = self.h, self:link(44)
	assert(h:route_add{ dst = "10.150.0.0/16", gateway = "10.44.0.2" })
	lu.assertTrue(h:route_replace{ dst = "10.150.0.0/16", gateway = "10.44.0.3" })
	local r = H.ip("-4 route show 10.150.0.0/16")
	lu.assertEquals(#r, 1)
	lu.assertEquals(r[1].gateway, "10.44.0.3")
	lu.assertEquals(find(h:route_list(), "10.150.0.0/16").gateway, "10.44.0.3")
	assert(h:route_add{ dst = "2001:db8:150::/48", gateway = "2001:db8:44::2" })
	lu.assertTrue(h:route_replace{ dst = "2001:db8:150::/48", gateway = "2001:db8:44::3" })
	r = H.ip("-6 route show 2001:db8:150::/48")
	lu.assertEquals(#r, 1)
	lu.assertEquals(r[1].gateway, "2001:db8:44::3")
	-- replace also creates
	lu.assertTrue(h:route_replace{ dst = "10.151.0.0/16", dev = d })
	lu.assertNotNil(find(H.ip("-4 route show"), "10.151.0.0/16"))
end

function TestRoute:test_list_by_dev()
	local h = self.h
	local d1, d2 = self:link(45), self:link(46)
	assert(h:route_add{ dst = "10.160.0.0/16", dev = d2 })
	local mine = h:route_list{ dev = d2 }
	local theirs = H.ip("route show dev " .. d2)
	local t6 = H.ip("-6 route show dev " .. d2)
	lu.assertEquals(#mine, #theirs + #t6)
	for i, r in ipairs(mine) do
		lu.assertEquals(r.dev, d2)
		r.dev = nil     -- ip leaves it out when filtering by dev
		lu.assertEquals(r, theirs[i] or t6[i - #theirs])
	end
	lu.assertNil(find(mine, "10.45.0.0/24"))
	lu.assertNotNil(find(h:route_list{ dev = d1 }, "10.45.0.0/24"))
end

function TestRoute:test_in_other_namespace()
	local ns = H.netns_add("routens1")
	local h = assert(core.open(ns))
	H.must("ip -n " .. ns .. " link add nsr0 type veth peer name nsr0p")
	H.must("ip -n " .. ns .. " link set nsr0 up")
	lu.assertTrue(h:route_add{ dst = "10.170.0.0/16", dev = "nsr0" })
	lu.assertNotNil(find(H.ip("-n " .. ns .. " route show"), "10.170.0.0/16"))
	lu.assertNotNil(find(h:route_list(), "10.170.0.0/16", { dev = "nsr0" }))
	lu.assertNil(find(self.h:route_list(), "10.170.0.0/16"))
	h:close()
	H.netns_del(ns)
end

-- --- errors ---

function TestRoute:test_eexist_leaves_state()
	local h, d = self.h, self:link(47)
	assert(h:route_add{ dst = "10.180.0.0/16", gateway = "10.47.0.2" })
	assert(h:route_add{ dst = "2001:db8:180::/48", dev = d })
	local before = H.snapshot()
	local ok, msg, err = h:route_add{ dst = "10.180.0.0/16", gateway = "10.47.0.3" }
	lu.assertNil(ok)
	lu.assertEquals(err, E.EEXIST)
	lu.assertStrContains(msg, "route_add 10.180.0.0/16: ")
	ok, msg, err = h:route_add{ dst = "2001:db8:180::/48", dev = d }
	lu.assertEquals(err, E.EEXIST)
	ok, msg, err = h:route_add{ dst = "10.47.0.0/24", dev = d, protocol = "kernel",
		prefsrc = "10.47.0.1" }
	lu.assertEquals(err, E.EEXIST)
	lu.assertEquals(H.snapshot(), before)
end

function TestRoute:test_enodev_enetunreach_leave_state()
	local h, d = self.h, self:link(48)
	local before = H.snapshot()
	local ok, msg, err = h:route_add{ dst = "10.190.0.0/16", dev = "nosuchdev" }
	lu.assertNil(ok)
	lu.assertEquals(err, E.ENODEV)
	lu.assertStrContains(msg, "route_add 10.190.0.0/16 dev nosuchdev: ")
	ok, msg, err = h:route_add{ dst = "10.190.0.0/16", dev = 99999 }
	lu.assertEquals(err, E.ENODEV)
	ok, msg, err = h:route_add{ dst = "10.190.0.0/16", dev = "name-too-long-by-far" }
	lu.assertEquals(err, E.ENAMETOOLONG)
	ok, msg, err = h:route_del{ dst = "10.48.0.0/24", dev = "nosuchdev" }
	lu.assertEquals(err, E.ENODEV)
	ok, msg, err = h:route_list{ dev = "nosuchdev" }
	lu.assertNil(ok)
	lu.assertEquals(err, E.ENODEV)
	lu.assertStrContains(msg, "route_list nosuchdev")
	ok, msg, err = h:route_list{ dev = 99999 }
	lu.assertEquals(err, E.ENODEV)
	ok, msg, err = h:route_add{ dst = "10.190.0.0/16", gateway = "10.249.0.1" }
	lu.assertNil(ok)
	lu.assertEquals(err, E.ENETUNREACH)
	lu.assertStrContains(msg, "kernel: ")
	lu.assertEquals(H.snapshot(), before)
end

function TestRoute:test_del_absent_esrch()
	local h, d = self.h, self:link(49)
	assert(h:route_add{ dst = "10.200.0.0/16", dev = d, metric = 5 })
	local before = H.snapshot()
	for _, r in ipairs{
		{ dst = "10.201.0.0/16" },
		{ dst = "10.200.0.0/16", metric = 6 },
		{ dst = "10.200.0.0/16", table = 100 },
		{ dst = "10.200.0.0/16", protocol = "static" },
		{ dst = "10.200.0.0/16", gateway = "10.49.0.9" },
		{ dst = "2001:db8:201::/48" },
		{ dst = "default" },
	} do
		local ok, msg, err = h:route_del(r)
		lu.assertNil(ok, r.dst)
		lu.assertEquals(err, E.ESRCH, r.dst)
		lu.assertStrContains(msg, "route_del " .. r.dst .. ": ")
	end
	lu.assertEquals(H.snapshot(), before)
	lu.assertTrue(h:route_del{ dst = "10.200.0.0/16", metric = 5 })
end

function TestRoute:test_invalid_input_sends_nothing()
	local h, d = self.h, self:link(50)
	local before = H.snapshot()
	for _, op in ipairs{ "route_add", "route_replace", "route_del" } do
		for _, dst in ipairs{ "10.0.0.1/33", "300.1.1.1/24", "abc", "", "10.0.0.0/",
			"2001:db8::/129", "Default", "10.0.0.0/24x" } do
			local ok, msg, err = h[op](h, { dst = dst, dev = d })
			lu.assertNil(ok, dst)
			lu.assertEquals(err, E.EINVAL, dst)
			lu.assertEquals(msg, op .. (dst == "" and "" or " ") .. dst .. ": invalid destination")
		end
		for _, bad in ipairs{
			{ dst = "10.210.0.0/16", gateway = "10.50.0.300" },
			{ dst = "10.210.0.0/16", gateway = "10.50.0.3/24" },
			{ dst = "10.210.0.0/16", gateway = "2001:db8:50::2" },
			{ dst = "2001:db8:210::/48", gateway = "10.50.0.2" },
			{ dst = "10.210.0.0/16", prefsrc = "nope" },
			{ dst = "10.210.0.0/16", prefsrc = "2001:db8:50::1" },
			{ dst = "10.210.0.0/16", family = "inet6" },
			{ dst = "default", gateway = "10.50.0.2", family = "inet6" },
			{ dst = "default", gateway = "bad", dev = "nosuchdev" },
		} do
			local ok, msg, err = h[op](h, bad)
			lu.assertNil(ok, bad.dst)
			lu.assertEquals(err, E.EINVAL, bad.dst)
			lu.assertStrContains(msg, op .. " " .. bad.dst .. ": ")
		end
	end
	lu.assertEquals(H.snapshot(), before)
end

function TestRoute:test_bad_arguments_raise()
	local h, d = self.h, self:link(51)
	local before = H.snapshot()
	local function raises(pat, f) lu.assertErrorMsgContains(pat, f) end
	for _, op in ipairs{ "route_add", "route_replace", "route_del" } do
		local f = h[op]
		raises("table expected", function() f(h) end)
		raises("table expected", function() f(h, "10.0.0.0/8") end)
		raises("no more arguments", function() f(h, { dst = "default" }, true) end)
		raises("unknown field 'via'", function() f(h, { dst = "default", via = "10.51.0.2" }) end)
		raises("field 'dst' is required", function() f(h, { dev = d }) end)
		raises("field 'dst' must be a string", function() f(h, { dst = 10 }) end)
		raises("field 'gateway' must be a string", function() f(h, { dst = "default", gateway = 1 }) end)
		raises("field 'dev' must be", function() f(h, { dst = "default", dev = false }) end)
		raises("field 'onlink' must be a boolean", function() f(h, { dst = "default", onlink = 1 }) end)
		raises("field 'table' must be", function() f(h, { dst = "default", table = 0 }) end)
		raises("field 'table' must be", function() f(h, { dst = "default", table = "all" }) end)
		raises("field 'table' must be", function() f(h, { dst = "default", table = "mian" }) end)
		raises("field 'table' must be", function() f(h, { dst = "default", table = 2 ^ 32 }) end)
		raises("field 'table' must be", function() f(h, { dst = "default", table = {} }) end)
		raises("field 'metric' must be", function() f(h, { dst = "default", metric = -1 }) end)
		raises("field 'metric' must be", function() f(h, { dst = "default", metric = 1.5 }) end)
		raises("unknown name 'staticc'", function() f(h, { dst = "default", protocol = "staticc" }) end)
		raises("field 'protocol' must be 0..255", function() f(h, { dst = "default", protocol = 256 }) end)
		raises("unknown name 'black'", function() f(h, { dst = "default", type = "black" }) end)
		raises("unknown scope 'universe'", function() f(h, { dst = "default", scope = "universe" }) end)
		raises("field 'family' must be", function() f(h, { dst = "default", family = 6 }) end)
	end
	raises("table expected", function() h:route_list("main") end)
	raises("no more arguments", function() h:route_list({}, {}) end)
	raises("unknown field 'proto'", function() h:route_list{ proto = "kernel" } end)
	raises("field 'table' must be", function() h:route_list{ table = -1 } end)
	raises("field 'table' must be", function() h:route_list{ table = "everything" } end)
	raises("field 'family' must be", function() h:route_list{ family = "inet4" } end)
	raises("field 'dev' must be", function() h:route_list{ dev = true } end)
	h:close()
	raises("closed netlink handle", function() h:route_list() end)
	raises("closed netlink handle", function() h:route_add{ dst = "default" } end)
	self.h = assert(core.open())
	lu.assertEquals(H.snapshot(), before)
end
