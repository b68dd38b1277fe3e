-- spec/test_ports.lua: published ports (lua/brisk/ports.lua): parsing,
-- host port allocation, the publish/unpublish steps over a recorder and a
-- journal on the test namespace's nftables.
local lu = require "luaunit"
local cjson = require "cjson"
local H = require "helper"
local core = require "brisk.core"
local handle = require "brisk.handle"
local fw = require "brisk.firewall"
local ports = require "brisk.ports"

local EINVAL, EADDRINUSE, EEXIST = core.errno.EINVAL, core.errno.EADDRINUSE, core.errno.EEXIST

TestPortsParse = {}

function TestPortsParse:test_no_globals()
	H.assert_no_globals({ "brisk.ports" })
end

function TestPortsParse:test_valid_specs()
	local cases = {
		{ "8080:80", { proto = "tcp", host_port = 8080, container_port = 80 } },
		{ "192.0.2.1:8080:80/udp", { proto = "udp", host_ip = "192.0.2.1", host_port = 8080, container_port = 80 } },
		{ "0:80", { proto = "tcp", host_port = 0, container_port = 80 } },
		{ "80", { proto = "tcp", host_port = 0, container_port = 80 } },
		{ "80/sctp", { proto = "sctp", host_port = 0, container_port = 80 } },
		{ "8000-8010:80/tcp", { proto = "tcp", host_port = 8000, host_port_end = 8010, container_port = 80 } },
		{ "8000-8000:80", { proto = "tcp", host_port = 8000, container_port = 80 } },
		{ "[2001:db8::1]:8080:80", { proto = "tcp", host_ip = "2001:db8::1", host_port = 8080, container_port = 80 } },
		{ "[FD00:0::0001]:53:53/UDP", { proto = "udp", host_ip = "fd00::1", host_port = 53, container_port = 53 } },
		{ "192.0.2.1::80", { proto = "tcp", host_ip = "192.0.2.1", host_port = 0, container_port = 80 } },
		{ "[::]::80", { proto = "tcp", host_ip = "::", host_port = 0, container_port = 80 } },
		{ "0.0.0.0:65535:65535", { proto = "tcp", host_ip = "0.0.0.0", host_port = 65535, container_port = 65535 } },
		{ { container_port = 80 }, { proto = "tcp", host_port = 0, container_port = 80 } },
		{ { host_ip = "10.0.0.1", host_port = "8080", container_port = 80, proto = "UDP" },
		  { proto = "udp", host_ip = "10.0.0.1", host_port = 8080, container_port = 80 } },
		{ { host_port = 9000, host_port_end = 9005, container_port = 90 },
		  { proto = "tcp", host_port = 9000, host_port_end = 9005, container_port = 90 } },
		{ { host_port = 9000, host_port_end = 9000, container_port = 90 },
		  { proto = "tcp", host_port = 9000, container_port = 90 } },
		{ "8000-8001:80-81", { proto = "tcp", host_port = 8000, host_port_end = 8001, container_port = 80,
		  container_port_end = 81 } },
		{ "80-82/udp", { proto = "udp", host_port = 0, container_port = 80, container_port_end = 82 } },
		{ { container_port = 80, container_port_end = 81, host_port = 9000, host_port_end = 9001 },
		  { proto = "tcp", host_port = 9000, host_port_end = 9001, container_port = 80, container_port_end = 81 } },
	}
	for _, c in ipairs(cases) do
		local r, msg = ports.parse(c[1])
		lu.assertEquals(r, c[2], "spec " .. cjson.encode(c[1]) .. ": " .. tostring(msg))
	end
end

function TestPortsParse:test_invalid_specs()
	local cases = {
		{ "70000:80", "invalid hostPort: 70000" },
		{ "8080:0", "invalid containerPort: 0" },
		{ "8080:65536", "invalid containerPort: 65536" },
		{ "8080:-1", "invalid containerPort: -1" },
		{ "8080:http", "invalid containerPort: http" },
		{ "8080:80/icmp", "invalid proto: icmp" },
		{ "8080:80/", "invalid proto" },
		{ "1.2.3:8080:80", "invalid IP address: 1.2.3" },
		{ "[10.0.0.1]:8080:80", "invalid IP address: [10.0.0.1]" },
		{ "::1:8080:80", "in brackets" },
		-- loopback: brisk has no userland proxy, and the kernel routes no
		-- loopback traffic to a bridge (Docker's proxy answers there)
		{ "127.0.0.1:8080:80", "cannot publish on loopback address 127.0.0.1: brisk has no userland proxy" },
		{ "127.9.9.9::80", "cannot publish on loopback address 127.9.9.9" },
		{ "[::1]:8080:80", "cannot publish on loopback address ::1" },
		{ { host_ip = "127.0.0.1", container_port = 80 }, "cannot publish on loopback address 127.0.0.1" },
		{ ":8080:80", "invalid IP address" },
		{ "8010-8000:80", "range end below its start" },
		{ "0-10:80", "cannot start at 0" },
		{ "8000-8010:80-85", "invalid ranges specified for container and host Ports: 80-85 and 8000-8010" },
		{ "8080:80-81", "invalid ranges specified for container and host Ports: 80-81 and 8080" },
		{ "8000-8001:81-80", "invalid containerPort: 81-80 (range end below its start)" },
		{ { container_port = 80, container_port_end = 81, host_port = 9000 }, "invalid ranges specified" },
		{ { container_port = 0 }, "invalid containerPort: 0" },
		{ "8080:", "no port specified" },
		{ "", "no port specified" },
		{ "+80:80", "invalid hostPort: +80" },
		{ "0x50:80", "invalid hostPort: 0x50" },
		{ { host_port = 8080 }, "container_port is required" },
		{ { container_port = 80, hostport = 8080 }, "did you mean 'host_port'" },
		{ { container_port = 80, host_port = 1.5 }, "invalid hostPort: 1.5" },
		{ { container_port = 80, proto = 6 }, "invalid proto" },
		{ { container_port = 80, host_ip = "localhost" }, "invalid IP address: localhost" },
		{ { container_port = 80, host_port = 9005, host_port_end = 9000 }, "range end below its start" },
		{ { container_port = 80, host_port_end = 9000 }, "cannot start at 0" },
	}
	for _, c in ipairs(cases) do
		local r, msg = ports.parse(c[1])
		lu.assertNil(r, "spec " .. cjson.encode(c[1]) .. " parsed")
		lu.assertStrContains(msg, c[2])
	end
end

function TestPortsParse:test_bad_arguments()
	lu.assertErrorMsgContains("string or table expected, got number", function() ports.parse(80) end)
	lu.assertErrorMsgContains("string or table expected, got nil", function() ports.parse() end)
end

function TestPortsParse:test_parse_list()
	lu.assertEquals(ports.parse_list("80"), { { proto = "tcp", host_port = 0, container_port = 80 } })
	lu.assertEquals(ports.parse_list({ container_port = 80 }), { { proto = "tcp", host_port = 0, container_port = 80 } })
	lu.assertEquals(ports.parse_list({}), {})
	lu.assertEquals(#ports.parse_list({ "80", "8080:81/udp", { container_port = 82 } }), 3)
	local r, msg = ports.parse_list({ "80", "x" })
	lu.assertNil(r)
	lu.assertStrContains(msg, "publish 2: invalid containerPort: x")
	r, msg = ports.parse_list({ "80", 81 })
	lu.assertNil(r)
	lu.assertStrContains(msg, "publish 2: a string or a table expected")
	r, msg = ports.parse_list(true)
	lu.assertNil(r)
	lu.assertStrContains(msg, "publish must be")
end

---------------------------------------------------------------------------
-- publish / unpublish
---------------------------------------------------------------------------

local NET = { id = "n1", name = "n1", bridge = "br-p1", subnet4 = "172.30.0.0/16", icc = true,
	masquerade = true }
local NET6 = { id = "n6", name = "n6", bridge = "br-p6", subnet4 = "172.31.0.0/16",
	subnet6 = "fd00:31::/64", enable_ipv6 = true, icc = true, masquerade = true }

local function fake_driver(stored)
	return { endpoints = function() return stored end }
end

local function ep(over)
	local e = { id = "0123456789abcdef", name = "web", bridge = NET.bridge, ipv4 = "172.30.0.2/16" }
	for k, v in pairs(over or {}) do e[k] = v end
	return e
end

-- The port_add calls a recorder saw: {"proto hostip:hostport -> cip:cport"}.
local function recorded(r)
	local t = {}
	for _, op in ipairs(r.ops) do
		lu.assertEquals(op.op, "firewall")
		local m = op.args[4]
		t[#t + 1] = string.format("%s %s %s:%d -> %s:%d", op.args[1], m.proto, m.host_ip or "*",
			m.host_port, m.container_ip, m.container_port)
	end
	return t
end

local function set_range(h, range)
	return assert(h:sysctl_set("net/ipv4/ip_local_port_range", range))
end

TestPortsPublish = {}

function TestPortsPublish:setUp()
	self.h = assert(core.open())
	self.range = set_range(self.h, "40000 40003")
end

function TestPortsPublish:tearDown()
	set_range(self.h, self.range)
	fw.remove(function(s, o) return core.nft(s, nil, o) end)
	self.h:close()
end

function TestPortsPublish:test_fixed_and_allocated_ports()
	local r = handle.recorder(self.h)
	local e = ep({ ports = { "8080:80", "0:81/udp", "192.0.2.1::82", "9000-9002:83" } })
	lu.assertTrue(ports.publish(r, e, { network = NET, driver = fake_driver({}) }))
	lu.assertEquals(recorded(r), {
		"port_add tcp *:8080 -> 172.30.0.2:80",
		"port_add udp *:40000 -> 172.30.0.2:81",
		"port_add tcp 192.0.2.1:40000 -> 172.30.0.2:82",
		"port_add tcp *:9000 -> 172.30.0.2:83",
	})
	-- the bindings are written back, as the firewall takes them
	lu.assertEquals(e.ports[2], { proto = "udp", host_port = 40000, container_ip = "172.30.0.2", container_port = 81 })
	lu.assertEquals(e.ports[3].host_ip, "192.0.2.1")
	lu.assertEquals(#e.ports, 4)
	-- the network as the firewall sees it, the endpoint by id
	lu.assertEquals(r.ops[1].args[2].bridge, NET.bridge)
	lu.assertEquals(r.ops[1].args[3], { id = e.id })
end

function TestPortsPublish:test_container_ranges()
	local r = handle.recorder(self.h)
	local e = ep({ ports = { "8000-8001:80-81", "90-91/udp" } })
	lu.assertTrue(ports.publish(r, e, { network = NET, driver = fake_driver({}) }))
	lu.assertEquals(recorded(r), {
		"port_add tcp *:8000 -> 172.30.0.2:80",
		"port_add tcp *:8001 -> 172.30.0.2:81",
		"port_add udp *:40000 -> 172.30.0.2:90",
		"port_add udp *:40001 -> 172.30.0.2:91",
	})
end

function TestPortsPublish:test_allocation_skips_stored_bindings()
	local stored = {
		{ id = "other1", ports = {
			{ proto = "tcp", host_port = 40000, container_ip = "172.30.0.9", container_port = 1 },
			{ proto = "tcp", host_ip = "192.0.2.1", host_port = 40001, container_ip = "172.30.0.9", container_port = 2 },
			{ proto = "tcp", host_port = 9000, container_ip = "172.30.0.9", container_port = 3 },
		} },
	}
	local r = handle.recorder(self.h)
	-- 40000 is taken on every address; 40001 only on 192.0.2.1, which every
	-- address includes; one call's own choices count too
	local e = ep({ ports = { "0:80", "0:81", "10.1.1.1::82", "0:83/udp", "9000-9002:84" } })
	lu.assertTrue(ports.publish(r, e, { network = NET, driver = fake_driver(stored) }))
	lu.assertEquals(recorded(r), {
		"port_add tcp *:40002 -> 172.30.0.2:80",
		"port_add tcp *:40003 -> 172.30.0.2:81",
		"port_add tcp 10.1.1.1:40001 -> 172.30.0.2:82",
		"port_add udp *:40000 -> 172.30.0.2:83",
		"port_add tcp *:9001 -> 172.30.0.2:84",
	})
end

function TestPortsPublish:test_fixed_port_taken()
	local stored = { { id = "other1", ports = {
		{ proto = "tcp", host_port = 8080, container_ip = "172.30.0.9", container_port = 80 },
		{ proto = "udp", host_ip = "192.0.2.1", host_port = 53, container_ip = "172.30.0.9", container_port = 53 },
	} } }
	local cases = {
		{ "8080:80", "Bind for 0.0.0.0:8080 failed: port is already allocated" },
		{ "192.0.2.1:8080:80", "Bind for 192.0.2.1:8080 failed: port is already allocated" },
		{ "53:53/udp", "Bind for 0.0.0.0:53 failed: port is already allocated" },
		{ { "81:81", "81:82" }, "Bind for 0.0.0.0:81 failed: port is already allocated" },
		{ "8080-8080:80", "Bind for 0.0.0.0:8080 failed: port is already allocated" },
	}
	for _, c in ipairs(cases) do
		local r = handle.recorder(self.h)
		local e = ep({ ports = c[1] })
		local before = cjson.encode(e)
		local ok, msg, err = ports.publish(r, e, { network = NET, driver = fake_driver(stored) })
		lu.assertNil(ok)
		lu.assertEquals(msg, c[2])
		lu.assertEquals(err, EADDRINUSE)
		lu.assertEquals(#r.ops, 0, "nothing is published when a port is taken")
		lu.assertEquals(cjson.encode(e), before)
	end
	-- another protocol, another address, another family: no clash
	local r = handle.recorder(self.h)
	local e = ep({ ports = { "8080:80/udp", "192.0.2.2:53:53/udp" } })
	lu.assertTrue(ports.publish(r, e, { network = NET, driver = fake_driver(stored) }))
	lu.assertEquals(#r.ops, 2)
	-- the endpoint's own stored record does not count against it
	r = handle.recorder(self.h)
	e = ep({ id = "other1", ports = { "8080:80" } })
	lu.assertTrue(ports.publish(r, e, { network = NET, driver = fake_driver(stored) }))
end

function TestPortsPublish:test_range_exhausted()
	local stored = { { id = "other1", ports = {} } }
	for p = 40000, 40003 do
		stored[1].ports[#stored[1].ports + 1] = { proto = "tcp", host_port = p, container_ip = "172.30.0.9", container_port = p }
	end
	local r = handle.recorder(self.h)
	local ok, msg, err = ports.publish(r, ep({ ports = { "0:80" } }), { network = NET, driver = fake_driver(stored) })
	lu.assertNil(ok)
	lu.assertEquals(msg, "Bind for 0.0.0.0:40000-40003 failed: all ports are allocated")
	lu.assertEquals(err, EADDRINUSE)
	ok, msg, err = ports.publish(r, ep({ ports = { "[::]:40001-40002:80" } }),
		{ network = NET6, driver = fake_driver(stored) })
	lu.assertNil(ok)
	lu.assertStrContains(msg, "no IPv6 address")
	lu.assertEquals(err, EINVAL)
	lu.assertEquals(#r.ops, 0)
end

function TestPortsPublish:test_default_range_fallback()
	local calls = {}
	local fake = {
		sysctl_get = function() return nil, "get sysctl: No such file or directory", core.errno.ENOENT end,
		firewall = function(_, ...) calls[#calls + 1] = { ... }; return true end,
	}
	local e = ep({ ports = { "80" } })
	lu.assertTrue(ports.publish(fake, e, { network = NET, driver = fake_driver({}) }))
	lu.assertEquals(calls[1][4].host_port, 49153)
	lu.assertEquals(e.ports[1].host_port, 49153)
end

-- A network's host_binding_ipv4 (libnetwork's DefaultBindingIP) is the
-- host IP of a request that names none: IPv4 only (no IPv6 copy), as
-- libnetwork does unless it is 0.0.0.0. It was ignored: every address.
function TestPortsPublish:test_default_binding_ip()
	local r = handle.recorder(self.h)
	local net = {}
	for k, v in pairs(NET6) do net[k] = v end
	net.host_binding_ipv4 = "192.0.2.7"
	local e = ep({ bridge = NET6.bridge, ipv4 = "172.31.0.2/16", ipv6 = "fd00:31::2/64",
		ports = { "8080:80", "[::]:8081:81", "10.0.0.1:8083:83" } })
	lu.assertTrue(ports.publish(r, e, { network = net, driver = fake_driver({}) }))
	lu.assertEquals(recorded(r), {
		"port_add tcp 192.0.2.7:8080 -> 172.31.0.2:80",
		"port_add tcp *:8081 -> fd00:31::2:81",
		"port_add tcp 10.0.0.1:8083 -> 172.31.0.2:83",
	})
	lu.assertEquals(e.ports[1].host_ip, "192.0.2.7")
	-- 0.0.0.0 is every address, both families
	net.host_binding_ipv4 = "0.0.0.0"
	r = handle.recorder(self.h)
	e = ep({ bridge = NET6.bridge, ipv4 = "172.31.0.2/16", ipv6 = "fd00:31::2/64", ports = { "8080:80" } })
	lu.assertTrue(ports.publish(r, e, { network = net, driver = fake_driver({}) }))
	lu.assertEquals(recorded(r), { "port_add tcp *:8080 -> 172.31.0.2:80", "port_add tcp *:8080 -> fd00:31::2:80" })
end

function TestPortsPublish:test_ipv6()
	local r = handle.recorder(self.h)
	local e = ep({ bridge = NET6.bridge, ipv4 = "172.31.0.2/16", ipv6 = "fd00:31::2/64",
		ports = { "8080:80", "[2001:db8::1]:8081:81", "[::]:0:82/udp", "10.0.0.1:8083:83" } })
	lu.assertTrue(ports.publish(r, e, { network = NET6, driver = fake_driver({}) }))
	-- no host IP: both families, one host port (as Docker)
	lu.assertEquals(recorded(r), {
		"port_add tcp *:8080 -> 172.31.0.2:80",
		"port_add tcp *:8080 -> fd00:31::2:80",
		"port_add tcp 2001:db8::1:8081 -> fd00:31::2:81",
		"port_add udp *:40000 -> fd00:31::2:82",
		"port_add tcp 10.0.0.1:8083 -> 172.31.0.2:83",
	})
	-- a link-local (self-generated) IPv6 address is not published to
	r = handle.recorder(self.h)
	e = ep({ ipv6 = "fe80::42:acff:fe1e:2/64", ports = { "8080:80" } })
	lu.assertTrue(ports.publish(r, e, { network = NET, driver = fake_driver({}) }))
	lu.assertEquals(recorded(r), { "port_add tcp *:8080 -> 172.30.0.2:80" })
	local ok, msg, err = ports.publish(handle.recorder(self.h), ep({ ports = { "[2001:db8::1]:8080:80" } }),
		{ network = NET, driver = fake_driver({}) })
	lu.assertNil(ok)
	lu.assertStrContains(msg, "has no IPv6 address")
	lu.assertEquals(err, EINVAL)
end

function TestPortsPublish:test_bad_spec_in_ep()
	local r = handle.recorder(self.h)
	local ok, msg, err = ports.publish(r, ep({ ports = { "8080:80", "8080:80/foo" } }),
		{ network = NET, driver = fake_driver({}) })
	lu.assertNil(ok)
	lu.assertEquals(msg, "publish 2: invalid proto: foo (tcp, udp or sctp)")
	lu.assertEquals(err, EINVAL)
	lu.assertEquals(#r.ops, 0)
	lu.assertErrorMsgContains("ctx.network is required", function() ports.publish(r, ep({ ports = { "80" } }), {}) end)
end

-- nft's view of brisk's port rules: sorted comments of rules and elements.
local function port_objects()
	local ok, out = H.sh("nft -j list table inet brisk")
	if not ok then return {} end
	local t = {}
	for _, o in ipairs(cjson.decode(out).nftables) do
		if o.rule and o.rule.comment and o.rule.comment:match("^brisk port ") then
			t[#t + 1] = o.rule.chain .. " " .. o.rule.comment
		end
		if o.set and o.set.name:match("^host_ports") then
			for _, el in ipairs(o.set.elem or {}) do
				t[#t + 1] = o.set.name .. " " .. (el.elem and el.elem.comment or "?")
			end
		end
	end
	table.sort(t)
	return t
end

function TestPortsPublish:test_journal_publishes_and_rolls_back()
	local j = handle.journal(self.h)
	assert(j:firewall("network_add", require("brisk.driver").fw_net(NET)))
	local base_log = #j.log
	local e = ep({ ports = { "8080:80", "0:81/udp" } })
	lu.assertTrue(ports.publish(j, e, { network = NET, driver = fake_driver({}) }))
	lu.assertEquals(#j.log, base_log + 2)
	lu.assertEquals(port_objects(), {
		"host_ports4 brisk port br-p1 0123456789ab tcp *:8080",
		"host_ports4 brisk port br-p1 0123456789ab udp *:40000",
		"port_accept brisk port br-p1 0123456789ab tcp *:8080 accept",
		"port_accept brisk port br-p1 0123456789ab udp *:40000 accept",
		"port_dnat brisk port br-p1 0123456789ab tcp *:8080 dnat",
		"port_dnat brisk port br-p1 0123456789ab udp *:40000 dnat",
		"postrouting brisk port br-p1 0123456789ab tcp *:8080 hairpin",
		"postrouting brisk port br-p1 0123456789ab udp *:40000 hairpin",
	})
	local rules = H.must("nft list chain inet brisk port_dnat")
	lu.assertStrContains(rules, "udp dport 40000 dnat ip to 172.30.0.2:81")
	-- unpublish through the plain handle (what delete_endpoint passes)
	lu.assertTrue(ports.unpublish(self.h, e, { network = NET }))
	lu.assertEquals(port_objects(), {})
	lu.assertTrue(ports.unpublish(self.h, e, { network = NET }), "unpublish twice is harmless")
	-- and through a journal, without the network record
	lu.assertTrue(ports.publish(j, ep({ ports = { "8080:80" } }), { network = NET, driver = fake_driver({}) }))
	lu.assertEquals(#port_objects(), 4)
	lu.assertTrue(ports.unpublish(handle.journal(self.h), { id = e.id, bridge = NET.bridge,
		ipv4 = e.ipv4, ports = { { proto = "tcp", host_port = 8080, container_ip = "172.30.0.2", container_port = 80 } } }))
	lu.assertEquals(port_objects(), {})
end

function TestPortsPublish:test_partial_failure_is_undone_by_the_journal()
	local run = function(s, o) return core.nft(s, nil, o) end
	local fwnet = require("brisk.driver").fw_net(NET)
	assert(fw.network_add(run, fwnet))
	-- 9090 is bound in nftables by something the store does not know
	assert(fw.port_add(run, fwnet, "stranger", { proto = "tcp", host_port = 9090, container_ip = "172.30.0.7",
		container_port = 90 }))
	local before = H.must("nft list ruleset")
	local j = handle.journal(self.h)
	local e = ep({ ports = { "8080:80", "9090:90" } })
	local ok, msg, err = ports.publish(j, e, { network = NET, driver = fake_driver({}) })
	lu.assertNil(ok)
	lu.assertStrContains(msg, "firewall port_add br-p1 tcp/9090")
	lu.assertEquals(err, EEXIST)
	lu.assertEquals(#j.log, 1, "the first binding is journaled")
	lu.assertEquals(e.ports, { "8080:80", "9090:90" }, "ep.ports is unchanged on failure")
	lu.assertTrue(handle.undo(self.h, j.log))
	lu.assertEquals(H.must("nft list ruleset"), before)
end

---------------------------------------------------------------------------
-- end to end: the driver's endpoint flow, a server in the endpoint's
-- namespace, clients in OUT (a namespace linked to this one by a veth:
-- up0 192.0.2.1/24 here, eth0 192.0.2.2/24 there)
---------------------------------------------------------------------------

local tmpdir = H.tmpdir

local serve, stop = H.serve, H.stop

-- Send `msg` from `ns` to host:port; true when the echo came back.
local function send(ns, proto, host, port, msg)
	local ok, out = H.send(ns, proto, host, port, msg)
	return ok == true and out == "echo:" .. msg .. "\n", out
end

-- The store as JSON text (endpoints and networks), for "nothing changed".
local function store_text(d)
	return cjson.encode({ d:endpoints(), d:networks() })
end

TestPortsDriver = {}

function TestPortsDriver:setUp()
	H.reset()
	self.dir = tmpdir()
	self.h = assert(core.open())
	self.range = set_range(self.h, "40000 40003")
	self.out = H.netns_add(H.name("pout"))
	H.must("ip link add up0 type veth peer name eth0 netns " .. self.out)
	H.must("ip addr add 192.0.2.1/24 dev up0")
	H.must("ip link set up0 up")
	H.must("ip -n " .. self.out .. " addr add 192.0.2.2/24 dev eth0")
	H.must("ip -n " .. self.out .. " link set eth0 up")
	self.d = assert(require("brisk.driver").open{ state_dir = self.dir })
	self.servers = {}
end

function TestPortsDriver:tearDown()
	for _, s in ipairs(self.servers) do stop(s) end
	self.d:close()
	set_range(self.h, self.range)
	self.h:close()
	fw.remove(function(s, o) return core.nft(s, nil, o) end)
	H.reset()
	H.sh("rm -rf " .. self.dir)
end

function TestPortsDriver:test_publish_reach_and_delete()
	local d = self.d
	local net = assert(d:create_network{ name = "pub", subnet = "172.30.0.0/16" })
	local rules_before = H.must("nft list ruleset")
	local ep = assert(d:create_endpoint("pub", { name = "web", netns = H.name("pep"),
		publish = { "8080:80", "0:80/udp" } }))
	self.servers[#self.servers + 1] = serve(ep.netns, 80)
	-- host port 0 allocated the first port of the dynamic range; stored
	local stored = assert(d:endpoint("web"))
	lu.assertEquals(stored.ports, {
		{ proto = "tcp", host_port = 8080, container_ip = "172.30.0.2", container_port = 80 },
		{ proto = "udp", host_port = 40000, container_ip = "172.30.0.2", container_port = 80 },
	})
	lu.assertEquals(ep.ports, stored.ports)
	-- reached from OUT over TCP and UDP through the host's address
	lu.assertTrue(send(self.out, "tcp", "192.0.2.1", 8080, "t1"))
	lu.assertTrue(send(self.out, "udp", "192.0.2.1", 40000, "u1"))
	-- not on the other protocol's port
	lu.assertFalse(send(self.out, "udp", "192.0.2.1", 8080, "u2"))
	-- the firewall sees what the store says
	lu.assertEquals(d:check(), {})
	-- a second endpoint asking for 8080: refused, nothing changed
	local rules, snap, st = H.must("nft list ruleset"), H.snapshot(), store_text(d)
	local netns = H.ip("netns list")
	local ok, msg, err = d:create_endpoint("pub", { name = "web2", netns = H.name("pep"), publish = { "8080:81" } })
	lu.assertNil(ok)
	lu.assertStrContains(msg, "Bind for 0.0.0.0:8080 failed: port is already allocated")
	lu.assertEquals(err, EADDRINUSE)
	lu.assertEquals(H.must("nft list ruleset"), rules)
	lu.assertEquals(H.snapshot(), snap)
	lu.assertEquals(store_text(d), st)
	lu.assertEquals(H.ip("netns list"), netns)
	-- the next 0 gets the next port
	local ep3 = assert(d:create_endpoint("pub", { name = "web3", publish = { "0:80/udp", "0:81" } }))
	lu.assertEquals(ep3.ports[1].host_port, 40001)
	lu.assertEquals(ep3.ports[2].host_port, 40000)
	assert(d:delete_endpoint("web3"))
	-- the rules go with the endpoint
	assert(d:delete_endpoint("web"))
	lu.assertEquals(H.must("nft list ruleset"), rules_before)
	lu.assertFalse(send(self.out, "tcp", "192.0.2.1", 8080, "t3"))
	assert(d:delete_network(net.id))
end

-- restore rebuilds the firewall of every network: the published ports of
-- its endpoints are programmed again, not lost
function TestPortsDriver:test_restore_keeps_published_ports()
	local d = self.d
	assert(d:create_network{ name = "pub", subnet = "172.30.0.0/16" })
	local ep = assert(d:create_endpoint("pub", { name = "web", netns = H.name("pep"), publish = { "8080:80" } }))
	self.servers[#self.servers + 1] = serve(ep.netns, 80)
	lu.assertTrue(send(self.out, "tcp", "192.0.2.1", 8080, "t1"))
	local rules = H.must("nft list ruleset")
	for _, r in ipairs(d:restore()) do lu.assertTrue(r.ok, r.msg) end
	lu.assertEquals(d:check(), {})
	lu.assertStrContains(H.must("nft list ruleset"), "dport 8080 dnat ip to 172.30.0.2:80")
	lu.assertEquals(select(2, H.must("nft list ruleset"):gsub("\n", "")), select(2, rules:gsub("\n", "")))
	lu.assertTrue(send(self.out, "tcp", "192.0.2.1", 8080, "t2"))
	-- with the rules flushed, restore programs the network and the port again
	H.must("nft flush ruleset")
	lu.assertFalse(send(self.out, "tcp", "192.0.2.1", 8080, "t3"))
	for _, r in ipairs(d:restore()) do lu.assertTrue(r.ok, r.msg) end
	lu.assertEquals(d:check(), {})
	lu.assertTrue(send(self.out, "tcp", "192.0.2.1", 8080, "t4"))
	-- a network whose restore fails gets no ports back either (they would
	-- stand without the network's own rules)
	assert(d:create_network{ name = "other", subnet = "172.31.0.0/16" })
	assert(d:create_endpoint("other", { name = "web2", publish = { "9090:90" } }))
	H.must("nft flush ruleset")
	d:replace_step("setup_device_up", function(h, n)
		if n.name == "other" then return nil, "injected failure", core.errno.EIO end
		return h:link_set{ dev = n.bridge, up = true }
	end)
	local failed = {}
	for _, r in ipairs(d:restore()) do
		if not r.ok then failed[#failed + 1] = r.name end
	end
	lu.assertEquals(failed, { "other" })
	local rules = H.must("nft list ruleset")
	lu.assertStrContains(rules, "dport 8080 dnat ip to 172.30.0.2:80")
	lu.assertNotStrContains(rules, "9090")
end
