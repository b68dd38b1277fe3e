-- spec/test_driver.lua: the create-network flow (lua/brisk/driver.lua and
-- csrc/steps.c), with libnetwork's bridge scenarios. Runs inside the private
-- namespace spec/run.lua made.
local lu = require "luaunit"
local H = require "helper"
local core = require "brisk.core"
local driver = require "brisk.driver"

local E = core.errno

local tmpdir = H.tmpdir

local has = H.has

local function addrs(dev, fam) return H.addrs(dev, { family = fam }) end

local function sysctl(path)
	local f = io.open("/proc/sys/" .. path)
	if not f then return nil end
	local v = f:read("l")
	f:close()
	return v
end

local function fresh(self, o)
	H.reset()
	self.dir = tmpdir()
	o = o or {}
	o.state_dir = self.dir
	self.d = assert(driver.open(o))
	return self.d
end

local function cleanup(self)
	if self.d then self.d:close() end
	H.reset()
	if self.dir then H.sh("rm -rf " .. self.dir) end
end

local function state()
	return H.snapshot() .. H.must("nft list ruleset") .. table.concat({
		sysctl("net/ipv4/ip_forward") or "", sysctl("net/ipv6/conf/all/forwarding") or "", sysctl("net/ipv6/conf/default/forwarding") or "",
		sysctl("net/ipv6/conf/default/accept_ra") or "",
	}, ",")
end

---------------------------------------------------------------------------
TestCreate = { setUp = fresh, tearDown = cleanup }

function TestCreate:test_creates_bridge_like_docker()
	local net = assert(self.d:create_network{ name = "web", subnet = "172.18.0.0/16" })
	local l = H.iplink(net.bridge)
	lu.assertNotNil(l)
	lu.assertEquals(net.bridge, "br-" .. net.id:sub(1, 12))
	lu.assertEquals(l.linkinfo.info_kind, "bridge")
	-- ip -j leaves txqlen out when it is 0; brisk reports it
	lu.assertNil(l.txqlen)
	local hq <close> = assert(core.open())
	lu.assertEquals(hq:link_get(net.bridge).txqlen, 0)
	lu.assertStrMatches(l.address, "02:42:%x%x:%x%x:%x%x:%x%x")
	lu.assertTrue(has(l.flags, "UP"))
	lu.assertEquals(addrs(net.bridge, "4"), { "172.18.0.1/16" })
	local a = H.ip("-4 addr show dev " .. net.bridge)[1].addr_info[1]
	lu.assertEquals(a.broadcast, "172.18.255.255")
	lu.assertEquals(sysctl("net/ipv6/conf/" .. net.bridge .. "/accept_ra"), "0")
	-- brisk's own view agrees with iproute2's
	local h <close> = assert(core.open())
	lu.assertEquals(h:link_get(net.bridge).address, l.address)
	-- the prefix route, as the kernel adds it
	local routes = H.ip("route show dev " .. net.bridge)
	lu.assertEquals(routes[1].dst, "172.18.0.0/16")
end

function TestCreate:test_same_id_twice_is_forbidden()
	local id = string.rep("ab", 32)
	assert(self.d:create_network{ name = "a", id = id, subnet = "10.1.0.0/24" })
	local before = state()
	local ok, msg, err = self.d:create_network{ name = "b", id = id, subnet = "10.2.0.0/24" }
	lu.assertNil(ok)
	lu.assertStrContains(msg, "exists")
	lu.assertEquals(err, E.EEXIST)
	lu.assertEquals(state(), before)
	lu.assertEquals(#self.d:networks(), 1)
end

function TestCreate:test_overlap_names_both_networks()
	assert(self.d:create_network{ name = "a", subnet = "10.1.0.0/16" })
	local before = state()
	local ok, msg, err = self.d:create_network{ name = "b", subnet = "10.1.2.0/24" }
	lu.assertNil(ok)
	lu.assertStrContains(msg, "cannot create network b")
	lu.assertStrContains(msg, "conflicts with network a")
	lu.assertStrContains(msg, "10.1.0.0/16 and 10.1.2.0/24")
	lu.assertEquals(err, E.EEXIST)
	lu.assertEquals(state(), before)
end

function TestCreate:test_same_bridge_name_conflicts()
	assert(self.d:create_network{ name = "a", subnet = "10.1.0.0/24", options = { bridge = "brx" } })
	local ok, msg = self.d:create_network{ name = "b", subnet = "10.2.0.0/24", options = { bridge = "brx" } }
	lu.assertNil(ok)
	lu.assertStrContains(msg, "same bridge name")
end

function TestCreate:test_empty_pool_and_multiple_subnets()
	local before = state()
	local ok, msg = self.d:create_network{ name = "a", subnet = "0.0.0.0/0" }
	lu.assertNil(ok)
	lu.assertStrContains(msg, "ipv4 pool is empty")
	ok, msg = self.d:create_network{ name = "a", subnet = { "10.1.0.0/24", "10.2.0.0/24" } }
	lu.assertNil(ok)
	lu.assertStrContains(msg, "doesn't support multiple subnets")
	lu.assertEquals(state(), before)
	lu.assertEquals(#self.d:networks(), 0)
end

function TestCreate:test_default_pool_skips_taken_and_routes()
	H.must("ip link add dpx type bridge && ip addr add 172.17.5.1/24 dev dpx && ip link set dpx up")
	local a = assert(self.d:create_network{ name = "a" })
	lu.assertEquals(a.subnet4, "172.18.0.0/16")
	local b = assert(self.d:create_network{ name = "b" })
	lu.assertEquals(b.subnet4, "172.19.0.0/16")
end

function TestCreate:test_fail_default_bridge_named_dummy0()
	-- TestCreateFail: DefaultBridge named dummy0 fails
	local before = state()
	local ok, msg = self.d:create_network{ name = "d", subnet = "10.9.0.0/24",
		options = { ["com.docker.network.bridge.default_bridge"] = "true",
			["com.docker.network.bridge.name"] = "dummy0" } }
	lu.assertNil(ok)
	lu.assertStrContains(msg, "setup_device")
	lu.assertStrContains(msg, "must be created manually")
	lu.assertEquals(state(), before)
end

function TestCreate:test_full_options_labels()
	local net = assert(self.d:create_network{ name = "full", subnet = { "192.168.100.0/24", "fe90::/64" },
		gateway = { "192.168.100.10", "fe90::22" }, ipv6 = true,
		options = {
			["com.docker.network.bridge.name"] = "cu",
			["com.docker.network.bridge.enable_icc"] = "false",
			["com.docker.network.bridge.enable_ip_masquerade"] = "false",
			["com.docker.network.driver.mtu"] = "1400",
			["com.docker.network.container_iface_prefix"] = "ctr",
			["com.docker.network.bridge.host_binding_ipv4"] = "192.0.2.1",
			["com.docker.network.host_ipv4"] = "10.0.0.9",
		} })
	lu.assertEquals(net.bridge, "cu")
	lu.assertFalse(net.icc)
	lu.assertFalse(net.masquerade)
	lu.assertEquals(net.mtu, 1400)
	lu.assertEquals(net.container_iface_prefix, "ctr")
	lu.assertEquals(net.host_binding_ipv4, "192.0.2.1")
	lu.assertEquals(net.address_ipv4, "192.168.100.10/24")
	lu.assertEquals(net.address_ipv6, "fe90::22/64")
	lu.assertEquals(H.iplink("cu").mtu, 1400)
	local a = addrs("cu")
	lu.assertTrue(has(a, "192.168.100.10/24"))
	lu.assertTrue(has(a, "fe80::1/64"))
	lu.assertTrue(has(a, "fe90::22/64"))
	lu.assertEquals(sysctl("net/ipv6/conf/cu/disable_ipv6"), "0")
	lu.assertEquals(sysctl("net/ipv6/conf/all/forwarding"), "1")
	local found = false
	for _, r in ipairs(H.ip("-6 route show dev cu")) do if r.dst == "fe90::/64" then found = true end end
	lu.assertTrue(found)
end

function TestCreate:test_unknown_label_did_you_mean()
	local before = state()
	local ok, msg = self.d:create_network{ name = "x", subnet = "10.3.0.0/24",
		options = { ["com.docker.network.bridge.enabel_icc"] = "true" } }
	lu.assertNil(ok)
	lu.assertStrContains(msg, "did you mean")
	lu.assertStrContains(msg, "com.docker.network.bridge.enable_icc")
	ok, msg = self.d:create_network{ name = "x", subnet = "10.3.0.0/24", subnett = "x" }
	lu.assertNil(ok)
	lu.assertStrContains(msg, "did you mean 'subnet'")
	lu.assertEquals(state(), before)
end

---------------------------------------------------------------------------
TestValidateConfig = { setUp = fresh, tearDown = cleanup }

function TestValidateConfig:test_mtu()
	local ok, msg = self.d:create_network{ name = "m", subnet = "10.4.0.0/24",
		options = { ["com.docker.network.driver.mtu"] = "-2" } }
	lu.assertNil(ok)
	lu.assertStrContains(msg, "invalid MTU number: -2")
	local net = assert(self.d:create_network{ name = "m", subnet = "10.4.0.0/24", options = { mtu = 9000 } })
	lu.assertEquals(H.iplink(net.bridge).mtu, 9000)
end

function TestValidateConfig:test_gateways()
	local before = state()
	local ok, msg = self.d:create_network{ name = "g", subnet = "10.5.0.0/24", gateway = "10.6.0.1" }
	lu.assertNil(ok)
	lu.assertStrContains(msg, "not inside subnet")
	ok, msg = self.d:create_network{ name = "g", subnet = "10.5.0.0/24",
		aux_addresses = { DefaultGatewayIPv4 = "10.7.0.1" } }
	lu.assertNil(ok)
	lu.assertStrContains(msg, "default gateway ip must be part of the network")
	ok, msg = self.d:create_network{ name = "g", subnet = "10.5.0.0/24", ipv6 = true,
		aux_addresses = { DefaultGatewayIPv6 = "2001:db8::1" } }
	lu.assertNil(ok)
	lu.assertStrContains(msg, "container subnet must be a subset of bridge network")
	lu.assertEquals(state(), before)
	lu.assertEquals(#self.d:networks(), 0)
	-- inside: accepted (TestSetupGatewayIPv4/IPv6)
	local net = assert(self.d:create_network{ name = "g", subnet = { "10.5.0.0/24", "2001:db8::/64" },
		ipv6 = true, aux_addresses = { DefaultGatewayIPv4 = "10.5.0.254", DefaultGatewayIPv6 = "2001:db8::fe" } })
	lu.assertEquals(net.default_gateway_ipv4, "10.5.0.254")
	lu.assertEquals(net.default_gateway_ipv6, "2001:db8::fe")
end

function TestValidateConfig:test_bad_input_table()
	local cases = {
		{ { name = "x", subnet = "10.0.0.1/33" }, "10.0.0.1/33" },
		{ { name = "x", subnet = "300.1.1.0/24" }, "300.1.1.0/24" },
		{ { name = "x", subnet = "abc" }, "abc" },
		{ { name = "", subnet = "10.0.0.0/24" }, "invalid network name" },
		{ { name = "a b", subnet = "10.0.0.0/24" }, "invalid network name" },
		{ { name = "x", subnet = "10.0.0.0/24", options = { bridge = "waytoolongbridgename" } }, "bridge" },
		{ { name = "x", subnet = "10.0.0.0/24", options = { bridge = "a/b" } }, "bridge" },
		{ { name = "x", subnet = "10.0.0.0/24", options = { icc = "maybe" } }, "icc" },
		{ { name = "x", subnet = "10.0.0.0/24", options = { mtu = "lots" } }, "mtu" },
		{ { name = "x", subnet = "10.0.0.0/24", options = { host_ipv4 = "1.2.3" } }, "1.2.3" },
		{ { name = "x", subnet = "10.0.0.0/24", gateway = "10.0.0.0" }, "network or broadcast" },
		{ { name = "x", subnet = "10.0.0.0/24", ip_range = "10.1.0.0/28" }, "not inside subnet" },
		{ { name = "x", subnet = "2001:db8::/64" }, "needs --ipv6" },
		{ { name = "x", subnet = "10.0.0.0/24", ipv6 = "yes" }, "ipv6" },
	}
	local before = state()
	for _, c in ipairs(cases) do
		local ok, msg, err = self.d:create_network(c[1])
		lu.assertNil(ok, c[2])
		lu.assertStrContains(msg, c[2])
		lu.assertIsNumber(err)
	end
	lu.assertEquals(state(), before)
	lu.assertEquals(#self.d:networks(), 0)
end

---------------------------------------------------------------------------
TestCreateWithExistingBridge = { setUp = fresh, tearDown = cleanup }

function TestCreateWithExistingBridge:test_user_bridge_kept()
	H.must("ip link add ubr type bridge && ip addr add 10.20.0.1/24 dev ubr")
	local net = assert(self.d:create_network{ name = "u", subnet = "10.20.0.0/24",
		options = { bridge = "ubr" } })
	lu.assertEquals(net.creator, "user")
	lu.assertEquals(addrs("ubr", "4"), { "10.20.0.1/24" })
	assert(self.d:delete_network("u"))
	lu.assertNotNil(H.iplink("ubr"))
	lu.assertEquals(addrs("ubr", "4"), { "10.20.0.1/24" })
	lu.assertEquals(#self.d:networks(), 0)
end

function TestCreateWithExistingBridge:test_not_a_bridge()
	H.must("ip link add nb0 type veth peer name nb1")
	local ok, msg = self.d:create_network{ name = "n", subnet = "10.21.0.0/24", options = { bridge = "nb0" } }
	lu.assertNil(ok)
	lu.assertStrContains(msg, "existing interface nb0 is not a bridge")
end

function TestCreateWithExistingBridge:test_verify_mismatch_fails_cleanly()
	-- TestSetupVerifyBad: the user's bridge has another address
	H.must("ip link add ubr2 type bridge && ip addr add 10.22.0.9/24 dev ubr2")
	local before = state()
	-- setup_bridge_ipv4 reconciles first (as libnetwork), so verify passes
	-- afterwards. ip_forward stays on after a delete, as with Docker, so the
	-- comparison is of links, addresses, routes and rules.
	before = H.snapshot() .. H.must("nft list ruleset")
	local net = assert(self.d:create_network{ name = "v", subnet = "10.22.0.0/24", options = { bridge = "ubr2" } })
	lu.assertEquals(addrs("ubr2", "4"), { "10.22.0.1/24" })
	assert(self.d:delete_network("v"))
	-- what brisk changed on the user's bridge is undone
	lu.assertEquals(addrs("ubr2", "4"), { "10.22.0.9/24" })
	lu.assertEquals(H.snapshot() .. H.must("nft list ruleset"), before)
	lu.assertNotNil(net)
end

---------------------------------------------------------------------------
-- The step functions one by one, against the real handle (TestSetup*).
TestSteps = {}

function TestSteps:setUp()
	H.reset()
	self.h = assert(core.open())
end

function TestSteps:tearDown()
	self.h:close()
	H.reset()
end

function TestSteps:test_setup_new_bridge()
	assert(core.steps.setup_device(self.h, { bridge = "sb0" }))
	local l = H.iplink("sb0")
	lu.assertEquals(l.linkinfo.info_kind, "bridge")
	lu.assertFalse(has(l.flags, "UP"))
	lu.assertNil(l.txqlen) -- ip -j leaves a txqlen of 0 out
	lu.assertEquals(self.h:link_get("sb0").txqlen, 0)
	lu.assertStrMatches(l.address, "02:42:.*")
	local ok, msg, err = core.steps.setup_device(self.h, { bridge = "sb0" })
	lu.assertNil(ok)
	lu.assertEquals(err, E.EEXIST)
end

function TestSteps:test_setup_new_non_default_bridge()
	local ok, msg, err = core.steps.setup_device(self.h, { bridge = "test0", default_bridge = true })
	lu.assertNil(ok)
	lu.assertStrContains(msg, "must be created manually")
	lu.assertEquals(err, E.EPERM)
	lu.assertNil(H.iplink("test0"))
end

function TestSteps:test_setup_device_up()
	assert(core.steps.setup_device(self.h, { bridge = "sb1" }))
	assert(core.steps.setup_device_up(self.h, { bridge = "sb1" }))
	lu.assertTrue(has(H.iplink("sb1").flags, "UP"))
end

function TestSteps:test_setup_bridge_ipv4_fixed()
	assert(core.steps.setup_device(self.h, { bridge = "sb2" }))
	assert(core.steps.setup_bridge_ipv4(self.h, { bridge = "sb2", address_ipv4 = "172.16.1.1/16" }))
	lu.assertEquals(addrs("sb2", "4"), { "172.16.1.1/16" })
	-- re-runnable: nothing changes the second time
	assert(core.steps.setup_bridge_ipv4(self.h, { bridge = "sb2", address_ipv4 = "172.16.1.1/16" }))
	lu.assertEquals(addrs("sb2", "4"), { "172.16.1.1/16" })
end

function TestSteps:test_setup_ipv6()
	assert(core.steps.setup_device(self.h, { bridge = "sb3" }))
	assert(core.steps.setup_bridge_ipv6(self.h, { bridge = "sb3" }))
	lu.assertEquals(sysctl("net/ipv6/conf/sb3/disable_ipv6"), "0")
	lu.assertTrue(has(addrs("sb3", "6"), "fe80::1/64"))
end

function TestSteps:test_setup_verify()
	assert(core.steps.setup_device(self.h, { bridge = "sb4" }))
	local net = { bridge = "sb4", address_ipv4 = "192.168.50.1/24" }
	-- missing address
	local ok, msg = core.steps.setup_verify_and_reconcile(self.h, net)
	lu.assertNil(ok)
	lu.assertStrContains(msg, "bridge has no IPv4 address configured")
	-- bad address
	H.must("ip addr add 192.168.60.1/24 dev sb4")
	ok, msg = core.steps.setup_verify_and_reconcile(self.h, net)
	lu.assertNil(ok)
	lu.assertStrContains(msg, "does not match requested configuration 192.168.50.1/24")
	-- matching
	H.must("ip addr flush dev sb4 && ip addr add 192.168.50.1/24 dev sb4")
	assert(core.steps.setup_verify_and_reconcile(self.h, net))
end

function TestSteps:test_setup_verify_ipv6()
	assert(core.steps.setup_device(self.h, { bridge = "sb5" }))
	H.must("ip addr add 192.168.51.1/24 dev sb5")
	local net = { bridge = "sb5", address_ipv4 = "192.168.51.1/24", enable_ipv6 = true }
	local ok, msg = core.steps.setup_verify_and_reconcile(self.h, net)
	lu.assertNil(ok)
	lu.assertStrContains(msg, "fe80::1/64")
	H.must("ip addr add fe80::1/64 dev sb5 && ip addr add 2001:db8:9::5/64 dev sb5")
	assert(core.steps.setup_verify_and_reconcile(self.h, net))
	-- global unicast addresses other than the bridge's are removed
	lu.assertFalse(has(addrs("sb5", "6"), "2001:db8:9::5/64"))
	lu.assertTrue(has(addrs("sb5", "6"), "fe80::1/64"))
end

function TestSteps:test_setup_gateways()
	assert(core.steps.setup_gateway_ipv4(self.h, { address_ipv4 = "10.0.0.1/24", default_gateway_ipv4 = "10.0.0.7" }))
	local ok, msg, err = core.steps.setup_gateway_ipv4(self.h, { address_ipv4 = "10.0.0.1/24", default_gateway_ipv4 = "10.0.1.7" })
	lu.assertNil(ok)
	lu.assertEquals(err, E.EINVAL)
	assert(core.steps.setup_gateway_ipv6(self.h, { address_ipv6 = "2001:db8::1/64", default_gateway_ipv6 = "2001:db8::7" }))
	ok, msg = core.steps.setup_gateway_ipv6(self.h, { default_gateway_ipv6 = "2001:db8::7" })
	lu.assertNil(ok)
	lu.assertStrContains(msg, "container subnet must be a subset of bridge network")
end

function TestSteps:test_bad_arguments()
	for name, fn in pairs(core.steps) do
		lu.assertError(fn, self.h, nil)
		lu.assertError(fn, nil, {})
		local needs_nothing = { setup_ipv6_forwarding = true, setup_gateway_ipv4 = true,
			setup_gateway_ipv6 = true, setup_bridge_netfiltering = true }
		if not needs_nothing[name] then
			lu.assertErrorMsgContains("required", fn, self.h, {})
		end
	end
end

---------------------------------------------------------------------------
TestHooks = { setUp = fresh, tearDown = cleanup }

function TestHooks:test_before_after_order_and_arguments()
	local seen = {}
	self.d:before("setup_bridge_ipv4", function(h, net, ctx)
		seen[#seen + 1] = "before:" .. net.name .. ":" .. ctx.step
		lu.assertIsFunction(h.addr_add)
		return true
	end)
	self.d:after("setup_bridge_ipv4", function(h, net)
		seen[#seen + 1] = "after:" .. #addrs(net.bridge, "4")
		return true
	end)
	assert(self.d:create_network{ name = "hk", subnet = "10.30.0.0/24" })
	lu.assertEquals(seen, { "before:hk:setup_bridge_ipv4", "after:1" })
end

function TestHooks:test_replace_insert_remove()
	local replaced, inserted = false, nil
	self.d:replace_step("setup_mtu", function(h, net, ctx)
		replaced = true
		lu.assertIsFunction(ctx.original)
		return ctx.original(h, net, ctx)
	end)
	self.d:insert_step{ name = "bridge_ageing", after = "setup_device", run = function(h, net)
		inserted = H.iplink(net.bridge) ~= nil
		return h:bridge_set{ dev = net.bridge, ageing_time = 20000 }
	end }
	self.d:remove_step("setup_default_sysctl")
	local names = self.d:step_names()
	lu.assertEquals(names[2], "bridge_ageing")
	lu.assertFalse(has(names, "setup_default_sysctl"))
	local net = assert(self.d:create_network{ name = "rp", subnet = "10.31.0.0/24", options = { mtu = 1450 } })
	lu.assertTrue(replaced)
	lu.assertTrue(inserted)
	local l = H.iplink(net.bridge)
	lu.assertEquals(l.mtu, 1450)
	lu.assertEquals(l.linkinfo.info_data.ageing_time, 20000)
	lu.assertEquals(sysctl("net/ipv6/conf/" .. net.bridge .. "/accept_ra"), "1")
	-- another driver is unaffected
	local d2 = assert(driver.open{ state_dir = self.dir })
	lu.assertTrue(has(d2:step_names(), "setup_default_sysctl"))
	d2:close()
	lu.assertErrorMsgContains("did you mean 'setup_mtu'", function() self.d:before("setup_mtux", print) end)
end

---------------------------------------------------------------------------
TestFaultInjection = {}

function TestFaultInjection:test_every_step_position_rolls_back()
	H.reset()
	local dir = tmpdir()
	local d0 = assert(driver.open{ state_dir = dir })
	local names = d0:step_names()
	d0:close()
	lu.assertTrue(#names >= 8)
	for _, step in ipairs(names) do
		H.reset()
		local before = state()
		local d = assert(driver.open{ state_dir = dir })
		d:after(step, function() return nil, "injected failure", E.EIO end)
		local ok, msg, err = d:create_network{ name = "f", subnet = { "10.40.0.0/24", "fd40::/64" }, ipv6 = true,
			options = { mtu = 1400, icc = false },
			aux_addresses = { DefaultGatewayIPv4 = "10.40.0.9", DefaultGatewayIPv6 = "fd40::9" } }
		if ok == nil and msg:find("injected failure") then
			lu.assertStrContains(msg, "step " .. step .. " failed")
			lu.assertEquals(err, E.EIO)
		else
			-- a step that is not queued for this network cannot fail
			lu.assertTrue(ok ~= nil, step .. ": " .. tostring(msg))
			d:delete_network("f")
		end
		lu.assertEquals(state(), before, "state after a failure at " .. step)
		lu.assertEquals(#d:networks(), 0)
		d:close()
	end
	H.sh("rm -rf " .. dir)
end

---------------------------------------------------------------------------
TestPlan = { setUp = fresh, tearDown = cleanup }

local function ops_only(list)
	local t = {}
	for _, e in ipairs(list) do t[#t + 1] = { op = e.op, args = e.args } end
	return t
end

function TestPlan:test_plan_touches_nothing_and_apply_matches()
	local before = state()
	local plan = assert(self.d:plan_network{ name = "pl", subnet = { "10.50.0.0/24", "fd50::/64" }, ipv6 = true,
		options = { mtu = 1300 } })
	lu.assertEquals(state(), before)
	lu.assertEquals(#self.d:networks(), 0)
	lu.assertEquals(plan.steps[1].name, "setup_device")
	lu.assertEquals(plan.steps[1].ops[1].op, "link_add")
	local net = assert(self.d:apply(plan))
	lu.assertEquals(ops_only(net.journal), ops_only(plan.ops))
	lu.assertEquals(H.iplink(net.bridge).mtu, 1300)
end

function TestPlan:test_plan_of_existing_state_is_empty_where_it_matches()
	H.must("ip link add ubr3 type bridge && ip addr add 10.51.0.1/24 brd + dev ubr3 && ip link set ubr3 up")
	local plan = assert(self.d:plan_network{ name = "ex", subnet = "10.51.0.0/24", options = { bridge = "ubr3" } })
	for _, s in ipairs(plan.steps) do
		if s.name == "setup_bridge_ipv4" or s.name == "setup_device_up" then
			lu.assertEquals(#s.ops, 0, s.name)
		end
		if s.name == "setup_device" then lu.assertTrue(s.skipped) end
	end
end

---------------------------------------------------------------------------
TestStoreRoundTrip = { setUp = fresh, tearDown = cleanup }

function TestStoreRoundTrip:test_create_reopen_inspect_delete()
	local net = assert(self.d:create_network{ name = "rt", subnet = "10.60.0.0/24" })
	self.d:close()
	local d2 = assert(driver.open{ state_dir = self.dir })
	local n2 = assert(d2:network("rt"))
	lu.assertEquals(n2.id, net.id)
	lu.assertEquals(n2.address_ipv4, "10.60.0.1/24")
	lu.assertEquals(assert(d2:network(net.id:sub(1, 12))).name, "rt")
	assert(d2:delete_network("rt"))
	lu.assertNil(H.iplink(net.bridge))
	lu.assertNil(d2:network("rt"))
	local ok, msg, err = d2:delete_network("rt")
	lu.assertNil(ok)
	lu.assertEquals(err, E.ENOENT)
	self.d = d2
	-- the store files are private
	assert(self.d:create_network{ name = "rt2", subnet = "10.60.0.0/24" })
	lu.assertEquals((H.must("stat -c %a " .. self.dir .. "/network"):gsub("%s", "")), "700")
	lu.assertEquals((H.must("stat -c %a " .. self.dir .. "/network/*.json"):gsub("%s", "")), "600")
end

function TestStoreRoundTrip:test_restore_and_check()
	local net = assert(self.d:create_network{ name = "rs", subnet = "10.61.0.0/24", options = { mtu = 1400 } })
	lu.assertEquals(self.d:check(), {})
	H.must("ip link del " .. net.bridge)
	local drift = self.d:check()
	lu.assertEquals(#drift, 1)
	lu.assertStrContains(drift[1], "missing")
	local res = self.d:restore()
	lu.assertTrue(res[1].ok, res[1].msg)
	lu.assertEquals(self.d:check(), {})
	lu.assertEquals(H.iplink(net.bridge).mtu, 1400)
	H.must("ip addr flush dev " .. net.bridge .. " && ip link set " .. net.bridge .. " down")
	drift = self.d:check()
	lu.assertEquals(#drift, 2)
	self.d:restore()
	lu.assertEquals(self.d:check(), {})
end

function TestStoreRoundTrip:test_create_reads_the_index_not_every_network()
	local a = assert(self.d:create_network{ name = "ia", subnet = "10.63.0.0/24" })
	local b = assert(self.d:create_network{ name = "ib", subnet = "10.64.0.0/24",
		options = { ["com.docker.network.bridge.name"] = "brib" } })
	-- the stored documents, broken behind the store's back: another process
	-- trusts the index and does not open them
	for _, n in ipairs{ a, b } do H.spit(self.dir .. "/network/" .. n.id .. ".json", "not json") end
	local function other(spec)
		local _, out = H.sh(H.lua_cmd(("local d = assert(require('brisk.driver').open{ state_dir = %q }); " ..
			"local n, msg = d:create_network(%s); io.write(n and n.subnet4 or msg)"):format(self.dir, spec)))
		return out
	end
	-- the conflict checks see every field they compare
	lu.assertStrContains(other("{ name = 'ia', subnet = '10.65.0.0/24' }"), "a network named ia exists")
	lu.assertStrContains(other("{ name = 'x', subnet = '10.63.0.128/25' }"), "overlapping IPv4 (10.63.0.0/24")
	lu.assertStrContains(other("{ name = 'x', subnet = '10.65.0.0/24', options = { ['com.docker.network.bridge.name'] = 'brib' } }"),
		"same bridge name brib")
	lu.assertStrContains(other("{ name = 'x', id = '" .. a.id .. "', subnet = '10.65.0.0/24' }"),
		"network " .. a.id .. " exists")
	lu.assertEquals(other("{ name = 'ic', subnet = '10.65.0.0/24' }"), "10.65.0.0/24")
	for _, n in ipairs{ a, b } do os.remove(self.dir .. "/network/" .. n.id .. ".json") end
	self.d:close()
	self.d = assert(driver.open{ state_dir = self.dir })
	assert(self.d:delete_network("ic"))
end

function TestStoreRoundTrip:test_ipv6_overlap_and_a_stale_index()
	assert(self.d:create_network{ name = "v6", subnet = { "10.66.0.0/24", "fd66::/64" }, ipv6 = true })
	-- a network written by hand (as a crash after the document, before the
	-- index line, leaves it): .gen moves, the index is rebuilt
	local hand = { id = string.rep("ab", 32), name = "hand", bridge = "br-hand", subnet4 = "10.67.0.0/24",
		dbIndex = 1 }
	H.spit(self.dir .. "/network/" .. hand.id .. ".json", require("brisk.store").encode(hand))
	H.spit(self.dir .. "/.gen", string.format("%020d:%s", 12345, "handmade0000"))
	local ok, msg, err = self.d:create_network{ name = "x", subnet = "10.67.0.0/25" }
	lu.assertNil(ok)
	lu.assertStrContains(msg, "conflicts with network hand")
	lu.assertEquals(err, E.EEXIST)
	ok, msg = self.d:create_network{ name = "y", subnet = { "10.68.0.0/24", "fd66::/56" }, ipv6 = true }
	lu.assertNil(ok)
	lu.assertStrContains(msg, "overlapping IPv6 (fd66::/64 and fd66::/56)")
	lu.assertEquals(assert(self.d:network("hand")).subnet4, "10.67.0.0/24")
	os.remove(self.dir .. "/network/" .. hand.id .. ".json")
	H.spit(self.dir .. "/.gen", string.format("%020d:%s", 12346, "handmade0001"))
	lu.assertNil(self.d:network("hand"))
	assert(self.d:delete_network("v6"))
end

-- The conflict lookup (D:conflict) against a walk over every stored
-- network with brisk.ipnet: random prefixes of both families, nested and
-- disjoint, through writes, deletes and another process's write. The
-- records are written to the store directly (the lookup reads only the
-- index), so nothing here touches the kernel.
TestConflictLookup = { setUp = fresh, tearDown = cleanup }

function TestConflictLookup:test_agrees_with_a_walk_over_every_network()
	local ipnet = require "brisk.ipnet"
	math.randomseed(7)
	local rnd = math.random
	local function canon(a) return ipnet.format(ipnet.network(ipnet.parse_cidr(a))) end
	local function v4()
		return canon(string.format("10.%d.%d.%d/%d", rnd(0, 255), rnd(0, 255), rnd(0, 255), rnd(16, 30)))
	end
	local function v6()
		return canon(string.format("fd00:%x:%x::%x/%d", rnd(0, 255), rnd(0, 65535), rnd(0, 65535), rnd(40, 124)))
	end
	local function id(i) return string.format("%064x", i) end
	local stored = {}
	local function put(st, i)
		local doc = { id = id(i), name = "n" .. i, bridge = "br" .. i, subnet4 = v4(),
			subnet6 = rnd(0, 2) == 0 and v6() or nil }
		assert(st:put("network", doc))
		stored[doc.id] = doc
	end
	local parsed = setmetatable({}, { __index = function(t, a)
		local c = ipnet.parse_cidr(a)
		t[a] = c
		return c
	end })
	local function overlaps(a, b) return ipnet.overlaps(parsed[a], parsed[b]) end
	-- the stored networks a new one conflicts with, by a walk over all
	local function walk(net)
		local hits = {}
		for _, o in pairs(stored) do
			if o.name == net.name or o.id == net.id or o.bridge == net.bridge
				or overlaps(o.subnet4, net.subnet4)
				or (o.subnet6 and net.subnet6 and overlaps(o.subnet6, net.subnet6)) then
				hits[o.id] = true
			end
		end
		return hits
	end
	-- `rounds` random networks: the lookup finds a conflict exactly when
	-- the walk does, and what it finds is one; with `taken`, names, ids
	-- and bridges are drawn from the stored ones' range (else never taken)
	local function check(rounds, taken)
		local found, clean = 0, 0
		for q = 1, rounds do
			local net = { id = taken and id(rnd(1, 1000)) or string.rep("e", 64),
				name = taken and "n" .. rnd(1, 1000) or "free", bridge = taken and "br" .. rnd(1, 1000) or "brfree",
				subnet4 = v4(), subnet6 = rnd(0, 1) == 0 and v6() or nil }
			local o, why = self.d:conflict(net)
			local hits = walk(net)
			if o then
				found = found + 1
				lu.assertTrue(hits[o.id], string.format("query %d: %s is no conflict (%s)", q, o.id, why))
				if not taken then
					lu.assertStrMatches(why, "^networks have overlapping IPv[46] %(.* and .*%)$")
				end
			else
				clean = clean + 1
				lu.assertNil(next(hits), string.format("query %d: missed %s", q, tostring(next(hits))))
			end
		end
		-- both answers were asked for
		lu.assertTrue(found > rounds // 20 and clean > rounds // 20, found .. " found, " .. clean .. " clean")
	end
	for i = 1, 400 do put(self.d.store, i) end
	-- a reason names both subnets
	local o, why = self.d:conflict{ name = "x", id = string.rep("f", 64), bridge = "bx", subnet4 = stored[id(1)].subnet4 }
	lu.assertNotNil(o)
	lu.assertEquals(why, "networks have overlapping IPv4 (" .. o.subnet4 .. " and " .. stored[id(1)].subnet4 .. ")")
	check(300, false)
	check(300, true)
	-- deletes through this store keep it in step
	for i = 1, 400, 2 do
		assert(self.d.store:delete("network", id(i)))
		stored[id(i)] = nil
	end
	check(300, false)
	check(300, true)
	-- another process's writes: a new generation, the lookup made anew
	local other = assert(require("brisk.store").open(self.dir, { index = driver.INDEX }))
	for i = 401, 500 do put(other, i) end
	assert(other:delete("network", id(2)))
	stored[id(2)] = nil
	check(300, false)
	check(300, true)
	-- networks by name, id and id prefix (4 characters or more)
	lu.assertEquals(assert(self.d:network("n4")).subnet4, stored[id(4)].subnet4)
	lu.assertEquals(assert(self.d:network(id(4))).name, "n4")
	-- ids 0 to f share these 63 characters: ambiguous, as in Docker
	local ok, msg, err = self.d:network(id(4):sub(1, 63))
	lu.assertNil(ok)
	lu.assertStrContains(msg, "ambiguous (")
	lu.assertEquals(err, core.errno.EINVAL)
	lu.assertNil(self.d:network("n2"))
	lu.assertNil(self.d:network("n3"))
	for k in pairs(stored) do assert(self.d.store:delete("network", k)) end
end

---------------------------------------------------------------------------
TestCreateParallel = {}

function TestCreateParallel:test_100_processes_one_pool_exactly_one_wins()
	H.reset()
	local dir = tmpdir()
	local script = dir .. "/one.lua"
	local f = assert(io.open(script, "w"))
	f:write(string.format([[
package.path = %q .. package.path
package.cpath = %q .. package.cpath
local d = assert(require("brisk.driver").open{ state_dir = %q })
local ok, msg = d:create_network{ name = "p" .. arg[1], subnet = "10.70.0.0/16" }
io.write(ok and "ok\n" or "fail\n")
]], package.path:match("^[^;]*;[^;]*;") or "", package.cpath:match("^[^;]*;") or "", dir .. "/state"))
	f:close()
	local out = H.must(string.format("for i in $(seq 1 100); do lua5.4 %s $i & done; wait", script))
	local oks = select(2, out:gsub("ok\n", ""))
	local fails = select(2, out:gsub("fail\n", ""))
	lu.assertEquals(oks, 1)
	lu.assertEquals(fails, 99)
	local bridges = 0
	for _, l in ipairs(H.ip("-d link show type bridge")) do bridges = bridges + 1 end
	lu.assertEquals(bridges, 1)
	H.reset()
	H.sh("rm -rf " .. dir)
end

---------------------------------------------------------------------------
TestDriverModule = {}

function TestDriverModule:test_no_globals()
	H.assert_no_globals({ "brisk.driver", "brisk.handle", "brisk.netopts", "brisk.endpoint", "brisk" })
end

function TestDriverModule:test_open_bad_options()
	lu.assertErrorMsgContains("unknown option 'stat_dir'", driver.open, { stat_dir = "/tmp/x" })
	lu.assertErrorMsgContains("must be a string", driver.open, { state_dir = 5 })
end
