-- spec/test_nft.lua: nft scripts through libnftables (csrc/nft.c).
local lu = require "luaunit"
local cjson = require "cjson"
local H = require "helper"
local core = require "brisk.core"

TestNft = {}

-- The nft CLI as an independent witness.
local function ruleset(ns)
	return H.must((ns and ("ip netns exec " .. ns .. " ") or "") .. "nft list ruleset")
end

local function tables_json(ns)
	local out = H.must((ns and ("ip netns exec " .. ns .. " ") or "") .. "nft -j list tables")
	local names = {}
	for _, o in ipairs(cjson.decode(out).nftables) do
		if o.table then names[#names + 1] = o.table.family .. " " .. o.table.name end
	end
	table.sort(names)
	return names
end

function TestNft:tearDown()
	H.sh("nft flush ruleset")
	H.reset()
end

function TestNft:test_available_opens_libnftables_and_changes_nothing()
	local before = ruleset()
	lu.assertEquals({ core.nft_available() }, { true })
	lu.assertEquals({ core.nft_available() }, { true })    -- once per process, then cached
	-- the library is in this process now (its maps), and no rule came of it
	lu.assertStrContains(H.slurp("/proc/self/maps"), "libnftables.so")
	lu.assertEquals(ruleset(), before)
end

function TestNft:test_add_table_and_list_json()
	lu.assertEquals(core.nft("add table inet t1\nadd chain inet t1 c { type filter hook input priority 0; }\n"), "")
	lu.assertEquals(tables_json(), { "inet t1" })
	local out = assert(core.nft("list table inet t1", nil, { json = true }))
	local doc = cjson.decode(out)
	local kinds = {}
	for _, o in ipairs(doc.nftables) do
		if o.table then kinds.table = o.table.name end
		if o.chain then kinds.chain = o.chain.name; kinds.hook = o.chain.hook end
	end
	lu.assertEquals(kinds, { table = "t1", chain = "c", hook = "input" })
	-- text output, with handles on request
	lu.assertStrContains(core.nft("list table inet t1"), "chain c {")
	lu.assertStrContains(core.nft("list table inet t1", nil, { handle = true }), "# handle")
	lu.assertEquals(core.nft("delete table inet t1"), "")
	lu.assertEquals(tables_json(), {})
end

function TestNft:test_echo_prints_what_was_added()
	assert(core.nft("add table ip t2\nadd chain ip t2 c"))
	local out = assert(core.nft("add rule ip t2 c ip saddr 10.0.0.0/8 accept", nil, { echo = true, handle = true }))
	lu.assertStrMatches(out, ".*ip saddr 10%.0%.0%.0/8 accept # handle %d+.*")
end

function TestNft:test_syntax_error_changes_nothing()
	assert(core.nft("add table inet keep\nadd chain inet keep c\nadd rule inet keep c accept"))
	local before = ruleset()
	local ok, msg, err = core.nft("add table inet t3\nadd chain inet t3 c\nadd rule inet t3 c counter frobnicate\n")
	lu.assertNil(ok)
	lu.assertStrMatches(msg, "^nft: line %d+:.*Error:.*")
	lu.assertStrContains(msg, "syntax error")
	-- the failing line is named and quoted (not the script's first line)
	lu.assertStrContains(msg, "line 3:")
	lu.assertStrContains(msg, "counter frobnicate")
	lu.assertEquals(err, core.errno.EINVAL)
	lu.assertEquals(ruleset(), before)
end

function TestNft:test_kernel_error_rolls_back_whole_batch()
	assert(core.nft("add table inet keep\nadd chain inet keep c"))
	local before = ruleset()
	-- valid commands first, then one the kernel rejects: nothing stays
	local ok, msg, err = core.nft("add table inet t4\nadd chain inet t4 c\nadd rule inet keep c accept\n" ..
		"add rule inet t4 nochain accept\n")
	lu.assertNil(ok)
	lu.assertStrContains(msg, "No such file or directory")
	lu.assertEquals(err, core.errno.ENOENT)
	lu.assertEquals(ruleset(), before)
	lu.assertEquals(tables_json(), { "inet keep" })
end

function TestNft:test_create_existing_is_eexist()
	assert(core.nft("add table inet t5"))
	local before = ruleset()
	local ok, msg, err = core.nft("add chain inet t5 c\ncreate table inet t5\n")
	lu.assertNil(ok)
	lu.assertStrContains(msg, "File exists")
	lu.assertEquals(err, core.errno.EEXIST)
	lu.assertEquals(ruleset(), before)
end

function TestNft:test_dry_run_commits_nothing()
	local before = ruleset()
	lu.assertEquals(core.nft("add table inet dry\nadd chain inet dry c", nil, { dry_run = true }), "")
	lu.assertEquals(ruleset(), before)
	local ok, _, err = core.nft("add table inet dry\nadd rule inet dry c bogus", nil, { dry_run = true })
	lu.assertNil(ok)
	lu.assertEquals(err, core.errno.EINVAL)
end

function TestNft:test_runs_inside_named_namespace_only()
	local ns = H.netns_add(H.name("nftns"))
	lu.assertEquals(core.nft("add table inet inside", ns), "")
	lu.assertStrContains(ruleset(ns), "table inet inside")
	lu.assertNotStrContains(ruleset(), "inside")
	-- the same namespace by path, by pid and by handle
	assert(core.nft("add table ip bypath", "/run/netns/" .. ns))
	local h <close> = assert(core.open(ns))
	assert(core.nft("add table ip byhandle", h))
	assert(h:nft("add table ip bymethod"))
	local p = io.popen("exec ip netns exec " .. ns .. " sh -c 'echo $$; exec sleep 5'")
	local pid = tonumber(p:read("l"))
	assert(core.nft("add table ip bypid", pid))
	os.execute("kill " .. pid)
	p:close()
	lu.assertEquals(tables_json(ns), { "inet inside", "ip byhandle", "ip bymethod", "ip bypath", "ip bypid" })
	lu.assertEquals(tables_json(), {})
	-- JSON output in the namespace; the caller is back in its own
	local out = assert(h:nft("list tables", { json = true }))
	lu.assertStrContains(out, '"inside"')
	lu.assertEquals(core.nft("list tables"), "")
end

function TestNft:test_missing_namespace()
	local before = ruleset()
	local ok, msg, err = core.nft("add table inet x", "brisk-no-such-ns")
	lu.assertNil(ok)
	lu.assertStrContains(msg, "brisk-no-such-ns")
	lu.assertEquals(err, core.errno.ENOENT)
	lu.assertEquals(ruleset(), before)
end

function TestNft:test_bad_arguments()
	lu.assertErrorMsgContains("bad argument #1", function() core.nft() end)
	lu.assertErrorMsgContains("bad argument #1", function() core.nft({}) end)
	lu.assertErrorMsgContains("NUL byte", function() core.nft("list\0ruleset") end)
	lu.assertErrorMsgContains("bad argument #2", function() core.nft("list ruleset", true) end)
	lu.assertErrorMsgContains("bad argument #2", function() core.nft("list ruleset", -3) end)
	lu.assertErrorMsgContains("bad argument #3", function() core.nft("list ruleset", nil, "json") end)
	lu.assertErrorMsgContains("unknown field 'jsno'", function() core.nft("list ruleset", nil, { jsno = true }) end)
	lu.assertErrorMsgContains("'json' must be a boolean", function() core.nft("list ruleset", nil, { json = 1 }) end)
	local h = assert(core.open())
	h:close()
	lu.assertErrorMsgContains("closed netlink handle", function() core.nft("list ruleset", h) end)
	lu.assertErrorMsgContains("closed netlink handle", function() h:nft("list ruleset") end)
	lu.assertEquals(tables_json(), {})
end

-- This process's open descriptors (read here: a child's /proc/self would
-- be the child's, which inherits none of brisk's close-on-exec ones).
local function fd_count()
	return #assert(core.listdir("/proc/self/fd"))
end

function TestNft:test_no_fd_leak()
	local ns = H.netns_add(H.name("nftns"))
	collectgarbage()
	local before = fd_count()
	for i = 1, 300 do
		assert(core.nft("list tables", ns))
		assert(not core.nft("add rule inet none c accept"))
		assert(not core.nft("list tables", "brisk-no-such-ns"))
		if i % 100 == 0 then assert(core.nft("list tables", nil, { json = true })) end
	end
	collectgarbage(); collectgarbage()
	lu.assertEquals(fd_count(), before)
end

function TestNft:test_empty_script()
	lu.assertEquals(core.nft(""), "")
	lu.assertEquals(core.nft("# only a comment\n"), "")
end

-- libnftables is opened on the first nft call, not when brisk.core loads.
-- Both checks run in a fresh lua5.4: this process has long loaded it.
local function mapped_code(call)
	return 'local core = require "brisk.core"\n'
		.. 'local function mapped() return io.open("/proc/self/maps"):read("a"):find("libnftables", 1, true) ~= nil end\n'
		.. 'io.write(tostring(mapped()), " ")\n'
		.. call .. '\n'
		.. 'io.write(tostring(mapped()), "\\n")\n'
end

function TestNft:test_libnftables_loaded_on_first_call()
	local out = H.must(H.lua_cmd(mapped_code('assert(core.nft("list tables") == "")')))
	lu.assertEquals(out, "false true\n")
	-- a bad-arguments raise comes before the library is opened
	out = H.must(H.lua_cmd(mapped_code('assert(not pcall(core.nft, "list ruleset", nil, { jsno = true }))')))
	lu.assertEquals(out, "false false\n")
end

-- The file the dynamic linker maps for libnftables.so.1 (symlinks resolved).
local function libnftables_path()
	local out = H.must(H.lua_cmd('local core = require "brisk.core"; assert(core.nft("list tables"))\n'
		.. 'for l in io.lines("/proc/self/maps") do local p = l:match("%s(/%S*libnftables%S*)$")\n'
		.. 'if p then print(p) break end end'))
	return (H.must("realpath " .. H.q(out:gsub("%s+$", ""))):gsub("%s+$", ""))
end

function TestNft:test_missing_libnftables_is_a_failure_not_a_crash()
	local lib = libnftables_path()
	lu.assertStrContains(lib, "libnftables.so.1")
	local ns = H.netns_add(H.name("nftns"))
	assert(core.nft("add table inet keep", ns))
	local before, before_here = ruleset(ns), ruleset()
	local code = 'local core = require "brisk.core"\n'
		.. 'local function fds() return #assert(core.listdir("/proc/self/fd")) end\n'
		.. 'local f0 = fds()\n'
		.. 'for _, args in ipairs({ { "add table inet gone" }, { "add table inet gone", ' .. ("%q"):format(ns) .. ' } }) do\n'
		.. '  for _ = 1, 2 do print(core.nft(table.unpack(args))) end\n'
		.. 'end\n'
		.. 'do local h <close> = assert(core.open())\n'
		.. 'print(h:nft("list tables")) end\n'
		.. 'print(pcall(core.nft, {}))\n'
		.. 'print("fds", fds() - f0, core.errno.ENOENT)\n'
	-- hide the library in a mount namespace of the child's own
	local ok, out = H.sh("unshare -m --propagation private sh -c " .. H.q("mount --bind /dev/null " .. H.q(lib)
		.. " && " .. H.lua_cmd(code)))
	lu.assertTrue(ok, out)
	local lines = {}
	for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
	lu.assertEquals(#lines, 7, out)
	local enoent = tostring(core.errno.ENOENT)
	for i = 1, 5 do
		-- every call fails the same way (a failed load is not retried)
		lu.assertStrMatches(lines[i], "nil\tnft: cannot load libnftables%.so%.1: .+\t" .. enoent)
	end
	lu.assertStrContains(lines[1], "libnftables.so.1")
	lu.assertStrMatches(lines[6], "false\t.*bad argument #1.*")
	lu.assertEquals(lines[7], "fds\t0\t" .. enoent)
	lu.assertEquals(ruleset(ns), before)
	lu.assertEquals(ruleset(), before_here)
	-- the brisk program runs a command that needs no firewall without it
	local dir = H.tmpdir()
	ok, out = H.sh("unshare -m --propagation private sh -c " .. H.q("mount --bind /dev/null " .. H.q(lib)
		.. " && " .. H.q(H.BIN) .. " --state-dir " .. H.q(dir) .. " network ls"))
	H.rmtree(dir)
	lu.assertTrue(ok, out)
	H.netns_del(ns)
end
