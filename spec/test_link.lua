-- spec/test_link.lua: links, bridges and bridge ports (csrc/link.c).
-- Every test runs in the run's private namespace, compares what brisk reads
-- with `ip -j -d` / `bridge -j -d`, and deletes what it made (tearDown).
local lu = require "luaunit"
local H = require "helper"
local core = require "brisk.core"
local E = core.errno

-- Values that move on their own between two reads.
local VOLATILE = {
	hello_timer = true, tcn_timer = true, topology_change_timer = true,
	gc_timer = true, hold_timer = true, message_age_timer = true,
	forward_delay_timer = true,
}

local function strip(t)
	if type(t) ~= "table" then return t end
	local c = {}
	for k, v in pairs(t) do
		if not VOLATILE[k] then c[k] = strip(v) end
	end
	return c
end

local function sleep(s) os.execute("sleep " .. s) end

-- Retry `fn` (which raises on mismatch) while the kernel settles
-- (carrier and operstate change asynchronously).
local function eventually(fn)
	local ok, err
	local deadline = os.time() + 10
	repeat
		ok, err = pcall(fn)
		if ok then return end
		sleep(0.05)
	until os.time() > deadline
	error(err, 2)
end

local function same_as_ip(h, name, netns)
	local mine = assert(h:link_get(name))
	local theirs = H.iplink(name, netns)
	lu.assertNotNil(theirs, "ip does not see " .. name)
	lu.assertEquals(strip(mine), strip(theirs))
	return mine
end

local function has(list, x)
	for _, v in ipairs(list or {}) do if v == x then return true end end
	return false
end

local function fe80_on(name, netns)
	local pre = netns and ("-n " .. netns .. " ") or ""
	local info = H.ip(pre .. "-6 addr show dev " .. name)[1] or {}
	for _, a in ipairs(info.addr_info or {}) do
		if a["local"]:match("^fe80:") then return true end
	end
	return false
end

-- Fail with errno `want` and leave the kernel state as it was.
local function fails_unchanged(want, fn, netns)
	local before = H.snapshot()
	local before_ns = netns and H.snapshot(netns)
	local r, msg, err = fn()
	lu.assertNil(r, "expected a failure, got " .. tostring(r))
	lu.assertIsString(msg)
	lu.assertEquals(err, want, msg)
	lu.assertEquals(H.snapshot(), before)
	if netns then lu.assertEquals(H.snapshot(netns), before_ns) end
	return msg
end

local BAD_NAMES = {
	{ "abcdefghijklmnop", E.ENAMETOOLONG },     -- 16 bytes
	{ "a/b", E.EINVAL }, { "a:b", E.EINVAL }, { "a b", E.EINVAL },
	{ ".", E.EINVAL }, { "..", E.EINVAL }, { "", E.EINVAL },
	{ "e%d", E.EINVAL },                          -- a kernel name template
}

local function open()
	return assert(core.open())
end

local function mkbridge(name)
	H.must("ip link add " .. name .. " type bridge")
	return name
end

local function mkveth(a, b)
	H.must("ip link add " .. a .. " type veth peer name " .. b)
end

local Base = {}
function Base:setUp() self.h = open() end
function Base:tearDown()
	self.h:close()
	H.reset()
end
local function class()
	local c = {}
	for k, v in pairs(Base) do c[k] = v end
	return c
end

---------------------------------------------------------------------------
TestLinkGet = class()

function TestLinkGet:test_matches_ip_for_lo_bridge_and_veth_port()
	local h = self.h
	mkbridge("gbr0")
	mkveth("gv0", "gv1")
	H.must("ip link set gv0 master gbr0")
	H.must("ip link set gv0 up")
	H.must("ip link set gbr0 up")
	for _, name in ipairs { "lo", "gbr0", "gv0", "gv1" } do
		eventually(function() same_as_ip(h, name) end)
	end
	local v0 = h:link_get("gv0")
	lu.assertEquals(v0.master, "gbr0")
	lu.assertEquals(v0.link, "gv1")
	lu.assertTrue(has(v0.flags, "M-DOWN"))      -- its peer is down
	lu.assertEquals(v0.linkinfo.info_kind, "veth")
	lu.assertEquals(v0.linkinfo.info_slave_kind, "bridge")
	local br = h:link_get("gbr0")
	lu.assertEquals(br.linkinfo.info_data.ageing_time, 30000)   -- centiseconds, as ip
	lu.assertEquals(br.linkinfo.info_data.forward_delay, 1500)
	lu.assertEquals(h:link_get("lo").link_type, "loopback")
end

function TestLinkGet:test_by_index_name_and_table_agree()
	local h = self.h
	mkbridge("gbr1")
	local byname = strip(assert(h:link_get("gbr1")))
	lu.assertEquals(strip(assert(h:link_get(byname.ifindex))), byname)
	lu.assertEquals(strip(assert(h:link_get({ ifindex = byname.ifindex }))), byname)
	lu.assertEquals(strip(assert(h:link_get({ ifname = "gbr1" }))), byname)
end

function TestLinkGet:test_peer_in_other_namespace()
	local h = self.h
	H.netns_add("gns1")
	H.must("ip link add gv2 type veth peer name gv3 netns gns1")
	local mine = same_as_ip(h, "gv2")
	lu.assertIsNumber(mine.link_netnsid)
	lu.assertIsNumber(mine.link_index)
	lu.assertNil(mine.link)
	local hn = assert(core.open("gns1"))
	same_as_ip(hn, "gv3", "gns1")
	hn:close()
end

function TestLinkGet:test_missing_is_enodev()
	local h = self.h
	local msg = fails_unchanged(E.ENODEV, function() return h:link_get("gnone") end)
	lu.assertStrContains(msg, "link_get gnone")
	fails_unchanged(E.ENODEV, function() return h:link_get(999999) end)
end

function TestLinkGet:test_invalid_names_fail_before_asking()
	local h = self.h
	for _, c in ipairs(BAD_NAMES) do
		fails_unchanged(c[2], function() return h:link_get(c[1]) end)
	end
end

function TestLinkGet:test_bad_arguments()
	local h = self.h
	lu.assertErrorMsgContains("bad argument", function() h:link_get() end)
	lu.assertErrorMsgContains("link must be", function() h:link_get(true) end)
	lu.assertErrorMsgContains("positive", function() h:link_get(0) end)
	lu.assertErrorMsgContains("integer", function() h:link_get(1.5) end)
	lu.assertErrorMsgContains("needs 'ifindex' or 'ifname'", function() h:link_get({}) end)
	lu.assertErrorMsgContains("no more arguments", function() h:link_get("lo", 1) end)
	lu.assertErrorMsgContains("brisk.nl", function() h.link_get({}, "lo") end)
end

-- Link and option tables are read raw (their own fields), as their keys
-- are checked: a value an __index function makes is not seen. It was, and
-- the string it made could be collected while the request still used it
-- (a use after free under ASan; found by a review).
function TestLinkGet:test_tables_are_read_raw()
	local h = self.h
	local function made(_, k) if k == "ifname" then return "lo" end end
	lu.assertErrorMsgContains("needs 'ifindex' or 'ifname'", function()
		h:link_get(setmetatable({}, { __index = made }))
	end)
	-- many, collected as they go: each refused, none read freed memory
	collectgarbage("incremental", 0, 1000, 0)
	for i = 1, 2000 do
		local ok = pcall(h.link_get, h, setmetatable({}, { __index = function(_, k)
			if k == "ifname" then return ("zz%d"):format(i) end
		end }))
		lu.assertFalse(ok)
	end
	collectgarbage("incremental", 200, 100, 0)
	-- a table's own fields, as before
	lu.assertEquals(assert(h:link_get{ ifname = "lo" }).ifindex, 1)
	lu.assertEquals(assert(h:link_get(setmetatable({ ifname = "lo" }, { __index = made }))).ifindex, 1)
end

---------------------------------------------------------------------------
TestLinkList = class()

local function by_index(list)
	local t = {}
	for _, l in ipairs(list) do t[l.ifindex] = strip(l) end
	return t
end

function TestLinkList:test_matches_ip()
	local h = self.h
	mkbridge("lbr0")
	mkveth("lv0", "lv1")
	mkveth("lv2", "lv3")
	H.must("ip link set lv0 master lbr0")
	H.must("ip link set lv2 master lbr0")
	local mine = by_index(assert(h:link_list()))
	local theirs = by_index(H.ip("-d link show"))
	lu.assertEquals(mine, theirs)
	lu.assertEquals(#assert(h:link_list()), 6)
end

function TestLinkList:test_filter_kind()
	local h = self.h
	mkbridge("lbr1")
	mkveth("lv4", "lv5")
	local names = {}
	for _, l in ipairs(assert(h:link_list { kind = "veth" })) do names[#names + 1] = l.ifname end
	table.sort(names)
	lu.assertEquals(names, { "lv4", "lv5" })
	local br = assert(h:link_list { kind = "bridge" })
	lu.assertEquals(#br, 1)
	lu.assertEquals(br[1].ifname, "lbr1")
	-- a kind this kernel does not know: the kernel would not filter at all
	lu.assertEquals(assert(h:link_list { kind = "no-such-kind" }), {})
end

function TestLinkList:test_filter_master()
	local h = self.h
	mkbridge("lbr2")
	mkbridge("lbr3")
	mkveth("lv6", "lv7")
	mkveth("lv8", "lv9")
	H.must("ip link set lv6 master lbr2")
	H.must("ip link set lv8 master lbr2")
	H.must("ip link set lv7 master lbr3")
	local mine = assert(h:link_list { master = "lbr2" })
	lu.assertEquals(by_index(mine), by_index(H.ip("-d link show master lbr2")))
	lu.assertEquals(#mine, 2)
	local idx = h:link_get("lbr3").ifindex
	local other = assert(h:link_list { master = idx, kind = "veth" })
	lu.assertEquals(#other, 1)
	lu.assertEquals(other[1].ifname, "lv7")
	lu.assertEquals(other[1].master, "lbr3")
	lu.assertEquals(assert(h:link_list { master = "lbr3", kind = "bridge" }), {})
end

function TestLinkList:test_missing_master_is_enodev()
	local h = self.h
	fails_unchanged(E.ENODEV, function() return h:link_list { master = "lnone" } end)
	fails_unchanged(E.EINVAL, function() return h:link_list { master = "a/b" } end)
end

function TestLinkList:test_bad_arguments()
	local h = self.h
	lu.assertErrorMsgContains("table expected", function() h:link_list("x") end)
	lu.assertErrorMsgContains("unknown field 'kinds'", function() h:link_list { kinds = "veth" } end)
	lu.assertErrorMsgContains("field 'kind'", function() h:link_list { kind = 1 } end)
	lu.assertErrorMsgContains("field 'master'", function() h:link_list { master = true } end)
	lu.assertErrorMsgContains("no more arguments", function() h:link_list({}, 1) end)
end

---------------------------------------------------------------------------
TestLinkAdd = class()

function TestLinkAdd:test_bridge_with_options()
	local h = self.h
	local idx = assert(h:link_add {
		ifname = "abr0", kind = "bridge", mtu = 1400, txqlen = 500,
		address = "02:42:ac:11:00:01", up = true,
		bridge = { stp_state = 1, ageing_time = 1234, forward_delay = 600 },
	})
	local ip = H.iplink("abr0")
	lu.assertEquals(idx, ip.ifindex)
	lu.assertEquals(ip.mtu, 1400)
	lu.assertEquals(ip.txqlen, 500)
	lu.assertEquals(ip.address, "02:42:ac:11:00:01")
	lu.assertTrue(has(ip.flags, "UP"))
	lu.assertEquals(ip.linkinfo.info_kind, "bridge")
	lu.assertEquals(ip.linkinfo.info_data.stp_state, 1)
	lu.assertEquals(ip.linkinfo.info_data.ageing_time, 1234)
	lu.assertEquals(ip.linkinfo.info_data.forward_delay, 600)
	same_as_ip(h, "abr0")
end

function TestLinkAdd:test_bridge_vlan_filtering()
	local h = self.h
	local before = H.snapshot()
	local idx, msg, err = h:link_add { ifname = "abr1", kind = "bridge", bridge = { vlan_filtering = true } }
	if idx then
		lu.assertEquals(H.iplink("abr1").linkinfo.info_data.vlan_filtering, 1)
	else
		-- this kernel is built without CONFIG_BRIDGE_VLAN_FILTERING
		lu.assertEquals(err, E.EOPNOTSUPP, msg)
		lu.assertEquals(H.snapshot(), before)
	end
end

function TestLinkAdd:test_veth_pair_same_namespace()
	local h = self.h
	local idx = assert(h:link_add {
		ifname = "av0", kind = "veth", mtu = 1450,
		peer = { ifname = "av1", mtu = 1440, txqlen = 77, address = "02:42:ac:11:00:09" },
	})
	lu.assertEquals(idx, H.iplink("av0").ifindex)
	local peer = H.iplink("av1")
	lu.assertEquals(peer.mtu, 1440)
	lu.assertEquals(peer.txqlen, 77)
	lu.assertEquals(peer.address, "02:42:ac:11:00:09")
	lu.assertEquals(peer.link, "av0")
	lu.assertEquals(H.iplink("av0").mtu, 1450)
	same_as_ip(h, "av0")
	same_as_ip(h, "av1")
end

function TestLinkAdd:test_veth_peer_created_in_namespace()
	local h = self.h
	H.netns_add("ans1")
	local idx = assert(h:link_add {
		ifname = "av2", kind = "veth", up = true,
		peer = { ifname = "eth0", netns = "ans1", mtu = 1420, address = "02:42:ac:11:00:02",
			 addrgenmode = "none" },
	})
	lu.assertEquals(idx, H.iplink("av2").ifindex)
	lu.assertNil(H.iplink("eth0"))              -- not here
	local peer
	for _, l in ipairs(H.ip("-n ans1 -d link show")) do
		if l.ifname == "eth0" then peer = l end
	end
	lu.assertNotNil(peer, "eth0 not in ans1")
	lu.assertEquals(peer.mtu, 1420)
	lu.assertEquals(peer.address, "02:42:ac:11:00:02")
	lu.assertEquals(peer.inet6_addr_gen_mode, "none")
	lu.assertEquals(peer.linkinfo.info_kind, "veth")
	local mine = same_as_ip(h, "av2")
	lu.assertIsNumber(mine.link_netnsid)
	lu.assertEquals(mine.link_index, peer.ifindex)
	-- by pid and by path too
	local pid = assert(io.open("/proc/self/stat")):read("n")
	assert(h:link_add { ifname = "av3", kind = "veth", peer = { ifname = "p3", netns = "/run/netns/ans1" } })
	assert(h:link_add { ifname = "av4", kind = "veth", peer = { ifname = "p4", netns = pid } })
	lu.assertNotNil(H.iplink("p3", "ans1"))
	lu.assertNotNil(H.iplink("p4"))
end

function TestLinkAdd:test_master_up_addrgenmode_none_leaves_no_link_local()
	local h = self.h
	assert(h:link_add { ifname = "abr2", kind = "bridge", up = true, addrgenmode = "none" })
	assert(h:link_add { ifname = "av5", kind = "veth", master = "abr2", up = true,
			    addrgenmode = "none", peer = { ifname = "av6", addrgenmode = "none" } })
	-- a control pair without it gets fe80 addresses: the check can fail
	assert(h:link_add { ifname = "av7", kind = "veth", up = true, peer = { ifname = "av8" } })
	H.must("ip link set av6 up")
	H.must("ip link set av8 up")
	eventually(function() lu.assertTrue(fe80_on("av7")) end)
	eventually(function()
		local l = H.iplink("abr2")
		lu.assertTrue(has(l.flags, "LOWER_UP"))
	end)
	lu.assertFalse(fe80_on("av5"))
	lu.assertFalse(fe80_on("av6"))
	lu.assertFalse(fe80_on("abr2"))
	local v = H.iplink("av5")
	lu.assertEquals(v.master, "abr2")
	lu.assertEquals(v.inet6_addr_gen_mode, "none")
	lu.assertTrue(has(v.flags, "UP"))
	lu.assertEquals(H.iplink("av6").inet6_addr_gen_mode, "none")
	lu.assertEquals(H.iplink("abr2").inet6_addr_gen_mode, "none")
end

function TestLinkAdd:test_dummy()
	local h = self.h
	local before = H.snapshot()
	local idx, msg, err = h:link_add { ifname = "ad0", kind = "dummy", mtu = 1300 }
	if idx then
		lu.assertEquals(H.iplink("ad0").mtu, 1300)
		same_as_ip(h, "ad0")
	else
		-- this kernel is built without CONFIG_DUMMY
		lu.assertEquals(err, E.EOPNOTSUPP, msg)
		lu.assertStrContains(msg, "link_add ad0")
		lu.assertEquals(H.snapshot(), before)
	end
end

function TestLinkAdd:test_duplicate_is_eexist()
	local h = self.h
	mkbridge("abr3")
	local msg = fails_unchanged(E.EEXIST, function() return h:link_add { ifname = "abr3", kind = "bridge" } end)
	lu.assertStrContains(msg, "link_add abr3")
	fails_unchanged(E.EEXIST, function() return h:link_add { ifname = "abr3", kind = "veth" } end)
	-- a peer name that exists
	fails_unchanged(E.EEXIST, function()
		return h:link_add { ifname = "av9", kind = "veth", peer = { ifname = "abr3" } }
	end)
end

function TestLinkAdd:test_invalid_names_fail_before_asking()
	local h = self.h
	for _, c in ipairs(BAD_NAMES) do
		fails_unchanged(c[2], function() return h:link_add { ifname = c[1], kind = "bridge" } end)
		fails_unchanged(c[2], function()
			return h:link_add { ifname = "aok", kind = "veth", peer = { ifname = c[1] } }
		end)
	end
end

function TestLinkAdd:test_missing_master_and_namespace()
	local h = self.h
	fails_unchanged(E.ENODEV, function()
		return h:link_add { ifname = "av10", kind = "veth", master = "anone" }
	end)
	fails_unchanged(E.ENOENT, function()
		return h:link_add { ifname = "av11", kind = "veth", peer = { ifname = "p", netns = "ans-none" } }
	end)
end

function TestLinkAdd:test_failure_after_create_rolls_back()
	local h = self.h
	-- stable_secret needs a secret this namespace lacks: the kernel refuses
	-- the mode after the link exists, and brisk deletes it again
	local msg = fails_unchanged(E.EINVAL, function()
		return h:link_add { ifname = "abr4", kind = "bridge", up = true, addrgenmode = "stable_secret" }
	end)
	lu.assertStrContains(msg, "link_add abr4")
	lu.assertNil(H.iplink("abr4"))
end

function TestLinkAdd:test_bad_arguments()
	local h = self.h
	local function raises(pat, spec)
		lu.assertErrorMsgContains(pat, function() h:link_add(spec) end)
	end
	lu.assertErrorMsgContains("table expected", function() h:link_add("abr") end)
	lu.assertErrorMsgContains("no more arguments", function() h:link_add({ ifname = "x", kind = "bridge" }, 1) end)
	raises("field 'kind' is required", { ifname = "x" })
	raises("field 'kind' must be bridge, veth or dummy", { ifname = "x", kind = "vxlan" })
	raises("field 'ifname' is required", { kind = "bridge" })
	raises("unknown field 'name'", { name = "x", kind = "bridge" })
	raises("field 'mtu'", { ifname = "x", kind = "bridge", mtu = "big" })
	raises("field 'mtu' out of range", { ifname = "x", kind = "bridge", mtu = -1 })
	raises("field 'txqlen'", { ifname = "x", kind = "bridge", txqlen = 1.5 })
	raises("field 'up' must be a boolean", { ifname = "x", kind = "bridge", up = 1 })
	raises("field 'address' must be a MAC", { ifname = "x", kind = "bridge", address = "02:42" })
	raises("field 'addrgenmode' must be", { ifname = "x", kind = "bridge", addrgenmode = "off" })
	raises("field 'bridge' needs kind 'bridge'", { ifname = "x", kind = "veth", bridge = {} })
	raises("unknown field 'stp'", { ifname = "x", kind = "bridge", bridge = { stp = 1 } })
	raises("field 'vlan_filtering' must be a boolean", { ifname = "x", kind = "bridge", bridge = { vlan_filtering = "on" } })
	raises("field 'peer' needs kind 'veth'", { ifname = "x", kind = "bridge", peer = {} })
	raises("field 'peer' must be a table", { ifname = "x", kind = "veth", peer = "y" })
	raises("unknown field 'master'", { ifname = "x", kind = "veth", peer = { master = "y" } })
	raises("field 'netns' must be", { ifname = "x", kind = "veth", peer = { ifname = "y", netns = true } })
	raises("field 'netns' is empty", { ifname = "x", kind = "veth", peer = { ifname = "y", netns = "" } })
	raises("field 'netns' pid", { ifname = "x", kind = "veth", peer = { ifname = "y", netns = 0 } })
	raises("field 'master'", { ifname = "x", kind = "veth", master = true })
	lu.assertEquals(#H.ip("link show"), 1)        -- nothing was made
end

---------------------------------------------------------------------------
TestLinkDel = class()

function TestLinkDel:test_by_name_index_and_table()
	local h = self.h
	mkbridge("dbr0")
	mkbridge("dbr1")
	mkveth("dv0", "dv1")
	lu.assertTrue(h:link_del("dbr0"))
	lu.assertNil(H.iplink("dbr0"))
	lu.assertTrue(h:link_del(H.iplink("dbr1").ifindex))
	lu.assertNil(H.iplink("dbr1"))
	lu.assertTrue(h:link_del(assert(h:link_get("dv0"))))
	lu.assertNil(H.iplink("dv0"))
	lu.assertNil(H.iplink("dv1"))               -- the peer went with it
	lu.assertEquals(#H.ip("link show"), 1)
end

function TestLinkDel:test_missing_is_enodev()
	local h = self.h
	mkbridge("dbr2")
	local msg = fails_unchanged(E.ENODEV, function() return h:link_del("dnone") end)
	lu.assertStrContains(msg, "link_del dnone")
	fails_unchanged(E.ENODEV, function() return h:link_del(999999) end)
end

function TestLinkDel:test_invalid_names_fail_before_asking()
	local h = self.h
	mkbridge("dbr3")
	for _, c in ipairs(BAD_NAMES) do
		fails_unchanged(c[2], function() return h:link_del(c[1]) end)
	end
end

function TestLinkDel:test_bad_arguments()
	local h = self.h
	lu.assertErrorMsgContains("bad argument", function() h:link_del() end)
	lu.assertErrorMsgContains("link must be", function() h:link_del(false) end)
	lu.assertErrorMsgContains("positive", function() h:link_del(-3) end)
	lu.assertErrorMsgContains("no more arguments", function() h:link_del("x", "y") end)
end

---------------------------------------------------------------------------
TestLinkSet = class()

function TestLinkSet:test_up_mtu_address_txqlen()
	local h = self.h
	mkbridge("sbr0")
	lu.assertTrue(h:link_set { dev = "sbr0", up = true, mtu = 1400, txqlen = 42,
				   address = "02:42:ac:11:00:05" })
	local ip = H.iplink("sbr0")
	lu.assertTrue(has(ip.flags, "UP"))
	lu.assertEquals(ip.mtu, 1400)
	lu.assertEquals(ip.txqlen, 42)
	lu.assertEquals(ip.address, "02:42:ac:11:00:05")
	lu.assertTrue(h:link_set { dev = ip.ifindex, up = false })
	lu.assertFalse(has(H.iplink("sbr0").flags, "UP"))
	same_as_ip(h, "sbr0")
end

function TestLinkSet:test_rename_by_name_and_by_index()
	local h = self.h
	mkbridge("sbr1")
	local idx = H.iplink("sbr1").ifindex
	lu.assertTrue(h:link_set { dev = "sbr1", ifname = "sbr1new" })
	lu.assertNil(H.iplink("sbr1"))
	lu.assertEquals(H.iplink("sbr1new").ifindex, idx)
	lu.assertTrue(h:link_set { dev = idx, ifname = "sbr1b" })
	lu.assertEquals(H.iplink("sbr1b").ifindex, idx)
end

function TestLinkSet:test_master_and_nomaster()
	local h = self.h
	mkbridge("sbr2")
	mkveth("sv0", "sv1")
	lu.assertTrue(h:link_set { dev = "sv0", master = "sbr2" })
	lu.assertEquals(H.iplink("sv0").master, "sbr2")
	lu.assertEquals(h:link_get("sv0").master, "sbr2")
	lu.assertTrue(h:link_set { dev = "sv0", master = false })
	lu.assertNil(H.iplink("sv0").master)
	lu.assertNil(h:link_get("sv0").master)
	lu.assertTrue(h:link_set { dev = "sv1", master = H.iplink("sbr2").ifindex })
	lu.assertEquals(H.iplink("sv1").master, "sbr2")
end

function TestLinkSet:test_move_to_namespace()
	local h = self.h
	H.netns_add("sns1")
	mkveth("sv2", "sv3")
	lu.assertTrue(h:link_set { dev = "sv3", netns = "sns1" })
	lu.assertNil(H.iplink("sv3"))
	local moved = H.iplink("sv3", "sns1")
	lu.assertNotNil(moved)
	local hn = assert(core.open("sns1"))
	same_as_ip(hn, "sv3", "sns1")
	hn:close()
	-- and with a rename on the way
	mkveth("sv4", "sv5")
	lu.assertTrue(h:link_set { dev = "sv5", netns = "/run/netns/sns1", ifname = "eth1" })
	lu.assertNotNil(H.iplink("eth1", "sns1"))
	lu.assertNil(H.iplink("sv5"))
end

function TestLinkSet:test_addrgenmode_none_then_up_leaves_no_link_local()
	local h = self.h
	mkveth("sv6", "sv7")
	mkveth("sv8", "sv9")
	lu.assertTrue(h:link_set { dev = "sv6", addrgenmode = "none", up = true })
	lu.assertTrue(h:link_set { dev = "sv7", addrgenmode = "none", up = true })
	lu.assertTrue(h:link_set { dev = "sv8", up = true })       -- control
	lu.assertTrue(h:link_set { dev = "sv9", up = true })
	eventually(function() lu.assertTrue(fe80_on("sv8")) end)
	eventually(function() lu.assertTrue(has(H.iplink("sv6").flags, "LOWER_UP")) end)
	lu.assertFalse(fe80_on("sv6"))
	lu.assertFalse(fe80_on("sv7"))
	lu.assertEquals(H.iplink("sv6").inet6_addr_gen_mode, "none")
	lu.assertEquals(h:link_get("sv6").inet6_addr_gen_mode, "none")
end

function TestLinkSet:test_errors_leave_nothing_changed()
	local h = self.h
	mkbridge("sbr3")
	mkbridge("sbr4")
	fails_unchanged(E.ENODEV, function() return h:link_set { dev = "snone", up = true } end)
	fails_unchanged(E.ENODEV, function() return h:link_set { dev = 999999, mtu = 1400 } end)
	fails_unchanged(E.ENODEV, function() return h:link_set { dev = "snone", ifname = "x" } end)
	fails_unchanged(E.EEXIST, function() return h:link_set { dev = "sbr3", ifname = "sbr4" } end)
	fails_unchanged(E.ENODEV, function() return h:link_set { dev = "sbr3", master = "snone" } end)
	fails_unchanged(E.ENOENT, function() return h:link_set { dev = "sbr3", netns = "sns-none" } end)
	H.netns_add("sns2")
	local msg = fails_unchanged(E.EINVAL, function()
		return h:link_set { dev = "sbr3", netns = "sns2", up = true, addrgenmode = "none" }
	end, "sns2")
	lu.assertStrContains(msg, "netns")
	for _, c in ipairs(BAD_NAMES) do
		fails_unchanged(c[2], function() return h:link_set { dev = c[1], up = true } end)
		fails_unchanged(c[2], function() return h:link_set { dev = "sbr3", ifname = c[1] } end)
	end
end

function TestLinkSet:test_bad_arguments()
	local h = self.h
	local function raises(pat, spec)
		lu.assertErrorMsgContains(pat, function() h:link_set(spec) end)
	end
	lu.assertErrorMsgContains("table expected", function() h:link_set("lo") end)
	lu.assertErrorMsgContains("no more arguments", function() h:link_set({ dev = "lo" }, 2) end)
	raises("field 'dev' is required", { up = true })
	raises("unknown field 'state'", { dev = "lo", state = "up" })
	raises("link must be", { dev = true })
	raises("field 'up' must be a boolean", { dev = "lo", up = "yes" })
	raises("field 'mtu' out of range", { dev = "lo", mtu = 2 ^ 40 // 1 })
	raises("field 'master' must be a link or false", { dev = "lo", master = true })
	raises("field 'addrgenmode' must be", { dev = "lo", addrgenmode = 1 })
	raises("field 'netns' must be", { dev = "lo", netns = {} })
	raises("field 'address' must be a MAC", { dev = "lo", address = "zz:zz:zz:zz:zz:zz" })
end

---------------------------------------------------------------------------
TestBridgeSet = class()

function TestBridgeSet:test_options_as_ip_prints_them()
	local h = self.h
	mkbridge("bbr0")
	lu.assertTrue(h:bridge_set { dev = "bbr0", stp_state = 1, ageing_time = 2000, forward_delay = 800 })
	local d = H.iplink("bbr0").linkinfo.info_data
	lu.assertEquals(d.stp_state, 1)
	lu.assertEquals(d.ageing_time, 2000)
	lu.assertEquals(d.forward_delay, 800)
	lu.assertEquals(h:link_get("bbr0").linkinfo.info_data.ageing_time, 2000)
	lu.assertTrue(h:bridge_set { dev = H.iplink("bbr0").ifindex, stp_state = 0 })
	lu.assertEquals(H.iplink("bbr0").linkinfo.info_data.stp_state, 0)
	same_as_ip(h, "bbr0")
end

function TestBridgeSet:test_vlan_filtering()
	local h = self.h
	mkbridge("bbr1")
	local before = H.snapshot()
	local ok, msg, err = h:bridge_set { dev = "bbr1", vlan_filtering = 1 }
	if ok then
		lu.assertEquals(H.iplink("bbr1").linkinfo.info_data.vlan_filtering, 1)
	else
		lu.assertEquals(err, E.EOPNOTSUPP, msg)
		lu.assertEquals(H.snapshot(), before)
	end
end

function TestBridgeSet:test_errors()
	local h = self.h
	mkveth("bv0", "bv1")
	fails_unchanged(E.ENODEV, function() return h:bridge_set { dev = "bnone", stp_state = 1 } end)
	fails_unchanged(E.EOPNOTSUPP, function() return h:bridge_set { dev = "bv0", stp_state = 1 } end)
	fails_unchanged(E.ENAMETOOLONG, function() return h:bridge_set { dev = "abcdefghijklmnop", stp_state = 1 } end)
	fails_unchanged(E.EINVAL, function() return h:bridge_set { dev = "b/r", stp_state = 1 } end)
end

function TestBridgeSet:test_bad_arguments()
	local h = self.h
	lu.assertErrorMsgContains("table expected", function() h:bridge_set() end)
	lu.assertErrorMsgContains("field 'dev' is required", function() h:bridge_set { stp_state = 1 } end)
	lu.assertErrorMsgContains("unknown field 'hello_time'", function() h:bridge_set { dev = "x", hello_time = 1 } end)
	lu.assertErrorMsgContains("field 'stp_state'", function() h:bridge_set { dev = "x", stp_state = "on" } end)
	lu.assertErrorMsgContains("field 'ageing_time' out of range", function() h:bridge_set { dev = "x", ageing_time = -5 } end)
end

---------------------------------------------------------------------------
TestBrport = class()

local function port_setup()
	mkbridge("pbr0")
	mkveth("pv0", "pv1")
	H.must("ip link set pv0 master pbr0")
end

function TestBrport:test_get_matches_bridge_tool()
	local h = self.h
	port_setup()
	local mine = assert(h:brport_get("pv0"))
	local theirs = H.bridge("-d link show dev pv0")
	lu.assertEquals(#theirs, 1)
	lu.assertEquals(mine, theirs[1])
	lu.assertEquals(mine.state, "disabled")
	lu.assertEquals(mine.master, "pbr0")
	lu.assertEquals(assert(h:brport_get(mine.ifindex)), mine)
end

function TestBrport:test_get_port_whose_peer_is_elsewhere()
	local h = self.h
	H.netns_add("pns1")
	mkbridge("pbr1")
	H.must("ip link add pv2 master pbr1 type veth peer name eth0 netns pns1")
	local mine = assert(h:brport_get("pv2"))
	local theirs = H.bridge("-d link show dev pv2")[1]
	-- bridge(8) looks the peer's ifindex up in this namespace and prints
	-- whatever link has that number here; brisk leaves "link" out.
	lu.assertNil(mine.link)
	theirs.link = nil
	theirs.flags = nil
	mine.flags = nil
	lu.assertEquals(mine, theirs)
	lu.assertEquals(mine.master, "pbr1")
end

function TestBrport:test_set_flags()
	local h = self.h
	port_setup()
	lu.assertTrue(h:brport_set { dev = "pv0", hairpin = true, learning = false, flood = false, isolated = true })
	local b = H.bridge("-d link show dev pv0")[1]
	lu.assertTrue(b.hairpin)
	lu.assertFalse(b.learning)
	lu.assertFalse(b.flood)
	lu.assertTrue(b.isolated)
	lu.assertEquals(assert(h:brport_get("pv0")), b)
	lu.assertTrue(h:brport_set { dev = H.iplink("pv0").ifindex, hairpin = false, learning = true })
	b = H.bridge("-d link show dev pv0")[1]
	lu.assertFalse(b.hairpin)
	lu.assertTrue(b.learning)
	lu.assertFalse(b.flood)                    -- untouched
	lu.assertEquals(assert(h:brport_get("pv0")), b)
end

function TestBrport:test_not_a_port_missing_and_bad_names()
	local h = self.h
	port_setup()
	fails_unchanged(E.EOPNOTSUPP, function() return h:brport_get("pv1") end)
	fails_unchanged(E.EOPNOTSUPP, function() return h:brport_set { dev = "pv1", hairpin = true } end)
	fails_unchanged(E.ENODEV, function() return h:brport_get("pnone") end)
	fails_unchanged(E.ENODEV, function() return h:brport_set { dev = "pnone", hairpin = true } end)
	for _, c in ipairs(BAD_NAMES) do
		fails_unchanged(c[2], function() return h:brport_get(c[1]) end)
		fails_unchanged(c[2], function() return h:brport_set { dev = c[1], hairpin = true } end)
	end
end

function TestBrport:test_bad_arguments()
	local h = self.h
	lu.assertErrorMsgContains("bad argument", function() h:brport_get() end)
	lu.assertErrorMsgContains("needs 'ifindex' or 'ifname'", function() h:brport_get({ 1 }) end)
	lu.assertErrorMsgContains("link must be", function() h:brport_get(print) end)
	lu.assertErrorMsgContains("table expected", function() h:brport_set("pv0") end)
	lu.assertErrorMsgContains("field 'dev' is required", function() h:brport_set { hairpin = true } end)
	lu.assertErrorMsgContains("unknown field 'cost'", function() h:brport_set { dev = "pv0", cost = 3 } end)
	lu.assertErrorMsgContains("field 'hairpin' must be a boolean", function() h:brport_set { dev = "pv0", hairpin = "on" } end)
	lu.assertErrorMsgContains("no more arguments", function() h:brport_set({ dev = "pv0" }, 1) end)
end
