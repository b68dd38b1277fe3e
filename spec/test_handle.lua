-- spec/test_handle.lua: brisk.handle's journal against the kernel: which
-- changes are covered by the link_add they follow (no read before them,
-- no undo of their own), and that undoing brings the links, their flags
-- and their addresses back as they were. Everything happens in the run's
-- private namespace or in namespaces made under its private /run/netns.
local lu = require "luaunit"
local H = require "helper"
local core = require "brisk.core"
local handle = require "brisk.handle"

-- A real handle whose link_get calls are counted.
local function counting(h)
	local n = { link_get = 0 }
	local proxy = setmetatable({}, { __index = function(_, k)
		local f = h[k]
		if type(f) ~= "function" then return f end
		return function(_, ...)
			if n[k] then n[k] = n[k] + 1 end
			return f(h, ...)
		end
	end })
	return proxy, n
end

local function exists(name, ns)
	return H.sh("ip " .. (ns and ("-n " .. ns .. " ") or "") .. "link show dev " .. name .. " >/dev/null 2>&1") == true
end

TestJournal = {}

function TestJournal:setUp()
	self.h = assert(core.open())
	H.sh("ip link del jd0 2>/dev/null; ip link del jd1 2>/dev/null; ip link del jx0 2>/dev/null")
end

function TestJournal:tearDown()
	H.sh("ip link del jd0 2>/dev/null; ip link del jd1 2>/dev/null; ip link del jx0 2>/dev/null")
	H.netns_del("jns")
	self.h:close()
end

function TestJournal:test_a_change_to_a_link_it_made_is_covered()
	local real, n = counting(self.h)
	local j = handle.journal(real)
	assert(j:link_add{ ifname = "jd0", kind = "bridge" })
	assert(j:link_set{ dev = "jd0", up = true })
	assert(j:link_set{ dev = "jd0", mtu = 1400 })
	lu.assertEquals(n.link_get, 0)                 -- no read for an undo
	lu.assertNil(j.log[1].covered)
	lu.assertTrue(j.log[2].covered)
	lu.assertTrue(j.log[3].covered)
	lu.assertNil(j.log[2].undo)
	lu.assertTrue(H.has(H.iplink("jd0").flags, "UP"))
	lu.assertEquals(H.iplink("jd0").mtu, 1400)
	assert(handle.undo(self.h, j.log))             -- the link_del takes it all
	lu.assertFalse(exists("jd0"))
end

function TestJournal:test_a_rename_is_not_covered_and_is_undone_first()
	local j = handle.journal(self.h)
	assert(j:link_add{ ifname = "jd0", kind = "bridge" })
	assert(j:link_set{ dev = "jd0", ifname = "jd1" })
	lu.assertNil(j.log[2].covered)
	lu.assertEquals(j.log[2].undo.args[1].ifname, "jd0")
	-- a change under the new name reads the link, as for any other
	assert(j:link_set{ dev = "jd1", up = true })
	lu.assertNil(j.log[3].covered)
	lu.assertTrue(exists("jd1"))
	assert(handle.undo(self.h, j.log))
	lu.assertFalse(exists("jd0"))
	lu.assertFalse(exists("jd1"))
end

function TestJournal:test_a_link_it_did_not_make_is_restored()
	H.must("ip link add jx0 type bridge")
	local before = H.iplink("jx0")
	local real, n = counting(self.h)
	local j = handle.journal(real)
	assert(j:link_set{ dev = "jx0", up = true, mtu = 1300 })
	lu.assertEquals(n.link_get, 1)
	lu.assertNil(j.log[1].covered)
	lu.assertEquals(j.log[1].undo.op, "link_set")
	-- an address someone adds meanwhile is not the undo's to take
	H.must("ip addr add 192.0.2.1/24 dev jx0")
	assert(handle.undo(self.h, j.log))
	local after = H.iplink("jx0")
	lu.assertEquals(after.flags, before.flags)
	lu.assertEquals(after.mtu, before.mtu)
	lu.assertStrContains(H.must("ip -4 -o addr show dev jx0"), "192.0.2.1/24")
end

function TestJournal:test_lo_up_then_undone_leaves_no_kernel_address()
	-- lo gets 127.0.0.1/8 when it first goes up, and keeps it when it
	-- goes down: the undo drops it
	H.must("ip netns add jns")                     -- lo down, as the kernel makes it
	lu.assertEquals(H.must("ip -n jns -4 -o addr show dev lo"), "")
	local hs <close> = assert(core.open("jns"))
	local j = handle.journal(hs)
	assert(j:link_set{ dev = "lo", up = true })
	lu.assertEquals(j.log[1].undo.op, "link_set_back")
	lu.assertStrContains(H.must("ip -n jns -4 -o addr show dev lo"), "127.0.0.1/8")
	assert(handle.undo(hs, j.log))
	lu.assertFalse(H.has(H.iplink("lo", "jns").flags, "UP"))
	lu.assertEquals(H.must("ip -n jns -4 -o addr show dev lo"), "")
	lu.assertEquals(H.must("ip -n jns -6 -o addr show dev lo"), "")
end

function TestJournal:test_fresh_and_made()
	H.netns_add("jns")
	local hs <close> = assert(core.open("jns"))
	local real, n = counting(hs)
	-- a namespace the caller made and deletes whole: everything is covered
	local j = handle.journal(real, nil, { fresh = true })
	assert(j:link_set{ dev = "lo", up = true })
	assert(j:sysctl_set("net/ipv4/conf/lo/forwarding", "1"))
	lu.assertEquals(n.link_get, 0)
	for _, e in ipairs(j.log) do lu.assertTrue(e.covered, e.op) end
	assert(handle.undo(hs, j.log))                 -- leaves them: the namespace goes
	lu.assertTrue(H.has(H.iplink("lo", "jns").flags, "UP"))
	-- a link made by another journal (a veth peer) is covered by name
	local host = handle.journal(self.h)
	assert(host:link_add{ ifname = "jd0", kind = "veth", peer = { ifname = "jp0", netns = "jns" } })
	local side = handle.journal(real, nil, { made = { "jp0" } })
	assert(side:link_set{ dev = "jp0", up = true })
	lu.assertTrue(side.log[1].covered)
	lu.assertEquals(n.link_get, 0)
	assert(handle.undo(hs, side.log))
	assert(handle.undo(self.h, host.log))
	lu.assertFalse(exists("jd0"))
	lu.assertFalse(exists("jp0", "jns"))
end

function TestJournal:test_a_log_given_and_no_options()
	-- the options are optional; entries go to the log given
	local log = {}
	local j = handle.journal(self.h, log, nil)
	assert(j:link_add{ ifname = "jd0", kind = "bridge" })
	lu.assertIs(j.log, log)
	lu.assertEquals(#log, 1)
	assert(handle.undo(self.h, log))
	lu.assertFalse(exists("jd0"))
end
