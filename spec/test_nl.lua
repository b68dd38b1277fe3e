-- spec/test_nl.lua: netlink handles (csrc/nl.c).
local lu = require "luaunit"
local H = require "helper"
local core = require "brisk.core"

TestNl = {}

function TestNl:test_module_loads_without_globals()
	local before = H.globals_snapshot()
	package.loaded["brisk.core"] = nil
	local core = require "brisk.core"
	lu.assertEquals(H.new_globals(before), {})
	lu.assertIsFunction(core.open)
end

function TestNl:test_open_close_twice_harmless()
	local core = require "brisk.core"
	local h = assert(core.open())
	lu.assertStrContains(tostring(h), "brisk.nl")
	lu.assertTrue(h:close())
	lu.assertTrue(h:close())
	lu.assertStrContains(tostring(h), "closed")
	lu.assertErrorMsgContains("closed netlink handle", function() h:netns_fd() end)
end

function TestNl:test_close_scope()
	local core = require "brisk.core"
	local saved
	do
		local h <close> = assert(core.open())
		saved = h
		lu.assertIsNumber(h:netns_fd())
	end
	lu.assertStrContains(tostring(saved), "closed")
end

-- This process's open descriptors (read here: a child's /proc/self would
-- be the child's, which inherits none of brisk's close-on-exec ones).
local function fd_count()
	return #assert(core.listdir("/proc/self/fd"))
end

function TestNl:test_no_fd_leak_10000()
	local core = require "brisk.core"
	collectgarbage()
	local before = fd_count()
	for _ = 1, 10000 do
		local h = assert(core.open())
		h:close()
	end
	for _ = 1, 1000 do core.open() end   -- left to __gc
	collectgarbage(); collectgarbage()
	lu.assertEquals(fd_count(), before)
end

function TestNl:test_open_missing_netns()
	local core = require "brisk.core"
	local h, msg, err = core.open("brisk-no-such-ns")
	lu.assertNil(h)
	lu.assertStrContains(msg, "brisk-no-such-ns")
	lu.assertEquals(err, core.errno.ENOENT)
end

function TestNl:test_open_named_and_pid()
	local core = require "brisk.core"
	H.netns_add("nltest1")
	local h = assert(core.open("nltest1"))
	h:close()
	local h2 = assert(core.open("/run/netns/nltest1"))
	h2:close()
	local pid = assert(io.open("/proc/self/stat")):read("n")
	local h3 = assert(core.open(pid))
	h3:close()
	H.netns_del("nltest1")
end

function TestNl:test_open_bad_args()
	local core = require "brisk.core"
	lu.assertErrorMsgContains("bad argument #1", function() core.open(true) end)
	lu.assertErrorMsgContains("bad argument #1", function() core.open(-1) end)
	lu.assertErrorMsgContains("bad argument #1", function() core.open("") end)
end

function TestNl:test_errno_and_kernel_version()
	local core = require "brisk.core"
	lu.assertEquals(core.errno.EEXIST, 17)
	lu.assertEquals(core.errno.ENODEV, 19)
	local maj, min, _, rel = core.kernel_version()
	lu.assertTrue(maj >= 5)
	lu.assertIsNumber(min)
	lu.assertStrContains(rel, tostring(maj))
end

function TestNl:test_now_is_monotonic()
	local core = require "brisk.core"
	local a = core.now()
	H.sh("sleep 0.05")
	local b = core.now()
	lu.assertTrue(b - a >= 0.04 and b - a < 5, tostring(b - a))
end

function TestNl:test_strerror_and_bad_arguments()
	local core = require "brisk.core"
	lu.assertEquals(core.strerror(core.errno.EEXIST), "File exists")
	lu.assertErrorMsgContains("bad argument #1", core.strerror, "x")
	lu.assertErrorMsgContains("bad argument #1", core.syncfs, {})
	lu.assertErrorMsgContains("empty path", core.syncfs, "")
end

function TestNl:test_syncfs()
	local core = require "brisk.core"
	lu.assertTrue(core.syncfs("/tmp"))
	local ok, msg, err = core.syncfs("/nonexistent/brisk")
	lu.assertNil(ok)
	lu.assertStrContains(msg, "syncfs /nonexistent/brisk")
	lu.assertEquals(err, core.errno.ENOENT)
end
