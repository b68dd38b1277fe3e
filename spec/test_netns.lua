-- spec/test_netns.lua: named namespaces and netns_run (csrc/netns.c).
-- Everything here happens in the run's private namespace and its private
-- /run/netns (spec/run.lua).
local lu = require "luaunit"
local H = require "helper"
local core = require "brisk.core"
local E = core.errno

--- Names `ip netns list` reports, sorted.
local function ip_netns_names()
	local out = H.must("ip netns list")
	local t = {}
	for name in out:gmatch("(%S+)[^\n]*\n?") do t[#t + 1] = name end
	table.sort(t)
	return t
end

local function contains(t, v)
	for _, x in ipairs(t) do if x == v then return true end end
	return false
end

--- What a failed call must leave alone: the named namespaces, the mounts
--- and the links of the current namespace.
local function state()
	return table.concat(ip_netns_names(), ",") .. "\n" ..
		H.must("cat /proc/self/mountinfo | awk '{print $5}' | sort") .. H.snapshot()
end

-- This process's open descriptors (read here: a child's /proc/self would
-- be the child's, which inherits none of brisk's close-on-exec ones).
local function fd_count()
	return #assert(core.listdir("/proc/self/fd"))
end

TestNetns = {}

function TestNetns:test_functions_exported()
	for _, f in ipairs { "netns_add", "netns_del", "netns_list", "netns_exists",
			     "netns_id", "netns_run", "netns_prepare" } do
		lu.assertIsFunction(core[f], f)
	end
end

function TestNetns:test_add_list_del()
	lu.assertTrue(core.netns_add("nsadd"))
	lu.assertTrue(contains(ip_netns_names(), "nsadd"))
	lu.assertTrue(contains(core.netns_list(), "nsadd"))
	lu.assertTrue(core.netns_exists("nsadd"))
	local links = H.ip("-n nsadd link")
	lu.assertEquals(#links, 1)
	lu.assertEquals(links[1].ifname, "lo")
	lu.assertEquals(links[1].operstate, "DOWN")   -- as `ip netns add` leaves it
	lu.assertNotEquals(core.netns_id("nsadd"), core.netns_id())
	-- the caller stayed where it was: its own links are still here
	lu.assertNotNil(H.iplink("lo"))
	lu.assertTrue(core.netns_del("nsadd"))
	lu.assertFalse(contains(ip_netns_names(), "nsadd"))
	lu.assertFalse(contains(core.netns_list(), "nsadd"))
	lu.assertFalse(core.netns_exists("nsadd"))
end

function TestNetns:test_add_leaves_caller_namespace()
	local before = core.netns_id()
	assert(core.netns_add("nsstay"))
	lu.assertEquals(core.netns_id(), before)
	lu.assertEquals(core.netns_id("/proc/self/ns/net"), before)
	core.netns_del("nsstay")
end

function TestNetns:test_run_dir_is_shared_mount()
	assert(core.netns_add("nsshared"))
	lu.assertEquals(H.must("findmnt -n -o PROPAGATION /run/netns"):match("%S+"), "shared")
	core.netns_del("nsshared")
end

function TestNetns:test_add_makes_run_dir_a_mount_point()
	-- A nested private mount namespace with an empty /run: netns_add must
	-- create /run/netns and bind it on itself, shared, like iproute2.
	local here = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."
	local script = os.tmpname()
	local f = assert(io.open(script, "w"))
	f:write("package.cpath = '", here, "/build/lib/?.so;' .. package.cpath\n",
		"local c = require 'brisk.core'\n",
		"assert(c.netns_add('nsnested'))\n",
		"assert(c.netns_exists('nsnested'))\n")
	f:close()
	local ok, out = H.sh("unshare -m --propagation private sh -c '" ..
		"mount -t tmpfs brisk-run /run && lua5.4 " .. script .. " && " ..
		"findmnt -n -o TARGET,PROPAGATION /run/netns && ip netns list'")
	os.remove(script)
	lu.assertTrue(ok, out)
	lu.assertStrMatches(out, ".*/run/netns%s+shared\n.*nsnested.*")
	-- none of it is visible out here
	lu.assertFalse(contains(ip_netns_names(), "nsnested"))
end

function TestNetns:test_add_duplicate_eexist()
	assert(core.netns_add("nsdup"))
	local id = core.netns_id("nsdup")
	local before = state()
	local ok, msg, err = core.netns_add("nsdup")
	lu.assertNil(ok)
	lu.assertStrContains(msg, "add netns nsdup")
	lu.assertEquals(err, E.EEXIST)
	lu.assertEquals(state(), before)
	lu.assertEquals(core.netns_id("nsdup"), id)   -- still the same namespace
	core.netns_del("nsdup")
end

function TestNetns:test_del_missing_enoent()
	local before = state()
	local ok, msg, err = core.netns_del("nsnone")
	lu.assertNil(ok)
	lu.assertStrContains(msg, "nsnone")
	lu.assertEquals(err, E.ENOENT)
	lu.assertEquals(state(), before)
end

function TestNetns:test_bad_names_einval()
	local before = state()
	local why = {
		[""] = "empty", ["a/b"] = "'/'", ["."] = ". or ..", [".."] = ". or ..", ["/x"] = "'/'",
		[string.rep("n", 65)] = "longer than 64", ["-3"] = "start with '-'", ["-"] = "start with '-'",
		["--netns"] = "start with '-'", ["-x/y"] = "'/'", ["ns\0x"] = "NUL byte",
	}
	for name, reason in pairs(why) do
		for _, f in ipairs { "netns_add", "netns_del", "netns_exists" } do
			local ok, msg, err = core[f](name)
			lu.assertNil(ok, f .. " " .. name)
			lu.assertStrContains(msg, reason)
			lu.assertEquals(err, E.EINVAL, f .. " " .. name)
		end
	end
	lu.assertEquals(state(), before)
	lu.assertFalse(contains(ip_netns_names(), "ns"))                -- not cut at the NUL
	-- '-' inside a name is fine, and so is a name that is a number
	for _, name in ipairs { "ns-3", "3" } do
		lu.assertTrue(core.netns_add(name))
		lu.assertTrue(core.netns_exists(name))
		lu.assertTrue(contains(ip_netns_names(), name))
		lu.assertTrue(core.netns_del(name))
	end
	-- 64 bytes is the limit, and it is fine
	local long = string.rep("n", 64)
	lu.assertTrue(core.netns_add(long))
	lu.assertTrue(contains(ip_netns_names(), long))
	lu.assertTrue(core.netns_del(long))
end

function TestNetns:test_bad_args_raise()
	lu.assertErrorMsgContains("bad argument #1", core.netns_add)
	lu.assertErrorMsgContains("bad argument #1", core.netns_add, 12)
	lu.assertErrorMsgContains("bad argument #1", core.netns_del, {})
	lu.assertErrorMsgContains("bad argument #1", core.netns_exists, true)
	lu.assertErrorMsgContains("bad argument #1", core.netns_id, true)
	lu.assertErrorMsgContains("bad argument #1", core.netns_id, "")
	lu.assertErrorMsgContains("bad argument #1", core.netns_id, -3)
	lu.assertErrorMsgContains("bad argument #1", core.netns_id, io.stdout)
	lu.assertErrorMsgContains("bad argument #2", core.netns_run, nil)
	lu.assertErrorMsgContains("bad argument #2", core.netns_run, nil, "f")
	lu.assertErrorMsgContains("bad argument #1", core.netns_run, true, print)
	local h = assert(core.open())
	h:close()
	lu.assertErrorMsgContains("closed netlink handle", core.netns_run, h, print)
	lu.assertErrorMsgContains("closed netlink handle", core.netns_id, h)
end

function TestNetns:test_list_sorted()
	for _, n in ipairs { "nsl-b", "nsl-c", "nsl-a" } do assert(core.netns_add(n)) end
	local list = core.netns_list()
	lu.assertEquals(list, ip_netns_names())
	local mine = {}
	for _, n in ipairs(list) do if n:match("^nsl%-") then mine[#mine + 1] = n end end
	lu.assertEquals(mine, { "nsl-a", "nsl-b", "nsl-c" })
	for _, n in ipairs { "nsl-a", "nsl-b", "nsl-c" } do core.netns_del(n) end
	lu.assertEquals(core.netns_list(), ip_netns_names())
end

function TestNetns:test_stale_file_is_no_namespace()
	-- a file under /run/netns with nothing mounted on it (a crashed add)
	assert(io.open("/run/netns/nsstale", "w")):close()
	lu.assertFalse(core.netns_exists("nsstale"))
	lu.assertTrue(contains(core.netns_list(), "nsstale"))   -- as `ip netns list`
	local ok, _, err = core.netns_id("nsstale")
	lu.assertNil(ok)
	lu.assertEquals(err, E.EINVAL)
	local _, _, err2 = core.netns_add("nsstale")
	lu.assertEquals(err2, E.EEXIST)
	lu.assertTrue(core.netns_del("nsstale"))
	lu.assertNil(io.open("/run/netns/nsstale"))
end

function TestNetns:test_id_forms()
	assert(core.netns_add("nsid"))
	local id = core.netns_id("nsid")
	lu.assertStrMatches(id, "%d+:%d+")
	lu.assertEquals(core.netns_id("/run/netns/nsid"), id)
	local h <close> = assert(core.open("nsid"))
	lu.assertEquals(core.netns_id(h), id)
	local pid = assert(io.open("/proc/self/stat")):read("n")
	lu.assertEquals(core.netns_id(pid), core.netns_id())
	lu.assertEquals(core.netns_id(nil), core.netns_id("/proc/self/ns/net"))
	-- iproute2 agrees on the inode
	local ino = H.must("stat -L -c %i /run/netns/nsid"):match("%d+")
	lu.assertEquals(id:match(":(%d+)$"), ino)
	core.netns_del("nsid")
end

function TestNetns:test_id_missing_and_not_a_namespace()
	local ok, msg, err = core.netns_id("nsnone")
	lu.assertNil(ok)
	lu.assertStrContains(msg, "nsnone")
	lu.assertEquals(err, E.ENOENT)
	local _, _, err2 = core.netns_id("/etc/hostname")
	lu.assertEquals(err2, E.EINVAL)
	local _, _, err3 = core.netns_id("/proc/self/ns/uts")   -- a namespace, not a network one
	lu.assertEquals(err3, E.EINVAL)
end

-- The spare of netns_prepare: bound by the next netns_add made from the
-- same namespace while fresh, once; anything else makes a namespace anew.
TestNetnsSpare = {}

function TestNetnsSpare:tearDown()
	core.netns_prepare(false)
	for _, n in ipairs(core.netns_list()) do
		if n:match("^spare") then core.netns_del(n) end
	end
end

--- The nsfs inode `stat` sees on /run/netns/NAME, as netns_id spells it.
local function stat_id(name)
	return (H.must("stat -L -c '%d:%i' /run/netns/" .. name):gsub("%s+$", ""))
end

function TestNetnsSpare:test_add_binds_the_spare_once()
	local fds = fd_count()
	local ok, id, left = core.netns_prepare()
	lu.assertTrue(ok)
	lu.assertStrMatches(id, "%d+:%d+")
	lu.assertNotEquals(id, core.netns_id())
	-- it stays usable for the ttl (default 1 s) from when it was made
	lu.assertTrue(left > 0.5 and left <= 1, tostring(left))
	-- a fresh spare is kept, not made again; its time runs from then
	os.execute("sleep 0.2")
	local _, id_again, left_again = core.netns_prepare()
	lu.assertEquals(id_again, id)
	lu.assertTrue(left_again < left - 0.1, left_again .. " after " .. left)
	local ok1, how1 = core.netns_add("spare1")
	lu.assertEquals({ ok1, how1 }, { true, "spare" })
	lu.assertEquals(core.netns_id("spare1"), id)
	lu.assertEquals(stat_id("spare1"), id)           -- the kernel's word, not brisk's
	-- a namespace like any other: lo only, down; the caller did not move
	local links = H.ip("-n spare1 link")
	lu.assertEquals(#links, 1)
	lu.assertEquals(links[1].ifname, "lo")
	lu.assertEquals(links[1].operstate, "DOWN")
	lu.assertNotEquals(core.netns_id(), id)
	-- used up: the next add makes its own
	local ok2, how2 = core.netns_add("spare2")
	lu.assertEquals({ ok2, how2 }, { true, nil })
	lu.assertNotEquals(core.netns_id("spare2"), id)
	-- it works as a namespace: a link made in it is seen there only
	H.must("ip -n spare1 link set lo up")
	lu.assertEquals(H.ip("-n spare1 link")[1].operstate, "UNKNOWN")
	lu.assertEquals(H.ip("-n spare2 link")[1].operstate, "DOWN")
	-- nothing held once it is bound
	lu.assertEquals(fd_count(), fds)
end

function TestNetnsSpare:test_stale_or_foreign_spare_is_not_used()
	-- stale (ttl 0): dropped, and the add makes its own
	local _, stale = core.netns_prepare(0)
	local ok, how = core.netns_add("spare3")
	lu.assertEquals({ ok, how }, { true, nil })
	lu.assertNotEquals(core.netns_id("spare3"), stale)
	-- made from another namespace: kept for an add from its own
	local _, id = core.netns_prepare()
	local ok4, how4 = core.netns_run("spare3", core.netns_add, "spare4")
	lu.assertEquals({ ok4, how4 }, { true, nil })
	lu.assertNotEquals(core.netns_id("spare4"), id)
	local ok5, how5 = core.netns_add("spare5")
	lu.assertEquals({ ok5, how5 }, { true, "spare" })
	lu.assertEquals(core.netns_id("spare5"), id)
	-- dropped: none left to take
	core.netns_prepare()
	lu.assertEquals({ core.netns_prepare(false) }, { true })
	local ok6, how6 = core.netns_add("spare6")
	lu.assertEquals({ ok6, how6 }, { true, nil })
end

function TestNetnsSpare:test_a_refused_add_keeps_the_spare()
	local _, id = core.netns_prepare()
	assert(core.netns_add("spare7"))                 -- takes it
	local _, id2 = core.netns_prepare()
	lu.assertNotEquals(id2, id)
	-- a bad name and a taken name fail before the spare is touched
	lu.assertNil(core.netns_add("-bad"))
	local ok, _, err = core.netns_add("spare7")
	lu.assertNil(ok)
	lu.assertEquals(err, E.EEXIST)
	local ok8, how8 = core.netns_add("spare8")
	lu.assertEquals({ ok8, how8 }, { true, "spare" })
	lu.assertEquals(core.netns_id("spare8"), id2)
end

function TestNetnsSpare:test_a_spare_that_went_unused_is_replaced_on_demand()
	-- one that went stale unused is dropped and not made again...
	assert(core.netns_add("spare9"))            -- (a namespace was wanted)
	local ok, id = core.netns_prepare(0)
	lu.assertTrue(ok)
	lu.assertNotNil(id)
	local ok2, id2 = core.netns_prepare(0)
	lu.assertEquals({ ok2, id2 }, { true, nil })
	lu.assertEquals({ core.netns_prepare() }, { true })
	-- ...until a netns_add had to make its own namespace
	local ok3, how = core.netns_add("spare10")
	lu.assertEquals({ ok3, how }, { true, nil })
	local _, id3 = core.netns_prepare()
	lu.assertNotNil(id3)
	lu.assertNotEquals(id3, id)
	lu.assertEquals(select(2, core.netns_add("spare11")), "spare")
	lu.assertEquals(core.netns_id("spare11"), id3)
end

function TestNetnsSpare:test_bad_ttl_raises()
	lu.assertErrorMsgContains("ttl must be >= 0", core.netns_prepare, -1)
	lu.assertErrorMsgContains("number expected", core.netns_prepare, "x")
end

TestNetnsRun = {}

function TestNetnsRun:setUp()
	H.netns_add("nsrun")
	self.outer = core.netns_id()
end

function TestNetnsRun:tearDown()
	H.netns_del("nsrun")
	-- whatever a test did, we are back where we started
	lu.assertEquals(core.netns_id(), self.outer)
end

function TestNetnsRun:test_switches_and_returns_results()
	local r = table.pack(core.netns_run("nsrun", function(a, b)
		return core.netns_id(), a + b, nil, "x"
	end, 1, 2))
	lu.assertEquals(r.n, 4)
	lu.assertEquals(r[1], core.netns_id("nsrun"))
	lu.assertNotEquals(r[1], self.outer)
	lu.assertEquals(r[2], 3)
	lu.assertNil(r[3])
	lu.assertEquals(r[4], "x")
	lu.assertEquals(core.netns_id(), self.outer)
	lu.assertEquals(select("#", core.netns_run("nsrun", function() end)), 0)
end

function TestNetnsRun:test_process_started_inside_lands_inside()
	local before = H.snapshot()
	local ok = core.netns_run("nsrun", function()
		return os.execute("ip link add nr0 type veth peer name nr1")
	end)
	lu.assertTrue(ok)
	local names = {}
	for _, l in ipairs(H.ip("-n nsrun link")) do names[#names + 1] = l.ifname end
	table.sort(names)
	lu.assertEquals(names, { "lo", "nr0", "nr1" })
	lu.assertNil(H.iplink("nr0"))
	lu.assertEquals(H.snapshot(), before)
end

function TestNetnsRun:test_error_propagates_and_returns()
	local ok, err = pcall(core.netns_run, "nsrun", function()
		lu.assertEquals(core.netns_id(), core.netns_id("nsrun"))
		error("boom inside")
	end)
	lu.assertFalse(ok)
	lu.assertStrContains(err, "boom inside")
	lu.assertEquals(core.netns_id(), self.outer)
	-- the error value itself is raised again, unchanged
	local e = { code = 7 }
	local ok2, err2 = pcall(core.netns_run, "nsrun", function() error(e) end)
	lu.assertFalse(ok2)
	lu.assertIs(err2, e)
	lu.assertEquals(core.netns_id(), self.outer)
end

function TestNetnsRun:test_yield_inside_is_refused_and_returns()
	local co = coroutine.wrap(function()
		return pcall(core.netns_run, "nsrun", function() coroutine.yield(1) end)
	end)
	local ok, err = co()
	lu.assertFalse(ok)
	lu.assertStrContains(err, "yield")
	lu.assertEquals(core.netns_id(), self.outer)
end

function TestNetnsRun:test_namespace_forms()
	local id = core.netns_id("nsrun")
	local get = function() return core.netns_id() end
	lu.assertEquals(core.netns_run("/run/netns/nsrun", get), id)
	local h <close> = assert(core.open("nsrun"))
	lu.assertEquals(core.netns_run(h, get), id)
	lu.assertEquals(core.netns_run(nil, get), self.outer)
	local pid = assert(io.open("/proc/self/stat")):read("n")
	lu.assertEquals(core.netns_run(pid, get), self.outer)
end

function TestNetnsRun:test_nested()
	H.netns_add("nsrun2")
	local a, b, back = core.netns_run("nsrun", function()
		local inner = core.netns_run("nsrun2", function() return core.netns_id() end)
		return core.netns_id(), inner, core.netns_id()
	end)
	lu.assertEquals(a, core.netns_id("nsrun"))
	lu.assertEquals(b, core.netns_id("nsrun2"))
	lu.assertEquals(back, a)
	H.netns_del("nsrun2")
end

function TestNetnsRun:test_handle_opened_inside_is_bound_inside()
	local ifname = core.netns_run("nsrun", function()
		local h <close> = assert(core.open())
		return core.netns_id(h)
	end)
	lu.assertEquals(ifname, core.netns_id("nsrun"))
end

function TestNetnsRun:test_missing_namespace_enoent()
	local called = false
	local ok, msg, err = core.netns_run("nsnone", function() called = true end)
	lu.assertNil(ok)
	lu.assertStrContains(msg, "nsnone")
	lu.assertEquals(err, E.ENOENT)
	lu.assertFalse(called)
	local _, _, err2 = core.netns_run("bad/../name", function() called = true end)
	lu.assertEquals(err2, E.ENOENT)
	local _, _, err3 = core.netns_run("..", function() called = true end)
	lu.assertEquals(err3, E.EINVAL)
	lu.assertFalse(called)
end

function TestNetnsRun:test_no_fd_leak_1000()
	local h <close> = assert(core.open("nsrun"))
	collectgarbage()
	local before = fd_count()
	for i = 1, 1000 do
		if i % 4 == 0 then
			core.netns_run(h, function() return i end)
		elseif i % 4 == 1 then
			pcall(core.netns_run, "nsrun", error, "x")
		elseif i % 4 == 2 then
			core.netns_run("nsnone", print)
		else
			core.netns_run("nsrun", function() return core.netns_id() end)
		end
	end
	collectgarbage()
	lu.assertEquals(fd_count(), before)
end
