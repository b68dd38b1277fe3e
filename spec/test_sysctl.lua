-- spec/test_sysctl.lua: sysctls under /proc/sys/net and the bridge ioctls
-- (csrc/sysctl.c). Everything happens in the run's private namespace or in
-- named namespaces made under its private /run/netns.
local lu = require "luaunit"
local H = require "helper"
local core = require "brisk.core"
local E = core.errno

local FWD = "net/ipv4/ip_forward"

--- The value as a process inside `ns` reads it (an independent witness).
local function witness(ns, key)
	return H.must("ip netns exec " .. ns .. " sysctl -n " .. key):match("^%s*(.-)%s*$")
end

--- The value of /proc/sys/<path> as read by a `cat` started in this namespace.
local function cat(path)
	return H.must("cat /proc/sys/" .. path):match("^%s*(.-)%s*$")
end

-- This process's open descriptors (read here: a child's /proc/self would
-- be the child's, which inherits none of brisk's close-on-exec ones).
local function fd_count()
	return #assert(core.listdir("/proc/self/fd"))
end

local function names(links)
	local t = {}
	for _, l in ipairs(links) do t[#t + 1] = l.ifname end
	table.sort(t)
	return t
end

TestSysctl = {}

function TestSysctl:test_functions_exported()
	lu.assertIsFunction(core.sysctl_get)
	lu.assertIsFunction(core.sysctl_set)
	local h <close> = assert(core.open())
	for _, m in ipairs { "sysctl_get", "sysctl_set", "ioctl_bridge_add",
			     "ioctl_bridge_del", "ioctl_bridge_addif" } do
		lu.assertIsFunction(h[m], m)
	end
end

function TestSysctl:test_get_set_round_trip_here()
	local orig = assert(core.sysctl_get(FWD))
	lu.assertEquals(orig, cat(FWD))
	local new = orig == "1" and "0" or "1"
	lu.assertEquals(core.sysctl_set(FWD, new), orig)       -- the old value
	lu.assertEquals(core.sysctl_get(FWD), new)
	lu.assertEquals(cat(FWD), new)
	lu.assertEquals(core.sysctl_get("net.ipv4.ip_forward"), new)   -- dotted form
	lu.assertEquals(core.sysctl_set("net.ipv4.ip_forward", tonumber(orig)), new)
	lu.assertEquals(cat(FWD), orig)
end

function TestSysctl:test_value_is_trimmed_and_multi_field_round_trips()
	local key = "net/ipv4/ip_local_port_range"
	local orig = assert(core.sysctl_get(key))
	lu.assertStrMatches(orig, "%d+%s+%d+")      -- no trailing newline
	lu.assertEquals(core.sysctl_set(key, "40000 50000"), orig)
	lu.assertStrMatches(core.sysctl_get(key), "40000%s+50000")
	lu.assertStrMatches(core.sysctl_set(key, orig), "40000%s+50000")
	lu.assertEquals(core.sysctl_get(key), orig)
end

function TestSysctl:test_set_in_named_namespace()
	H.netns_add("nssys")
	local here = core.sysctl_get(FWD)
	lu.assertEquals(witness("nssys", "net.ipv4.ip_forward"), "0")
	lu.assertEquals(core.sysctl_set(FWD, "1", "nssys"), "0")
	lu.assertEquals(witness("nssys", "net.ipv4.ip_forward"), "1")
	lu.assertEquals(core.sysctl_get(FWD, "nssys"), "1")
	lu.assertEquals(core.sysctl_get(FWD, "/run/netns/nssys"), "1")
	lu.assertEquals(core.sysctl_get(FWD), here)            -- ours untouched
	lu.assertEquals(cat(FWD), here)
	-- and through a handle bound to it
	local h <close> = assert(core.open("nssys"))
	lu.assertEquals(h:sysctl_get(FWD), "1")
	lu.assertEquals(core.sysctl_get(FWD, h), "1")
	lu.assertEquals(h:sysctl_set("net.ipv4.ip_forward", 0), "1")
	lu.assertEquals(witness("nssys", "net.ipv4.ip_forward"), "0")
	lu.assertEquals(core.sysctl_get(FWD), here)
	H.netns_del("nssys")
end

function TestSysctl:test_interface_name_with_dots()
	H.netns_add("nsdot")
	H.must("ip -n nsdot link add v.1 type veth peer name v.2")
	local key = "net/ipv6/conf/v.1/accept_ra"
	local orig = assert(core.sysctl_get(key, "nsdot"))
	lu.assertEquals(orig, witness("nsdot", "net/ipv6/conf/v.1/accept_ra"))
	local new = orig == "0" and "2" or "0"
	lu.assertEquals(core.sysctl_set(key, new, "nsdot"), orig)
	lu.assertEquals(witness("nsdot", "net/ipv6/conf/v.1/accept_ra"), new)
	-- the key exists only in nsdot
	local _, _, err = core.sysctl_get(key)
	lu.assertEquals(err, E.ENOENT)
	H.netns_del("nsdot")
end

function TestSysctl:test_missing_key_enoent()
	for _, key in ipairs { "net/ipv4/no_such_key", "net/ipv6/conf/nodev0/accept_ra",
			       "net.ipv4.no_such_key" } do
		local ok, msg, err = core.sysctl_set(key, "1")
		lu.assertNil(ok)
		lu.assertStrContains(msg, "set sysctl net/")
		lu.assertEquals(err, E.ENOENT, key)
		local ok2, _, err2 = core.sysctl_get(key)
		lu.assertNil(ok2)
		lu.assertEquals(err2, E.ENOENT, key)
	end
	local _, msg = core.sysctl_get("net.ipv4.no_such_key")
	lu.assertStrContains(msg, "net/ipv4/no_such_key")     -- canonical form in messages
end

function TestSysctl:test_refused_value_changes_nothing()
	local orig = core.sysctl_get(FWD)
	local ok, msg, err = core.sysctl_set(FWD, "yes please")
	lu.assertNil(ok)
	lu.assertStrContains(msg, FWD)
	lu.assertEquals(err, E.EINVAL)
	lu.assertEquals(cat(FWD), orig)
end

function TestSysctl:test_read_only_key_eacces()
	-- 0444 even for root: the set fails on its one read-write open
	local key = "net/ipv4/tcp_available_congestion_control"
	local orig = cat(key)
	lu.assertEquals(core.sysctl_get(key), orig)
	local ok, msg, err = core.sysctl_set(key, "reno")
	lu.assertNil(ok)
	lu.assertStrContains(msg, "set sysctl " .. key)
	lu.assertEquals(err, E.EACCES)
	lu.assertEquals(cat(key), orig)
end

function TestSysctl:test_missing_namespace_enoent()
	local orig = cat(FWD)
	local ok, msg, err = core.sysctl_set(FWD, "1", "nsnone")
	lu.assertNil(ok)
	lu.assertStrContains(msg, "nsnone")
	lu.assertEquals(err, E.ENOENT)
	local _, _, err2 = core.sysctl_get(FWD, "nsnone")
	lu.assertEquals(err2, E.ENOENT)
	lu.assertEquals(cat(FWD), orig)
end

function TestSysctl:test_bad_paths_raise()
	for _, p in ipairs { "kernel/hostname", "kernel.hostname", "/proc/sys/net/ipv4/ip_forward",
			     "net/../kernel/hostname", "net/ipv4/../../kernel/hostname",
			     "net/./ipv4/ip_forward", "net", "net/", "net//ipv4/ip_forward",
			     "net.ipv4..ip_forward", "", "netx/ipv4", "net/ipv4/ip_forward\0x",
			     string.rep("net/", 2000) } do
		lu.assertErrorMsgContains("bad argument #1", core.sysctl_get, p)
		lu.assertErrorMsgContains("bad argument #1", core.sysctl_set, p, "1")
	end
	lu.assertErrorMsgContains("bad argument #1", core.sysctl_get, nil)
	lu.assertErrorMsgContains("bad argument #1", core.sysctl_get, 42)
	lu.assertErrorMsgContains("bad argument #2", core.sysctl_set, FWD)
	lu.assertErrorMsgContains("bad argument #2", core.sysctl_set, FWD, true)
	lu.assertErrorMsgContains("bad argument #2", core.sysctl_get, FWD, true)
	lu.assertErrorMsgContains("bad argument #3", core.sysctl_set, FWD, "1", {})
	local h = assert(core.open())
	lu.assertErrorMsgContains("bad argument #1", function() h:sysctl_get("kernel/hostname") end)
	lu.assertErrorMsgContains("bad argument #2", function() h:sysctl_set(FWD, {}) end)
	h:close()
	lu.assertErrorMsgContains("closed netlink handle", h.sysctl_get, h, FWD)
	lu.assertErrorMsgContains("closed netlink handle", core.sysctl_get, FWD, h)
end

-- Without CAP_SYS_ADMIN brisk cannot make a procfs of its own (fsopen
-- fails): sysctls are read and written through the usual /proc/sys all the
-- same, in its own namespace (entering another needs that capability too).
function TestSysctl:test_without_cap_sys_admin_the_usual_proc()
	if not H.sh("command -v setpriv") then return lu.skip("setpriv (util-linux) is missing") end
	local orig = cat(FWD)
	local new = orig == "0" and "1" or "0"
	local out = H.must("setpriv --inh-caps=-sys_admin --bounding-set=-sys_admin -- " .. H.lua_cmd(
		"local core = require 'brisk.core'; io.write(assert(core.sysctl_set('" .. FWD .. "', '" .. new ..
		"')), ' ', assert(core.sysctl_get('" .. FWD .. "')), ' ', " ..
		"tostring(select(3, core.sysctl_get('net/ipv4/no_such_key'))))"))
	lu.assertEquals(out, orig .. " " .. new .. " " .. E.ENOENT)
	lu.assertEquals(cat(FWD), new)
	assert(core.sysctl_set(FWD, orig))
	lu.assertEquals(cat(FWD), orig)
end

-- A /proc/sys mounted read-only (systemd's ProtectKernelTunables=, a
-- container's runtime) stays so for brisk: it does not write through a
-- procfs of its own, which would not be.
function TestSysctl:test_read_only_proc_sys_is_respected()
	local orig = cat(FWD)
	local new = orig == "0" and "1" or "0"
	local ok, out = H.sh("unshare -m --propagation private sh -c " .. H.q(
		"mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && " .. H.lua_cmd(
		"local core = require 'brisk.core'; local ok, msg, err = core.sysctl_set('" .. FWD .. "', '" .. new ..
		"'); io.write(tostring(ok), ' ', tostring(err), ' ', msg, ' ', assert(core.sysctl_get('" .. FWD .. "')))")))
	lu.assertTrue(ok, out)
	lu.assertEquals(out, "nil " .. E.EROFS .. " set sysctl " .. FWD .. ": Read-only file system " .. orig)
	lu.assertEquals(cat(FWD), orig)
end

function TestSysctl:test_no_fd_leak()
	H.netns_add("nsleak")
	local h <close> = assert(core.open("nsleak"))
	-- (brisk's own procfs instance, kept between opens, is made first)
	assert(core.sysctl_get(FWD))
	collectgarbage()
	local before = fd_count()
	for i = 1, 300 do
		assert(core.sysctl_set(FWD, tostring(i % 2), "nsleak"))
		assert(h:sysctl_get(FWD))
		core.sysctl_set("net/ipv4/no_such_key", "1", "nsleak")
		core.sysctl_set(FWD, "bad", h)
		core.sysctl_get(FWD, "nsnone")
	end
	collectgarbage()
	lu.assertEquals(fd_count(), before)
	H.netns_del("nsleak")
end

TestIoctlBridge = {}

function TestIoctlBridge:setUp()
	self.h = assert(core.open())
end

function TestIoctlBridge:tearDown()
	self.h:close()
	H.reset()
end

function TestIoctlBridge:test_add_del()
	lu.assertTrue(self.h:ioctl_bridge_add("brio0"))
	local l = H.iplink("brio0")
	lu.assertNotNil(l)
	lu.assertEquals(l.linkinfo.info_kind, "bridge")
	lu.assertTrue(self.h:ioctl_bridge_del("brio0"))
	lu.assertNil(H.iplink("brio0"))
end

function TestIoctlBridge:test_add_in_handle_namespace()
	H.netns_add("nsbr")
	local before = H.snapshot()
	local h <close> = assert(core.open("nsbr"))
	lu.assertTrue(h:ioctl_bridge_add("brio1"))
	local l = H.iplink("brio1", "nsbr")
	lu.assertNotNil(l)
	lu.assertEquals(l.linkinfo.info_kind, "bridge")
	lu.assertEquals(H.snapshot(), before)             -- not here
	lu.assertTrue(h:ioctl_bridge_del("brio1"))
	lu.assertNil(H.iplink("brio1", "nsbr"))
	H.netns_del("nsbr")
end

function TestIoctlBridge:test_add_duplicate_eexist()
	assert(self.h:ioctl_bridge_add("brio2"))
	H.must("ip link add vio0 type veth peer name vio1")
	local before = H.snapshot()
	for _, name in ipairs { "brio2", "vio0" } do
		local ok, msg, err = self.h:ioctl_bridge_add(name)
		lu.assertNil(ok)
		lu.assertStrContains(msg, "ioctl add bridge " .. name)
		lu.assertEquals(err, E.EEXIST)
	end
	lu.assertEquals(H.snapshot(), before)
end

function TestIoctlBridge:test_bad_names()
	local before = H.snapshot()
	local cases = { [string.rep("b", 16)] = E.ENAMETOOLONG, [""] = E.EINVAL,
			["a/b"] = E.EINVAL, ["a b"] = E.EINVAL, [".."] = E.EINVAL }
	for name, want in pairs(cases) do
		for _, m in ipairs { "ioctl_bridge_add", "ioctl_bridge_del" } do
			local ok, msg, err = self.h[m](self.h, name)
			lu.assertNil(ok)
			lu.assertIsString(msg)
			lu.assertEquals(err, want, m .. " '" .. name .. "'")
		end
		local ok, _, err = self.h:ioctl_bridge_addif(name, "lo")
		lu.assertNil(ok)
		lu.assertEquals(err, want)
	end
	lu.assertTrue(self.h:ioctl_bridge_add(string.rep("b", 15)))   -- 15 bytes is fine
	lu.assertNotNil(H.iplink(string.rep("b", 15)))
	H.must("ip link del " .. string.rep("b", 15))
	lu.assertEquals(H.snapshot(), before)
end

function TestIoctlBridge:test_del_errors()
	H.must("ip link add vio2 type veth peer name vio3")
	assert(self.h:ioctl_bridge_add("brio3"))
	H.must("ip link set brio3 up")
	local before = H.snapshot()
	local ok, msg, err = self.h:ioctl_bridge_del("brio9")
	lu.assertNil(ok)
	lu.assertStrContains(msg, "brio9")
	lu.assertEquals(err, E.ENODEV)
	local _, _, err2 = self.h:ioctl_bridge_del("vio2")           -- no bridge
	lu.assertEquals(err2, E.EPERM)
	local _, _, err3 = self.h:ioctl_bridge_del("brio3")          -- up
	lu.assertEquals(err3, E.EBUSY)
	lu.assertEquals(H.snapshot(), before)
end

function TestIoctlBridge:test_addif()
	assert(self.h:ioctl_bridge_add("brio4"))
	H.must("ip link add vio4 type veth peer name vio5")
	lu.assertTrue(self.h:ioctl_bridge_addif("brio4", "vio4"))
	lu.assertEquals(H.iplink("vio4").master, "brio4")
	lu.assertEquals(H.bridge("link show dev vio4")[1].master, "brio4")
	-- ifindexes and link tables work as well
	local bri = H.iplink("brio4").ifindex
	local v5 = H.iplink("vio5").ifindex
	lu.assertTrue(self.h:ioctl_bridge_addif(bri, { ifindex = v5 }))
	lu.assertEquals(H.iplink("vio5").master, "brio4")
end

function TestIoctlBridge:test_addif_in_handle_namespace()
	H.netns_add("nsbr2")
	H.must("ip -n nsbr2 link add vio6 type veth peer name vio7")
	local h <close> = assert(core.open("nsbr2"))
	assert(h:ioctl_bridge_add("brio5"))
	lu.assertTrue(h:ioctl_bridge_addif("brio5", "vio6"))
	lu.assertEquals(H.iplink("vio6", "nsbr2").master, "brio5")
	H.netns_del("nsbr2")
end

function TestIoctlBridge:test_addif_errors()
	assert(self.h:ioctl_bridge_add("brio6"))
	assert(self.h:ioctl_bridge_add("brio7"))
	H.must("ip link add vio8 type veth peer name vio9")
	assert(self.h:ioctl_bridge_addif("brio7", "vio9"))
	local before = H.snapshot()
	local ok, msg, err = self.h:ioctl_bridge_addif("brio8", "vio8")   -- no bridge by that name
	lu.assertNil(ok)
	lu.assertStrContains(msg, "brio8")
	lu.assertEquals(err, E.ENODEV)
	ok, msg, err = self.h:ioctl_bridge_addif("brio6", "vio10")         -- no such link
	lu.assertNil(ok)
	lu.assertStrContains(msg, "vio10")
	lu.assertEquals(err, E.ENODEV)
	_, _, err = self.h:ioctl_bridge_addif(99999, "vio8")
	lu.assertEquals(err, E.ENODEV)
	_, _, err = self.h:ioctl_bridge_addif("brio6", string.rep("v", 16))
	lu.assertEquals(err, E.ENAMETOOLONG)
	_, _, err = self.h:ioctl_bridge_addif("vio9", "vio8")              -- not a bridge
	lu.assertEquals(err, E.EOPNOTSUPP)
	_, _, err = self.h:ioctl_bridge_addif("brio6", "vio9")             -- has a master already
	lu.assertEquals(err, E.EBUSY)
	lu.assertEquals(H.snapshot(), before)
end

function TestIoctlBridge:test_bad_args_raise()
	local h = self.h
	lu.assertErrorMsgContains("bad argument #1", function() h:ioctl_bridge_add(nil) end)
	lu.assertErrorMsgContains("bad argument #1", function() h:ioctl_bridge_add(5) end)
	lu.assertErrorMsgContains("bad argument #1", function() h:ioctl_bridge_del({}) end)
	lu.assertError(h.ioctl_bridge_addif, h, true, "lo")
	lu.assertError(h.ioctl_bridge_addif, h, "lo")
	lu.assertError(h.ioctl_bridge_addif, h, "lo", -1)
	lu.assertError(h.ioctl_bridge_addif, h, {}, "lo")
	lu.assertErrorMsgContains("brisk.nl expected", h.ioctl_bridge_add, "x", "y")
	local h2 = assert(core.open())
	h2:close()
	lu.assertErrorMsgContains("closed netlink handle", h2.ioctl_bridge_add, h2, "brio9")
end

function TestIoctlBridge:test_no_fd_leak()
	H.netns_add("nsbr3")
	local h <close> = assert(core.open("nsbr3"))
	collectgarbage()
	local before = fd_count()
	for _ = 1, 200 do
		assert(h:ioctl_bridge_add("brio9"))
		h:ioctl_bridge_add("brio9")
		h:ioctl_bridge_addif("brio9", "lo")
		assert(h:ioctl_bridge_del("brio9"))
		h:ioctl_bridge_del("brio9")
	end
	collectgarbage()
	lu.assertEquals(fd_count(), before)
	lu.assertEquals(names(H.ip("-n nsbr3 link")), { "lo" })
	H.netns_del("nsbr3")
end
