-- spec/test_firewall.lua: libnetwork's bridge firewall in nftables
-- (lua/brisk/firewall.lua), on real topologies built with `ip`.
--
-- Topology (each test builds what it needs, in namespaces of its own):
--
--   ep namespaces --veth-- bridge(s) in HOST --up0/eth0-- OUT
--   172.18.0.x/16          172.18.0.1     192.0.2.1  192.0.2.2
--
-- HOST forwards (ip_forward=1 through firewall.enable_forwarding); OUT has
-- no route to the bridge subnets unless a test adds one. Servers and
-- clients are small python3 programs (there is no nc or ping here).
local lu = require "luaunit"
local cjson = require "cjson"
local H = require "helper"
local core = require "brisk.core"
local fw = require "brisk.firewall"

local made = {}      -- namespaces made by the current test
local servers = {}   -- servers started by the current test

local function ns_add(prefix)
	local ns = H.netns_add(H.name(prefix))
	made[#made + 1] = ns
	return ns
end

local function sh_in(ns, cmd) return H.must("ip netns exec " .. ns .. " " .. cmd) end

-- A sysctl writer for firewall.enable_forwarding, inside `ns`.
local function sysctl_in(ns)
	return function(key, value)
		local ok, old = H.sh("ip netns exec " .. ns .. " cat /proc/sys/" .. key)
		if not ok then return nil, old, core.errno.ENOENT end
		H.must("ip netns exec " .. ns .. " sh -c 'echo " .. value .. " > /proc/sys/" .. key .. "'")
		return (old:gsub("%s+$", ""))
	end
end

-- The firewall's run function, bound to HOST.
local function runner(ns)
	return function(script, opts) return core.nft(script, ns, opts) end
end

-- HOST and OUT, linked, HOST forwarding. Returns host, out.
local function base()
	local host, out = ns_add("fwh"), ns_add("fwo")
	H.must("ip -n " .. host .. " link add up0 type veth peer name eth0 netns " .. out)
	H.must("ip -n " .. host .. " addr add 192.0.2.1/24 dev up0")
	H.must("ip -n " .. host .. " link set up0 up")
	H.must("ip -n " .. out .. " addr add 192.0.2.2/24 dev eth0")
	H.must("ip -n " .. out .. " link set eth0 up")
	local old = assert(fw.enable_forwarding(sysctl_in(host)))
	lu.assertEquals(old, { ["net/ipv4/ip_forward"] = "0" })
	lu.assertEquals(sh_in(host, "cat /proc/sys/net/ipv4/ip_forward"), "1\n")
	return host, out
end

-- A bridge in HOST with gateway `gw` (CIDR).
local function bridge(host, name, gw)
	H.must("ip -n " .. host .. " link add " .. name .. " type bridge")
	H.must("ip -n " .. host .. " addr add " .. gw .. " dev " .. name .. " nodad")
	H.must("ip -n " .. host .. " link set " .. name .. " up")
end

-- An endpoint namespace on `br` with address `cidr`, default route via `gw`.
local function endpoint(host, br, cidr, gw)
	local ns = ns_add("fwe")
	local veth = H.name("vf")
	H.must("ip -n " .. host .. " link add " .. veth .. " type veth peer name eth0 netns " .. ns)
	H.must("ip -n " .. host .. " link set " .. veth .. " master " .. br .. " up")
	H.must("ip -n " .. ns .. " addr add " .. cidr .. " dev eth0 nodad")
	H.must("ip -n " .. ns .. " link set eth0 up")
	H.must("ip -n " .. ns .. " route add default via " .. gw)
	return ns, veth
end

-- Start the echo server in `ns` on `port`; returns a handle for `stop`.
local function serve(ns, port)
	local s = H.serve(ns, port)
	servers[#servers + 1] = s
	return s
end

local stop = H.stop

-- Send `msg` from `ns` to host:port; true when an echo came back.
local function send(ns, proto, host, port, msg, timeout)
	local ok, out = H.send(ns, proto, host, port, msg, timeout)
	return ok == true and out:match("^echo:") ~= nil, out
end

local function ruleset(ns) return H.must("ip netns exec " .. ns .. " nft list ruleset") end

-- Number of rules and set elements in HOST's ruleset.
local function count(ns)
	local doc = cjson.decode(H.must("ip netns exec " .. ns .. " nft -j list ruleset"))
	local rules, elems = 0, 0
	for _, o in ipairs(doc.nftables) do
		if o.rule then rules = rules + 1 end
		if o.set and o.set.elem then elems = elems + #o.set.elem end
	end
	return rules, elems
end

TestFirewall = {}

function TestFirewall:setUp()
	made, servers = {}, {}
end

function TestFirewall:tearDown()
	for _, s in ipairs(servers) do stop(s) end
	for _, ns in ipairs(made) do H.netns_del(ns) end
end

function TestFirewall:test_no_globals()
	H.assert_no_globals({ "brisk.firewall" })
end

function TestFirewall:test_bad_arguments()
	local run = function() error("must not run") end
	local net = { bridge = "br-x", subnet4 = "172.18.0.0/16" }
	local m = { proto = "tcp", host_port = 8080, container_ip = "172.18.0.2", container_port = 80 }
	lu.assertErrorMsgContains("did you mean 'subnet4'", function()
		fw.network_add(run, { bridge = "br-x", subnet = "172.18.0.0/16" }) end)
	lu.assertErrorMsgContains("net.bridge", function() fw.network_add(run, { subnet4 = "172.18.0.0/16" }) end)
	lu.assertErrorMsgContains("net.bridge", function()
		fw.network_add(run, { bridge = "br-0123456789abc", subnet4 = "172.18.0.0/16" }) end)
	lu.assertErrorMsgContains("net.bridge", function()
		fw.network_add(run, { bridge = 'br"x', subnet4 = "172.18.0.0/16" }) end)
	lu.assertErrorMsgContains("net.bridge", function()
		fw.network_add(run, { bridge = "br*", subnet4 = "172.18.0.0/16" }) end)
	lu.assertErrorMsgContains("subnet4 or subnet6", function() fw.network_add(run, { bridge = "br-x" }) end)
	lu.assertErrorMsgContains("invalid IPv4 prefix", function()
		fw.network_add(run, { bridge = "br-x", subnet4 = "172.18.0.0" }) end)
	lu.assertErrorMsgContains("invalid IPv4 prefix", function()
		fw.network_add(run, { bridge = "br-x", subnet4 = "172.318.0.0/16" }) end)
	lu.assertErrorMsgContains("invalid IPv6 prefix", function()
		fw.network_add(run, { bridge = "br-x", subnet6 = "fd00::1::/64" }) end)
	lu.assertErrorMsgContains("'icc' must be a boolean", function()
		fw.network_add(run, { bridge = "br-x", subnet4 = "172.18.0.0/16", icc = "no" }) end)
	lu.assertErrorMsgContains("host_ipv4 must be an IPv4", function()
		fw.network_add(run, { bridge = "br-x", subnet4 = "172.18.0.0/16", host_ipv4 = "fd00::1" }) end)
	lu.assertErrorMsgContains("net must be a table", function() fw.network_del(run, "br-x") end)
	lu.assertErrorMsgContains("mapping.proto", function()
		fw.port_add(run, net, "ep", { proto = "icmp", host_port = 1, container_ip = "172.18.0.2", container_port = 1 }) end)
	lu.assertErrorMsgContains("mapping.host_port", function()
		fw.port_add(run, net, "ep", { proto = "tcp", host_port = 70000, container_ip = "172.18.0.2", container_port = 1 }) end)
	lu.assertErrorMsgContains("one family", function()
		fw.port_add(run, net, "ep", { proto = "tcp", host_ip = "::1", host_port = 1,
			container_ip = "172.18.0.2", container_port = 1 }) end)
	lu.assertErrorMsgContains("did you mean 'host_port'", function()
		fw.port_add(run, net, "ep", { proto = "tcp", hostport = 1, container_ip = "172.18.0.2", container_port = 1 }) end)
	lu.assertErrorMsgContains("ep must be", function() fw.port_del(run, net, 'e"p', m) end)
	lu.assertErrorMsgContains("ep must be", function() fw.port_del(run, net, {}, m) end)
	lu.assertErrorMsgContains("nets must be", function() fw.check(run, "br-x") end)
	lu.assertErrorMsgContains("sysctl_set must be a function", function() fw.enable_forwarding(nil) end)
end

function TestFirewall:test_prefixes_as_nft_prints_them()
	local f = fw._format_prefix
	lu.assertEquals(f("172.18.0.1/16", 4), "172.18.0.0/16")
	lu.assertEquals(f("10.1.2.3/32", 4), "10.1.2.3")
	lu.assertEquals(f("fd00:0:0:1::5/64", 6), "fd00:0:0:1::/64")
	lu.assertEquals(f("FD00:0000:0000:0000:0001:0000:0000:0001/128", 6), "fd00::1:0:0:1")
	lu.assertEquals(f("1:0:0:1:0:0:0:1/128", 6), "1:0:0:1::1")
	lu.assertEquals(f("2001:db8:0:1:0:0:0:0/64", 6), "2001:db8:0:1::/64")
	lu.assertEquals(f("1:2:3:4:5:6:0:8/128", 6), "1:2:3:4:5:6:0:8")
	lu.assertEquals(f("::ffff:1.2.3.4/128", 6), "::ffff:1.2.3.4")
	-- glibc's inet_ntop (what nft prints) keeps IPv4-compatible tails dotted
	lu.assertEquals(f("::1.2.3.4/128", 6), "::1.2.3.4")
	lu.assertEquals(f("::2:3/128", 6), "::0.2.0.3")
	lu.assertEquals(f("::1/128", 6), "::1")
	lu.assertEquals(f("::/96", 6), "::/96")
	lu.assertErrorMsgContains("invalid IPv4 prefix", function() f("0.0.0.0/0", 4) end)
	lu.assertErrorMsgContains("invalid IPv4 prefix", function() f("fd00::/64", 4) end)
	lu.assertErrorMsgContains("invalid IPv6 prefix", function() f("10.0.0.0/8", 6) end)
end

-- What network_add sends: one script of set elements; the setup only when
-- brisk's tables are missing (the first network), a group's sets and rules
-- only when the group is missing (the first network of a family and prefix
-- length), never a chain definition otherwise. A fake nft knows which sets
-- exist and lists them as `nft -j` does.
function TestFirewall:test_scripts_sent()
	local sent, sets = {}, nil
	local function rec(script, opts)
		sent[#sent + 1] = script
		if opts and opts.json then
			if not sets then return nil, "nft: No such file or directory", core.errno.ENOENT end
			local objs = { { metainfo = {} } }
			for name in pairs(sets) do objs[#objs + 1] = { set = { name = name, family = "inet", table = "brisk" } } end
			return cjson.encode({ nftables = objs })
		end
		local made = sets or {}
		if script:find("add table", 1, true) then
			for name in fw.setup_script():gmatch("add set inet brisk (%S+)") do made[name] = true end
		end
		for kind, name in script:gmatch("add (%l+) inet brisk (%S+) {") do
			if kind == "set" or kind == "map" then made[name] = true end
		end
		for name in script:gmatch("element inet brisk (%S+) {") do
			if not made[name] then return nil, "nft: No such file or directory", core.errno.ENOENT end
		end
		sets = made
		return ""
	end
	local net = { bridge = "br-x", subnet4 = "172.18.0.5/16", subnet6 = "fd00:1::/64", icc = false, id = "n1" }
	assert(fw.network_add(rec, net))
	lu.assertEquals(#sent, 3)                                       -- elements, listing, all
	lu.assertEquals(sent[2], "list table inet brisk")
	lu.assertStrContains(sent[3], fw.setup_script())
	lu.assertStrContains(sent[3], sent[1])
	lu.assertStrContains(sent[1], 'create element inet brisk brisk_bridges { "br-x" comment "n1" }')
	lu.assertStrContains(sent[1], 'add element inet brisk icc_drop { "br-x" . "br-x" }')
	lu.assertStrContains(sent[1], "add element bridge brisk icc_off4 { 172.18.0.0/16 . 172.18.0.0/16 }")
	lu.assertStrContains(sent[1], "add element bridge brisk icc_off6 { fd00:1::/64 . fd00:1::/64 }")
	lu.assertStrContains(sent[1], 'add element inet brisk nat4_16 { 172.18.0.0 . "br-x" comment "brisk net br-x nat4" }')
	lu.assertStrContains(sent[1], 'add element inet brisk masq4_16 { 172.18.0.0 comment "brisk net br-x masq4" }')
	lu.assertStrContains(sent[1], 'add element inet brisk nat6_64 { fd00:1:: . "br-x" comment "brisk net br-x nat6" }')
	lu.assertNotStrContains(sent[1], "add rule")
	lu.assertStrContains(sent[3], "add set inet brisk nat4_16 { type ipv4_addr . ifname; }")
	lu.assertStrContains(sent[3], "add map inet brisk snat4_16 { type ipv4_addr : ipv4_addr; }")
	lu.assertStrContains(sent[3], "add rule inet brisk postrouting ip saddr & 255.255.0.0 . oifname != @nat4_16 "
		.. 'ip saddr & 255.255.0.0 == @masq4_16 masquerade comment "brisk group nat4_16 masq"')
	lu.assertStrContains(sent[3], "add rule inet brisk postrouting ip6 saddr & ffff:ffff:ffff:ffff:: . oifname "
		.. '!= @nat6_64 ip6 saddr & ffff:ffff:ffff:ffff:: == @masq6_64 masquerade comment "brisk group nat6_64 masq"')
	-- the 2nd network of a prefix length: elements only
	sent = {}
	assert(fw.network_add(rec, { bridge = "br-y", subnet4 = "172.19.0.0/16", host_ipv4 = "192.0.2.10" }))
	lu.assertEquals(#sent, 1)
	lu.assertNotStrContains(sent[1], "add chain")
	lu.assertNotStrContains(sent[1], "add set")
	lu.assertNotStrContains(sent[1], "add rule")
	lu.assertStrContains(sent[1], 'create element inet brisk brisk_bridges { "br-y" }')
	lu.assertStrContains(sent[1], 'add element inet brisk snat4_16 { 172.19.0.0 comment "brisk net br-y snat4" : 192.0.2.10 }')
	lu.assertNotStrContains(sent[1], "bridge brisk")                -- ICC on
	-- the first /24 and the first internal network: their groups, no setup
	for _, n in ipairs({ { bridge = "br-w", subnet4 = "172.21.0.0/24" },
		{ bridge = "br-i", subnet4 = "172.22.0.0/24", internal = true } }) do
		sent = {}
		assert(fw.network_add(rec, n))
		lu.assertEquals(#sent, 3)
		lu.assertNotStrContains(sent[3], "add chain")
		lu.assertNotStrContains(sent[3], "nat4_16 {")
		lu.assertStrContains(sent[3], sent[1])
	end
	lu.assertStrContains(sent[1], 'add element inet brisk int4_24 { "br-i" . 172.22.0.0 comment "brisk net br-i internal4" }')
	lu.assertStrContains(sent[1], 'add element inet brisk int6_none { "br-i" comment "brisk net br-i internal6" }')
	lu.assertStrContains(sent[3], 'add rule inet brisk internal iifname @intbr4_24 iifname . ip daddr & 255.255.255.0 '
		.. '!= @int4_24 drop comment "brisk group int4_24 out"')
	-- an error other than ENOENT is returned as is, without the setup
	sent = {}
	local ok, msg, err = fw.network_add(function(s)
		sent[#sent + 1] = s
		return nil, "nft: boom", core.errno.EEXIST
	end, { bridge = "br-z", subnet4 = "172.20.0.0/16" })
	lu.assertNil(ok)
	lu.assertEquals(msg, "firewall network_add br-z: nft: boom")
	lu.assertEquals(err, core.errno.EEXIST)
	lu.assertEquals(#sent, 1)
end

-- enable_forwarding with a fake writer: old values back, failure undone.
function TestFirewall:test_enable_forwarding_undo()
	local state = { ["net/ipv4/ip_forward"] = "0", ["net/ipv6/conf/default/forwarding"] = "0" }
	local function set(k, v)
		if state[k] == nil then return nil, "no " .. k, core.errno.ENOENT end
		local old = state[k]
		state[k] = v
		return old
	end
	local old, msg, err = fw.enable_forwarding(set, true)
	lu.assertNil(old)
	lu.assertStrContains(msg, "net/ipv6/conf/all/forwarding")
	lu.assertEquals(err, core.errno.ENOENT)
	lu.assertEquals(state, { ["net/ipv4/ip_forward"] = "0", ["net/ipv6/conf/default/forwarding"] = "0" })
	state["net/ipv6/conf/all/forwarding"] = "0"
	old = assert(fw.enable_forwarding(set, true))
	lu.assertEquals(old, { ["net/ipv4/ip_forward"] = "0", ["net/ipv6/conf/default/forwarding"] = "0",
		["net/ipv6/conf/all/forwarding"] = "0" })
	lu.assertEquals(state["net/ipv6/conf/all/forwarding"], "1")
	assert(fw.restore_forwarding(set, old))
	lu.assertEquals(state["net/ipv4/ip_forward"], "0")
end

function TestFirewall:test_masquerade_and_snat()
	local host, out = base()
	local run = runner(host)
	bridge(host, "br-m", "172.18.0.1/16")
	local ep = endpoint(host, "br-m", "172.18.0.2/16", "172.18.0.1")
	H.must("ip -n " .. host .. " addr add 192.0.2.10/24 dev up0")
	local srv = serve(out, 9000)
	local net = { bridge = "br-m", subnet4 = "172.18.0.0/16", id = "m1" }

	-- masquerade: OUT sees HOST's address and can answer
	assert(fw.network_add(run, net))
	lu.assertTrue(send(ep, "udp", "192.0.2.2", 9000, "masq"))
	lu.assertTrue(send(ep, "tcp", "192.0.2.2", 9000, "masq"))
	-- no masquerade: OUT sees the container's own address (and cannot answer)
	assert(fw.network_del(run, net))
	net.masquerade = false
	assert(fw.network_add(run, net))
	lu.assertFalse(send(ep, "udp", "192.0.2.2", 9000, "plain", 0.5))
	-- host_ipv4: SNAT to that address
	assert(fw.network_del(run, net))
	net.masquerade, net.host_ipv4 = true, "192.0.2.10"
	assert(fw.network_add(run, net))
	lu.assertTrue(send(ep, "udp", "192.0.2.2", 9000, "snat"))
	lu.assertEquals(fw.check(run, { net }), {})
	assert(fw.network_del(run, net))
	lu.assertEquals(ruleset(host), "")

	local seen = {}
	for _, l in ipairs(stop(srv)) do seen[#seen + 1] = l[3] .. "=" .. l[2] end
	lu.assertEquals(seen, { "masq=192.0.2.1", "masq=192.0.2.1", "plain=172.18.0.2", "snat=192.0.2.10" })
end

function TestFirewall:test_icc_off_blocks_icc_on_allows()
	local host = base()
	local run = runner(host)
	bridge(host, "br-c", "172.18.0.1/16")
	local e1 = endpoint(host, "br-c", "172.18.0.2/16", "172.18.0.1")
	local e2 = endpoint(host, "br-c", "172.18.0.3/16", "172.18.0.1")
	serve(e2, 7000)
	lu.assertTrue(send(e1, "tcp", "172.18.0.3", 7000))              -- no firewall yet
	local net = { bridge = "br-c", subnet4 = "172.18.0.0/16", icc = false }
	assert(fw.network_add(run, net))
	lu.assertFalse(send(e1, "tcp", "172.18.0.3", 7000, "x", 0.5))
	lu.assertFalse(send(e1, "udp", "172.18.0.3", 7000, "x", 0.5))

	-- without br_netfilter the bridge table alone still blocks: frames
	-- between two ports never reach the inet forward hook then
	H.must("ip netns exec " .. host .. " sysctl -qw net.bridge.bridge-nf-call-iptables=0")
	lu.assertFalse(send(e1, "tcp", "172.18.0.3", 7000, "x", 0.5))
	-- ... and it is the bridge table that does it
	run("delete element bridge brisk icc_off4 { 172.18.0.0/16 . 172.18.0.0/16 }")
	lu.assertTrue(send(e1, "tcp", "172.18.0.3", 7000))
	lu.assertEquals(fw.check(run, { net }), { "missing element bridge brisk icc_off4: 172.18.0.0/16 . 172.18.0.0/16" })
	H.must("ip netns exec " .. host .. " sysctl -qw net.bridge.bridge-nf-call-iptables=1")

	assert(fw.network_del(run, net))
	net.icc = true
	assert(fw.network_add(run, net))
	lu.assertTrue(send(e1, "tcp", "172.18.0.3", 7000))
	lu.assertTrue(send(e1, "udp", "172.18.0.3", 7000))
	lu.assertEquals(fw.check(run, { net }), {})
end

function TestFirewall:test_isolation_between_networks()
	local host, out = base()
	local run = runner(host)
	bridge(host, "br-a", "172.18.0.1/16")
	bridge(host, "br-b", "172.19.0.1/16")
	local ea = endpoint(host, "br-a", "172.18.0.2/16", "172.18.0.1")
	local eb = endpoint(host, "br-b", "172.19.0.2/16", "172.19.0.1")
	serve(eb, 7000)
	serve(ea, 7000)
	serve(out, 9000)
	lu.assertTrue(send(ea, "tcp", "172.19.0.2", 7000))              -- routed, no firewall yet
	local A = { bridge = "br-a", subnet4 = "172.18.0.0/16" }
	local B = { bridge = "br-b", subnet4 = "172.19.0.0/16" }
	assert(fw.network_add(run, A))
	assert(fw.network_add(run, B))
	lu.assertFalse(send(ea, "tcp", "172.19.0.2", 7000, "x", 0.5))
	lu.assertFalse(send(eb, "udp", "172.18.0.2", 7000, "x", 0.5))
	-- both still reach the outside
	lu.assertTrue(send(ea, "tcp", "192.0.2.2", 9000))
	lu.assertTrue(send(eb, "tcp", "192.0.2.2", 9000))
	lu.assertEquals(fw.check(run, { A, B }), {})
	-- order matters: the isolation rule after "outbound" isolates nothing
	local fwd = H.must("ip netns exec " .. host .. " nft -a list chain inet brisk forward")
	local handle = fwd:match('brisk base isolation" # handle (%d+)')
	assert(run("delete rule inet brisk forward handle " .. handle .. "\n" ..
		'add rule inet brisk forward iifname @brisk_bridges oifname @brisk_bridges drop ' ..
		'comment "brisk base isolation"'))
	lu.assertEquals(fw.check(run, { A, B }), { "rules out of order in chain inet brisk forward" })
	lu.assertTrue(send(ea, "tcp", "172.19.0.2", 7000))
	assert(fw.setup(run))                                           -- repairs it
	lu.assertEquals(fw.check(run, { A, B }), {})
	lu.assertFalse(send(ea, "tcp", "172.19.0.2", 7000, "x", 0.5))
	-- deleting B leaves A's rules exactly, and A still works
	assert(fw.network_del(run, B))
	lu.assertEquals(fw.check(run, { A }), {})
	lu.assertNotStrContains(ruleset(host), "br-b")
	lu.assertNotStrContains(ruleset(host), "172.19.")
	lu.assertTrue(send(ea, "udp", "192.0.2.2", 9000))
end

function TestFirewall:test_internal_network_stays_inside()
	local host, out = base()
	local run = runner(host)
	bridge(host, "br-i", "172.20.0.1/16")
	local e1 = endpoint(host, "br-i", "172.20.0.2/16", "172.20.0.1")
	local e2 = endpoint(host, "br-i", "172.20.0.3/16", "172.20.0.1")
	H.must("ip -n " .. out .. " route add 172.20.0.0/16 via 192.0.2.1")
	serve(out, 9000)
	serve(e2, 7000)
	lu.assertTrue(send(e1, "tcp", "192.0.2.2", 9000))               -- routed, no firewall yet
	local net = { bridge = "br-i", subnet4 = "172.20.0.0/16", internal = true }
	assert(fw.network_add(run, net))
	lu.assertFalse(send(e1, "tcp", "192.0.2.2", 9000, "x", 0.5))
	lu.assertFalse(send(out, "tcp", "172.20.0.3", 7000, "x", 0.5))  -- nor in from outside
	lu.assertTrue(send(e1, "tcp", "172.20.0.3", 7000))              -- inside still works
	lu.assertNotStrContains(ruleset(host), "masquerade")
	lu.assertEquals(fw.check(run, { net }), {})
	-- ports cannot be published on an internal network
	local ok, msg, err = fw.port_add(run, net, "ep1", { proto = "tcp", host_port = 8080,
		container_ip = "172.20.0.2", container_port = 80 })
	lu.assertNil(ok)
	lu.assertStrContains(msg, "internal")
	lu.assertEquals(err, core.errno.EINVAL)
	assert(fw.network_del(run, net))
end

function TestFirewall:test_published_ports()
	local host, out = base()
	local run = runner(host)
	bridge(host, "br-p", "172.18.0.1/16")
	local e1, port1 = endpoint(host, "br-p", "172.18.0.2/16", "172.18.0.1")
	H.must("ip -n " .. host .. " link set " .. port1 .. " type bridge_slave hairpin on")
	local srv = serve(e1, 80)
	local net = { bridge = "br-p", subnet4 = "172.18.0.0/16" }
	local tcp = { proto = "tcp", host_port = 8080, container_ip = "172.18.0.2", container_port = 80 }
	local udp = { proto = "udp", host_ip = "192.0.2.1", host_port = 5353, container_ip = "172.18.0.2", container_port = 80 }
	assert(fw.network_add(run, net))
	lu.assertFalse(send(out, "tcp", "192.0.2.1", 8080, "x", 0.5))   -- not published yet
	assert(fw.port_add(run, net, "ep0123456789abcdef", tcp))
	assert(fw.port_add(run, net, { id = "ep0123456789abcdef" }, udp))
	lu.assertTrue(send(out, "tcp", "192.0.2.1", 8080, "t1"))
	lu.assertTrue(send(out, "udp", "192.0.2.1", 5353, "u1"))
	lu.assertTrue(send(host, "tcp", "192.0.2.1", 8080, "local"))   -- locally originated
	-- hairpin: the container reaches its own published port, masqueraded
	-- to the bridge address
	lu.assertTrue(send(e1, "tcp", "192.0.2.1", 8080, "hairpin"))
	lu.assertStrContains(ruleset(host), '"brisk port br-p ep0123456789 tcp *:8080 dnat"')
	local ports = { { net = net, ep = "ep0123456789abcdef", mapping = tcp },
		{ net = net, ep = "ep0123456789abcdef", mapping = udp } }
	lu.assertEquals(fw.check(run, { net }, ports), {})

	-- the same host port twice: EEXIST, nothing changed
	local before = ruleset(host)
	local ok, msg, err = fw.port_add(run, net, "other", tcp)
	lu.assertNil(ok)
	lu.assertStrContains(msg, "firewall port_add br-p tcp/8080")
	lu.assertEquals(err, core.errno.EEXIST)
	lu.assertEquals(ruleset(host), before)

	-- drift: a rule deleted by hand, a rule added by hand
	assert(run("flush chain inet brisk port_accept"))
	run('add rule inet brisk port_dnat tcp dport 1 dnat ip to 172.18.0.9:1 comment "stray"')
	local drift = fw.check(run, { net }, ports)
	table.sort(drift)
	lu.assertEquals(drift, {
		'extra rule inet brisk port_dnat: tcp dport 1 dnat ip to 172.18.0.9:1 comment "stray"',
		'missing rule inet brisk port_accept: oifname "br-p" ip daddr 172.18.0.2 tcp dport 80 accept ' ..
			'comment "brisk port br-p ep0123456789 tcp *:8080 accept"',
		'missing rule inet brisk port_accept: oifname "br-p" ip daddr 172.18.0.2 udp dport 80 accept ' ..
			'comment "brisk port br-p ep0123456789 udp 192.0.2.1:5353 accept"',
	})
	assert(fw.port_del(run, net, "ep0123456789abcdef", tcp))
	assert(fw.port_del(run, net, "ep0123456789abcdef", udp))
	assert(fw.port_del(run, net, "ep0123456789abcdef", udp))        -- idempotent
	assert(run("flush chain inet brisk port_dnat"))                -- the hand-made stray
	lu.assertEquals(fw.check(run, { net }), {})
	lu.assertNotStrContains(ruleset(host), "8080")
	lu.assertNotStrContains(ruleset(host), "5353")
	lu.assertFalse(send(out, "tcp", "192.0.2.1", 8080, "t2", 0.5))
	lu.assertFalse(send(out, "udp", "192.0.2.1", 5353, "u2", 0.5))
	lu.assertFalse(send(e1, "tcp", "192.0.2.1", 8080, "h2", 0.5))
	assert(fw.network_del(run, net))

	local seen = {}
	for _, l in ipairs(stop(srv)) do seen[#seen + 1] = l[1] .. " " .. l[2] .. " " .. l[3] end
	-- DNAT without SNAT: the container sees the real client
	lu.assertEquals(seen, { "tcp 192.0.2.2 t1", "udp 192.0.2.2 u1", "tcp 192.0.2.1 local",
		"tcp 172.18.0.1 hairpin" })
end

function TestFirewall:test_ipv6_masquerade_and_port()
	local host, out = base()
	local run = runner(host)
	assert(fw.enable_forwarding(sysctl_in(host), true))
	lu.assertEquals(sh_in(host, "cat /proc/sys/net/ipv6/conf/all/forwarding"), "1\n")
	H.must("ip -n " .. host .. " addr add 2001:db8::1/64 dev up0 nodad")
	H.must("ip -n " .. out .. " addr add 2001:db8::2/64 dev eth0 nodad")
	bridge(host, "br-6", "172.18.0.1/16")
	H.must("ip -n " .. host .. " addr add fd00:1::1/64 dev br-6 nodad")
	local e1 = endpoint(host, "br-6", "172.18.0.2/16", "172.18.0.1")
	H.must("ip -n " .. e1 .. " addr add fd00:1::2/64 dev eth0 nodad")
	H.must("ip -n " .. e1 .. " -6 route add default via fd00:1::1")
	local so, se = serve(out, 9000), serve(e1, 80)
	local net = { bridge = "br-6", subnet4 = "172.18.0.0/16", subnet6 = "fd00:1::/64" }
	assert(fw.network_add(run, net))
	local m = { proto = "tcp", host_port = 8080, container_ip = "fd00:1::2", container_port = 80 }
	assert(fw.port_add(run, net, "ep6", m))
	lu.assertTrue(send(e1, "udp", "2001:db8::2", 9000, "m6"))
	lu.assertTrue(send(out, "tcp", "2001:db8::1", 8080, "p6"))
	lu.assertEquals(fw.check(run, { net }, { { net = net, ep = "ep6", mapping = m } }), {})
	assert(fw.network_del(run, net))                                -- ports go with it
	lu.assertEquals(ruleset(host), "")
	lu.assertEquals(stop(so), { { "udp", "2001:db8::1", "m6" } })
	lu.assertEquals(stop(se), { { "tcp", "2001:db8::2", "p6" } })
end

-- Rules stay constant: the 100th network adds the elements the 2nd did.
function TestFirewall:test_rule_count_flat()
	local host = ns_add("fwh")
	local run = runner(host)
	local function net(i)
		return { bridge = "brn" .. i, subnet4 = string.format("10.%d.%d.0/24", i // 256, i % 256),
			icc = i % 2 == 1 }
	end
	assert(fw.network_add(run, net(0)))
	local deltas = {}
	for i = 1, 99 do
		local r0, e0 = count(host)
		assert(fw.network_add(run, net(i)))
		local r1, e1 = count(host)
		if i == 1 or i == 98 or i == 99 then deltas[#deltas + 1] = { r1 - r0, e1 - e0, net(i).icc } end
	end
	-- the 2nd and the 100th (both ICC on) add the same: four elements (bridge,
	-- ICC pair, nat pair, masquerade) and no rule; the 99th (ICC off) one
	-- element more (its bridge-table pair)
	lu.assertEquals(deltas[1], deltas[3])
	lu.assertEquals(deltas[1], { 0, 4, true })
	lu.assertEquals(deltas[2], { 0, 5, false })
	local rules = count(host)
	-- the forward chain (the per-packet path) holds the same 8 rules for 100 networks
	local fwd = H.must("ip netns exec " .. host .. " nft list chain inet brisk forward")
	local n = 0
	for _ in fwd:gmatch("comment") do n = n + 1 end
	lu.assertEquals(n, 8)
	lu.assertEquals(rules, 13 + 2)                                  -- and group nat4_24's two
	local nets = {}
	for i = 0, 99 do nets[#nets + 1] = net(i) end
	lu.assertEquals(fw.check(run, nets), {})
	lu.assertEquals(#fw.check(run, { table.unpack(nets, 1, 99) }) > 0, true)
	assert(fw.remove(run))
	lu.assertEquals(ruleset(host), "")
	lu.assertEquals(fw.check(run, { net(0) }), { "missing table bridge brisk", "missing table inet brisk" })
	lu.assertEquals(fw.check(run, {}), {})
	assert(fw.remove(run))                                          -- idempotent
end

-- A group (sets and rules per family and prefix length) comes with its
-- first network and goes with its last; deleting and adding a network (what
-- restore does) puts back what is missing of the groups that stay.
function TestFirewall:test_groups_come_and_go()
	local host = ns_add("fwh")
	local run = runner(host)
	local A = { bridge = "br-a", subnet4 = "172.18.1.0/24" }
	local B = { bridge = "br-b", subnet4 = "172.18.2.0/24", host_ipv4 = "192.0.2.10" }
	local C = { bridge = "br-c", subnet4 = "172.19.0.0/16", internal = true }
	local D = { bridge = "br-d", subnet4 = "172.20.0.0/16", subnet6 = "fd00:20::/64", internal = true }
	for _, n in ipairs({ A, B, C, D }) do assert(fw.network_add(run, n)) end
	lu.assertEquals(fw.check(run, { A, B, C, D }), {})
	lu.assertStrContains(ruleset(host), "172.18.2.0 comment \"brisk net br-b snat4\" : 192.0.2.10")
	assert(fw.network_del(run, B))
	lu.assertNotStrContains(ruleset(host), "br-b")
	lu.assertStrContains(ruleset(host), "map snat4_24")             -- A still needs the group
	assert(fw.network_del(run, A))
	lu.assertNotStrContains(ruleset(host), "4_24")                  -- its sets and rules are gone
	lu.assertNotStrContains(ruleset(host), "masquerade")
	lu.assertEquals(fw.check(run, { C, D }), {})
	-- C has no IPv6 subnet: group int6_none drops its IPv6; D's int6_64 group
	lu.assertStrContains(ruleset(host), 'iifname @int6_none meta nfproto ipv6 drop comment "brisk group int6_none out"')
	lu.assertStrContains(ruleset(host), "int6_64")
	-- a group rule deleted by hand: check reports it, delete + add repairs it
	local chain = H.must("ip netns exec " .. host .. " nft -a list chain inet brisk internal")
	local handle = chain:match('brisk group int4_16 out" # handle (%d+)')
	assert(run("delete rule inet brisk internal handle " .. handle .. "\n"))
	local drift = fw.check(run, { C, D })
	lu.assertEquals(#drift, 1)
	lu.assertStrContains(drift[1], "missing rule inet brisk internal: iifname @intbr4_16 iifname . ip daddr & 255.255.0.0 != @int4_16 drop")
	assert(fw.network_del(run, C))
	lu.assertEquals(fw.check(run, { D }), {})
	assert(fw.network_add(run, C))
	lu.assertEquals(fw.check(run, { C, D }), {})
	-- the element of a network given with a wrong subnet still goes (by its comment)
	assert(fw.network_del(run, { bridge = "br-c", subnet4 = "10.255.255.0/24" }))
	lu.assertNotStrContains(ruleset(host), "br-c")
	lu.assertEquals(fw.check(run, { D }), {})
	assert(fw.network_del(run, D))
	lu.assertEquals(ruleset(host), "")
end

-- A failing script leaves the ruleset as it was, first network or not.
function TestFirewall:test_failure_changes_nothing()
	local host = ns_add("fwh")
	local real = runner(host)
	local function breaker(marker)
		return function(script, opts)
			if script:find(marker, 1, true) then
				script = script .. "add rule inet brisk postrouting ip saddr 10.0.0.0/8 frobnicate\n"
			end
			return real(script, opts)
		end
	end
	local A = { bridge = "br-a", subnet4 = "172.18.0.0/16" }
	local B = { bridge = "br-b", subnet4 = "172.19.0.0/16", icc = false }
	lu.assertEquals(ruleset(host), "")
	local ok, msg, err = fw.network_add(breaker("add table"), A)    -- the setup path
	lu.assertNil(ok)
	lu.assertStrContains(msg, "firewall network_add br-a: nft: line ")
	lu.assertEquals(err, core.errno.EINVAL)
	lu.assertEquals(ruleset(host), "")
	assert(fw.network_add(real, A))
	local before = ruleset(host)
	lu.assertNil(fw.network_add(breaker("create element"), B))      -- an existing table
	lu.assertEquals(ruleset(host), before)
	-- the first network of a prefix length: its group's sets and rules too
	local C = { bridge = "br-c", subnet4 = "172.20.0.0/24" }
	ok, msg, err = fw.network_add(breaker("add set"), C)
	lu.assertNil(ok)
	lu.assertStrContains(msg, "firewall network_add br-c: nft: line ")
	lu.assertEquals(err, core.errno.EINVAL)
	lu.assertEquals(ruleset(host), before)
	-- a network added twice: EEXIST, nothing duplicated
	ok, msg, err = fw.network_add(real, A)
	lu.assertNil(ok)
	lu.assertEquals(err, core.errno.EEXIST)
	lu.assertEquals(ruleset(host), before)
	-- a delete that fails leaves everything too
	local function fail_del(script, opts)
		if script:find("delete", 1, true) then script = script .. "delete rule inet brisk forward handle 999999\n" end
		return real(script, opts)
	end
	assert(fw.network_add(real, B))
	before = ruleset(host)
	ok, _, err = fw.network_del(fail_del, A)
	lu.assertNil(ok)
	lu.assertEquals(err, core.errno.ENOENT)
	lu.assertEquals(ruleset(host), before)
	-- a namespace that is not there
	ok, msg, err = fw.network_add(runner("brisk-no-such-ns"), A)
	lu.assertNil(ok)
	lu.assertEquals(err, core.errno.ENOENT)
	assert(fw.network_del(real, A))
	assert(fw.network_del(real, B))
	assert(fw.network_del(real, B))                                 -- idempotent
	lu.assertEquals(ruleset(host), "")
end
