-- spec/test_cli_network.lua: `brisk network ...` (lua/brisk/cli/network.lua)
-- run as the built program, build/bin/brisk, inside the runner's private
-- namespace; kernel state is read back with `ip -j`.
local lu = require "luaunit"
local H = require "helper"
local cjson = require "cjson"

local q = H.q

local snapshot, reset = H.snapshot, H.reset

local function fresh(self)
	reset()
	self.dir = H.must("mktemp -d /tmp/brisk-clinet-XXXXXX"):gsub("%s+$", "")
end

local function cleanup(self)
	reset()
	if self.dir then os.execute("rm -rf " .. q(self.dir)) end
end

--- Run brisk with the test's state dir; returns exit code, stdout, stderr.
local function brisk(self, args) return H.brisk_in(self.dir, args) end

local function ok_run(self, args) return H.brisk_ok(self.dir, args) end
local function json_run(self, args) return H.brisk_json(self.dir, args) end

local has = H.has

local function addrs(dev) return H.addrs(dev, { global = true }) end

local function stored(self)
	return (H.must("ls -1 " .. q(self.dir .. "/network") .. " 2>/dev/null || true"):gsub("%s+$", ""))
end

---------------------------------------------------------------------------
TestCliNetworkCreate = { setUp = fresh, tearDown = cleanup }

function TestCliNetworkCreate:test_create_with_flags_then_inspect_and_ls()
	local out = ok_run(self, "network create --subnet 10.31.0.0/24 --gateway 10.31.0.254 "
		.. "--ip-range 10.31.0.128/25 --aux-address router=10.31.0.5 "
		.. "-o com.docker.network.bridge.name=brt1 -o mtu=1400 n1")
	local id = out:match("^(%x+)\n$")
	lu.assertNotNil(id, "create prints the id: " .. out)
	lu.assertEquals(#id, 64)
	-- the kernel has the bridge, up, with the gateway address and the MTU
	local l = H.iplink("brt1")
	lu.assertNotNil(l, "bridge brt1 missing")
	lu.assertEquals(l.linkinfo.info_kind, "bridge")
	lu.assertEquals(l.mtu, 1400)
	lu.assertTrue(has(l.flags, "UP"))
	lu.assertEquals(addrs("brt1"), { "10.31.0.254/24" })
	-- inspect --json: the stored record
	local net = json_run(self, "network inspect --json n1")
	lu.assertEquals(net.id, id)
	lu.assertEquals(net.name, "n1")
	lu.assertEquals(net.bridge, "brt1")
	lu.assertEquals(net.subnet4, "10.31.0.0/24")
	lu.assertEquals(net.gateway4, "10.31.0.254")
	lu.assertEquals(net.ip_range, "10.31.0.128/25")
	lu.assertEquals(net.aux_addresses, { router = "10.31.0.5" })
	lu.assertEquals(net.mtu, 1400)
	lu.assertEquals(type(net.journal), "table")
	-- by id prefix too
	lu.assertEquals(json_run(self, "network inspect --json " .. id:sub(1, 8)).id, id)
	-- inspect text: readable, the journal summarized
	local text = ok_run(self, "network inspect n1")
	lu.assertStrContains(text, 'bridge = "brt1"')
	lu.assertStrContains(text, "kernel operations (see --json)")
	lu.assertNotStrContains(text, "op = ")
	-- ls text: header and one row
	local ls = ok_run(self, "network ls")
	local header, row = ls:match("^([^\n]*)\n([^\n]*)\n$")
	lu.assertNotNil(header, ls)
	lu.assertStrMatches(header, "NETWORK ID%s+NAME%s+BRIDGE%s+SUBNET%s+GATEWAY%s+IPV6%s+ENDPOINTS")
	local cells = {}
	for c in row:gmatch("%S+") do cells[#cells + 1] = c end
	lu.assertEquals(cells, { id:sub(1, 12), "n1", "brt1", "10.31.0.0/24", "10.31.0.254", "0" })
	-- ls --json
	local rows = json_run(self, "network ls --json")
	lu.assertEquals(#rows, 1)
	lu.assertEquals(rows[1].id, id)
	lu.assertEquals(rows[1].name, "n1")
	lu.assertEquals(rows[1].subnet, "10.31.0.0/24")
	lu.assertEquals(rows[1].endpoints, 0)
	ok_run(self, "network rm n1")
end

-- ls sorts by name, whatever the order of the ids; a store edited into
-- two networks of one name (create refuses that) still lists both.
function TestCliNetworkCreate:test_ls_sorted_by_name()
	for _, n in ipairs{ "c", "a", "b" } do
		ok_run(self, "network create --subnet 10.3" .. (n:byte() - 96) .. ".0.0/24 "
			.. "-o com.docker.network.bridge.name=brs" .. n .. " " .. n)
	end
	local function names()
		local out = {}
		for _, r in ipairs(json_run(self, "network ls --json")) do out[#out + 1] = r.name .. ":" .. r.bridge end
		return out
	end
	lu.assertEquals(names(), { "a:brsa", "b:brsb", "c:brsc" })
	local text = ok_run(self, "network ls")
	lu.assertStrMatches(text, "^NETWORK ID[^\n]*\n%x+%s+a%s[^\n]*\n%x+%s+b%s[^\n]*\n%x+%s+c%s[^\n]*\n$")
	H.must(H.lua_cmd(("local d = assert(require('brisk.driver').open{ state_dir = %q, firewall = false }); "
		.. "assert(d.store:put('network', { id = string.rep('0', 64), name = 'b', bridge = 'brsz', "
		.. "subnet4 = '10.39.0.0/24', state = 'ready' }))"):format(self.dir)))
	local got = names()
	if got[2] == "b:brsz" then got[2], got[3] = got[3], got[2] end    -- (a tie: either order)
	lu.assertEquals(got, { "a:brsa", "b:brsb", "b:brsz", "c:brsc" })
	-- and one with no name at all: listed, the others still in order
	H.must(H.lua_cmd(("local d = assert(require('brisk.driver').open{ state_dir = %q, firewall = false }); "
		.. "assert(d.store:put('network', { id = string.rep('1', 64), bridge = 'brsy', state = 'ready' }))")
		:format(self.dir)))
	local rows = json_run(self, "network ls --json")
	lu.assertEquals(#rows, 5)
	local named = {}
	for _, r in ipairs(rows) do if r.name then named[#named + 1] = r.name end end
	lu.assertEquals(named, { "a", "b", "b", "c" })
	H.must(H.lua_cmd(("assert(require('brisk.store').open(%q):delete('network', string.rep('1', 64)))")
		:format(self.dir)))
	for _, r in ipairs(json_run(self, "network ls --json")) do
		if r.bridge ~= "brsz" then ok_run(self, "network rm " .. r.id) end
	end
	lu.assertEquals(names(), { "b:brsz" })
end

function TestCliNetworkCreate:test_create_json_ipv6_internal()
	local net = json_run(self, "network create --json --ipv6 --internal --subnet 10.32.0.0/24 "
		.. "--subnet fd00:32::/64 -o com.docker.network.bridge.name=brt2 n2")
	lu.assertEquals(net.name, "n2")
	lu.assertEquals(net.subnet6, "fd00:32::/64")
	lu.assertEquals(net.gateway6, "fd00:32::1")
	lu.assertTrue(net.internal)
	lu.assertTrue(net.enable_ipv6)
	lu.assertEquals(addrs("brt2"), { "10.32.0.1/24", "fd00:32::1/64" })
	local rows = json_run(self, "network ls --json")
	lu.assertEquals(rows[1].subnet6, "fd00:32::/64")
	lu.assertTrue(rows[1].internal)
	lu.assertStrContains(ok_run(self, "network ls"), "fd00:32::/64")
	ok_run(self, "network rm n2")
end

function TestCliNetworkCreate:test_default_pool_and_bridge_name()
	local net = json_run(self, "network create --json n3")
	lu.assertEquals(net.subnet4, "172.17.0.0/16")
	lu.assertEquals(net.bridge, "br-" .. net.id:sub(1, 12))
	lu.assertEquals(addrs(net.bridge), { "172.17.0.1/16" })
	-- a second network takes the next pool
	local net2 = json_run(self, "network create --json n4")
	lu.assertEquals(net2.subnet4, "172.18.0.0/16")
	ok_run(self, "network rm n3 n4")
	lu.assertNil(H.iplink(net.bridge))
end

function TestCliNetworkCreate:test_duplicate_name_fails_and_changes_nothing()
	ok_run(self, "network create --subnet 10.35.0.0/24 n5")
	local before, files = snapshot(), stored(self)
	local code, out, err = brisk(self, "network create --subnet 10.36.0.0/24 n5")
	lu.assertEquals(code, 1)
	lu.assertEquals(out, "")
	lu.assertStrContains(err, "brisk: cannot create network n5")
	lu.assertStrContains(err, "a network named n5 exists")
	lu.assertEquals(snapshot(), before)
	lu.assertEquals(stored(self), files)
	ok_run(self, "network rm n5")
end

---------------------------------------------------------------------------
TestCliNetworkErrors = { setUp = fresh, tearDown = cleanup }

-- A failing command: exit code, message on stderr, nothing on stdout, and
-- neither the kernel nor the state directory changed.
local function fails(self, args, code, msg)
	local before, files = snapshot(), stored(self)
	local c, out, err = brisk(self, args)
	lu.assertEquals(c, code, args .. ": " .. tostring(err))
	lu.assertEquals(out, "", args)
	lu.assertStrContains(err, msg, false)
	lu.assertStrMatches(err, "^brisk: .*")
	lu.assertEquals(snapshot(), before, args)
	lu.assertEquals(stored(self), files, args)
	return err
end

function TestCliNetworkErrors:test_unknown_option_did_you_mean()
	fails(self, "network create --subnet 10.37.0.0/24 -o com.docker.network.bridge.enable_icx=false n6", 1,
		"unknown option 'com.docker.network.bridge.enable_icx' (did you mean 'com.docker.network.bridge.enable_icc'?)")
	fails(self, "network create -o mtuu=1400 n6", 1, "did you mean 'mtu'?")
	fails(self, "network plan -o brigde=x n6", 1, "did you mean 'bridge'?")
end

function TestCliNetworkErrors:test_bad_values_exit_1()
	fails(self, "network create --subnet 10.37.0.0/33 n6", 1, "brisk: invalid CIDR '10.37.0.0/33'")
	fails(self, "network create --subnet banana n6", 1, "invalid CIDR 'banana'")
	fails(self, "network create --subnet 10.37.0.0/24 --gateway 10.38.0.1 n6", 1,
		"gateway 10.38.0.1 is not inside subnet 10.37.0.0/24")
	fails(self, "network create --subnet 10.37.0.0/24 --gateway 10.37.0.300 n6", 1, "invalid IP address")
	fails(self, "network create --subnet 10.37.0.0/24 --ip-range 10.99.0.0/25 n6", 1, "is not inside subnet")
	fails(self, "network create --subnet 10.37.0.0/24 --subnet 10.38.0.0/24 n6", 1, "multiple subnets")
	fails(self, "network create --subnet fd00::/64 n6", 1, "needs --ipv6")
	fails(self, "network create -o mtu=abc n6", 1, "failed to parse")
	fails(self, "network create 'bad name!'", 1, "invalid network name")
	fails(self, "network plan --subnet 10.37.0.0/33 n6", 1, "invalid CIDR")
end

function TestCliNetworkErrors:test_usage_errors_exit_2()
	fails(self, "network create --subnett 10.37.0.0/24 n6", 2, "did you mean '--subnet'?")
	fails(self, "network create", 2, "'network create' needs 1 argument")
	fails(self, "network create a b", 2, "takes at most 1 argument, got 'b'")
	fails(self, "network create -o mtu n6", 2, "flag --opt: 'mtu' is not KEY=VALUE")
	fails(self, "network create -o mtu=1 -o mtu=2 n6", 2, "mtu given more than once")
	fails(self, "network create --aux-address 10.0.0.1 n6", 2, "flag --aux-address: '10.0.0.1' is not KEY=VALUE")
	fails(self, "network create --driver macvlan n6", 2, "'macvlan' is not one of bridge")
	fails(self, "network create --ip-range 10.0.0.0/24 --ip-range 10.0.1.0/24 n6", 2, "given more than once")
	fails(self, "network ls extra", 2, "takes no arguments")
	fails(self, "network inspect", 2, "needs 1 argument")
	fails(self, "network rm", 2, "needs at least 1 argument")
	fails(self, "network check --force", 2, "unknown flag --force")
	fails(self, "network crate n6", 2, "did you mean 'network create'?")
end

function TestCliNetworkErrors:test_not_found_exit_1()
	fails(self, "network inspect nosuch", 1, "brisk: network nosuch not found")
	fails(self, "network rm nosuch", 1, "brisk: network nosuch not found")
	fails(self, "network inspect --json nosuch", 1, "not found")
end

function TestCliNetworkErrors:test_every_command_has_help_with_example()
	for _, c in ipairs{ "create", "plan", "ls", "inspect", "rm", "restore", "check" } do
		local code, out, err = brisk(self, "network " .. c .. " --help")
		lu.assertEquals(code, 0, c)
		lu.assertEquals(err, "")
		lu.assertStrContains(out, "usage: brisk network " .. c)
		lu.assertStrMatches(out, ".*\nexamples?:\n  brisk network " .. c .. "[ \n].*")
	end
	local _, out = brisk(self, "network create --help")
	for _, f in ipairs{ "--subnet CIDR", "--gateway IP", "--ip-range CIDR", "--aux-address NAME=IP",
		"--ipv6", "--internal", "-o, --opt KEY=VALUE" } do
		lu.assertStrContains(out, f)
	end
	-- the option list comes from the driver's schema
	lu.assertStrContains(out, "com.docker.network.bridge.enable_icc, icc")
	local code, gout = brisk(self, "help network")
	lu.assertEquals(code, 0)
	for _, c in ipairs{ "create", "plan", "ls", "inspect", "rm", "restore", "check" } do
		lu.assertStrContains(gout, "  network " .. c .. " ")
	end
end

function TestCliNetworkErrors:test_empty_listings()
	lu.assertEquals(ok_run(self, "network ls"), "NETWORK ID   NAME   BRIDGE   SUBNET   GATEWAY   IPV6   ENDPOINTS\n")
	lu.assertEquals(ok_run(self, "network ls --json"), "[]\n")
	lu.assertEquals(ok_run(self, "network check"), "no drift\n")
	lu.assertEquals(ok_run(self, "network check --json"), "[]\n")
	lu.assertEquals(ok_run(self, "network restore"), "no networks\n")
	lu.assertEquals(ok_run(self, "network restore --json"), "[]\n")
end

---------------------------------------------------------------------------
TestCliNetworkPlan = { setUp = fresh, tearDown = cleanup }

function TestCliNetworkPlan:test_plan_prints_steps_and_changes_nothing()
	local before = snapshot()
	local out = ok_run(self, "network plan --subnet 10.33.0.0/24 -o com.docker.network.bridge.name=brp n7")
	lu.assertEquals(snapshot(), before)
	lu.assertEquals(stored(self), "")
	lu.assertStrContains(out, "network n7: bridge brp, subnet 10.33.0.0/24 gateway 10.33.0.1\n")
	lu.assertStrContains(out, "\n  setup_device\n")
	lu.assertStrMatches(out, ".*\n      link_add ifname=brp kind=bridge address=02:42:%x%x:%x%x:%x%x:%x%x txqlen=0\n.*")
	lu.assertStrContains(out, "addr_add dev=brp address=10.33.0.1/24")
	lu.assertStrMatches(out, ".*\n  setup_bridge_ipv6 +skipped\n.*")
	lu.assertStrMatches(out, ".*\n%d+ operations in %d+ steps; nothing was changed\n$")
	-- the order is libnetwork's
	local a, b = out:find("setup_device\n", 1, true), out:find("setup_device_up", 1, true)
	lu.assertTrue(a < b)
	lu.assertEquals(ok_run(self, "network ls --json"), "[]\n")
end

function TestCliNetworkPlan:test_plan_json()
	local before = snapshot()
	local plan = json_run(self, "network plan --json --subnet 10.33.0.0/24 -o com.docker.network.bridge.name=brp n7")
	lu.assertEquals(snapshot(), before)
	lu.assertEquals(plan.network.bridge, "brp")
	lu.assertEquals(plan.network.subnet4, "10.33.0.0/24")
	lu.assertEquals(plan.steps[1].name, "setup_device")
	lu.assertEquals(plan.steps[1].ops[1].op, "link_add")
	lu.assertEquals(plan.steps[1].ops[1].args[1].ifname, "brp")
	local names, skipped = {}, {}
	for _, s in ipairs(plan.steps) do
		names[#names + 1] = s.name
		if s.skipped then skipped[s.name] = true end
	end
	lu.assertTrue(has(names, "setup_device_up"))
	lu.assertTrue(skipped.setup_bridge_ipv6)
	lu.assertTrue(#plan.ops > 0)
end

function TestCliNetworkPlan:test_plan_over_existing_bridge_already_matches()
	H.must("ip link add brq type bridge")
	H.must("ip addr add 10.34.0.1/24 dev brq")
	H.must("ip link set brq up")
	local before = snapshot()
	local out = ok_run(self, "network plan --subnet 10.34.0.0/24 -o com.docker.network.bridge.name=brq n8")
	lu.assertEquals(snapshot(), before)
	lu.assertStrContains(out, "existing bridge adopted")
	lu.assertStrMatches(out, ".*\n  setup_device +skipped\n.*")
	lu.assertStrMatches(out, ".*\n  setup_device_up +already matches\n.*")
	lu.assertNotStrContains(out, "link_add")
end

---------------------------------------------------------------------------
TestCliNetworkRm = { setUp = fresh, tearDown = cleanup }

function TestCliNetworkRm:test_rm_removes_the_bridge()
	local net = json_run(self, "network create --json --subnet 10.39.0.0/24 n9")
	lu.assertNotNil(H.iplink(net.bridge))
	lu.assertEquals(ok_run(self, "network rm n9"), "n9\n")
	lu.assertNil(H.iplink(net.bridge))
	lu.assertEquals(ok_run(self, "network ls --json"), "[]\n")
	lu.assertEquals(stored(self), "")
	-- a second rm: not found
	local code, _, err = brisk(self, "network rm n9")
	lu.assertEquals(code, 1)
	lu.assertStrContains(err, "network n9 not found")
end

function TestCliNetworkRm:test_rm_several_by_id_prefix_reports_failures()
	local a = json_run(self, "network create --json --subnet 10.39.1.0/24 na")
	local b = json_run(self, "network create --json --subnet 10.39.2.0/24 nb")
	local code, out, err = brisk(self, "network rm " .. a.id:sub(1, 12) .. " nosuch nb")
	lu.assertEquals(code, 1)
	lu.assertEquals(out, a.id:sub(1, 12) .. "\nnb\n")
	lu.assertEquals(err, "brisk: network nosuch not found\n")
	lu.assertNil(H.iplink(a.bridge))
	lu.assertNil(H.iplink(b.bridge))
	-- --json lists what was removed
	json_run(self, "network create --json --subnet 10.39.3.0/24 nc")
	lu.assertEquals(json_run(self, "network rm --json nc"), { "nc" })
end

-- an id prefix two networks (or endpoints) share is refused, as Docker
-- does, and nothing is removed (it removed the first it found)
function TestCliNetworkRm:test_an_ambiguous_id_prefix_is_refused()
	local d = assert(require("brisk.driver").open{ state_dir = self.dir })
	assert(d:create_network{ name = "a", id = "abcd000000000000", subnet = "10.39.5.0/24" })
	assert(d:create_network{ name = "b", id = "abcd111111111111", subnet = "10.39.6.0/24" })
	assert(d:create_endpoint("a", { name = "e1", id = "ef01000000000000" }))
	assert(d:create_endpoint("a", { name = "e2", id = "ef01111111111111" }))
	d:close()
	local snap, docs = snapshot(), stored(self)
	local code, out, err = brisk(self, "network rm abcd")
	lu.assertEquals(code, 1)
	lu.assertEquals(out, "")
	lu.assertEquals(err, "brisk: network abcd is ambiguous (2 matches found based on ID prefix)\n")
	code, out, err = brisk(self, "endpoint rm ef01")
	lu.assertEquals(code, 1)
	lu.assertEquals(err, "brisk: endpoint ef01 is ambiguous (2 matches found based on ID prefix)\n")
	code, _, err = brisk(self, "network inspect abcd")
	lu.assertEquals(code, 1)
	lu.assertStrContains(err, "ambiguous")
	lu.assertEquals(snapshot(), snap)
	lu.assertEquals(stored(self), docs)
	-- a longer prefix is unique
	lu.assertEquals(ok_run(self, "endpoint rm ef011"), "ef011\n")
	lu.assertEquals(ok_run(self, "endpoint rm ef01"), "ef01\n")
	lu.assertEquals(ok_run(self, "network rm abcd1"), "abcd1\n")
	lu.assertEquals(json_run(self, "network inspect --json abcd").name, "a")
end

function TestCliNetworkRm:test_rm_keeps_a_user_bridge()
	H.must("ip link add bru type bridge")
	ok_run(self, "network create --subnet 10.39.4.0/24 -o com.docker.network.bridge.name=bru nu")
	lu.assertEquals(addrs("bru"), { "10.39.4.1/24" })
	ok_run(self, "network rm nu")
	lu.assertNotNil(H.iplink("bru"))
	lu.assertEquals(addrs("bru"), {})
end

---------------------------------------------------------------------------
TestCliNetworkCheck = { setUp = fresh, tearDown = cleanup }

function TestCliNetworkCheck:test_check_drift_and_restore()
	local net = json_run(self, "network create --json --subnet 10.41.0.0/24 nd")
	lu.assertEquals(ok_run(self, "network check"), "no drift\n")
	-- the bridge vanishes behind brisk's back
	H.must("ip link del dev " .. net.bridge)
	local code, out = brisk(self, "network check")
	lu.assertEquals(code, 1)
	lu.assertStrContains(out, "network nd: bridge " .. net.bridge .. " is missing\n")
	local code2, out2 = brisk(self, "network check --json")
	lu.assertEquals(code2, 1)
	lu.assertEquals(cjson.decode(out2), { "network nd: bridge " .. net.bridge .. " is missing" })
	-- restore re-creates it
	local rout = ok_run(self, "network restore")
	lu.assertStrMatches(rout, "nd: ok %(%d+ changes?%)\n")
	lu.assertNotNil(H.iplink(net.bridge))
	lu.assertEquals(addrs(net.bridge), { "10.41.0.1/24" })
	lu.assertEquals(ok_run(self, "network check"), "no drift\n")
	-- a second restore adopts the bridge: no change (the firewall is
	-- rebuilt whole every time, which its record holds already), and the
	-- record does not grow
	local ifindex = H.iplink(net.bridge).ifindex
	local journal = #json_run(self, "network inspect --json nd").journal
	local res = json_run(self, "network restore --json")
	lu.assertEquals(#res, 1)
	lu.assertEquals(res[1].name, "nd")
	lu.assertTrue(res[1].ok)
	lu.assertEquals(res[1].changes, 0)
	lu.assertEquals(ok_run(self, "network restore"), "nd: ok (already matches)\n")
	lu.assertEquals(#json_run(self, "network inspect --json nd").journal, journal)
	-- but a firewall someone deleted, which restore rebuilds, is a change
	-- (it said "already matches": found by a review)
	H.must("nft delete table inet brisk")
	lu.assertEquals(brisk(self, "network check"), 1)
	lu.assertStrMatches(ok_run(self, "network restore"), "nd: ok %(%d+ changes?%)\n")
	lu.assertEquals(ok_run(self, "network check"), "no drift\n")
	lu.assertEquals(ok_run(self, "network restore"), "nd: ok (already matches)\n")
	lu.assertEquals(#json_run(self, "network inspect --json nd").journal, journal)
	lu.assertEquals(H.iplink(net.bridge).ifindex, ifindex)
	lu.assertEquals(addrs(net.bridge), { "10.41.0.1/24" })
	lu.assertEquals(ok_run(self, "network check"), "no drift\n")
	-- a bridge taken down is drift too
	H.must("ip link set " .. net.bridge .. " down")
	local code3, out3 = brisk(self, "network check")
	lu.assertEquals(code3, 1)
	lu.assertStrContains(out3, "is down")
	ok_run(self, "network rm nd")
end

-- restore finishes an interrupted create, but the store is full: the
-- network is reported failed (exit 1) and its record still says so
function TestCliNetworkCheck:test_restore_reports_a_record_it_cannot_write()
	local st = self.dir .. "/st"
	H.must("mkdir " .. q(st) .. " && mount -t tmpfs -o size=256k brisk-full " .. q(st))
	local function run(args)
		local out = self.dir .. "/out"
		local _, _, code = os.execute(("%s --state-dir %s %s >%s 2>&1"):format(q(H.BIN), q(st), args, q(out)))
		return code, H.slurp(out)
	end
	local ok, err = pcall(function()
		lu.assertEquals(run("network create --subnet 10.43.0.0/24 nf"), 0)
		-- an interrupted create, as a killed process leaves it
		H.must(H.lua_cmd(([[local st = require('brisk.store').open(%q)
			local n = st:list('network')[1]; n.state = 'creating'; assert(st:put('network', n))]]):format(st)))
		-- full, and no spare inode (one would have blocks to write over)
		H.must("rm -f " .. q(st) .. "/.spare " .. q(st) .. "/network/.spare")
		H.sh("dd if=/dev/zero of=" .. q(st .. "/fill") .. " bs=4k 2>/dev/null")
		local code, out = run("network restore")
		lu.assertEquals(code, 1, out)
		lu.assertStrContains(out, "nf: failed: store: ")
		os.remove(st .. "/fill")
		local _, check = run("network check")
		lu.assertStrContains(check, "its create was interrupted")
		code, out = run("network restore")
		lu.assertEquals(code, 0, out)
		lu.assertEquals(out, "nf: ok (interrupted create finished)\n")
		lu.assertEquals(run("network rm nf"), 0)
	end)
	H.sh("umount " .. q(st))
	if not ok then error(err, 0) end
end

-- A record that does not parse stops every command that reads its kind;
-- the message says how it goes, and rm by its full id removes it.
function TestCliNetworkCheck:test_a_damaged_record_is_removed_by_its_id()
	json_run(self, "network create --json --subnet 10.44.0.0/24 nd")
	local e1 = json_run(self, "endpoint create --json --name e1 nd")
	json_run(self, "endpoint create --json --name e2 nd")
	H.spit(self.dir .. "/endpoint/" .. e1.id .. ".json", "")
	os.remove(self.dir .. "/.index")
	for _, c in ipairs{ "endpoint ls", "network check", "endpoint rm e2", "network rm -f nd" } do
		local code, out, err = brisk(self, c)
		lu.assertEquals(code, 1, c)
		lu.assertEquals(out, "", c)
		lu.assertStrContains(err, "store: cannot parse", false, c)
		lu.assertStrContains(err, "brisk: a damaged endpoint record: 'brisk endpoint rm " .. e1.id
			.. "' removes it (what it made in the kernel stays)\n", false, c)
	end
	lu.assertEquals(ok_run(self, "endpoint rm " .. e1.id), e1.id .. "\n")
	lu.assertEquals(#json_run(self, "endpoint ls --json"), 1)
	H.must("ip link del " .. e1.host_ifname)
	lu.assertEquals(ok_run(self, "network check"), "no drift\n")
	-- a network's record too
	local n2 = json_run(self, "network create --json --subnet 10.45.0.0/24 n2")
	H.spit(self.dir .. "/network/" .. n2.id .. ".json", "{")
	os.remove(self.dir .. "/.index")
	local code, _, err = brisk(self, "network ls")
	lu.assertEquals(code, 1)
	lu.assertStrContains(err, "'brisk network rm " .. n2.id .. "' removes it")
	ok_run(self, "network rm " .. n2.id)
	H.must("ip link del " .. n2.bridge)
	ok_run(self, "network rm -f nd")
	lu.assertEquals(ok_run(self, "network ls --json"), "[]\n")
end

function TestCliNetworkCheck:test_restore_fails_when_the_store_cannot_be_locked()
	json_run(self, "network create --json --subnet 10.42.0.0/24 nl")
	os.remove(self.dir .. "/.lock")
	H.must("mkdir " .. q(self.dir .. "/.lock"))
	local code, out, err = brisk(self, "network restore")
	lu.assertEquals(code, 1)
	lu.assertEquals(out, "")
	lu.assertStrContains(err, "brisk: lock ")
	H.must("rmdir " .. q(self.dir .. "/.lock"))
	ok_run(self, "network rm nl")
end

---------------------------------------------------------------------------
-- In process: the module's helpers.
TestCliNetworkModule = {}

function TestCliNetworkModule:test_no_globals()
	H.assert_no_globals({ "brisk.cli.network" })
end

function TestCliNetworkModule:test_op_text()
	local N = require "brisk.cli.network"
	lu.assertEquals(N.op_text{ op = "link_add", args = { n = 1,
		{ ifname = "br-x", kind = "bridge", address = "02:42:0a:00:00:01", txqlen = 0 } } },
		"link_add ifname=br-x kind=bridge address=02:42:0a:00:00:01 txqlen=0")
	lu.assertEquals(N.op_text{ op = "sysctl_set", args = { "net/ipv6/conf/br-x/accept_ra", "0" } },
		"sysctl_set net/ipv6/conf/br-x/accept_ra 0")
	lu.assertEquals(N.op_text{ op = "link_set", args = { { dev = "v1", master = false, up = true } } },
		"link_set dev=v1 master=false up=true")
	lu.assertEquals(N.op_text{ op = "x", args = { { name = "a b", list = { 1, 2 } } } },
		'x list=1,2 name="a b"')
	lu.assertEquals(N.op_text({ op = "nft", args = { "add table ip t\nadd chain ip t c\n" } }, "  "),
		"nft <script: 2 lines>\n    | add table ip t\n    | add chain ip t c")
end

function TestCliNetworkModule:test_repl_completer_offers_stored_names_in_strings()
	local dir = H.scratch("clinet")
	local self = { dir = dir }
	ok_run(self, "network create --subnet 10.42.0.0/24 webnet")
	local N = require "brisk.cli.network"
	lu.assertEquals(N.stored_names(dir), { "webnet" })
	lu.assertEquals(N.stored_names(dir .. "/nonexistent"), {})
	-- loaded after the REPL, the network commands register their completer
	-- with it (they do not load it themselves: TestCliLazy)
	local repl = require "brisk.repl"
	package.loaded["brisk.cli.network"] = nil
	N = require "brisk.cli.network"
	lu.assertTrue(has(repl.completers, N.complete))
	ok_run(self, "network rm webnet")
	os.execute("rm -rf " .. q(dir))
	reset()
end
