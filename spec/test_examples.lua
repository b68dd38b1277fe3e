-- spec/test_examples.lua: every script under examples/, run as the README
-- says (build/bin/brisk run examples/X.lua; the quickstart also as a plain
-- lua5.4 script), inside the private namespace spec/run.lua made, with a
-- state directory of its own.
--
-- The examples tear their topologies down themselves, so the kernel's state
-- while they run is caught by a witness: a wrapper script that runs the
-- example unchanged, and after each t:up() records what iproute2 and nft
-- see (links, every namespace's addresses and routes, the ruleset) and the
-- result of checks run from outside the example (pings through `ip netns
-- exec`). The tests assert on that, on the output, and on nothing being
-- left afterwards.
local lu = require "luaunit"
local H = require "helper"
local cjson = require "cjson"

local ROOT, BIN, q, slurp, spit = H.ROOT, H.BIN, H.q, H.slurp, H.spit

local WITNESS = [[
-- witness.lua EXAMPLE [ARGS]: run EXAMPLE; after each t:up(), append the
-- kernel's state and the results of $WITNESS_CHECKS to $WITNESS_OUT (JSON).
local cjson = require "cjson"
local topo = require "brisk.topo"

local function sh(cmd)
	local p = io.popen(cmd .. " 2>&1")
	local out = p:read("a")
	return p:close() == true, out
end
local function json(cmd)
	local ok, out = sh(cmd)
	if not ok or out:match("^%s*$") then return {} end
	return cjson.decode(out)
end

local checks = {}
for l in (os.getenv("WITNESS_CHECKS") or ""):gmatch("[^\n]+") do checks[#checks + 1] = l end
local shots = {}
local function witness()
	local s = { links = json("ip -j -d link show"), addrs = json("ip -j addr show"), hosts = {},
		netns = {}, checks = {} }
	for _, n in ipairs(json("ip -j netns list")) do
		s.netns[#s.netns + 1] = n.name
		s.hosts[n.name] = { links = json("ip -n " .. n.name .. " -j -d link show"),
			addrs = json("ip -n " .. n.name .. " -j addr show"),
			routes = json("ip -n " .. n.name .. " -j route show"),
			routes6 = json("ip -n " .. n.name .. " -j -6 route show") }
	end
	table.sort(s.netns)
	s.nft = select(2, sh("nft list ruleset"))
	for _, c in ipairs(checks) do
		local ok, out = sh(c)
		s.checks[#s.checks + 1] = { cmd = c, ok = ok, out = out }
	end
	shots[#shots + 1] = s
	local f = assert(io.open(os.getenv("WITNESS_OUT"), "w"))
	f:write(cjson.encode(shots))
	f:close()
end

local new, patched = topo.new, false
topo.new = function(...)
	local t = new(...)
	if not patched then
		local T = getmetatable(t)
		local up = T.up
		T.up = function(self, ...)
			local r = up(self, ...)
			witness()
			return r
		end
		patched = true
	end
	return t
end

local chunk = assert(loadfile(arg[1]))
chunk(table.unpack(arg, 2))
]]

local function tmpdir() return H.scratch("examples") end

-- ip -j's view of a namespace, one object a line, less what the kernel
-- changes on its own (operstate, IPv6 link-local addresses appearing as
-- DAD finishes, counters). `keep_link`: a link made by hand before an
-- example, left out (the kernel changes a bridge's carrier and MAC as
-- ports come and go).
local function snapshot(ns, keep_link)
	local s = cjson.decode(H.snapshot(ns))
	local out = {}
	for _, k in ipairs{ "links", "addrs", "routes" } do
		for _, o in ipairs(s[k]) do
			if not (keep_link and (o.ifname == keep_link or o.dev == keep_link)) then
				o.operstate = nil
				local kept = {}
				for _, a in ipairs(o.addr_info or {}) do
					a.tentative = nil
					if not tostring(a["local"]):match("^fe80:") then kept[#kept + 1] = a end
				end
				if o.addr_info then o.addr_info = kept end
				if not tostring(o.dst):match("^fe80:") then out[#out + 1] = k .. " " .. cjson.encode(o) end
			end
		end
	end
	return table.concat(out, "\n")
end

-- What must be gone after an example: the machine's links, addresses and
-- routes, namespaces, the ruleset, the store's networks, endpoints and
-- topologies.
local function world(dir, keep_link)
	return table.concat({ snapshot(nil, keep_link), H.must("ip netns list"), H.must("nft list ruleset"),
		select(2, H.sh("cd " .. q(dir) .. " && find network endpoint topology -name '*.json' 2>/dev/null | sort")) },
		"\n")
end

local same = H.assert_same_text

-- Run an example through the witness. Returns code, stdout, stderr, shots.
-- o: `checks` (shell commands run after each up), `plain` (lua5.4, no
-- witness, no BRISK_STATE_DIR), `verb` (brisk VERB EXAMPLE, no witness),
-- `dir` (state directory).
local function run_example(self, name, o)
	o = o or {}
	local d = o.dir or self.dir
	local shots = tmpdir() .. "/shots.json"
	local wrapper = tmpdir() .. "/witness.lua"
	local f = assert(io.open(wrapper, "w"))
	f:write(WITNESS)
	f:close()
	local script = ROOT .. "/examples/" .. name .. ".lua"
	local cmd
	if o.plain then
		cmd = string.format("env LUA_PATH=%s LUA_CPATH=%s lua5.4 %s", q(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;"),
			q(ROOT .. "/build/lib/?.so;;"), q(script))
	elseif o.verb then
		cmd = string.format("%s %s %s", q(BIN), o.verb, q(script))
	else
		cmd = string.format("%s run %s %s", q(BIN), q(wrapper), q(script))
	end
	local env = o.plain and "env -u BRISK_STATE_DIR" or ("env BRISK_STATE_DIR=" .. q(d))
	local out = tmpdir()
	local _, _, code = os.execute(string.format("cd %s && %s WITNESS_OUT=%s WITNESS_CHECKS=%s %s >%s/out 2>%s/err </dev/null",
		q(ROOT), env, q(shots), q(table.concat(o.checks or {}, "\n")), cmd, out, out))
	local text = slurp(shots)
	return code, slurp(out .. "/out"), slurp(out .. "/err"), text and cjson.decode(text) or {}
end

local has = H.has

local function link(links, name)
	for _, l in ipairs(links) do if l.ifname == name then return l end end
end

local function addrs(links, name)
	local t = {}
	for _, l in ipairs(links) do
		if l.ifname == name then
			for _, a in ipairs(l.addr_info or {}) do
				if a.scope == "global" then t[#t + 1] = string.format("%s/%d", a["local"], a.prefixlen) end
			end
		end
	end
	table.sort(t)
	return t
end

local function route(routes, dst)
	for _, r in ipairs(routes) do if r.dst == dst then return r end end
end

local function ports_of(links, bridge)
	local n = 0
	for _, l in ipairs(links) do if l.master == bridge then n = n + 1 end end
	return n
end

local function bridge_of(shot, subnet_addr)
	for _, l in ipairs(shot.addrs) do
		for _, a in ipairs(l.addr_info or {}) do
			if a["local"] == subnet_addr then return l.ifname end
		end
	end
end

local function check_ok(shot, i)
	local c = shot.checks[i]
	lu.assertNotNil(c, "check " .. i .. " did not run")
	lu.assertTrue(c.ok, c.cmd .. ":\n" .. c.out)
	return c.out
end

TestExamples = {}

function TestExamples:setUp()
	H.reset()
	self.dir = tmpdir()
	self.before = world(self.dir)
end

function TestExamples:tearDown()
	H.reset()
	H.scratch_cleanup()
end

function TestExamples:test_quickstart()
	local code, out, err, shots = run_example(self, "quickstart", {
		checks = { "ip netns exec h1 ping -c 1 -W 2 10.88.0.3", "ip netns exec h2 ping -c 1 -W 2 10.88.0.2" } })
	lu.assertEquals(code, 0, err)
	lu.assertEquals(err, "")
	lu.assertStrContains(out, "+ network demo: bridge br-")
	lu.assertStrContains(out, "+ h1 on demo: eth0 10.88.0.2/24")
	lu.assertStrContains(out, "+ h2 on demo: eth0 10.88.0.3/24")
	lu.assertStrContains(out, "3 packets transmitted, 3 received")
	lu.assertStrContains(out, "topology quickstart: down: 5 objects removed")
	lu.assertStrContains(out, "ok: h1 reached h2")
	lu.assertEquals(#shots, 1)
	local s = shots[1]
	lu.assertEquals(s.netns, { "h1", "h2" })
	local br = bridge_of(s, "10.88.0.1")
	lu.assertNotNil(br)
	lu.assertEquals(ports_of(s.links, br), 2)
	lu.assertEquals(addrs(s.hosts.h1.addrs, "eth0"), { "10.88.0.2/24" })
	lu.assertEquals(route(s.hosts.h2.routes, "default").gateway, "10.88.0.1")
	check_ok(s, 1)
	check_ok(s, 2)
	same(world(self.dir), self.before)
end

function TestExamples:test_quickstart_as_plain_lua_and_default_state()
	-- plain lua5.4, and no BRISK_STATE_DIR: it makes a scratch directory and removes it
	local code, out, err = run_example(self, "quickstart", { plain = true })
	lu.assertEquals(code, 0, err)
	lu.assertStrContains(out, "3 packets transmitted, 3 received")
	lu.assertStrContains(out, "ok: h1 reached h2")
	same(world(self.dir), self.before)
end

function TestExamples:test_router_run_twice_then_down()
	local checks = { "ip netns exec a ping -c 1 -W 2 10.2.0.2", "ip netns exec b ping -c 1 -W 2 10.1.0.2" }
	local code, out, err, shots = run_example(self, "router", { checks = checks })
	lu.assertEquals(code, 0, err)
	lu.assertStrContains(out, "+ route in a: 10.2.0.0/24 via 10.1.0.254 (router r1)")
	lu.assertStrContains(out, "3 packets transmitted, 3 received")
	local s = shots[1]
	lu.assertEquals(s.netns, { "a", "b", "r1" })
	lu.assertEquals(addrs(s.hosts.r1.addrs, "eth0"), { "10.1.0.254/24" })
	lu.assertEquals(addrs(s.hosts.r1.addrs, "eth1"), { "10.2.0.254/24" })
	lu.assertEquals(route(s.hosts.a.routes, "10.2.0.0/24").gateway, "10.1.0.254")
	lu.assertEquals(route(s.hosts.b.routes, "10.1.0.0/24").gateway, "10.2.0.254")
	lu.assertStrContains(check_ok(s, 1), "ttl=63")
	check_ok(s, 2)
	-- it stays up (keep = true); the second run changes nothing and says so
	local function state()
		return table.concat({ world(self.dir), snapshot("a"), snapshot("b"), snapshot("r1"),
			H.must("ip netns exec r1 sysctl -n net.ipv4.ip_forward") }, "\n")
	end
	local up = state()
	code, out, err, shots = run_example(self, "router", { checks = checks })
	lu.assertEquals(code, 0, err)
	lu.assertStrMatches(out, "topology router: nothing to do %(11 objects up to date, [%d.]+ s%)\n.*")
	lu.assertNotStrContains(out, "+ ")
	same(state(), up)
	-- brisk down removes exactly it
	code, out, err = run_example(self, "router", { verb = "down" })
	lu.assertEquals(code, 0, err)
	lu.assertStrContains(out, "topology router: down: 11 objects removed")
	same(world(self.dir), self.before)
end

function TestExamples:test_custom_step()
	local code, out, err, shots = run_example(self, "custom_step", {
		checks = { "ip netns exec h1 ping -c 1 -W 2 10.90.0.3" } })
	lu.assertEquals(code, 0, err)
	-- the inserted step ran in its place, every step was logged with a time
	lu.assertStrMatches(out, ".*step setup_device +[%d.]+ ms\n  step setup_bridge_ageing +[%d.]+ ms\n.*")
	lu.assertStrMatches(out, ".*step setup_device_up +[%d.]+ ms\n.*")
	local s = shots[1]
	local br = bridge_of(s, "10.90.0.1")
	local l = link(s.links, br)
	lu.assertEquals(l.linkinfo.info_data.ageing_time, 6000)
	check_ok(s, 1)
	same(world(self.dir), self.before)
end

function TestExamples:test_override_adopts_a_bridge_and_leaves_it()
	-- the bridge made by hand before the example runs: the example must leave it
	H.must("ip link add br-lan address 02:00:00:77:00:01 type bridge")
	H.must("ip addr add 192.168.77.1/24 dev br-lan")
	H.must("ip link set br-lan up")
	local before = world(self.dir, "br-lan")
	local code, out, err, shots = run_example(self, "override", {
		checks = { "ip netns exec h1 ping -c 1 -W 2 10.77.0.1" } })
	lu.assertEquals(code, 0, err)
	lu.assertStrContains(out, "during: br-lan 192.168.77.1/24 10.77.0.1/24")
	local s = shots[1]
	lu.assertEquals(addrs(s.addrs, "br-lan"), { "10.77.0.1/24", "192.168.77.1/24" })
	lu.assertEquals(ports_of(s.links, "br-lan"), 2)
	check_ok(s, 1)
	same(world(self.dir, "br-lan"), before)
	-- br-lan as it was: its address, its MAC, up, no ports
	lu.assertEquals(addrs(H.ip("addr show dev br-lan"), "br-lan"), { "192.168.77.1/24" })
	local l = H.iplink("br-lan")
	lu.assertEquals(l.address, "02:00:00:77:00:01")
	lu.assertTrue(has(l.flags, "UP"))
	lu.assertEquals(ports_of(H.ip("-d link show"), "br-lan"), 0)
end

function TestExamples:test_dual_stack()
	local code, out, err, shots = run_example(self, "dual_stack", {
		checks = { "ip netns exec b ping -6 -c 1 -W 2 fd00:61::2", "ip netns exec a ping -c 1 -W 2 10.62.0.2" } })
	lu.assertEquals(code, 0, err)
	lu.assertStrContains(out, "a: 10.61.0.2 and fd00:61::2; b: 10.62.0.2 and fd00:62::b")
	local s = shots[1]
	lu.assertEquals(addrs(s.hosts.a.addrs, "eth0"), { "10.61.0.2/24", "fd00:61::2/64" })
	lu.assertEquals(addrs(s.hosts.b.addrs, "eth0"), { "10.62.0.2/24", "fd00:62::b/64" })
	lu.assertEquals(route(s.hosts.a.routes6, "fd00:62::/64").gateway, "fd00:61::3")
	check_ok(s, 1)
	check_ok(s, 2)
	same(world(self.dir), self.before)
end

function TestExamples:test_published_port()
	local code, out, err, shots = run_example(self, "published_port", {
		checks = { "ip netns exec client ping -c 1 -W 2 192.0.2.1" } })
	lu.assertEquals(code, 0, err)
	lu.assertStrContains(out, "port 8080->80/tcp")
	lu.assertStrContains(out, "echo: hello")
	local s = shots[1]
	lu.assertEquals(addrs(s.addrs, "up-client"), { "192.0.2.1/24" })
	lu.assertEquals(addrs(s.hosts.client.addrs, "up0"), { "192.0.2.2/24" })
	lu.assertStrMatches(s.nft, ".*tcp dport 8080 .*dnat ip to 10%.80%.0%.2:80.*")
	check_ok(s, 1)
	-- the server is gone with the topology, and so are its rules
	lu.assertEquals(H.must("ps -eo args | grep -c '[i]mport socket, sys' || true"), "0\n")
	same(world(self.dir), self.before)
end

function TestExamples:test_scale()
	local code, out, err, shots = run_example(self, "scale", {
		checks = { "ip netns exec h1 ping -c 1 -W 2 10.100.0.101" } })
	lu.assertEquals(code, 0, err)
	lu.assertStrMatches(out, ".*100 hosts up in [%d.]+ s %([%d.]+ ms a host%)\n.*")
	lu.assertStrMatches(out, ".*100 hosts down in [%d.]+ s\n.*")
	local s = shots[1]
	lu.assertEquals(#s.netns, 100)
	lu.assertEquals(ports_of(s.links, bridge_of(s, "10.100.0.1")), 100)
	lu.assertEquals(addrs(s.hosts.h100.addrs, "eth0"), { "10.100.0.101/16" })
	check_ok(s, 1)
	same(world(self.dir), self.before)
end

function TestExamples:test_every_example_has_a_test()
	local _, ls = H.sh("ls " .. q(ROOT .. "/examples"))
	local names = {}
	for f in ls:gmatch("([%w_]+)%.lua") do names[#names + 1] = f end
	table.sort(names)
	-- the ones the tests above run: a new example needs a test here
	lu.assertEquals(names, { "custom_step", "dual_stack", "override", "published_port", "quickstart", "router", "scale" })
end
