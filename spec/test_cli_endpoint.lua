-- spec/test_cli_endpoint.lua: `brisk endpoint ...` (lua/brisk/cli/endpoint.lua)
-- run as the built program, build/bin/brisk, inside the runner's private
-- namespace; kernel state (here and in the endpoints' namespaces) is read
-- back with `ip -j`.
local lu = require "luaunit"
local H = require "helper"
local cjson = require "cjson"

local q = H.q

local function brisk(self, args) return H.brisk_in(self.dir, args) end

local function ok_run(self, args) return H.brisk_ok(self.dir, args) end
local function json_run(self, args) return H.brisk_json(self.dir, args) end

-- Every test gets a state dir and, when the kernel families are there,
-- network n1 on bridge bre1 (10.40.0.0/24).
local snapshot, reset = H.snapshot, H.reset

local function fresh(self)
	reset()
	self.dir = H.must("mktemp -d /tmp/brisk-cliep-XXXXXX"):gsub("%s+$", "")
	ok_run(self, "network create --subnet 10.40.0.0/24 -o com.docker.network.bridge.name=bre1 n1")
end

local function cleanup(self)
	reset()
	if self.dir then os.execute("rm -rf " .. q(self.dir)) end
end


local function netns_list()
	local _, out = H.sh("ip netns list")
	local t = {}
	for name in out:gmatch("(%S+)[^\n]*\n?") do t[#t + 1] = name end
	table.sort(t)
	return t
end

-- Everything a failed command must leave alone: links, addresses and
-- routes here, the named namespaces, the stored endpoints.
local function state(self)
	local _, eps = H.sh("ls -1 " .. q(self.dir .. "/endpoint"))
	local _, nets = H.sh("cat " .. q(self.dir) .. "/network/*.json")
	return snapshot() .. table.concat(netns_list(), ",") .. eps .. nets
end

local function fails(self, args, code, msg)
	local before = state(self)
	local c, out, err = brisk(self, args)
	lu.assertEquals(c, code, args .. ": " .. tostring(err))
	lu.assertEquals(out, "", args)
	lu.assertStrContains(err, msg)
	lu.assertStrMatches(err, "^brisk: .*")
	lu.assertEquals(state(self), before, args)
	return err
end

local function ns_addrs(ns, dev) return H.addrs(dev, { netns = ns, global = true }) end

local function default_via(ns)
	for _, r in ipairs(H.ip("-n " .. ns .. " -4 route show")) do
		if r.dst == "default" then return r.gateway, r.dev end
	end
end

local has = H.has

---------------------------------------------------------------------------
TestCliEndpointCreate = { setUp = fresh, tearDown = cleanup }

function TestCliEndpointCreate:test_create_reads_the_index_not_every_endpoint()
	for _, n in ipairs{ "a", "b", "c" } do ok_run(self, "endpoint create --name " .. n .. " n1") end
	-- the other endpoints' documents, broken behind the store's back: a
	-- create that trusts the index does not open them
	local docs = H.must("ls " .. q(self.dir .. "/endpoint")):gsub("%s+$", "")
	for name in docs:gmatch("%S+") do H.spit(self.dir .. "/endpoint/" .. name, "not json") end
	local ep = json_run(self, "--json endpoint create --name d n1")
	lu.assertEquals(ep.ipv4, "10.40.0.5/24")
	local c, _, err = brisk(self, "endpoint create --name b n1")
	lu.assertEquals(c, 1)
	lu.assertStrContains(err, "endpoint b exists")
	-- network ls counts from the index too
	local nets = json_run(self, "--json network ls")
	lu.assertEquals(nets[1].endpoints, 4)
	-- commands that print whole records still read them
	c, _, err = brisk(self, "endpoint ls")
	lu.assertEquals(c, 1)
	lu.assertStrContains(err, "cannot parse")
	for name in docs:gmatch("%S+") do os.remove(self.dir .. "/endpoint/" .. name) end
	ok_run(self, "endpoint rm d")
end

function TestCliEndpointCreate:test_create_with_netns_joins_it()
	local out = ok_run(self, "endpoint create --name e1 --netns h1 n1")
	local id = out:match("^(%x+)\n$")
	lu.assertNotNil(id, out)
	lu.assertEquals(#id, 64)
	-- the namespace was created, eth0 has the first free address and is up,
	-- the default route goes through the gateway
	lu.assertTrue(has(netns_list(), "h1"))
	lu.assertEquals(ns_addrs("h1", "eth0"), { "10.40.0.2/24" })
	local eth0 = H.iplink("eth0", "h1")
	lu.assertTrue(has(eth0.flags, "UP"))
	lu.assertEquals(eth0.address, "02:42:0a:28:00:02")
	local gw, dev = default_via("h1")
	lu.assertEquals(gw, "10.40.0.1")
	lu.assertEquals(dev, "eth0")
	-- the host side is a port of the bridge
	local ep = json_run(self, "endpoint inspect --json e1")
	lu.assertEquals(ep.id, id)
	lu.assertEquals(ep.network_name, "n1")
	lu.assertEquals(ep.netns, "h1")
	lu.assertEquals(ep.ifname, "eth0")
	lu.assertEquals(ep.ipv4, "10.40.0.2/24")
	local host = H.iplink(ep.host_ifname)
	lu.assertEquals(host.master, "bre1")
	lu.assertEquals(host.linkinfo.info_kind, "veth")
	-- inspect text, by id prefix
	local text = ok_run(self, "endpoint inspect " .. id:sub(1, 10))
	lu.assertStrContains(text, 'name = "e1"')
	lu.assertStrContains(text, 'ipv4 = "10.40.0.2/24"')
	-- ls: text and --json, all and by network
	local ls = ok_run(self, "endpoint ls")
	local header, row = ls:match("^([^\n]*)\n([^\n]*)\n$")
	lu.assertStrMatches(header, "ENDPOINT ID%s+NAME%s+NETWORK%s+HOST IFNAME%s+NETNS%s+IFNAME%s+MAC%s+IPV4%s+IPV6")
	local cells = {}
	for c in row:gmatch("%S+") do cells[#cells + 1] = c end
	lu.assertEquals(cells, { id:sub(1, 12), "e1", "n1", ep.host_ifname, "h1", "eth0",
		"02:42:0a:28:00:02", "10.40.0.2/24" })
	local rows = json_run(self, "endpoint ls --json n1")
	lu.assertEquals(#rows, 1)
	lu.assertEquals(rows[1].id, id)
	-- the network counts it
	lu.assertEquals(json_run(self, "network ls --json")[1].endpoints, 1)
	lu.assertEquals(ok_run(self, "endpoint rm e1"), "e1\n")
end

function TestCliEndpointCreate:test_create_with_ip_mac_ifname_json()
	local ep = json_run(self, "endpoint create --json --name e2 --ip 10.40.0.9 --mac 02:42:aa:bb:cc:dd "
		.. "--ifname eth5 --netns h2 n1")
	lu.assertEquals(ep.name, "e2")
	lu.assertEquals(ep.ipv4, "10.40.0.9/24")
	lu.assertEquals(ep.mac, "02:42:aa:bb:cc:dd")
	lu.assertEquals(ep.ifname, "eth5")
	lu.assertEquals(ns_addrs("h2", "eth5"), { "10.40.0.9/24" })
	lu.assertEquals(H.iplink("eth5", "h2").address, "02:42:aa:bb:cc:dd")
	lu.assertEquals(default_via("h2"), "10.40.0.1")
	ok_run(self, "endpoint rm e2")
end

function TestCliEndpointCreate:test_two_endpoints_ping_each_other()
	local a = json_run(self, "endpoint create --json --name pa --netns h1 n1")
	local b = json_run(self, "endpoint create --json --name pb --netns h2 n1")
	lu.assertEquals(a.ipv4, "10.40.0.2/24")
	lu.assertEquals(b.ipv4, "10.40.0.3/24")
	local ok, out = H.sh("ip netns exec h1 ping -c1 -W1 10.40.0.3")
	lu.assertTrue(ok, out)
	ok, out = H.sh("ip netns exec h2 ping -c1 -W1 10.40.0.2")
	lu.assertTrue(ok, out)
	-- and the gateway on the bridge
	ok, out = H.sh("ip netns exec h1 ping -c1 -W1 10.40.0.1")
	lu.assertTrue(ok, out)
	ok_run(self, "endpoint rm pa pb")
end

function TestCliEndpointCreate:test_rm_twice_second_not_found()
	local ep = json_run(self, "endpoint create --json --name e3 --netns h3 n1")
	lu.assertEquals(ok_run(self, "endpoint rm e3"), "e3\n")
	lu.assertNil(H.iplink(ep.host_ifname))
	-- the namespace the endpoint created went with it
	lu.assertFalse(has(netns_list(), "h3"))
	lu.assertEquals(ok_run(self, "endpoint ls --json"), "[]\n")
	local code, out, err = brisk(self, "endpoint rm e3")
	lu.assertEquals(code, 1)
	lu.assertEquals(out, "")
	lu.assertStrContains(err, "brisk: endpoint not found: e3")
	-- its address is free again
	lu.assertEquals(json_run(self, "endpoint create --json --name e4 --ip 10.40.0.2 n1").ipv4, "10.40.0.2/24")
	ok_run(self, "endpoint rm e4")
end

function TestCliEndpointCreate:test_existing_netns_is_kept()
	H.netns_add("hx")
	ok_run(self, "endpoint create --name ex --netns hx n1")
	lu.assertEquals(ns_addrs("hx", "eth0"), { "10.40.0.2/24" })
	ok_run(self, "endpoint rm ex")
	lu.assertTrue(has(netns_list(), "hx"))
	lu.assertNil(H.iplink("eth0", "hx"))
end

-- --netns DIGITS: the namespace of that name when there is one (as `ip
-- link set X netns N` reads it), else the process's; neither was tested
function TestCliEndpointCreate:test_netns_digits_name_first_then_pid()
	H.netns_add("4242")
	ok_run(self, "endpoint create --name byname --netns 4242 n1")
	lu.assertEquals(ns_addrs("4242", "eth0"), { "10.40.0.2/24" })
	lu.assertEquals(json_run(self, "endpoint inspect byname --json").netns, "4242")
	-- a process in a namespace of its own (made here, bound nowhere)
	H.netns_add("bypid")
	local p = io.popen("exec ip netns exec bypid sh -c 'echo $$; exec sleep 30'")
	local pid = p:read("l")
	local ok, err = pcall(function()
		ok_run(self, "endpoint create --name bypid --netns " .. pid .. " n1")
		lu.assertEquals(ns_addrs("bypid", "eth0"), { "10.40.0.3/24" })
		lu.assertEquals(json_run(self, "endpoint inspect bypid --json").netns, tonumber(pid))
		ok_run(self, "endpoint rm bypid")
		lu.assertNil(H.iplink("eth0", "bypid"))
	end)
	H.sh("kill " .. pid)
	p:close()
	lu.assertTrue(ok, err)
	ok_run(self, "endpoint rm byname")
	lu.assertTrue(has(netns_list(), "4242"))
	lu.assertNil(H.iplink("eth0", "4242"))
	-- digits that are neither: a pid that does not exist
	fails(self, "endpoint create --name nothing --netns 999999999 n1", 1, "netns")
end

function TestCliEndpointCreate:test_network_rm_refuses_with_endpoints_force_deletes()
	local a = json_run(self, "endpoint create --json --name fa --netns h1 n1")
	local b = json_run(self, "endpoint create --json --name fb n1")
	fails(self, "network rm n1", 1, "brisk: network n1 has 2 active endpoints (fa, fb)")
	lu.assertNotNil(H.iplink("bre1"))
	lu.assertEquals(ok_run(self, "network rm --force n1"), "n1\n")
	lu.assertNil(H.iplink("bre1"))
	lu.assertNil(H.iplink(a.host_ifname))
	lu.assertNil(H.iplink(b.host_ifname))
	lu.assertFalse(has(netns_list(), "h1"))
	lu.assertEquals(ok_run(self, "endpoint ls --json"), "[]\n")
	lu.assertEquals(ok_run(self, "network ls --json"), "[]\n")
end

function TestCliEndpointCreate:test_join_and_leave()
	local ep = json_run(self, "endpoint create --json --name ej n1")
	lu.assertNil(ep.netns)
	-- both ends are here, the host side on the bridge
	lu.assertEquals(H.iplink(ep.host_ifname).master, "bre1")
	lu.assertNotNil(H.iplink(ep.peer_ifname))
	local out = ok_run(self, "endpoint join --ifname eth1 ej h4")
	lu.assertEquals(out, "ej joined h4 as eth1\n")
	lu.assertNil(H.iplink(ep.peer_ifname))
	lu.assertEquals(ns_addrs("h4", "eth1"), { "10.40.0.2/24" })
	lu.assertEquals(default_via("h4"), "10.40.0.1")
	lu.assertEquals(json_run(self, "endpoint inspect --json ej").netns, "h4")
	-- joined twice: refused
	fails(self, "endpoint join ej h5", 1, "already joined")
	lu.assertEquals(ok_run(self, "endpoint leave ej"), "ej left h4\n")
	lu.assertNotNil(H.iplink(ep.peer_ifname))
	lu.assertFalse(has(netns_list(), "h4"))
	lu.assertNil(json_run(self, "endpoint inspect --json ej").netns)
	fails(self, "endpoint leave ej", 1, "is not joined")
	-- --json gives the record
	local j = json_run(self, "endpoint join --json ej h6")
	lu.assertEquals(j.netns, "h6")
	lu.assertEquals(j.ifname, "eth0")
	ok_run(self, "endpoint rm ej")
	lu.assertFalse(has(netns_list(), "h6"))
end

function TestCliEndpointCreate:test_publish_programs_the_firewall()
	local ep = json_run(self, "endpoint create --json --name pub -p 8080:80 "
		.. "-p 192.0.2.1:8443:443/tcp --netns h1 n1")
	lu.assertEquals(#ep.ports, 2)
	lu.assertEquals(ep.ports[1].host_port, 8080)
	lu.assertEquals(ep.ports[1].container_port, 80)
	lu.assertEquals(ep.ports[2].host_ip, "192.0.2.1")
	local rules = H.must("nft list ruleset")
	lu.assertStrContains(rules, "dport 8080")
	lu.assertStrContains(rules, "dport 8443")
	lu.assertStrContains(rules, "10.40.0.2")
	lu.assertEquals(ok_run(self, "network check"), "no drift\n")
	ok_run(self, "endpoint rm pub")
	rules = H.must("nft list ruleset")
	lu.assertNotStrContains(rules, "dport 8080")
	lu.assertNotStrContains(rules, "dport 8443")
end

-- An endpoint that publishes ports reaches them through the host's address
-- only with hairpin on its bridge port (brisk has no userland proxy: as
-- Docker with userland-proxy=false, which turns it on)
function TestCliEndpointCreate:test_hairpin_follows_published_ports()
	local function hairpin(ep)
		return cjson.decode(H.must("bridge -j -d link show dev " .. ep.host_ifname))[1].hairpin
	end
	lu.assertTrue(hairpin(json_run(self, "endpoint create --json --name hp -p 8080:80 --netns h1 n1")))
	lu.assertFalse(hairpin(json_run(self, "endpoint create --json --name hn --netns h2 n1")))
	lu.assertFalse(hairpin(json_run(self, "endpoint create --json --name hx -p 8081:80 -o hairpin=false n1")))
	lu.assertTrue(hairpin(json_run(self, "endpoint create --json --name hy -o hairpin=true n1")))
	for _, n in ipairs{ "hp", "hn", "hx", "hy" } do ok_run(self, "endpoint rm " .. n) end
end

---------------------------------------------------------------------------
TestCliEndpointErrors = { setUp = fresh, tearDown = cleanup }

function TestCliEndpointErrors:test_operation_failures_exit_1_change_nothing()
	fails(self, "endpoint create nosuch", 1, "brisk: network nosuch not found")
	fails(self, "endpoint create --ip 10.41.0.5 --netns h1 n1", 1, "is outside the subnet 10.40.0.0/24")
	fails(self, "endpoint create --ip 10.40.0.1 n1", 1, "already in use")
	fails(self, "endpoint create --ip banana n1", 1, "invalid IP address 'banana'")
	fails(self, "endpoint create --mac 02:42 n1", 1, "invalid MAC address")
	fails(self, "endpoint create --ip6 fd00::5 n1", 1, "has no IPv6")
	fails(self, "endpoint create -o hairpn=true --netns h1 n1", 1, "did you mean 'hairpin'?")
	fails(self, "endpoint create --name 'bad name' n1", 1, "invalid endpoint name")
	fails(self, "endpoint create --netns h1 --ifname " .. string.rep("x", 16) .. " n1", 1,
		"invalid interface name")
	ok_run(self, "endpoint create --name dup n1")
	fails(self, "endpoint create --name dup --netns h1 n1", 1, "endpoint dup exists")
	fails(self, "endpoint inspect nosuch", 1, "not found")
	fails(self, "endpoint join nosuch h1", 1, "not found")
	fails(self, "endpoint leave nosuch", 1, "not found")
	fails(self, "endpoint ls nosuch", 1, "network nosuch not found")
	ok_run(self, "endpoint rm dup")
end

function TestCliEndpointErrors:test_usage_errors_exit_2()
	fails(self, "endpoint create", 2, "'endpoint create' needs 1 argument")
	fails(self, "endpoint create n1 n2", 2, "takes at most 1 argument")
	fails(self, "endpoint create --nets h1 n1", 2, "did you mean '--netns'?")
	fails(self, "endpoint create --ifname eth3 n1", 2, "--ifname needs --netns")
	fails(self, "endpoint create -o hairpin n1", 2, "flag --opt: 'hairpin' is not KEY=VALUE")
	fails(self, "endpoint join e1", 2, "needs 2 arguments")
	fails(self, "endpoint leave", 2, "needs 1 argument")
	fails(self, "endpoint rm", 2, "needs at least 1 argument")
	fails(self, "endpoint ls a b", 2, "takes at most 1 argument")
	fails(self, "endpoint lst", 2, "did you mean 'endpoint ls'?")
end

function TestCliEndpointErrors:test_every_command_has_help_with_example()
	local cmds = { "create", "plan", "ls", "inspect", "rm", "join", "leave" }
	for _, c in ipairs(cmds) do
		local code, out, err = brisk(self, "endpoint " .. c .. " --help")
		lu.assertEquals(code, 0, c)
		lu.assertEquals(err, "")
		lu.assertStrContains(out, "usage: brisk endpoint " .. c)
		lu.assertStrMatches(out, ".*\nexamples?:\n  brisk endpoint " .. c .. "[ \n].*")
	end
	local _, out = brisk(self, "endpoint create --help")
	for _, f in ipairs{ "--name NAME", "--ip IP", "--ip6 IP", "--mac MAC", "--netns NAME|PATH|PID",
		"--ifname NAME", "-o, --opt KEY=VALUE", "-p, --publish SPEC" } do
		lu.assertStrContains(out, f)
	end
end

function TestCliEndpointErrors:test_empty_listing()
	lu.assertEquals(ok_run(self, "endpoint ls"),
		"ENDPOINT ID   NAME   NETWORK   HOST IFNAME   NETNS   IFNAME   MAC   IPV4   IPV6\n")
	lu.assertEquals(ok_run(self, "endpoint ls --json"), "[]\n")
end

---------------------------------------------------------------------------
TestCliEndpointPlan = { setUp = fresh, tearDown = cleanup }

function TestCliEndpointPlan:test_plan_resolves_and_changes_nothing()
	ok_run(self, "endpoint create --name taken n1")
	local before = state(self)
	local out = ok_run(self, "endpoint plan --name pe --netns h9 n1")
	lu.assertEquals(state(self), before)
	lu.assertFalse(has(netns_list(), "h9"))
	lu.assertStrContains(out, "endpoint pe on network n1 (bridge bre1)\n")
	lu.assertStrContains(out, "  ipv4     10.40.0.3/24\n")
	lu.assertStrContains(out, "  mac      02:42:0a:28:00:03\n")
	lu.assertStrContains(out, "  netns    h9\n")
	lu.assertStrContains(out, "  ifname   eth0\n")
	-- the namespace would be created first, then the pair with its peer in it
	lu.assertStrContains(out, "\n  netns_add\n      netns_add h9\n")
	lu.assertStrMatches(out, ".*\n  create_veth\n      link_add ifname=veth%x+ kind=veth master=bre1 .*peer={[^\n]*netns = \"h9\"[^\n]*\n.*")
	lu.assertStrContains(out, "\n  sandbox_addresses\n")
	lu.assertStrContains(out, "[netns h9] addr_add dev=eth0 address=10.40.0.3/24 broadcast=true")
	lu.assertStrContains(out, "[netns h9] route_add dev=eth0 dst=default family=inet gateway=10.40.0.1")
	lu.assertStrMatches(out, ".*\n  set_hairpin +skipped\n.*")
	lu.assertStrContains(out, "nothing was changed")
	-- --json; without a namespace the sandbox steps are skipped
	local plan = json_run(self, "endpoint plan --json --ip 10.40.0.77 n1")
	lu.assertEquals(state(self), before)
	lu.assertEquals(plan.endpoint.ipv4, "10.40.0.77/24")
	lu.assertEquals(plan.endpoint.network_name, "n1")
	local skipped = {}
	for _, s in ipairs(plan.steps) do skipped[s.name] = s.skipped or false end
	lu.assertFalse(skipped.create_veth)
	lu.assertTrue(skipped.sandbox_addresses)
	-- what create would refuse, plan refuses
	fails(self, "endpoint plan --ip 10.40.0.2 n1", 1, "already in use")
	fails(self, "endpoint plan --name taken n1", 1, "endpoint taken exists")
	fails(self, "endpoint plan -o hairpn=1 n1", 1, "did you mean 'hairpin'?")
	fails(self, "endpoint plan nosuch", 1, "network nosuch not found")
	ok_run(self, "endpoint rm taken")
end

---------------------------------------------------------------------------
TestCliEndpointModule = {}

function TestCliEndpointModule:test_no_globals()
	H.assert_no_globals({ "brisk.cli.endpoint" })
end

function TestCliEndpointModule:test_parse_publish()
	-- the flag takes what brisk.ports takes (its own spec has the full table)
	local parse = require("brisk.cli.endpoint").parse_publish
	lu.assertEquals(parse("8080:80"), { { proto = "tcp", host_port = 8080, container_port = 80 } })
	lu.assertEquals(parse("192.0.2.1:8080:80/udp"),
		{ { proto = "udp", host_ip = "192.0.2.1", host_port = 8080, container_port = 80 } })
	lu.assertEquals(parse("0:80")[1].host_port, 0)
	for _, bad in ipairs{ "", "8080:65536", "80:80/icmp", "a:80", "1:2:3:4", "300.1.1.1:80:80", "[::1]80" } do
		local p, msg = parse(bad)
		lu.assertNil(p, bad)
		lu.assertStrContains(msg, "invalid port specification '" .. bad .. "'")
	end
end

function TestCliEndpointErrors:test_bad_publish_values_exit_1()
	-- a flag value that is rejected is an operation failure (1), like --subnet
	fails(self, "endpoint create -p 80:80/icmp n1", 1, "invalid proto: icmp")
	fails(self, "endpoint create -p 1:2:3:4 n1", 1, "invalid port specification '1:2:3:4'")
	fails(self, "endpoint create -p 8080:70000 n1", 1, "invalid containerPort: 70000")
end
