-- spec/test_reliability.lua: brisk under concurrency and under SIGKILL.
--
-- Concurrency: four processes, started together, each create 50 networks
-- and 50 endpoints (and delete some), through the Lua API, with requests
-- that collide on purpose (the same network name and subnet, the same
-- endpoint address, the same network deleted by all). Afterwards the store
-- holds exactly what the processes were told succeeded, minus what they
-- deleted; every success is in the kernel (witnessed by `ip -j`); every
-- failure is a clean EEXIST / EADDRINUSE / ENOENT and left nothing behind;
-- no address is given twice; `check` finds no drift.
--
-- Crash safety: `brisk` (the program) is killed with SIGKILL at a random
-- moment of a network or endpoint create or delete, 100 times. After every
-- kill the store parses; every difference between the store and the kernel
-- that `ip -j` and `nft` show is reported by `brisk network check`; `brisk
-- network restore` or `brisk network rm` / `endpoint rm` repairs it; at the
-- end the kernel and the store agree. The seed is printed on failure
-- (BRISK_SEED=N replays it).
--
-- Inside the private namespace spec/run.lua made.
local lu = require "luaunit"
local H = require "helper"
local core = require "brisk.core"
local driver = require "brisk.driver"
local store = require "brisk.store"
local cjson = require "cjson"

local E = core.errno

local ROOT = (debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or ".")
ROOT = H.must("realpath " .. ROOT):gsub("%s+$", "")
local BIN = ROOT .. "/build/bin/brisk"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function slurp(path)
	local f = io.open(path, "rb")
	if not f then return nil end
	local s = f:read("a")
	f:close()
	return s
end

local function spit(path, s)
	local f = assert(io.open(path, "wb"))
	f:write(s)
	f:close()
end

local function tmpdir(tag)
	return (H.must("mktemp -d /tmp/brisk-" .. tag .. "-XXXXXX"):gsub("%s+$", ""))
end

local function set_of(list)
	local t = {}
	for _, v in ipairs(list) do t[v] = true end
	return t
end

local function count(t)
	local n = 0
	for _ in pairs(t) do n = n + 1 end
	return n
end

---------------------------------------------------------------------------
-- The kernel as iproute2 and nft see it, and the store as its files say
---------------------------------------------------------------------------

--- Links by name (`ip -j -d link show`), addresses by link name, namespaces.
local function kernel_view()
	local links = {}
	for _, l in ipairs(H.ip("-d link show")) do links[l.ifname] = l end
	local addrs = {}
	for _, l in ipairs(H.ip("addr show")) do
		local t = {}
		for _, a in ipairs(l.addr_info or {}) do t[string.format("%s/%d", a["local"], a.prefixlen)] = true end
		addrs[l.ifname] = t
	end
	-- the files under /run/netns (`ip netns list` prints an error line for
	-- one a kill left half made: the file without its bind mount)
	local netns = {}
	local lok, lout = H.sh("ls -A /run/netns")
	for name in (lok and lout or ""):gmatch("[^\n]+") do netns[name] = true end
	-- brisk tags each network's rules with "brisk net <bridge> "
	local tagged = {}
	for br in H.must("nft list ruleset"):gmatch("brisk net ([%w_.-]+) ") do tagged[br] = true end
	return { links = links, addrs = addrs, netns = netns, tagged = tagged }
end

local function kind_of(l)
	return l and l.linkinfo and l.linkinfo.info_kind
end

local function is_up(l)
	for _, f in ipairs(l.flags or {}) do if f == "UP" then return true end end
	return false
end

--- Read every document of the store straight from its files: each must
--- parse as the store writes it. Returns networks and endpoints by id, or
--- raises naming the file.
local function read_store(dir)
	local out = {}
	for _, kind in ipairs{ "network", "endpoint" } do
		out[kind] = {}
		local names = core.listdir(dir .. "/" .. kind) or {}
		for _, f in ipairs(names) do
			local id = f:match("^(.*)%.json$")
			if id and not f:match("^%.") then
				local text = slurp(dir .. "/" .. kind .. "/" .. f)
				local doc, err = store.decode(text or "")
				if type(doc) ~= "table" then
					error(string.format("store file %s/%s does not parse: %s", kind, f, tostring(err)), 2)
				end
				if doc.id ~= id or math.type(doc.dbIndex) ~= "integer" then
					error(string.format("store file %s/%s: bad id or dbIndex", kind, f), 2)
				end
				out[kind][id] = doc
			end
		end
	end
	-- and the store itself reads them all
	local st = assert(store.open(dir))
	for _, kind in ipairs{ "network", "endpoint" } do
		local list, msg = st:list(kind)
		if not list then error("store:list(" .. kind .. "): " .. tostring(msg), 2) end
	end
	return out.network, out.endpoint
end

--- The differences between the store and the kernel, found without brisk:
--- `drift` are those of stored objects (keyed by what `check` must name),
--- `orphans` are kernel objects the store does not know.
local function compare(dir)
	local nets, eps = read_store(dir)
	local k = kernel_view()
	local drift, orphans = {}, {}
	local bridges, hosts, peers, spaces = {}, {}, {}, {}
	for _, n in pairs(nets) do
		bridges[n.bridge] = n
		local l = k.links[n.bridge]
		if n.state == "creating" then
			-- an interrupted create: one drift, whatever it made so far
			drift[#drift + 1] = { what = "network " .. n.name .. ":", net = n, why = "create interrupted" }
		elseif not l then
			drift[#drift + 1] = { what = "network " .. n.name .. ":", net = n, why = "bridge missing" }
		else
			if kind_of(l) ~= "bridge" then
				drift[#drift + 1] = { what = "network " .. n.name .. ":", net = n, why = "not a bridge" }
			end
			if not is_up(l) then
				drift[#drift + 1] = { what = "network " .. n.name .. ":", net = n, why = "bridge down" }
			end
			if not n.inhibit_ipv4 and not (k.addrs[n.bridge] or {})[n.address_ipv4] then
				drift[#drift + 1] = { what = "network " .. n.name .. ":", net = n, why = "no address" }
			end
		end
		if not k.tagged[n.bridge] and n.state ~= "creating" then
			drift[#drift + 1] = { what = "firewall:", net = n, why = "no rules" }
		end
	end
	for _, e in pairs(eps) do
		hosts[e.host_ifname] = e
		if e.peer_ifname and not e.netns then peers[e.peer_ifname] = e end
		if e.netns then spaces[tostring(e.netns)] = e end
		local l = k.links[e.host_ifname]
		local n = nets[e.network]
		if e.state == "creating" then
			drift[#drift + 1] = { what = "endpoint " .. e.name .. ":", ep = e, why = "create interrupted" }
		elseif not l then
			drift[#drift + 1] = { what = "endpoint " .. e.name .. ":", ep = e, why = "host link missing" }
		elseif n and l.master ~= n.bridge then
			drift[#drift + 1] = { what = "endpoint " .. e.name .. ":", ep = e, why = "not on the bridge" }
		end
		if e.netns and type(e.netns) == "string" and not k.netns[e.netns] and l then
			drift[#drift + 1] = { what = "endpoint " .. e.name .. ":", ep = e, why = "namespace missing" }
		end
	end
	for name, l in pairs(k.links) do
		local kind = kind_of(l)
		if kind == "bridge" and not bridges[name] then
			orphans[#orphans + 1] = { link = name, why = "bridge not in the store" }
		elseif kind == "veth" and not hosts[name] and not peers[name] then
			orphans[#orphans + 1] = { link = name, why = "veth not in the store" }
		end
	end
	for name in pairs(k.netns) do
		if not spaces[name] then orphans[#orphans + 1] = { netns = name, why = "namespace not in the store" } end
	end
	for br in pairs(k.tagged) do
		if not bridges[br] then orphans[#orphans + 1] = { nft = br, why = "firewall rules of no stored network" } end
	end
	return drift, orphans, nets, eps
end

local function cli(dir, args)
	local parts = { q(BIN), "--state-dir", q(dir) }
	for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
	local p = io.popen(table.concat(parts, " ") .. " 2>&1")
	local out = p:read("a")
	local _, _, code = p:close()
	return code, out
end

---------------------------------------------------------------------------
-- Concurrency
---------------------------------------------------------------------------

-- One worker process: arg = ROOT DIR W LEDGER GO. Writes one JSON line per
-- request to LEDGER: what it asked and what it was told.
local WORKER = [==[
local ROOT, DIR, W, LEDGER, GO = arg[1], arg[2], math.tointeger(tonumber(arg[3])), arg[4], arg[5]
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. package.path
package.cpath = ROOT .. "/build/lib/?.so;" .. package.cpath
local driver = require "brisk.driver"
local cjson = require "cjson"
local out = assert(io.open(LEDGER, "w"))
local function log(t) out:write(cjson.encode(t), "\n"); out:flush() end
local d = assert(driver.open{ state_dir = DIR })
while true do          -- start together
	local f = io.open(GO)
	if f then f:close(); break end
	os.execute("sleep 0.01")
end
local function result(t, v, msg, err)
	t.ok = v ~= nil
	if type(v) == "table" then t.id, t.ip = v.id, v.ipv4 end
	t.msg, t.errno = msg, err
	log(t)
	return v
end
for j = 0, 49 do
	-- a network: even j its own, odd j the same name and subnet for all four
	local spec
	if j % 2 == 0 then
		spec = { name = string.format("w%dn%d", W, j), subnet = string.format("10.%d.%d.0/24", 100 + W, j) }
	else
		spec = { name = "c" .. j, subnet = string.format("10.200.%d.0/24", j) }
	end
	local net = result({ op = "network", name = spec.name }, d:create_network(spec))
	-- an endpoint on a shared network; some ask all for the same address,
	-- some join a namespace of their own
	local es, on = { name = string.format("w%de%d", W, j) }, j % 2 == 0 and "sa" or "sb"
	if j % 10 == 5 then es.ip, on = string.format("10.250.9.%d", j), "sa" end
	if j % 5 == 1 then es.netns = string.format("w%ds%d", W, j) end
	local ep = result({ op = "endpoint", name = es.name, network = on, want = es.ip, netns = es.netns },
		d:create_endpoint(on, es))
	if ep and j % 7 == 3 then
		result({ op = "endpoint_rm", name = es.name, id = ep.id }, d:delete_endpoint(ep.id))
	end
	if net and j % 10 == 4 then
		result({ op = "network_rm", name = spec.name, id = net.id }, d:delete_network(net.id))
	end
	-- all four delete the same contested networks
	if j % 10 == 9 then
		result({ op = "network_rm", name = spec.name, contested = true }, d:delete_network(spec.name))
	end
end
log{ op = "done" }
d:close()
out:close()
]==]

TestConcurrency = {}

function TestConcurrency:setUp()
	H.reset()
	self.dir = tmpdir("conc")
	self.d = assert(driver.open{ state_dir = self.dir })
	assert(self.d:create_network{ name = "sa", subnet = "10.250.0.0/16" })
	assert(self.d:create_network{ name = "sb", subnet = "10.251.0.0/24" })
end

function TestConcurrency:tearDown()
	if self.d then self.d:close() end
	H.reset()
	H.sh("rm -rf " .. q(self.dir))
end

function TestConcurrency:test_four_processes_overlapping()
	local N = 4
	local worker = self.dir .. "/worker.lua"
	local go = self.dir .. "/go"
	spit(worker, WORKER)
	local cmd = { "set -e;" }
	for w = 0, N - 1 do
		cmd[#cmd + 1] = string.format("lua5.4 %s %s %s %d %s %s >%s 2>&1 &", q(worker), q(ROOT), q(self.dir), w,
			q(self.dir .. "/ledger" .. w), q(go), q(self.dir .. "/out" .. w))
	end
	cmd[#cmd + 1] = "sleep 0.3; touch " .. q(go) .. "; wait"
	H.must("sh -c " .. q(table.concat(cmd, " ")))

	-- what the processes were told
	local created_nets, created_eps, deleted, contested_rm = {}, {}, {}, {}
	local contested_wins, address_wins = {}, {}
	for w = 0, N - 1 do
		local text = slurp(self.dir .. "/ledger" .. w) or ""
		local done = false
		for line in text:gmatch("[^\n]+") do
			local t = cjson.decode(line)
			if t.op == "done" then
				done = true
			elseif t.ok then
				if t.op == "network" then
					created_nets[t.id] = t
					if t.name:match("^c") then contested_wins[t.name] = (contested_wins[t.name] or 0) + 1 end
				elseif t.op == "endpoint" then
					created_eps[t.id] = t
					if t.want then address_wins[t.want] = (address_wins[t.want] or 0) + 1 end
				elseif t.contested then
					contested_rm[t.name] = (contested_rm[t.name] or 0) + 1
				else
					lu.assertNil(deleted[t.id], "deleted twice: " .. line)
					deleted[t.id] = t
				end
			else
				-- a failure is a clean, expected refusal
				lu.assertEquals(type(t.msg), "string", line)
				local ok_errno = (t.op == "network" and t.errno == E.EEXIST)
					or (t.op == "endpoint" and t.want and t.errno == E.EADDRINUSE)
					or (t.op == "network_rm" and t.contested and t.errno == E.ENOENT)
				lu.assertTrue(ok_errno, "unexpected failure: " .. line)
				if t.op == "network" then lu.assertNotNil(t.name:match("^c"), "own network refused: " .. line) end
			end
		end
		lu.assertTrue(done, "worker " .. w .. " did not finish: " .. tostring(slurp(self.dir .. "/out" .. w)))
	end
	-- contested requests: exactly one winner each (deleted ones may be won again)
	for j = 1, 49, 2 do
		local wins = contested_wins["c" .. j] or 0
		if j % 10 == 9 then
			lu.assertTrue(wins >= 1, "c" .. j .. " won " .. wins .. " times")
		else
			lu.assertEquals(wins, 1, "network c" .. j .. " created " .. wins .. " times")
		end
	end
	for j = 5, 45, 10 do
		local wins = address_wins[string.format("10.250.9.%d", j)]
		if j % 7 == 3 then   -- the winner deletes it again: another may win it next
			lu.assertTrue(wins >= 1, "address 10.250.9." .. j)
		else
			lu.assertEquals(wins, 1, "address 10.250.9." .. j)
		end
	end

	-- the store: everything created, minus everything deleted; nothing lost
	local d <close> = assert(driver.open{ state_dir = self.dir })
	local want_nets, want_eps = { sa = true, sb = true }, {}
	for id, t in pairs(created_nets) do
		if not deleted[id] and not (t.name:match("^c") and contested_rm[t.name]) then want_nets[t.name] = true end
	end
	-- a contested network deleted by name: it is stored iff created more often than deleted
	for name, wins in pairs(contested_wins) do
		if contested_rm[name] then
			lu.assertTrue(wins - contested_rm[name] == 0 or wins - contested_rm[name] == 1, name)
			if wins > contested_rm[name] then want_nets[name] = true end
		end
	end
	for id, t in pairs(created_eps) do if not deleted[id] then want_eps[id] = t end end
	local have_nets = {}
	for _, n in ipairs(d:networks()) do have_nets[n.name] = n end
	lu.assertEquals(set_of((function() local t = {} for k in pairs(have_nets) do t[#t + 1] = k end return t end)()),
		want_nets)
	local have_eps = {}
	for _, e in ipairs(d:endpoints()) do have_eps[e.id] = e end
	lu.assertEquals(count(have_eps), count(want_eps))
	for id, t in pairs(want_eps) do
		local e = have_eps[id]
		lu.assertNotNil(e, "endpoint " .. t.name .. " lost")
		lu.assertEquals(e.ipv4, t.ip)
		lu.assertEquals(e.network_name, t.network)
	end
	lu.assertTrue(count(have_eps) >= N * 35, count(have_eps) .. " endpoints: too few to prove much")

	-- no address given twice
	local seen = {}
	for _, e in pairs(have_eps) do
		local key = e.network .. " " .. e.ipv4:match("^[^/]+")
		lu.assertNil(seen[key], "address given twice: " .. key .. " (" .. e.name .. ", " .. tostring(seen[key]) .. ")")
		seen[key] = e.name
		local n = assert(d:network(e.network))
		lu.assertNotEquals(e.ipv4:match("^[^/]+"), n.gateway4)
	end

	-- every success is in the kernel, and nothing else is
	local drift, orphans = compare(self.dir)
	lu.assertEquals(drift, {})
	lu.assertEquals(orphans, {})
	local k = kernel_view()
	for _, e in pairs(have_eps) do
		if e.netns then
			local got = H.ip("-n " .. q(e.netns) .. " addr show dev " .. q(e.ifname))[1]
			local addrs = {}
			for _, a in ipairs(got.addr_info or {}) do addrs[string.format("%s/%d", a["local"], a.prefixlen)] = true end
			lu.assertTrue(addrs[e.ipv4], e.name .. " lacks " .. e.ipv4 .. " in " .. e.netns)
		else
			lu.assertNotNil(k.links[e.peer_ifname], e.name .. ": peer " .. e.peer_ifname)
		end
	end
	lu.assertEquals(d:check(), {})

	-- and it all goes away again
	for _, n in ipairs(d:networks()) do assert(d:delete_network(n.id, { force = true })) end
	lu.assertEquals(d:networks(), {})
	lu.assertEquals(d:endpoints(), {})
	local left = {}
	for name, l in pairs(kernel_view().links) do if name ~= "lo" then left[#left + 1] = name end end
	lu.assertEquals(left, {})
	lu.assertEquals(H.must("ip netns list"), "")
end

---------------------------------------------------------------------------
-- Crash safety
---------------------------------------------------------------------------

TestCrash = {}

function TestCrash:setUp()
	H.reset()
	self.dir = tmpdir("crash")
end

function TestCrash:tearDown()
	H.reset()
	H.sh("rm -rf " .. q(self.dir))
end

-- Run `brisk ARGS` and SIGKILL it after `ms` milliseconds (unless it is
-- done by then). Returns its exit status (137 when killed).
local function run_and_kill(dir, args, ms)
	local parts = { q(BIN), "--state-dir", q(dir) }
	for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
	local script = table.concat(parts, " ") .. " >/dev/null 2>&1 & p=$!; sleep " ..
		string.format("%.3f", ms / 1000) .. "; kill -KILL $p 2>/dev/null; wait $p; echo $?"
	local p = io.popen("sh -c " .. q(script) .. " 2>/dev/null")
	local out = p:read("a")
	p:close()
	return tonumber(out:match("%d+"))
end

-- How long `brisk ARGS` runs, in milliseconds.
local function run_time(dir, args)
	local parts = { q(BIN), "--state-dir", q(dir) }
	for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
	local script = "s=$(date +%s%N); " .. table.concat(parts, " ") ..
		" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000 ))"
	local p = io.popen("sh -c " .. q(script))
	local us = tonumber(p:read("a"):match("%d+"))
	p:close()
	return us / 1000
end

function TestCrash:test_kill_create_and_delete_100_times()
	local seed = tonumber(os.getenv("BRISK_SEED") or "") or os.time()
	math.randomseed(seed)
	local function say(fmt, ...) return string.format("[seed %d] " .. fmt, seed, ...) end
	local kills, interrupted, repaired = 0, 0, 0
	-- how long the program takes to start and do nothing
	local start = math.huge
	for _ = 1, 3 do start = math.min(start, run_time(self.dir, { "network", "ls" })) end
	local lo = math.max(2, math.floor(start) - 3)
	local window = {
		netadd = { lo = lo, hi = lo + 30, max = lo + 200 }, epadd = { lo = lo, hi = lo + 30, max = lo + 200 },
		eprm = { lo = lo, hi = lo + 50, max = lo + 300 }, netrm = { lo = lo, hi = lo + 150, max = lo + 600 },
	}
	local iter = 0
	while kills < 100 and iter < 400 do
		iter = iter + 1
		local nets, eps = read_store(self.dir)
		local net_list, ep_list = {}, {}
		for _, n in pairs(nets) do net_list[#net_list + 1] = n end
		for _, e in pairs(eps) do ep_list[#ep_list + 1] = e end
		table.sort(net_list, function(a, b) return a.name < b.name end)
		table.sort(ep_list, function(a, b) return a.name < b.name end)
		local names = {}
		for _, n in ipairs(net_list) do names[n.name] = true end
		for _, e in ipairs(ep_list) do names[e.name] = true end
		local function free(prefix, n)
			local cands = {}
			for i = 0, n - 1 do if not names[prefix .. i] then cands[#cands + 1] = i end end
			return cands[math.random(math.max(#cands, 1))]
		end
		local r = math.random()
		local args, kind
		if #net_list < 2 or r < 0.3 then
			local i = free("kn", 20)
			if i then
				args, kind = { "network", "create", "--subnet", "10.60." .. i .. ".0/24", "kn" .. i }, "netadd"
			end
		elseif r < 0.6 then
			local i = free("ke", 40)
			local n = net_list[math.random(#net_list)]
			if i then
				args, kind = { "endpoint", "create", "--name", "ke" .. i, n.name }, "epadd"
				if i % 3 == 0 then table.insert(args, 3, "--netns"); table.insert(args, 4, "kns" .. i) end
			end
		elseif r < 0.85 and #ep_list > 0 then
			args, kind = { "endpoint", "rm", ep_list[math.random(#ep_list)].name }, "eprm"
		else
			args, kind = { "network", "rm", "-f", net_list[math.random(#net_list)].name }, "netrm"
		end
		if args then
			-- The program needs ~15 ms to start and its work takes 3-100 ms
			-- more: the kill lands in [lo, hi], hi learning how long each
			-- kind of run takes (a run that ends first lowers it).
			local w = window[kind]
			local ms = math.random(w.lo, w.hi)
			local status = run_and_kill(self.dir, args, ms)
			if status == 137 then
				kills = kills + 1
				w.hi = math.min(w.hi + 1, w.max)
			else
				w.hi = math.max(ms - 1, w.lo + 4)
			end
			local what = say("kill %d after '%s' (exit %s)", iter, table.concat(args, " "), tostring(status))

			-- the store parses (read_store raises otherwise), the lock is free
			local ok, err = pcall(read_store, self.dir)
			lu.assertTrue(ok, what .. ": " .. tostring(err))

			-- every drift of a stored object is reported by check
			local drift, orphans = compare(self.dir)
			local code, out = cli(self.dir, { "network", "check" })
			lu.assertTrue(code == 0 or code == 1, what .. ": check: " .. out)
			for _, dr in ipairs(drift) do
				local name = dr.net and (dr.what:match("^firewall") and dr.net.bridge or dr.net.name) or dr.ep.name
				local found = false
				for line in out:gmatch("[^\n]+") do
					if line:find(dr.what, 1, true) == 1 and line:find(name, 1, true) then found = true end
				end
				lu.assertTrue(found, what .. ": check does not report " .. dr.why .. " of " .. name ..
					"; it said:\n" .. out)
			end
			if #drift == 0 and #orphans == 0 then
				lu.assertEquals(code, 0, what .. ": check reports drift that ip and nft do not show:\n" .. out)
			end

			-- nothing in the kernel that no store record names: a create
			-- stores its intent before its first kernel change
			lu.assertEquals(orphans, {}, what .. ": kernel objects no store record names")

			-- restore or rm repairs the drift
			if #drift > 0 then
				repaired = repaired + 1
				local bad_nets, bad_eps = {}, {}
				for _, dr in ipairs(drift) do
					if dr.why == "create interrupted" then interrupted = interrupted + 1 end
					if dr.net then bad_nets[dr.net.name] = true else bad_eps[dr.ep.name] = dr.ep end
				end
				for name in pairs(bad_eps) do
					local c, o = cli(self.dir, { "endpoint", "rm", name })
					lu.assertEquals(c, 0, what .. ": endpoint rm " .. name .. ": " .. o)
				end
				if next(bad_nets) then
					if math.random() < 0.5 then
						local c, o = cli(self.dir, { "network", "restore" })
						lu.assertEquals(c, 0, what .. ": restore: " .. o)
					else
						for name in pairs(bad_nets) do
							local c, o = cli(self.dir, { "network", "rm", "-f", name })
							lu.assertEquals(c, 0, what .. ": network rm " .. name .. ": " .. o)
						end
					end
				end
				local d2, o2 = compare(self.dir)
				lu.assertEquals(d2, {}, what .. ": still drifting after the repair")
				lu.assertEquals(o2, {}, what .. ": the repair left kernel objects no store record names")
				local c, o = cli(self.dir, { "network", "check" })
				lu.assertEquals(c, 0, what .. ": check after the repair: " .. o)
			end
		end
	end
	lu.assertEquals(kills, 100, say("only %d kills in %d runs", kills, iter))
	-- the end: store and kernel agree, and check says so
	local drift, orphans, nets = compare(self.dir)
	lu.assertEquals(drift, {})
	lu.assertEquals(orphans, {})
	local code, out = cli(self.dir, { "network", "check" })
	lu.assertEquals(code, 0, out)
	lu.assertEquals(out, "no drift\n")
	-- and it all deletes cleanly
	for _, n in pairs(nets) do
		local c, o = cli(self.dir, { "network", "rm", "-f", n.name })
		lu.assertEquals(c, 0, o)
	end
	local d2, o2 = compare(self.dir)
	lu.assertEquals(d2, {})
	lu.assertEquals(o2, {})
	io.stderr:write(string.format("\n  [kill loop: %d kills in %d runs, %d left drift that check reported "
		.. "and restore/rm repaired, %d of them interrupted creates]\n", kills, iter, repaired, interrupted))
end

-- The start of the crash scripts below (run as `lua5.4 SCRIPT ROOT DIR
-- WHAT`): a driver over DIR.
local CRASH_HEAD = [==[
local ROOT, DIR, WHAT = arg[1], arg[2], arg[3]
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. package.path
package.cpath = ROOT .. "/build/lib/?.so;" .. package.cpath
local d = assert(require("brisk.driver").open{ state_dir = DIR })
]==]

-- A crash between the kernel steps and the store write, made exactly: the
-- flow exits the process right after its first kernel step.
local CRASH_AFTER = CRASH_HEAD .. [==[
if WHAT == "network" then
	d:after("setup_device", function() os.exit(9) end)
	d:create_network{ name = "torn", subnet = "10.61.0.0/24" }
else
	d:after("create_veth", function() os.exit(9) end)
	d:create_endpoint("base", { name = "torn", netns = "tornns", publish = { "8080:80" } })
end
os.exit(0)
]==]

local function net_id12(nets, name)
	for _, n in pairs(nets) do if n.name == name then return n.id:sub(1, 12) end end
end

-- Run the creates that exit right after their first kernel step; returns
-- the driver, and what the kernel shows of them.
local function torn_creates(self)
	local script = self.dir .. "/crash.lua"
	spit(script, CRASH_AFTER)
	local d = assert(driver.open{ state_dir = self.dir })
	assert(d:create_network{ name = "base", subnet = "10.62.0.0/24" })
	for _, what in ipairs{ "network", "endpoint" } do
		local code = select(3, os.execute(string.format("lua5.4 %s %s %s %s", q(script), q(ROOT),
			q(self.dir), what)))
		lu.assertEquals(code, 9, what)
	end
	local nets, eps = read_store(self.dir)
	local torn_net, torn_ep
	for _, n in pairs(nets) do if n.name == "torn" then torn_net = n end end
	for _, e in pairs(eps) do if e.name == "torn" then torn_ep = e end end
	lu.assertEquals(count(nets), 2)
	lu.assertEquals(count(eps), 1)
	lu.assertEquals(torn_net.state, "creating")
	lu.assertEquals(torn_ep.state, "creating")
	-- the first kernel steps did run: the bridge, the veth pair and the
	-- namespace exist, each named by a record
	local k = kernel_view()
	lu.assertNotNil(k.links[torn_net.bridge], "the torn network's bridge")
	lu.assertNotNil(k.links[torn_ep.host_ifname], "the torn endpoint's veth")
	lu.assertTrue(k.netns.tornns ~= nil, "the torn endpoint's namespace")
	lu.assertStrContains(H.must("nft list ruleset"), "brisk port br-" .. net_id12(nets, "base") .. " "
		.. torn_ep.id:sub(1, 12) .. " tcp *:8080")
	local drift, orphans = compare(self.dir)
	lu.assertEquals(orphans, {})
	lu.assertEquals(#drift, 2)
	-- check reports both, naming what they left
	local c, out = cli(self.dir, { "network", "check" })
	lu.assertEquals(c, 1, "check: " .. out)
	lu.assertStrContains(out, "network torn: its create was interrupted (bridge " .. torn_net.bridge .. " exists)")
	lu.assertStrContains(out, "endpoint torn: its create was interrupted (host link " .. torn_ep.host_ifname
		.. " exists)")
	-- an endpoint cannot be added to the torn network
	local ok, msg, err = d:create_endpoint("torn", { name = "x" })
	lu.assertNil(ok)
	lu.assertStrContains(msg, "network torn: its create was interrupted")
	lu.assertEquals(err, E.EBUSY)
	-- nor can the torn endpoint join or leave: that would hide its intent
	for _, f in ipairs{ function() return d:join("torn", "other") end, function() return d:leave("torn") end } do
		ok, msg, err = f()
		lu.assertNil(ok)
		lu.assertStrContains(msg, "endpoint torn: its create was interrupted; 'brisk endpoint rm torn'")
		lu.assertEquals(err, E.EBUSY)
	end
	lu.assertEquals(select(2, read_store(self.dir))[torn_ep.id].state, "creating")
	return d, torn_net, torn_ep
end

-- A create on a bridge the user made, killed after its steps changed it:
-- rm, and restore then rm, leave the bridge exactly as it was found (the
-- intent keeps what it had); rm left the network's address on it.
local CRASH_ADOPTED = CRASH_HEAD .. [==[
d:after("setup_mtu", function() os.exit(9) end)
d:create_network{ name = "torn", subnet = "10.63.0.0/24", ipv6 = true, subnet6 = nil,
	options = { bridge = "mybr", mtu = 1400, default_bridge = true } }
os.exit(0)
]==]

function TestCrash:test_a_torn_create_on_a_user_bridge_is_undone_to_what_it_found()
	local script = self.dir .. "/crash.lua"
	spit(script, CRASH_ADOPTED)
	H.must("ip link add mybr mtu 1500 type bridge && ip addr add 192.168.5.1/24 dev mybr")
	local function bridge()
		local l = H.ip("-d link show dev mybr")[1]
		local a = {}
		for _, x in ipairs(H.ip("addr show dev mybr")[1].addr_info or {}) do
			a[#a + 1] = string.format("%s/%d", x["local"], x.prefixlen)
		end
		table.sort(a)
		return { mtu = l.mtu, up = l.flags[#l.flags] == "UP" or nil, addrs = table.concat(a, " "),
			disable_ipv6 = H.slurp("/proc/sys/net/ipv6/conf/mybr/disable_ipv6"),
			accept_ra = H.slurp("/proc/sys/net/ipv6/conf/mybr/accept_ra") }
	end
	H.must("sysctl -qw net.ipv6.conf.mybr.disable_ipv6=1")
	local before = bridge()
	for _, how in ipairs{ "rm", "restore" } do
		local code = select(3, os.execute(string.format("lua5.4 %s %s %s", q(script), q(ROOT), q(self.dir))))
		lu.assertEquals(code, 9, how)
		local torn = bridge()
		lu.assertEquals(torn.mtu, 1400, how)
		lu.assertStrContains(torn.addrs, "10.63.0.1/24", false, how)
		if how == "restore" then
			local c, out = cli(self.dir, { "network", "restore" })
			lu.assertEquals(c, 0, out)
			lu.assertStrContains(out, "torn: ok (interrupted create finished)")
			lu.assertEquals(cli(self.dir, { "network", "check" }), 0)
		end
		local c, out = cli(self.dir, { "network", "rm", "torn" })
		lu.assertEquals(c, 0, out)
		lu.assertEquals(bridge(), before, how)
	end
	H.must("ip link del mybr")
end

-- A join killed after its link moved and got its addresses, a leave killed
-- after the link came back but before the record said so: each leaves its
-- intent ("joining", "leaving"), which check reports and leave (or restore)
-- undoes; rm was the only way out, and check saw nothing.
local CRASH_JOIN = CRASH_HEAD .. [==[
if WHAT == "join" then
	d:after("sandbox_addresses", function() os.exit(9) end)
	d:join("e1", "jns")
else
	-- the record's last write (the leave is done in the kernel by then)
	local put, n = d.store.put, 0
	d.store.put = function(...) n = n + 1; if n == 2 then os.exit(9) end return put(...) end
	d:leave("e1")
end
os.exit(0)
]==]

function TestCrash:test_a_torn_join_or_leave_is_reported_and_undone()
	local script = self.dir .. "/crash.lua"
	spit(script, CRASH_JOIN)
	local d <close> = assert(driver.open{ state_dir = self.dir })
	assert(d:create_network{ name = "jn", subnet = "10.64.0.0/24" })
	-- (its published port: restore drops the firewall and must bring it back)
	local e1 = assert(d:create_endpoint("jn", { name = "e1", publish = { "8080:80" } }))
	local function crash(what)
		local code = select(3, os.execute(string.format("lua5.4 %s %s %s %s", q(script), q(ROOT), q(self.dir), what)))
		lu.assertEquals(code, 9, what)
	end
	for _, how in ipairs{ "leave", "restore" } do
		crash("join")
		lu.assertNotNil(H.iplink("eth0", "jns"))
		local c, out = cli(self.dir, { "network", "check" })
		lu.assertEquals(c, 1, out)
		lu.assertStrContains(out, "endpoint e1: its join to jns was interrupted")
		c, out = cli(self.dir, how == "leave" and { "endpoint", "leave", "e1" } or { "network", "restore" })
		lu.assertEquals(c, 0, out)
		if how == "restore" then lu.assertStrContains(out, "endpoint e1: ok (interrupted join undone)") end
		lu.assertNotNil(H.iplink(e1.peer_ifname))
		lu.assertNotEquals(H.sh("ip netns list | grep -qw jns"), true)
		lu.assertEquals(cli(self.dir, { "network", "check" }), 0)
		assert(d:join("e1", "jns"))
		-- the leave, cut short after the move
		crash("leave")
		lu.assertNotNil(H.iplink(e1.peer_ifname))
		c, out = cli(self.dir, { "network", "check" })
		lu.assertEquals(c, 1, out)
		lu.assertStrContains(out, "endpoint e1: its leave from jns was interrupted")
		c, out = cli(self.dir, how == "leave" and { "endpoint", "leave", "e1" } or { "network", "restore" })
		lu.assertEquals(c, 0, out)
		if how == "restore" then lu.assertStrContains(out, "endpoint e1: ok (interrupted leave finished)") end
		lu.assertNil(d:endpoint("e1").netns)
		lu.assertEquals(cli(self.dir, { "network", "check" }), 0)
	end
	assert(d:delete_endpoint("e1"))
	assert(d:delete_network("jn"))
end

function TestCrash:test_restore_finishes_a_torn_network_and_undoes_a_torn_endpoint()
	local d <close>, net, ep = torn_creates(self)
	local c, out = cli(self.dir, { "network", "restore" })
	lu.assertEquals(c, 0, out)
	lu.assertStrContains(out, "torn: ok (interrupted create finished)")
	lu.assertStrContains(out, "endpoint torn: ok (interrupted create undone)")
	local drift, orphans, nets, eps = compare(self.dir)
	lu.assertEquals(drift, {})
	lu.assertEquals(orphans, {})
	lu.assertEquals(count(eps), 0)
	lu.assertNil(nets[net.id].state)
	lu.assertNotNil(nets[net.id].journal)
	-- the bridge is up with its address, the endpoint's pair and namespace are gone
	local l = H.iplink(net.bridge)
	lu.assertTrue(H.has(l.flags, "UP"))
	lu.assertEquals(H.addrs(net.bridge, { family = "4" }), { "10.61.0.1/24" })
	lu.assertNil(H.iplink(ep.host_ifname))
	lu.assertFalse(H.must("ip netns list"):find("tornns", 1, true) ~= nil)
	lu.assertNotStrContains(H.must("nft list ruleset"), ep.id:sub(1, 12))
	c, out = cli(self.dir, { "network", "check" })
	lu.assertEquals(c, 0, out)
	-- and the finished network deletes cleanly, bridge and rules
	c, out = cli(self.dir, { "network", "rm", "torn" })
	lu.assertEquals(c, 0, out)
	lu.assertNil(H.iplink(net.bridge))
	lu.assertEquals(select(2, compare(self.dir)), {})
end

function TestCrash:test_rm_undoes_torn_creates()
	local d <close>, net, ep = torn_creates(self)
	local c, out = cli(self.dir, { "endpoint", "rm", "torn" })
	lu.assertEquals(c, 0, out)
	lu.assertNotStrContains(H.must("nft list ruleset"), ep.id:sub(1, 12))
	c, out = cli(self.dir, { "network", "rm", "torn" })
	lu.assertEquals(c, 0, out)
	lu.assertNil(H.iplink(net.bridge))
	lu.assertNil(H.iplink(ep.host_ifname))
	lu.assertFalse(H.must("ip netns list"):find("tornns", 1, true) ~= nil)
	local drift, orphans, nets, eps = compare(self.dir)
	lu.assertEquals(drift, {})
	lu.assertEquals(orphans, {})
	lu.assertEquals(count(nets), 1)
	lu.assertEquals(count(eps), 0)
	c, out = cli(self.dir, { "network", "check" })
	lu.assertEquals(c, 0, out)
end

-- A generated veth name taken by a link brisk did not make, then a crash
-- right after the pair is made under the next name: the record names the
-- pair that exists, and undoing it leaves the other link alone.
local CRASH_AFTER_COLLISION = [==[
local ROOT, DIR = arg[1], arg[2]
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. package.path
package.cpath = ROOT .. "/build/lib/?.so;" .. package.cpath
local driver = require "brisk.driver"
local names = { "vethc011150", "vethc022250", "vethc033350" }
local n = 0
driver.veth_name = function() n = n + 1; return names[n] or ("vethc0999" .. n) end
local d = assert(driver.open{ state_dir = DIR })
d:after("create_veth", function() os.exit(9) end)
d:create_endpoint("base", { name = "torn" })
os.exit(0)
]==]

function TestCrash:test_a_name_collision_is_recorded_before_the_pair_is_made()
	local d <close> = assert(driver.open{ state_dir = self.dir })
	assert(d:create_network{ name = "base", subnet = "10.62.0.0/24" })
	-- the first name the flow draws (the host side) is taken
	H.must("ip link add vethc011150 type vxlan id 42 dstport 4789")
	local script = self.dir .. "/collide.lua"
	spit(script, CRASH_AFTER_COLLISION)
	local code = select(3, os.execute(string.format("lua5.4 %s %s %s", q(script), q(ROOT), q(self.dir))))
	lu.assertEquals(code, 9)
	local _, eps = read_store(self.dir)
	local ep = select(2, next(eps))
	lu.assertEquals(ep.state, "creating")
	-- drawn: host vethc011150 (taken), peer vethc022250; then host vethc033350, peer vethc09994
	lu.assertEquals(ep.host_ifname, "vethc033350")
	lu.assertEquals(ep.peer_ifname, "vethc09994")
	local k = kernel_view()
	lu.assertEquals(kind_of(k.links.vethc033350), "veth")
	lu.assertEquals(kind_of(k.links.vethc011150), "vxlan")
	local drift, orphans = compare(self.dir)
	lu.assertEquals(orphans, {})
	lu.assertEquals(#drift, 1)
	-- undone by rm: the pair goes, the other link stays
	local c, out = cli(self.dir, { "endpoint", "rm", "torn" })
	lu.assertEquals(c, 0, out)
	lu.assertNil(H.iplink("vethc033350"))
	lu.assertNotNil(H.iplink("vethc011150"))
	drift, orphans = compare(self.dir)
	lu.assertEquals(drift, {})
	lu.assertEquals(orphans, {})
	H.must("ip link del vethc011150")
end

function TestCrash:test_store_and_lock_survive_a_kill_inside_a_transaction()
	-- a process killed while it holds the store lock: the next one gets it
	local d <close> = assert(driver.open{ state_dir = self.dir })
	assert(d:create_network{ name = "base", subnet = "10.62.0.0/24" })
	local script = self.dir .. "/hold.lua"
	spit(script, string.format([[
package.path = %q .. "/lua/?.lua;" .. package.path
package.cpath = %q .. "/build/lib/?.so;" .. package.cpath
local st = assert(require("brisk.store").open(%q))
st:transaction(function()
	io.stdout:write("held\n")
	io.stdout:close()
	local t = os.time()
	while os.time() - t < 30 do end     -- until killed
end)
]], ROOT, ROOT, self.dir))
	local p = io.popen("(lua5.4 " .. q(script) .. " & echo $!; sleep 0.5) 2>/dev/null")
	local pid = p:read("l")
	local held = p:read("l")
	lu.assertEquals(held, "held")
	H.must("kill -KILL " .. pid)
	p:close()
	local ep, msg = d:create_endpoint("base", { name = "after" })
	lu.assertNotNil(ep, msg)
	lu.assertEquals(d:check(), {})
end
