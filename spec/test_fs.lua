-- spec/test_fs.lua: file primitives of brisk.core (csrc/fs.c).
local lu = require "luaunit"
local H = require "helper"

local core = require "brisk.core"

local tmpdir, rmtree, mode_of = H.tmpdir, H.rmtree, H.mode_of
local function readfile(p) return assert(H.slurp(p)) end

-- Run Lua code in a separate lua5.4 process with our module paths;
-- returns its stdout.
local function child(code)
	local ok, out = H.sh(H.lua_cmd(code))
	assert(ok, out)
	return out
end

TestFs = {}

function TestFs:setUp()
	self.dir = tmpdir()
end

function TestFs:tearDown()
	rmtree(self.dir)
end

function TestFs:test_module_loads_without_globals()
	H.assert_no_globals({ "brisk.core" })
	local c = require "brisk.core"
	for _, f in ipairs { "file_write_atomic", "lock", "mkdir_p", "listdir", "unlink", "random_bytes", "getcwd",
		"realpath", "file_mtime" } do
		lu.assertIsFunction(c[f], f)
	end
	lu.assertEquals(c.errno.EWOULDBLOCK, c.errno.EAGAIN)
end

-- --- file_write_atomic ---

function TestFs:test_file_read_whole_files()
	-- sizes around the buffer's and the read's, each byte kept (NULs too)
	for _, n in ipairs{ 0, 1, 4095, 4096, 4097, 65536, 300001 } do
		local want = {}
		for i = 1, n do want[i] = string.char((i * 7) % 256) end
		want = table.concat(want)
		local p = self.dir .. "/f" .. n
		local f = assert(io.open(p, "wb")); f:write(want); f:close()
		local got = assert(core.file_read(p))
		lu.assertEquals(#got, n)
		lu.assertTrue(got == want, "size " .. n)
	end
	-- a file of /proc says size 0: read to its end all the same, past the
	-- page a first read returns (smaps: tens of KB; its lines are
	-- whole, and it ends where io.open's read of it ends)
	local smaps = assert(core.file_read("/proc/self/smaps"))
	lu.assertTrue(#smaps > 3 * 4096, "smaps of " .. #smaps .. " bytes")
	lu.assertEquals(smaps:sub(-1), "\n")
	local f = assert(io.open("/proc/self/smaps", "rb"))
	local want = f:read("a")
	f:close()
	-- (this process's maps change a little between two reads: the sizes
	-- are compared loosely; the last line, of the last mapping, is the same)
	lu.assertEquals(smaps:match("[^\n]*\n$"), want:match("[^\n]*\n$"))
	lu.assertTrue(math.abs(#smaps - #want) < 4096, #smaps .. " vs " .. #want)
	lu.assertEquals(assert(core.file_read("/proc/sys/kernel/random/boot_id")):match("^%x+%-[%x-]+\n$") ~= nil, true)
	-- failures: nil, message, errno; a directory fails at the read
	local ok, msg, err = core.file_read(self.dir .. "/none")
	lu.assertNil(ok)
	lu.assertEquals(msg, "open " .. self.dir .. "/none: No such file or directory")
	lu.assertEquals(err, core.errno.ENOENT)
	ok, msg, err = core.file_read(self.dir)
	lu.assertNil(ok)
	lu.assertStrContains(msg, "read " .. self.dir .. ": ")
	lu.assertEquals(err, core.errno.EISDIR)
	lu.assertErrorMsgContains("empty path", core.file_read, "")
	lu.assertErrorMsgContains("string expected", core.file_read, nil)
end

function TestFs:test_write_atomic_creates_and_replaces()
	local p = self.dir .. "/doc.json"
	lu.assertTrue(core.file_write_atomic(p, "first"))
	lu.assertEquals(readfile(p), "first")
	lu.assertEquals(mode_of(p), "600")
	local data = ("x\0y"):rep(100000)       -- binary, larger than one write
	lu.assertTrue(core.file_write_atomic(p, data))
	lu.assertEquals(readfile(p), data)
	lu.assertTrue(core.file_write_atomic(p, ""))
	lu.assertEquals(readfile(p), "")
	lu.assertEquals(core.listdir(self.dir), { "doc.json" })   -- no temp file left
end

function TestFs:test_write_atomic_mode_ignores_umask()
	local p = self.dir .. "/m"
	lu.assertTrue(core.file_write_atomic(p, "a", 416))   -- 0640
	lu.assertEquals(mode_of(p), "640")
	lu.assertTrue(core.file_write_atomic(p, "b"))
	lu.assertEquals(mode_of(p), "600")
end

function TestFs:test_write_atomic_missing_dir()
	local p = self.dir .. "/nope/doc"
	local ok, msg, err = core.file_write_atomic(p, "x")
	lu.assertNil(ok)
	lu.assertEquals(err, core.errno.ENOENT)
	lu.assertStrContains(msg, p)
	lu.assertStrContains(msg, "No such file")
	lu.assertEquals(core.listdir(self.dir), {})
end

function TestFs:test_write_atomic_over_directory_leaves_nothing()
	assert(core.mkdir_p(self.dir .. "/d"))
	local ok, msg, err = core.file_write_atomic(self.dir .. "/d", "x")
	lu.assertNil(ok)
	lu.assertEquals(err, core.errno.EISDIR)
	lu.assertStrContains(msg, "write " .. self.dir .. "/d")
	lu.assertEquals(core.listdir(self.dir), { "d" })
	lu.assertEquals(core.listdir(self.dir .. "/d"), {})
end

-- The inode number of a path (stat -c %i), or nil.
local function inode(p)
	local ok, out = H.sh("stat -c %i " .. H.q(p))
	return ok and tonumber(out) or nil
end

function TestFs:test_write_atomic_spare_recycles_the_replaced_inode()
	local p, spare = self.dir .. "/doc.json", self.dir .. "/.spare"
	lu.assertTrue(core.file_write_atomic(p, "one", nil, false, spare))
	lu.assertEquals(core.listdir(self.dir), { "doc.json" })        -- nothing replaced yet
	local first = inode(p)
	lu.assertTrue(core.file_write_atomic(p, "two", nil, true, spare))
	lu.assertEquals(readfile(p), "two")
	lu.assertEquals(core.listdir(self.dir), { ".spare", "doc.json" })
	lu.assertEquals(inode(spare), first)                            -- the old inode waits
	lu.assertEquals(readfile(spare), "one")
	lu.assertTrue(core.file_write_atomic(p, "three", 416, false, spare))
	lu.assertEquals(inode(p), first)                                -- and is written next
	lu.assertEquals(readfile(p), "three")
	lu.assertEquals(mode_of(p), "640")
	lu.assertEquals(readfile(spare), "two")
	-- a shorter write leaves nothing of the longer one it reuses
	lu.assertTrue(core.file_write_atomic(p, ("x"):rep(5000), nil, false, spare))
	lu.assertTrue(core.file_write_atomic(p, "y", nil, false, spare))
	lu.assertEquals(readfile(p), "y")
	lu.assertEquals(#core.listdir(self.dir), 2)                    -- no temporary file left
end

function TestFs:test_realpath_resolves_symlinks_and_dots()
	H.must("mkdir -p " .. H.q(self.dir .. "/a/b") .. " && ln -s a/b " .. H.q(self.dir .. "/l")
		.. " && touch " .. H.q(self.dir .. "/a/b/f"))
	local real = H.must("realpath " .. H.q(self.dir)):gsub("%s+$", "")
	lu.assertEquals(core.realpath(self.dir .. "/l/f"), real .. "/a/b/f")
	lu.assertEquals(core.realpath(self.dir .. "/a/./b/../b/f"), real .. "/a/b/f")
	H.must("touch -d @1700000000.25 " .. H.q(self.dir .. "/a/b/f"))
	lu.assertEquals(core.file_mtime(self.dir .. "/l/f"), 1700000000.25)
	lu.assertNil(core.file_mtime(self.dir .. "/nothing"))
	local ok, msg, err = core.realpath(self.dir .. "/l/missing")
	lu.assertNil(ok)
	lu.assertStrContains(msg, "realpath " .. self.dir .. "/l/missing: ")
	lu.assertEquals(err, core.errno.ENOENT)
end

function TestFs:test_write_atomic_over_writes_the_spares_bytes_and_cuts_the_rest()
	local p, spare = self.dir .. "/doc.json", self.dir .. "/.spare"
	lu.assertTrue(core.file_write_atomic(p, ("a"):rep(9000), nil, false, spare, true))  -- no spare yet
	lu.assertTrue(core.file_write_atomic(p, ("b"):rep(7000), nil, false, spare, true))
	local old = inode(spare)
	lu.assertEquals(readfile(spare), ("a"):rep(9000))
	-- shorter than what the spare holds: nothing of it is left after the new bytes
	lu.assertTrue(core.file_write_atomic(p, '{"id":"x"}', 416, false, spare, true))
	lu.assertEquals(inode(p), old)
	lu.assertEquals(readfile(p), '{"id":"x"}')
	lu.assertEquals(H.must("stat -c %s " .. H.q(p)), "10\n")
	lu.assertEquals(mode_of(p), "640")
	-- longer than it: all of it
	lu.assertTrue(core.file_write_atomic(p, ("c"):rep(12000), nil, false, spare, true))
	lu.assertEquals(readfile(p), ("c"):rep(12000))
	lu.assertEquals(readfile(spare), '{"id":"x"}')
	-- with sync the flag is ignored (a durable write empties the spare first): same bytes
	lu.assertTrue(core.file_write_atomic(p, "d", nil, true, spare, true))
	lu.assertEquals(readfile(p), "d")
	lu.assertEquals(#core.listdir(self.dir), 2)
	lu.assertErrorMsgContains("bad argument #6", function() core.file_write_atomic(p, "x", nil, false, spare, 1) end)
end

function TestFs:test_write_atomic_spare_is_never_a_shared_inode()
	local p, spare, keep = self.dir .. "/doc", self.dir .. "/.spare", self.dir .. "/keep"
	H.spit(keep, "precious")
	-- a spare with a second name, or a symlink: not written, not followed
	H.must("ln " .. H.q(keep) .. " " .. H.q(spare))
	lu.assertTrue(core.file_write_atomic(p, "new", nil, false, spare))
	lu.assertEquals(readfile(keep), "precious")
	lu.assertEquals(readfile(p), "new")
	H.must("rm -f " .. H.q(spare) .. " && ln -s " .. H.q(keep) .. " " .. H.q(spare))
	lu.assertTrue(core.file_write_atomic(self.dir .. "/doc2", "new2", nil, false, spare))
	lu.assertEquals(readfile(keep), "precious")
	-- over a directory or a symlink: as without a spare (the rename fails or replaces the link)
	assert(core.mkdir_p(self.dir .. "/d"))
	local ok, _, err = core.file_write_atomic(self.dir .. "/d", "x", nil, false, spare)
	lu.assertNil(ok)
	lu.assertEquals(err, core.errno.EISDIR)
	lu.assertEquals(core.listdir(self.dir .. "/d"), {})
	H.must("ln -s " .. H.q(keep) .. " " .. H.q(self.dir .. "/link"))
	lu.assertTrue(core.file_write_atomic(self.dir .. "/link", "via", nil, false, spare))
	lu.assertEquals(readfile(keep), "precious")
	lu.assertEquals(readfile(self.dir .. "/link"), "via")
	lu.assertEquals(H.must("stat -c %F " .. H.q(self.dir .. "/link")), "regular file\n")
	lu.assertErrorMsgContains("bad argument #5", function() core.file_write_atomic(p, "x", nil, false, "") end)
	lu.assertErrorMsgContains("bad argument #5", function() core.file_write_atomic(p, "x", nil, false, p) end)
	-- a FIFO or a directory as the spare: left alone (no open, no hang)
	H.must("rm -f " .. H.q(spare) .. " && mkfifo " .. H.q(spare))
	lu.assertTrue(core.file_write_atomic(p, "fifo", nil, false, spare))
	lu.assertEquals(H.must("stat -c %F " .. H.q(spare)), "fifo\n")
	H.must("rm -f " .. H.q(spare) .. " && mkdir " .. H.q(spare))
	lu.assertTrue(core.file_write_atomic(p, "dir", nil, false, spare))
	lu.assertEquals(readfile(p), "dir")
	lu.assertEquals(H.must("stat -c %F " .. H.q(spare)), "directory\n")
end

function TestFs:test_write_atomic_spare_someone_reads_is_not_reused()
	-- a reader holding an old version open keeps reading that version
	local p, spare = self.dir .. "/doc", self.dir .. "/.spare"
	lu.assertTrue(core.file_write_atomic(p, "v1", nil, false, spare))
	local r = assert(io.open(p, "rb"))                  -- v1's inode, open
	lu.assertTrue(core.file_write_atomic(p, "v2", nil, false, spare))   -- v1 is the spare
	lu.assertTrue(core.file_write_atomic(p, "v3", nil, false, spare))   -- must not take it
	lu.assertEquals(r:read("a"), "v1")
	r:close()
	lu.assertEquals(readfile(p), "v3")
	lu.assertEquals(readfile(spare), "v2")
	-- and no temporary file is left of the spare it gave up
	lu.assertEquals(core.listdir(self.dir), { ".spare", "doc" })
end

function TestFs:test_write_atomic_bad_args()
	lu.assertErrorMsgContains("bad argument #1", function() core.file_write_atomic() end)
	lu.assertErrorMsgContains("bad argument #1", function() core.file_write_atomic("", "x") end)
	lu.assertErrorMsgContains("bad argument #1", function() core.file_write_atomic("a\0b", "x") end)
	lu.assertErrorMsgContains("bad argument #1", function() core.file_write_atomic(self.dir .. "/", "x") end)
	lu.assertErrorMsgContains("bad argument #2", function() core.file_write_atomic(self.dir .. "/f", {}) end)
	lu.assertErrorMsgContains("bad argument #3", function() core.file_write_atomic(self.dir .. "/f", "x", 4096) end)
	lu.assertErrorMsgContains("bad argument #3", function() core.file_write_atomic(self.dir .. "/f", "x", -1) end)
	lu.assertErrorMsgContains("bad argument #3", function() core.file_write_atomic(self.dir .. "/f", "x", "rw") end)
	lu.assertEquals(core.listdir(self.dir), {})
end

-- --- lock ---

function TestFs:test_lock_excludes_other_process()
	local p = self.dir .. "/lk"
	local try = ("local c = require 'brisk.core'; local l, m, e = c.lock(%q, {nonblock = true}); " ..
		"io.write(l and 'ok' or (e .. ' ' .. m))"):format(p)
	local l = assert(core.lock(p))
	lu.assertEquals(mode_of(p), "600")
	lu.assertTrue(l:held())
	local out = child(try)
	lu.assertStrContains(out, tostring(core.errno.EWOULDBLOCK) .. " lock " .. p .. ": ")
	lu.assertTrue(l:unlock())
	lu.assertFalse(l:held())
	lu.assertEquals(child(try), "ok")
end

function TestFs:test_lock_excludes_second_fd_in_process()
	local p = self.dir .. "/lk"
	local l = assert(core.lock(p))
	local l2, msg, err = core.lock(p, { nonblock = true })
	lu.assertNil(l2)
	lu.assertEquals(err, core.errno.EWOULDBLOCK)
	lu.assertStrContains(msg, p)
	l:unlock()
	l2 = assert(core.lock(p, { nonblock = true }))
	l2:unlock()
end

function TestFs:test_unlock_twice_close_and_gc()
	local p = self.dir .. "/lk"
	local l = assert(core.lock(p))
	lu.assertStrContains(tostring(l), "brisk.lock")
	lu.assertTrue(l:unlock())
	lu.assertTrue(l:unlock())
	lu.assertStrContains(tostring(l), "unlocked")
	local saved
	do
		local l2 <close> = assert(core.lock(p))
		saved = l2
		lu.assertNil(core.lock(p, { nonblock = true }))
	end
	lu.assertFalse(saved:held())
	lu.assertTrue(saved:unlock())
	-- an error leaving a <close> scope releases too
	lu.assertError(function()
		local l3 <close> = assert(core.lock(p))
		error("boom")
	end)
	assert(core.lock(p, { nonblock = true })):unlock()
	-- garbage collection releases an unreferenced lock
	core.lock(p)
	collectgarbage(); collectgarbage()
	assert(core.lock(p, { nonblock = true })):unlock()
end

function TestFs:test_lock_fd_not_inherited()
	local p = self.dir .. "/lk"
	local l = assert(core.lock(p))
	local out = H.must("ls -l /proc/self/fd/")
	lu.assertNotStrContains(out, p)
	l:unlock()
end

function TestFs:test_lock_missing_dir()
	local p = self.dir .. "/nope/lk"
	local l, msg, err = core.lock(p)
	lu.assertNil(l)
	lu.assertEquals(err, core.errno.ENOENT)
	lu.assertStrContains(msg, "lock " .. p)
	lu.assertEquals(core.listdir(self.dir), {})
end

function TestFs:test_lock_bad_args()
	local p = self.dir .. "/lk"
	lu.assertErrorMsgContains("bad argument #1", function() core.lock() end)
	lu.assertErrorMsgContains("bad argument #1", function() core.lock("") end)
	lu.assertErrorMsgContains("bad argument #2", function() core.lock(p, "nonblock") end)
	lu.assertErrorMsgContains("unknown field 'nonblok'", function() core.lock(p, { nonblok = true }) end)
	lu.assertErrorMsgContains("field 'nonblock' must be a boolean", function() core.lock(p, { nonblock = 1 }) end)
	lu.assertEquals(core.listdir(self.dir), {})
	local l = assert(core.lock(p))
	lu.assertErrorMsgContains("brisk.lock expected", function() l.unlock({}) end)
	l:unlock()
end

-- --- directories ---

function TestFs:test_mkdir_p()
	local p = self.dir .. "/a/b//c/"
	lu.assertTrue(core.mkdir_p(p))
	lu.assertEquals(mode_of(self.dir .. "/a"), "700")
	lu.assertEquals(mode_of(self.dir .. "/a/b/c"), "700")
	lu.assertTrue(core.mkdir_p(p))               -- existing: fine
	lu.assertTrue(core.mkdir_p(self.dir .. "/x", 493))   -- 0755
	lu.assertEquals(mode_of(self.dir .. "/x"), "755")
	lu.assertTrue(core.mkdir_p("/"))
end

function TestFs:test_mkdir_p_file_in_the_way()
	assert(core.file_write_atomic(self.dir .. "/f", "x"))
	local ok, msg, err = core.mkdir_p(self.dir .. "/f/sub")
	lu.assertNil(ok)
	lu.assertEquals(err, core.errno.ENOTDIR)
	lu.assertStrContains(msg, "mkdir " .. self.dir .. "/f")
	ok, msg, err = core.mkdir_p(self.dir .. "/f")
	lu.assertNil(ok)
	lu.assertEquals(err, core.errno.ENOTDIR)
	lu.assertEquals(core.listdir(self.dir), { "f" })
end

function TestFs:test_mkdir_p_bad_args()
	lu.assertErrorMsgContains("bad argument #1", function() core.mkdir_p() end)
	lu.assertErrorMsgContains("bad argument #1", function() core.mkdir_p("") end)
	lu.assertErrorMsgContains("bad argument #2", function() core.mkdir_p(self.dir .. "/a", 99999) end)
	lu.assertEquals(core.listdir(self.dir), {})
end

function TestFs:test_listdir_sorted()
	for _, n in ipairs { "b", "a.json", "a-b.json", "C", ".hidden", "a" } do
		assert(core.file_write_atomic(self.dir .. "/" .. n, n))
	end
	assert(core.mkdir_p(self.dir .. "/sub"))
	lu.assertEquals(core.listdir(self.dir), { ".hidden", "C", "a", "a-b.json", "a.json", "b", "sub" })
end

function TestFs:test_listdir_errors()
	local l, msg, err = core.listdir(self.dir .. "/nope")
	lu.assertNil(l)
	lu.assertEquals(err, core.errno.ENOENT)
	lu.assertStrContains(msg, "listdir " .. self.dir .. "/nope")
	assert(core.file_write_atomic(self.dir .. "/f", "x"))
	l, msg, err = core.listdir(self.dir .. "/f")
	lu.assertNil(l)
	lu.assertEquals(err, core.errno.ENOTDIR)
	lu.assertErrorMsgContains("bad argument #1", function() core.listdir(1 == 1) end)
	lu.assertErrorMsgContains("bad argument #1", function() core.listdir("") end)
end

function TestFs:test_unlink()
	local p = self.dir .. "/f"
	assert(core.file_write_atomic(p, "x"))
	lu.assertTrue(core.unlink(p))
	lu.assertEquals(core.listdir(self.dir), {})
	local ok, msg, err = core.unlink(p)
	lu.assertNil(ok)
	lu.assertEquals(err, core.errno.ENOENT)
	lu.assertStrContains(msg, "unlink " .. p)
	assert(core.mkdir_p(self.dir .. "/d"))
	ok, msg, err = core.unlink(self.dir .. "/d")
	lu.assertNil(ok)
	lu.assertEquals(err, core.errno.EISDIR)
	lu.assertEquals(core.listdir(self.dir), { "d" })
	lu.assertErrorMsgContains("bad argument #1", function() core.unlink() end)
	lu.assertErrorMsgContains("bad argument #1", function() core.unlink("") end)
end

-- --- getcwd ---

function TestFs:test_getcwd_is_the_process_directory()
	-- the shell's idea of it, from a process started in the same directory
	lu.assertEquals(core.getcwd(), (H.must("pwd -P"):gsub("\n$", "")))
	-- a process started in another directory sees that one
	local d = self.dir
	local code = ("package.cpath = %q; io.write(require('brisk.core').getcwd())"):format(H.ROOT .. "/build/lib/?.so")
	local out = H.must("cd " .. H.q(d) .. " && lua5.4 -e " .. H.q(code))
	lu.assertEquals(out, (H.must("cd " .. H.q(d) .. " && pwd -P"):gsub("\n$", "")))
	lu.assertNotEquals(out, core.getcwd())
end

-- --- random_bytes ---

function TestFs:test_random_bytes()
	lu.assertEquals(core.random_bytes(0), "")
	local a, b = core.random_bytes(32), core.random_bytes(32)
	lu.assertEquals(#a, 32)
	lu.assertNotEquals(a, b)
	lu.assertEquals(#core.random_bytes(100000), 100000)
	-- every byte value turns up in 64 KiB of randomness
	local seen, n = {}, 0
	for c in core.random_bytes(65536):gmatch(".") do
		if not seen[c] then seen[c] = true; n = n + 1 end
	end
	lu.assertEquals(n, 256)
end

function TestFs:test_random_bytes_bad_args()
	lu.assertErrorMsgContains("bad argument #1", function() core.random_bytes() end)
	lu.assertErrorMsgContains("bad argument #1", function() core.random_bytes(-1) end)
	lu.assertErrorMsgContains("bad argument #1", function() core.random_bytes(1.5) end)
	lu.assertErrorMsgContains("bad argument #1", function() core.random_bytes((1 << 20) + 1) end)
end
