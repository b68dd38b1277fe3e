-- spec/test_netfw.lua: the firewall as the driver programs it: ICC,
-- isolation between networks, internal networks, masquerade to an outside
-- namespace, rollback of a failed firewall step. Traffic only between
-- namespaces the tests make.
local lu = require "luaunit"
local H = require "helper"
local core = require "brisk.core"
local driver = require "brisk.driver"

local function ping(ns, ip)
	return H.sh("ip netns exec " .. ns .. " ping -c 1 -W 1 " .. ip) == true
end

local function bare(cidr) return (cidr:match("^[^/]+")) end

TestNetFirewall = {}

function TestNetFirewall:setUp()
	H.reset()
	self.dir = H.tmppath()
	self.d = assert(driver.open{ state_dir = self.dir })
end

function TestNetFirewall:tearDown()
	self.d:close()
	H.reset()
	H.sh("rm -rf " .. self.dir)
end

-- check reports drift, restore repairs every network, check then reports none
function TestNetFirewall:restore_repairs()
	lu.assertTrue(#self.d:check() > 0)
	for _, r in ipairs(self.d:restore()) do lu.assertTrue(r.ok, r.msg) end
	lu.assertEquals(self.d:check(), {})
end

function TestNetFirewall:test_icc_on_and_off()
	assert(self.d:create_network{ name = "on", subnet = "10.61.0.0/24" })
	assert(self.d:create_network{ name = "off", subnet = "10.62.0.0/24", options = { icc = false } })
	local a = assert(self.d:create_endpoint("on", { netns = "a1" }))
	local b = assert(self.d:create_endpoint("on", { netns = "a2" }))
	local c = assert(self.d:create_endpoint("off", { netns = "c1" }))
	local e = assert(self.d:create_endpoint("off", { netns = "c2" }))
	lu.assertTrue(ping("a1", bare(b.ipv4)))
	lu.assertFalse(ping("c1", bare(e.ipv4)))
	-- the gateway is still reachable with ICC off
	lu.assertTrue(ping("c1", c.gateway4))
	lu.assertNotNil(a)
end

function TestNetFirewall:test_isolation_between_networks_and_delete_restores()
	assert(self.d:create_network{ name = "x", subnet = "10.63.0.0/24" })
	assert(self.d:create_network{ name = "y", subnet = "10.64.0.0/24" })
	local x = assert(self.d:create_endpoint("x", { netns = "x1" }))
	local y = assert(self.d:create_endpoint("y", { netns = "y1" }))
	lu.assertFalse(ping("x1", bare(y.ipv4)))
	lu.assertFalse(ping("y1", bare(x.ipv4)))
	-- without brisk's rules the two would reach each other (the routing is there)
	H.must("nft flush ruleset")
	lu.assertTrue(ping("x1", bare(y.ipv4)))
	-- check sees the missing rules; restore programs them again
	self:restore_repairs()
	lu.assertNotEquals(H.must("nft list ruleset"), "")
	lu.assertFalse(ping("x1", bare(y.ipv4)))
	-- deleting one network removes exactly its rules
	assert(self.d:delete_network("y", { force = true }))
	lu.assertEquals(self.d:check(), {})
	lu.assertNotStrContains(H.must("nft list ruleset"), self.d:network("x").bridge:gsub("x", "y"))
	assert(self.d:delete_network("x", { force = true }))
	lu.assertEquals(H.must("nft list ruleset"), "")
end

-- With two networks, restore rebuilt each network's part but not the
-- constant chains (another network's part kept the tables): drift that
-- check reported stayed, and ICC off and isolation were gone.
function TestNetFirewall:test_restore_rebuilds_the_constant_chains()
	assert(self.d:create_network{ name = "u", subnet = "10.67.0.0/24", options = { icc = false } })
	assert(self.d:create_network{ name = "v", subnet = "10.68.0.0/24" })
	assert(self.d:create_endpoint("u", { netns = "u1" }))
	local u2 = assert(self.d:create_endpoint("u", { netns = "u2" }))
	local v1 = assert(self.d:create_endpoint("v", { netns = "v1" }))
	lu.assertFalse(ping("u1", bare(u2.ipv4)))
	lu.assertFalse(ping("u1", bare(v1.ipv4)))
	H.must("nft flush chain bridge brisk forward && nft flush chain inet brisk forward")
	lu.assertTrue(ping("u1", bare(v1.ipv4)))
	self:restore_repairs()
	lu.assertFalse(ping("u1", bare(u2.ipv4)))
	lu.assertFalse(ping("u1", bare(v1.ipv4)))
end

-- An endpoint removed takes its flows' conntrack entries with it (those
-- NATed to its address, and UDP to its published port), as libnetwork's
-- clearConntrackEntries: a client that keeps its source port would go on
-- to the endpoint gone. Other flows' entries stay.
function TestNetFirewall:test_endpoint_rm_drops_its_conntrack_entries()
	assert(self.d:create_network{ name = "ct", subnet = "10.69.0.0/24" })
	local u1 = assert(self.d:create_endpoint("ct", { netns = "u1", publish = { "5353:53/udp" } }))
	local keep = assert(self.d:create_endpoint("ct", { netns = "k1", publish = { "5354:53/udp" } }))
	local gw = u1.gateway4
	-- one datagram each, from fixed source ports, through the published ports
	H.must(("python3 -c 'import socket\nfor sp, dp in ((40000, 5353), (40001, 5354)):\n"
		.. "  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((\"%s\", sp)); "
		.. "s.sendto(b\"x\", (\"%s\", dp)); s.close()'"):format(gw, gw))
	local function flows(ip)
		local n = 0
		for _, e in ipairs(assert(self.d.h:conntrack_list())) do
			if e.reply.src == ip and e.proto == 17 then n = n + 1 end
		end
		return n
	end
	lu.assertEquals(flows(bare(u1.ipv4)), 1)
	lu.assertEquals(flows(bare(keep.ipv4)), 1)
	assert(self.d:delete_endpoint(u1.id))
	lu.assertEquals(flows(bare(u1.ipv4)), 0)
	lu.assertEquals(flows(bare(keep.ipv4)), 1)
end

-- conntrack_del names an entry by its original tuple; a gone one is ENOENT,
-- a malformed one raises
function TestNetFirewall:test_conntrack_primitives()
	local h = self.d.h
	lu.assertEquals(type(h:conntrack_list{ family = "inet6" }), "table")
	local ok, msg, err = h:conntrack_del{ proto = 17, orig = { src = "192.0.2.1", dst = "192.0.2.2", sport = 1, dport = 2 } }
	lu.assertNil(ok)
	lu.assertEquals(err, core.errno.ENOENT)
	lu.assertStrContains(msg, "conntrack_del 192.0.2.1 -> 192.0.2.2")
	lu.assertErrorMsgContains("one family", h.conntrack_del, h, { proto = 17, orig = { src = "192.0.2.1", dst = "fd00::1" } })
	lu.assertErrorMsgContains("0..65535", h.conntrack_del, h,
		{ proto = 17, orig = { src = "192.0.2.1", dst = "192.0.2.2", sport = 70000 } })
	-- checked before it is narrowed: 2^32 + 40000 is not port 40000
	lu.assertErrorMsgContains("sport must be 0..65535", h.conntrack_del, h,
		{ proto = 17, orig = { src = "192.0.2.1", dst = "192.0.2.2", sport = 4294967296 + 40000 } })
	lu.assertErrorMsgContains("icmp_type must be 0..255", h.conntrack_del, h,
		{ proto = 1, orig = { src = "192.0.2.1", dst = "192.0.2.2", icmp_type = 4294967296 + 8 } })
	lu.assertErrorMsgContains("no more arguments", h.conntrack_list, h, nil, "extra")
	lu.assertErrorMsgContains("no more arguments", h.conntrack_del, h,
		{ proto = 17, orig = { src = "192.0.2.1", dst = "192.0.2.2" } }, "extra")
	lu.assertErrorMsgContains("unknown field", h.conntrack_del, h, { proto = 17, bogus = 1, orig = {} })
	lu.assertErrorMsgContains("proto must be", h.conntrack_del, h, { orig = { src = "192.0.2.1", dst = "192.0.2.2" } })
end

function TestNetFirewall:test_masquerade_and_internal()
	-- "out" plays the upstream network: reached through a veth from here
	H.netns_add("out")
	H.must("ip link add up0 type veth peer name up1 netns out")
	H.must("ip addr add 192.0.2.1/24 dev up0 && ip link set up0 up")
	H.must("ip -n out addr add 192.0.2.2/24 dev up1 && ip -n out link set up1 up")
	assert(self.d:create_network{ name = "pub", subnet = "10.65.0.0/24" })
	assert(self.d:create_network{ name = "int", subnet = "10.66.0.0/24", internal = true })
	assert(self.d:create_endpoint("pub", { netns = "p1" }))
	assert(self.d:create_endpoint("int", { netns = "i1" }))
	lu.assertEquals(core.sysctl_get("net/ipv4/ip_forward"), "1")
	lu.assertTrue(ping("p1", "192.0.2.2"))
	lu.assertFalse(ping("i1", "192.0.2.2"))
	-- the outside sees the host's address, not the endpoint's
	local server = "ip netns exec out /usr/bin/python3 -c \"import socket;s=socket.socket();" ..
		"s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('192.0.2.2',9000));s.listen(1);" ..
		"c,a=s.accept();print(a[0])\""
	local p = io.popen("timeout 5 " .. server)
	H.sh("sleep 0.3")
	-- the server may still be starting: the client retries for 5 s
	local client = "import socket, time\nfor _ in range(50):\n    try:\n" ..
		"        socket.create_connection(('192.0.2.2', 9000), 2)\n        break\n" ..
		"    except OSError:\n        time.sleep(0.1)\n"
	H.sh("ip netns exec p1 /usr/bin/python3 -c " .. H.q(client))
	local seen = p:read("a")
	p:close()
	lu.assertEquals(seen:gsub("%s", ""), "192.0.2.1")
end

function TestNetFirewall:test_failed_firewall_step_rolls_back_rules()
	assert(self.d:create_network{ name = "keep", subnet = "10.67.0.0/24" })
	local rules = H.must("nft list ruleset")
	local snap = H.snapshot()
	self.d:after("setup_ip_tables", function() return nil, "injected", core.errno.EIO end)
	local ok, msg = self.d:create_network{ name = "gone", subnet = "10.68.0.0/24" }
	lu.assertNil(ok)
	lu.assertStrContains(msg, "step setup_ip_tables failed: injected")
	lu.assertEquals(H.must("nft list ruleset"), rules)
	lu.assertEquals(H.snapshot(), snap)
	lu.assertEquals(#self.d:networks(), 1)
end
