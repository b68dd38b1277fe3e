-- spec/test_store.lua: the local store (lua/brisk/store.lua).
local lu = require "luaunit"
local H = require "helper"

local core = require "brisk.core"
local store = require "brisk.store"
local cjson = require "cjson"

local tmpdir, rmtree, mode_of, writefile, lua_cmd = H.tmpdir, H.rmtree, H.mode_of, H.spit, H.lua_cmd
local function readfile(p) return assert(H.slurp(p)) end

-- A directory's files but the spare inode the store keeps there (.spare:
-- the one its last write replaced, for the next write to take).
local function files(dir)
	local out = {}
	for _, f in ipairs(core.listdir(dir) or {}) do
		if f ~= ".spare" then out[#out + 1] = f end
	end
	return out
end

TestStore = {}

function TestStore:setUp()
	self.tmp = tmpdir()
	self.dir = self.tmp .. "/state"
	self.st = assert(store.open(self.dir))
end

function TestStore:tearDown()
	rmtree(self.tmp)
end

function TestStore:test_rewrites_reuse_two_inodes()
	-- a document written again and again alternates between its inode and
	-- the spare: no inode is made or freed per write
	local doc = assert(self.st:put("network", { id = "n1", name = "a" }))
	local seen, n = {}, 0
	for i = 1, 20 do
		doc.name = ("x"):rep(i % 3 == 0 and 300 or i)    -- longer and shorter
		assert(self.st:put("network", doc))
		local ino = tonumber(H.must("stat -c %i " .. H.q(self.dir .. "/network/n1.json")))
		if not seen[ino] then seen[ino], n = true, n + 1 end
		lu.assertEquals(self.st:get("network", "n1").name, doc.name)
	end
	lu.assertEquals(n, 2)
	lu.assertEquals(files(self.dir .. "/network"), { "n1.json" })
end

function TestStore:test_module_loads_without_globals()
	local before = H.globals_snapshot()
	package.loaded["brisk.store"] = nil
	local m = require "brisk.store"
	local st = assert(m.open(self.dir))
	st:transaction(function(s) return s:list("network") end)
	lu.assertEquals(H.new_globals(before), {})
	lu.assertIsFunction(m.open)
end

function TestStore:test_open_creates_dirs_0700()
	lu.assertEquals(mode_of(self.dir), "700")
	lu.assertEquals(mode_of(self.dir .. "/network"), "700")
	lu.assertEquals(mode_of(self.dir .. "/endpoint"), "700")
	lu.assertEquals(core.listdir(self.dir), { "endpoint", "network" })
	-- opening again is fine; a file in the way is a failure
	assert(store.open(self.dir .. "/"))
	writefile(self.tmp .. "/file", "x")
	local st, msg, code = store.open(self.tmp .. "/file")
	lu.assertNil(st)
	lu.assertStrContains(msg, "mkdir " .. self.tmp .. "/file")
	lu.assertEquals(code, require("brisk.core").errno.ENOTDIR)   -- the errno, as every failure
end

function TestStore:test_open_default_dir_from_env()
	local d = self.tmp .. "/envstate"
	local out = H.must("BRISK_STATE_DIR=" .. H.q(d) .. " " ..
		lua_cmd("io.write(assert(require('brisk.store').open()).dir)"))
	lu.assertEquals(out, d)
	lu.assertEquals(core.listdir(d), { "endpoint", "network" })
end

function TestStore:test_put_get_list_delete()
	local st = self.st
	lu.assertEquals(st:list("network"), {})
	local doc = { id = "bbb", name = "br1", options = { mtu = 1500, icc = true }, addrs = { "10.0.0.1/24" } }
	local r = assert(st:put("network", doc))
	lu.assertIs(r, doc)
	lu.assertEquals(doc.dbIndex, 1)
	assert(st:put("network", { id = "aaa", name = "br0" }))
	assert(st:put("endpoint", { id = "aaa", network = "bbb" }))

	local got = assert(st:get("network", "bbb"))
	lu.assertEquals(got, doc)
	lu.assertNotIs(got, doc)
	lu.assertEquals(math.type(got.options.mtu), "integer")
	lu.assertEquals(mode_of(self.dir .. "/network/bbb.json"), "600")

	local l = assert(st:list("network"))
	lu.assertEquals(#l, 2)
	lu.assertEquals(l[1].id, "aaa")
	lu.assertEquals(l[2].id, "bbb")
	lu.assertEquals(#st:list("endpoint"), 1)
	lu.assertEquals(st:list("volume"), {})     -- a kind never written

	lu.assertTrue(st:delete("network", "aaa"))
	local g, msg, code = st:get("network", "aaa")
	lu.assertNil(g)
	lu.assertEquals(msg, "network aaa not found")
	lu.assertEquals(code, "notfound")
	g, msg, code = st:delete("network", "aaa")
	lu.assertNil(g)
	lu.assertEquals(code, "notfound")
	lu.assertEquals(core.listdir(self.dir .. "/network"), { "bbb.json" })
end

function TestStore:test_other_kinds_and_sorting()
	local st = self.st
	for _, id in ipairs { "b", "a.b", "a-b", "a", "A", "0" } do assert(st:put("thing", { id = id })) end
	local ids = {}
	for _, d in ipairs(st:list("thing")) do ids[#ids + 1] = d.id end
	lu.assertEquals(ids, { "0", "A", "a", "a-b", "a.b", "b" })
	lu.assertEquals(mode_of(self.dir .. "/thing"), "700")
end

function TestStore:test_create_only_and_cas()
	local st = self.st
	local a = assert(st:put("network", { id = "n1", v = 1 }))
	local r, msg, code = st:put("network", { id = "n1", v = 2 })
	lu.assertNil(r)
	lu.assertEquals(msg, "network n1 exists")
	lu.assertEquals(code, "exists")

	-- two readers of the same version: the first writer wins
	local x = assert(st:get("network", "n1"))
	local y = assert(st:get("network", "n1"))
	x.v = 10
	assert(st:put("network", x))
	lu.assertEquals(x.dbIndex, 2)
	y.v = 20
	r, msg, code = st:put("network", y)
	lu.assertNil(r)
	lu.assertEquals(code, "modified")
	lu.assertEquals(msg, "network n1 modified (stored dbIndex 2, given 1)")
	lu.assertEquals(y.dbIndex, 1)               -- untouched on failure
	lu.assertEquals(st:get("network", "n1").v, 10)

	-- CAS delete
	r, msg, code = st:delete("network", "n1", a.dbIndex)
	lu.assertNil(r)
	lu.assertEquals(code, "modified")
	lu.assertTrue(st:delete("network", "n1", 2))

	-- CAS on a document that is gone
	r, msg, code = st:put("network", x)
	lu.assertNil(r)
	lu.assertEquals(code, "notfound")
	lu.assertEquals(files(self.dir .. "/network"), {})
end

function TestStore:test_unencodable_document()
	local doc = { id = "bad", f = function() end }
	local r, msg, code = self.st:put("network", doc)
	lu.assertNil(r)
	lu.assertEquals(code, "invalid")
	lu.assertStrContains(msg, "cannot encode network bad")
	lu.assertNil(doc.dbIndex)
	lu.assertEquals(files(self.dir .. "/network"), {})
end

function TestStore:test_json_round_trip_and_format()
	local st = self.st
	local doc = { id = "j", i = 1234567890123, neg = -5, f = 0.1, third = 1 / 3, s = 'q"\\\n\1',
		list = { 1, 2, 3 }, empty = {}, nested = { a = { b = { true, false } } } }
	assert(st:put("network", doc))
	local got = assert(st:get("network", "j"))
	lu.assertEquals(got.i, 1234567890123)
	lu.assertEquals(math.type(got.i), "integer")
	lu.assertEquals(got.f, 0.1)
	lu.assertEquals(got.third, 1 / 3)
	lu.assertEquals(got.s, 'q"\\\n\1')
	lu.assertEquals(got.list, { 1, 2, 3 })
	lu.assertEquals(got.nested, { a = { b = { true, false } } })
	-- keys sorted: stable files, readable diffs
	local text = readfile(self.dir .. "/network/j.json")
	lu.assertTrue(text:find('"dbIndex"') < text:find('"empty"'))
	lu.assertTrue(text:find('"empty"') < text:find('"f"'))
	lu.assertStrContains(text, '"s": "q\\"\\\\\\n\\u0001"')
	lu.assertEquals(store.encode({ b = 1, a = { 2 } }), '{\n\t"a": [\n\t\t2\n\t],\n\t"b": 1\n}\n')
	lu.assertEquals(store.encode({ ['k"\n'] = "v\\", plain = "x" }), '{\n\t"k\\"\\n": "v\\\\",\n\t"plain": "x"\n}\n')
	lu.assertErrorMsgContains("cycles", function() local t = {}; t.t = t; store.encode(t) end)
	lu.assertErrorMsgContains("mixed", function() store.encode({ 1, x = 2 }) end)
	lu.assertErrorMsgContains("mixed", function() store.encode({ [1] = 1, [3] = 3 }) end)
	lu.assertErrorMsgContains("nan", function() store.encode({ x = 0 / 0 }) end)
end

-- A volatile document is written over its inode's old bytes, not fsync'd:
-- after a power failure it may not parse. One that does not and was
-- written before this boot (the kernel state it described went with the
-- reboot) reads as not found, and goes under the lock, instead of failing
-- every command that lists endpoints (found by a review).
function TestStore:test_damaged_volatile_document_from_before_this_boot_is_dropped()
	local st = assert(store.open(self.dir, { volatile = { "endpoint" } }))
	assert(st:put("endpoint", { id = "good" }))
	local path = self.dir .. "/endpoint/bad.json"
	writefile(path, '{"id": "bad", "dbIndex": 1, ')
	-- damaged in this boot: reported
	local d, _, code = st:list("endpoint")
	lu.assertNil(d)
	lu.assertEquals(code, "corrupt")
	-- written before it
	local btime = tonumber(readfile("/proc/stat"):match("\nbtime (%d+)"))
	H.must("touch -d @" .. (btime - 60) .. " " .. H.q(path))
	lu.assertEquals(#assert(st:list("endpoint")), 1)
	local _, msg, code2 = st:get("endpoint", "bad")
	lu.assertEquals(code2, "notfound")
	lu.assertStrContains(msg, "damaged before this boot")
	lu.assertEquals(H.sh("test -e " .. H.q(path)), true)         -- a reader leaves it
	st:transaction(function() assert(st:list("endpoint")) end)
	lu.assertNotEquals(H.sh("test -e " .. H.q(path)), true)      -- the lock's holder drops it
	-- a durable kind's damaged document is reported, whatever its age
	local npath = self.dir .. "/network/bad.json"
	writefile(npath, "{")
	H.must("touch -d @" .. (btime - 60) .. " " .. H.q(npath))
	local _, _, c3 = st:list("network")
	lu.assertEquals(c3, "corrupt")
end

function TestStore:test_corrupted_document_reported()
	local st = self.st
	assert(st:put("network", { id = "good" }))
	local path = self.dir .. "/network/bad.json"
	writefile(path, '{"id": "bad", "dbIndex": 1, ')
	local d, msg, code = st:get("network", "bad")
	lu.assertNil(d)
	lu.assertEquals(code, "corrupt")
	lu.assertStrContains(msg, "store: cannot parse " .. path .. ": ")

	d, msg, code = st:list("network")
	lu.assertNil(d)
	lu.assertEquals(code, "corrupt")
	lu.assertStrContains(msg, path)

	d, msg, code = st:put("network", { id = "bad" })
	lu.assertNil(d)
	lu.assertEquals(code, "corrupt")

	writefile(path, '[1, 2]')
	d, msg, code = st:get("network", "bad")
	lu.assertEquals(code, "corrupt")
	lu.assertStrContains(msg, "not a JSON object")
	writefile(path, '{"id": "other", "dbIndex": 1}')
	d, msg = st:get("network", "bad")
	lu.assertStrContains(msg, "id 'other' does not match")
	writefile(path, '{"id": "bad"}')
	d, msg = st:get("network", "bad")
	lu.assertStrContains(msg, "dbIndex missing")

	-- a broken document can be removed without a dbIndex, not with one
	d, msg, code = st:delete("network", "bad", 1)
	lu.assertEquals(code, "corrupt")
	lu.assertTrue(st:delete("network", "bad"))
	lu.assertEquals(#assert(st:list("network")), 1)
end

function TestStore:test_transaction_returns_nests_and_releases()
	local st = self.st
	local a, b = st:transaction(function(s)
		assert(s:put("network", { id = "t1" }))
		-- nested: no deadlock on our own lock
		return s:transaction(function(s2)
			local d = assert(s2:get("network", "t1"))
			d.x = 1
			assert(s2:put("network", d))
			return d.dbIndex, "two"
		end)
	end)
	lu.assertEquals(a, 2)
	lu.assertEquals(b, "two")

	-- held while fn runs: another fd cannot take it
	st:transaction(function()
		local l, _, err = core.lock(self.dir .. "/.lock", { nonblock = true })
		lu.assertNil(l)
		lu.assertEquals(err, core.errno.EWOULDBLOCK)
	end)

	-- an error propagates unchanged and releases the lock
	local errobj = { "boom" }
	local ok, e = pcall(st.transaction, st, function() error(errobj) end)
	lu.assertFalse(ok)
	lu.assertIs(e, errobj)
	local l = assert(core.lock(self.dir .. "/.lock", { nonblock = true }))
	l:unlock()
	ok, e = pcall(st.transaction, st, function() error("plain", 0) end)
	lu.assertEquals(e, "plain")
	-- a second store object on the same directory nests too
	local st2 = assert(store.open(self.dir))
	lu.assertEquals(st:transaction(function() return st2:transaction(function() return 7 end) end), 7)
	lu.assertEquals(mode_of(self.dir .. "/.lock"), "600")
end

function TestStore:test_transaction_excludes_other_process()
	local st = self.st
	local code = ("local c = require 'brisk.core'; local l, m, e = c.lock(%q, {nonblock = true}); " ..
		"io.write(l and 'free' or 'held')"):format(self.dir .. "/.lock")
	local inside = st:transaction(function() return H.must(lua_cmd(code)) end)
	lu.assertEquals(inside, "held")
	lu.assertEquals(H.must(lua_cmd(code)), "free")
end

local function run_parallel(self, nproc, body)
	local cmds = {}
	for i = 1, nproc do
		cmds[#cmds + 1] = lua_cmd(("local store = require 'brisk.store'; local st = assert(store.open(%q)); %s; io.write('done')")
			:format(self.dir, body)) .. " > " .. self.tmp .. "/out." .. i .. " 2>&1 &"
	end
	H.must(table.concat(cmds, "\n") .. "\nwait")
	for i = 1, nproc do
		lu.assertEquals(readfile(self.tmp .. "/out." .. i), "done")
	end
end

function TestStore:test_concurrent_transactions_200()
	assert(self.st:put("counter", { id = "c", count = 0 }))
	run_parallel(self, 4, [[
		for _ = 1, 50 do
			assert(st:transaction(function(s)
				local d = assert(s:get("counter", "c"))
				d.count = d.count + 1
				return assert(s:put("counter", d))
			end))
		end]])
	local d = assert(self.st:get("counter", "c"))
	lu.assertEquals(d.count, 200)
	lu.assertEquals(d.dbIndex, 201)
	lu.assertEquals(files(self.dir .. "/counter"), { "c.json" })   -- no temp files left
end

function TestStore:test_concurrent_cas_retries()
	-- without transactions: CAS alone keeps every increment, losers retry
	assert(self.st:put("counter", { id = "c", count = 0 }))
	run_parallel(self, 4, [[
		local n = 0
		while n < 25 do
			local d = assert(st:get("counter", "c"))
			d.count = d.count + 1
			local ok, msg, code = st:put("counter", d)
			if ok then n = n + 1 else assert(code == "modified", msg) end
		end]])
	local d = assert(self.st:get("counter", "c"))
	lu.assertEquals(d.count, 100)
	lu.assertEquals(d.dbIndex, 101)
end

function TestStore:test_bad_args()
	local st = self.st
	lu.assertErrorMsgContains("bad argument #1 to 'get'", function() st:get(nil, "x") end)
	lu.assertErrorMsgContains("bad argument #1 to 'get'", function() st:get("../etc", "x") end)
	lu.assertErrorMsgContains("bad argument #2 to 'get'", function() st:get("network", "../x") end)
	lu.assertErrorMsgContains("bad argument #2 to 'get'", function() st:get("network", ".lock") end)
	lu.assertErrorMsgContains("bad argument #2 to 'get'", function() st:get("network", "") end)
	lu.assertErrorMsgContains("bad argument #2 to 'get'", function() st:get("network", 12) end)
	lu.assertErrorMsgContains("bad argument #2 to 'put'", function() st:put("network", "x") end)
	lu.assertErrorMsgContains("bad argument #2 to 'put'", function() st:put("network", { name = "no id" }) end)
	lu.assertErrorMsgContains("dbIndex", function() st:put("network", { id = "x", dbIndex = "1" }) end)
	lu.assertErrorMsgContains("dbIndex", function() st:put("network", { id = "x", dbIndex = 0 }) end)
	lu.assertErrorMsgContains("bad argument #3 to 'delete'", function() st:delete("network", "x", "1") end)
	lu.assertErrorMsgContains("bad argument #1 to 'list'", function() st:list("") end)
	lu.assertErrorMsgContains("bad argument #1 to 'transaction'", function() st:transaction() end)
	lu.assertErrorMsgContains("bad argument #1 to 'open'", function() store.open(false) end)
	lu.assertEquals(core.listdir(self.dir .. "/network"), {})
	lu.assertEquals(core.listdir(self.dir), { "endpoint", "network" })
end

---------------------------------------------------------------------------
-- The index: summaries of the documents in <dir>/.index
---------------------------------------------------------------------------

local SPEC = { index = { endpoint = { "name", "network", "ipv4", "ports", "state" }, network = { "name" } } }

-- A store as a new process sees it: a fresh copy of the module, with none
-- of this one's caches.
local function fresh(dir, o)
	package.loaded["brisk.store"] = nil
	local m = require "brisk.store"
	package.loaded["brisk.store"] = store
	return assert(m.open(dir, o or SPEC))
end

-- What the summaries must be: the indexed fields of the documents.
local function expected(st, kind)
	local out = {}
	for _, d in ipairs(assert(st:list(kind))) do
		local s = { id = d.id }
		for _, f in ipairs(SPEC.index[kind]) do s[f] = d[f] end
		out[#out + 1] = s
	end
	return out
end

TestStoreIndex = {}

function TestStoreIndex:setUp()
	self.tmp = tmpdir()
	self.dir = self.tmp .. "/state"
	self.st = assert(store.open(self.dir, SPEC))
end

function TestStoreIndex:tearDown()
	rmtree(self.tmp)
end

function TestStoreIndex:index_text()
	return readfile(self.dir .. "/.index")
end

-- The index file can be trusted now: its last line carries the current .gen.
function TestStoreIndex:assert_trusted()
	local text = self:index_text()
	lu.assertEquals(text:sub(-2), ",\n")
	local last = text:match("([^\n]*),\n$")
	lu.assertEquals(cjson.decode(last).g, readfile(self.dir .. "/.gen"))
end

function TestStoreIndex:put_some()
	local st = self.st
	for i = 1, 6 do
		assert(st:put("endpoint", { id = "e" .. i, name = "n" .. i, network = i % 2 == 0 and "a" or "b",
			ipv4 = "10.0.0." .. i .. "/24", mac = "not indexed",
			ports = i == 3 and { { proto = "tcp", host_port = 8080, container_port = 80 } } or nil }))
	end
	assert(st:put("network", { id = "a", name = "net-a", bridge = "br-a" }))
end

function TestStoreIndex:test_summaries_follow_put_and_delete()
	local st = self.st
	lu.assertEquals(st:summaries("endpoint"), {})
	self:put_some()
	local s = st:summaries("endpoint")
	lu.assertEquals(#s, 6)
	lu.assertEquals(s[3], { id = "e3", name = "n3", network = "b", ipv4 = "10.0.0.3/24",
		ports = { { proto = "tcp", host_port = 8080, container_port = 80 } } })
	lu.assertEquals(math.type(s[3].ports[1].host_port), "integer")
	lu.assertEquals(st:summaries("network"), { { id = "a", name = "net-a" } })
	-- a replace and a delete
	local e2 = assert(st:get("endpoint", "e2"))
	e2.name, e2.state = "renamed", "creating"
	assert(st:put("endpoint", e2))
	assert(st:delete("endpoint", "e5"))
	-- a kind that is not indexed still keeps the index current
	assert(st:put("topology", { id = "t" }))
	s = st:summaries("endpoint")
	lu.assertEquals(s, expected(st, "endpoint"))
	lu.assertEquals(s[2].name, "renamed")
	lu.assertEquals(s[2].state, "creating")
	self:assert_trusted()
	-- another process reads the same from the index alone
	lu.assertEquals(fresh(self.dir):summaries("endpoint"), s)
	-- find
	local b = st:find("endpoint", "network", "b")
	lu.assertEquals(#b, 2)
	lu.assertEquals({ b[1].id, b[2].id }, { "e1", "e3" })
	lu.assertEquals(st:find("endpoint", "name", "nope"), {})
	-- copies unless shared
	s[1].name = "changed"
	lu.assertEquals(st:summaries("endpoint")[1].name, "n1")
	lu.assertIs(st:summaries("endpoint", true), st:summaries("endpoint", true))
	lu.assertEquals(mode_of(self.dir .. "/.index"), "600")
	lu.assertEquals(mode_of(self.dir .. "/.gen"), "600")
end

function TestStoreIndex:test_other_process_reads_index_not_documents()
	self:put_some()
	self:assert_trusted()
	-- break every document behind the index's back (no new .gen): a reader
	-- that trusts the index does not open them
	for i = 1, 6 do writefile(self.dir .. "/endpoint/e" .. i .. ".json", "garbage") end
	local s = fresh(self.dir):summaries("endpoint")
	lu.assertEquals(#s, 6)
	lu.assertEquals(s[6].name, "n6")
	-- the same from a separate process
	local out = H.must(lua_cmd(("local st = require('brisk.store').open(%q, {index = {endpoint = {'name'," ..
		" 'network', 'ipv4', 'ports', 'state'}, network = {'name'}}}); " ..
		"for _, e in ipairs(assert(st:summaries('endpoint'))) do io.write(e.name, ' ') end"):format(self.dir)))
	lu.assertEquals(out, "n1 n2 n3 n4 n5 n6 ")
end

-- Each way the index can go stale: the next reader gets the documents'
-- truth; outside a transaction it does not write, inside one it rewrites
-- the index, which is then trusted again.
function TestStoreIndex:check_rebuilt(what)
	local st = fresh(self.dir)
	local before = H.slurp(self.dir .. "/.index")
	local want = expected(st, "endpoint")
	lu.assertEquals(st:summaries("endpoint"), want, what)
	lu.assertEquals(H.slurp(self.dir .. "/.index"), before, what .. ": written outside a transaction")
	st = fresh(self.dir)
	st:transaction(function(s) lu.assertEquals(s:summaries("endpoint"), want, what) end)
	self:assert_trusted()
	lu.assertEquals(fresh(self.dir):summaries("endpoint"), want, what)
	-- and writes go on from there
	assert(st:put("endpoint", { id = "z", name = "last" }))
	self:assert_trusted()
	lu.assertEquals(fresh(self.dir):summaries("endpoint"), expected(st, "endpoint"), what)
	assert(st:delete("endpoint", "z"))
end

local function new_gen(dir)
	writefile(dir .. "/.gen", string.format("%020d:%s", 999, "handmade0000"))
end

function TestStoreIndex:test_stale_index_is_rebuilt()
	self:put_some()
	-- a crash between a document and its line: the document is there, .gen
	-- moved on, the index does not have it
	new_gen(self.dir)
	writefile(self.dir .. "/endpoint/hand.json", '{"id": "hand", "dbIndex": 1, "name": "by-hand"}')
	self:check_rebuilt("document without its line")
	-- a document removed by hand, .gen changed
	os.remove(self.dir .. "/endpoint/hand.json")
	new_gen(self.dir .. "")
	writefile(self.dir .. "/.gen", string.format("%020d:%s", 1000, "handmade0001"))
	self:check_rebuilt("document gone")
	-- a torn last line
	local text = self:index_text()
	writefile(self.dir .. "/.index", text .. '{"d":{"name":"torn"},"g":"000')
	self:check_rebuilt("torn line")
	-- cut inside a line
	text = self:index_text()
	writefile(self.dir .. "/.index", text:sub(1, #text // 2))
	self:check_rebuilt("truncated")
	-- no index
	os.remove(self.dir .. "/.index")
	self:check_rebuilt("removed")
	-- garbage
	writefile(self.dir .. "/.index", "not json,\n")
	self:check_rebuilt("garbage")
	-- written before a reboot: the header names another boot
	text = self:index_text()
	writefile(self.dir .. "/.index", (text:gsub('"boot":"[^"]*"', '"boot":"another-boot"', 1)))
	self:check_rebuilt("other boot")
	-- a store opened without the index (an older brisk) wrote
	local plain = assert(store.open(self.dir))
	assert(plain:put("endpoint", { id = "old", name = "from-old-brisk" }))
	self:check_rebuilt("older writer")
	lu.assertEquals(fresh(self.dir):find("endpoint", "name", "from-old-brisk")[1].id, "old")
end

function TestStoreIndex:test_other_spec_rebuilds_with_its_fields()
	self:put_some()
	local o = { index = { endpoint = { "mac" } } }
	local st = fresh(self.dir, o)
	st:transaction(function(s)
		lu.assertEquals(s:summaries("endpoint")[1], { id = "e1", mac = "not indexed" })
	end)
	assert(st:put("endpoint", { id = "e7", mac = "x" }))
	lu.assertEquals(fresh(self.dir, o):summaries("endpoint")[7], { id = "e7", mac = "x" })
	-- and back: this spec's index was replaced, so it is rebuilt again
	lu.assertEquals(fresh(self.dir):summaries("endpoint")[7], { id = "e7" })
	lu.assertEquals(fresh(self.dir):summaries("endpoint")[1].name, "n1")
end

function TestStoreIndex:test_two_stores_interleaved()
	-- two stores with caches of their own, as two processes have
	local a, b = fresh(self.dir), fresh(self.dir)
	for i = 1, 40 do
		local w, r = i % 2 == 0 and a or b, i % 2 == 0 and b or a
		assert(w:put("endpoint", { id = string.format("x%02d", i), name = "x" .. i }))
		if i % 5 == 0 then assert(r:delete("endpoint", string.format("x%02d", i - 1))) end
		lu.assertEquals(#r:summaries("endpoint"), i - i // 5)
		lu.assertEquals(r:summaries("endpoint"), w:summaries("endpoint"))
	end
	lu.assertEquals(a:summaries("endpoint"), expected(a, "endpoint"))
	self:assert_trusted()
end

function TestStoreIndex:test_compaction_keeps_it_small()
	local st = self.st
	st:batch(function()
		for i = 1, 300 do assert(st:put("endpoint", { id = string.format("c%03d", i), name = "c" .. i })) end
		for i = 1, 300, 3 do assert(st:delete("endpoint", string.format("c%03d", i))) end
		for _ = 1, 200 do assert(st:put("topology", { id = "t", n = 1, dbIndex = st:get("topology", "t") and
			st:get("topology", "t").dbIndex or nil })) end
	end)
	local lines = select(2, self:index_text():gsub("\n", ""))
	lu.assertTrue(lines <= 200 // 16 + 32 + 4, "index of " .. lines .. " lines")
	self:assert_trusted()
	lu.assertEquals(fresh(self.dir):summaries("endpoint"), expected(st, "endpoint"))
	lu.assertEquals(#st:summaries("endpoint"), 200)
end

-- A snapshot line read back by a new process, for a spec wider than 7
-- fields (its summaries are sized for 15): strings that repeat (written as
-- a dictionary column) and unique ones, numbers, booleans, tables and
-- absent values all come back as the documents have them, as do the rows
-- appended after the snapshot.
function TestStoreIndex:test_wide_snapshot_reads_back_every_kind_of_value()
	local wide = { index = { network = { "name", "bridge", "state", "mtu", "internal", "opts", "subnet4",
		"subnet6", "gateway4", "label" } } }
	local st = assert(store.open(self.dir, wide))
	for i = 1, 40 do
		assert(st:put("network", { id = string.format("w%02d", i), name = "net" .. i, bridge = "br" .. i,
			state = i % 10 == 0 and "creating" or "ok", mtu = 1400 + i % 3, internal = i % 2 == 0,
			opts = i % 4 == 0 and { mode = "x", n = i } or nil, subnet4 = "10." .. i .. ".0.0/16",
			subnet6 = i % 5 == 0 and "fd00:" .. i .. "::/64" or nil, gateway4 = "10." .. i .. ".0.1",
			label = i > 30 and "late" or nil, unindexed = "x" }))
	end
	-- (the 34th write rewrote the index as snapshots; 6 rows follow them)
	local text = self:index_text()
	lu.assertStrContains(text, '"cols":{')
	lu.assertStrContains(text, '"state":{"i":[')         -- a dictionary column
	local want = {}
	for _, d in ipairs(assert(st:list("network"))) do
		local w = { id = d.id }
		for _, f in ipairs(wide.index.network) do w[f] = d[f] end
		want[#want + 1] = w
	end
	-- the documents broken behind the index's back: a reader that did not
	-- take the snapshot would fail rebuilding from them
	for _, w in ipairs(want) do writefile(self.dir .. "/network/" .. w.id .. ".json", "garbage") end
	local got = fresh(self.dir, wide):summaries("network")
	lu.assertEquals(got, want)
	lu.assertEquals(math.type(got[1].mtu), "integer")
	lu.assertIsNil(got[1].opts)
	lu.assertEquals(got[4].opts, { mode = "x", n = 4 })
	lu.assertEquals(got[40].label, "late")
	lu.assertIsNil(got[1].subnet6)
end

-- A dictionary column whose values are not strings (an index edited by
-- hand: brisk writes strings only there) gives no value, whether its "v" is
-- an array or an object.
function TestStoreIndex:test_dictionary_column_of_non_strings_reads_as_absent()
	local st = self.st
	for i = 1, 40 do assert(st:put("endpoint", { id = string.format("d%02d", i), name = "x", state = "ok" })) end
	local text = self:index_text()
	local head, snap, rest = text:match("^([^\n]*\n)([^\n]*\n)(.*)$")
	lu.assertStrContains(snap, '"name":{"i":[')
	for _, v in ipairs{ '[5,{"a":1},true]', '{"a":5}' } do
		local edited = snap:gsub('("name":{"i":%[[%d,]*%],"v":)%b[]', function(pre) return pre .. v end)
		lu.assertNotEquals(edited, snap)
		writefile(self.dir .. "/.index", head .. edited .. rest)
		local got = fresh(self.dir):summaries("endpoint")
		lu.assertEquals(#got, 40, v)
		-- the snapshot's entries have no name; the rows appended after it do
		local in_snap, none = {}, 0
		for id in snap:match('"id":%[(.-)%]'):gmatch('"(%w+)"') do in_snap[id] = true end
		for _, s in ipairs(got) do
			if in_snap[s.id] then none = none + 1; lu.assertIsNil(s.name, v) else lu.assertEquals(s.name, "x") end
			lu.assertEquals(s.state, "ok", v)
		end
		lu.assertTrue(none >= 30, v)
	end
end

function TestStoreIndex:test_concurrent_processes_keep_it_right()
	local cmds = {}
	for p = 1, 4 do
		cmds[#cmds + 1] = lua_cmd(([[
			local st = assert(require('brisk.store').open(%q, {index = {endpoint = {'name', 'network',
				'ipv4', 'ports', 'state'}, network = {'name'}}}))
			for i = 1, 30 do
				local id = string.format('p%%dx%%02d', %d, i)
				assert(st:transaction(function(s)
					-- read the summaries, then write: what a create does
					local n = #assert(s:summaries('endpoint'))
					return s:put('endpoint', { id = id, name = id, network = tostring(n) })
				end))
				if i %% 4 == 0 then assert(st:delete('endpoint', id)) end
			end
			io.write('done')]]):format(self.dir, p)) .. " > " .. self.tmp .. "/out." .. p .. " 2>&1 &"
	end
	H.must(table.concat(cmds, "\n") .. "\nwait")
	for p = 1, 4 do lu.assertEquals(readfile(self.tmp .. "/out." .. p), "done") end
	local st = fresh(self.dir)
	lu.assertEquals(#st:summaries("endpoint"), 4 * (30 - 7))
	lu.assertEquals(st:summaries("endpoint"), expected(st, "endpoint"))
	self:assert_trusted()
end

-- A reader outside a transaction that rebuilds while a writer is between
-- its new .gen and its document sees the state before the write, under the
-- new generation: that index must not be kept, nor written as the index
-- by the reader's next transaction (every process would then trust it).
function TestStoreIndex:test_unlocked_rebuild_is_not_kept()
	self:put_some()
	local reader = fresh(self.dir)
	-- the writer: its new generation, its document not deleted yet
	writefile(self.dir .. "/.gen", string.format("%020d:%s", 1000, "writer000000"))
	lu.assertEquals(#reader:summaries("endpoint"), 6)
	-- the writer deletes it (and dies before its index line)
	assert(os.remove(self.dir .. "/endpoint/e5.json"))
	reader:transaction(function(s) lu.assertEquals(#s:summaries("endpoint"), 5) end)
	lu.assertEquals(#reader:summaries("endpoint"), 5)
	lu.assertEquals(fresh(self.dir):summaries("endpoint"), expected(reader, "endpoint"))
	self:assert_trusted()
end

function TestStoreIndex:test_corrupt_document_while_rebuilding()
	self:put_some()
	writefile(self.dir .. "/endpoint/bad.json", "{")
	new_gen(self.dir)
	local st = fresh(self.dir)
	local s, msg, code = st:summaries("endpoint")
	lu.assertNil(s)
	lu.assertEquals(code, "corrupt")
	lu.assertStrContains(msg, "bad.json")
	-- writes still work (the index is left to be rebuilt) and deleting the
	-- broken document mends it
	assert(st:put("endpoint", { id = "e9", name = "n9" }))
	assert(st:delete("endpoint", "bad"))
	lu.assertEquals(st:summaries("endpoint"), expected(st, "endpoint"))
	st:transaction(function(s2) assert(s2:summaries("endpoint")) end)
	self:assert_trusted()
end

-- A derived lookup (by_fields) follows every write of this store, and is
-- made anew, from the index, when another store wrote.
function TestStoreIndex:test_derived_lookup_follows_writes()
	local st = self.st
	self:put_some()
	local builds = 0
	local build, update = store.by_fields{ "name", "network" }
	local function get()
		return assert(st:derived("endpoint", "t", function(s) builds = builds + 1; return build(s) end, update))
	end
	-- what a walk over the summaries says, for every name and network
	local function check(lk)
		local want = { name = {}, network = {} }
		for _, e in ipairs(st:summaries("endpoint", true)) do
			for _, f in ipairs{ "name", "network" } do
				want[f][e[f]] = want[f][e[f]] or {}
				want[f][e[f]][e.id] = true
			end
		end
		for _, f in ipairs{ "name", "network" } do
			local got = {}
			for v, cur in pairs(lk[f]) do
				got[v] = {}
				-- one summary, or an array of those that share the value
				for _, e in ipairs(cur.id ~= nil and { cur } or cur) do got[v][e.id] = true end
			end
			lu.assertEquals(got, want[f], f)
		end
	end
	local lk = get()
	lu.assertEquals(builds, 1)
	check(lk)
	lu.assertEquals(store.first(lk, "name", "n3").id, "e3")
	lu.assertNil(store.first(lk, "name", "nope"))
	-- this store's writes: the same lookup, changed in place
	local e2 = assert(st:get("endpoint", "e2"))
	e2.name, e2.network = "renamed", "c"
	assert(st:put("endpoint", e2))
	assert(st:delete("endpoint", "e4"))
	assert(st:put("endpoint", { id = "e7", name = "n3", network = "a" }))   -- a second n3
	lu.assertIs(get(), lk)
	lu.assertEquals(builds, 1)
	check(lk)
	lu.assertNil(store.first(lk, "name", "n2"))
	lu.assertEquals(store.first(lk, "name", "renamed").id, "e2")
	lu.assertEquals(#lk.name.n3, 2)
	assert(st:delete("endpoint", "e7"))
	lu.assertEquals(store.first(lk, "name", "n3").id, "e3")
	lu.assertIs(lk.name.n3, store.first(lk, "name", "n3"))
	-- another store's write: a new generation, the lookup made anew
	assert(fresh(self.dir):put("endpoint", { id = "e8", name = "n8", network = "b" }))
	local lk2 = get()
	lu.assertEquals(builds, 2)
	lu.assertNotIs(lk2, lk)
	check(lk2)
	lu.assertEquals(store.first(lk2, "name", "n8").id, "e8")
	lu.assertErrorMsgContains("kind 'topology' is not indexed",
		function() st:derived("topology", "t", build, update) end)
end

-- `first` and `scan` over a snapshot and the rows after it, as a new
-- process reads them (the snapshot kept as the file has it: no summary
-- built) and once the summaries were built: the same answers as a walk
-- over `summaries`, and the snapshot's rows that changed since read as
-- changed.
function TestStoreIndex:test_first_and_scan_agree_with_summaries()
	local st = self.st
	for i = 1, 60 do
		assert(st:put("endpoint", { id = string.format("f%02d", i), name = "n" .. i,
			network = i % 3 == 0 and "a" or "b", ipv4 = "10.0.0." .. i .. "/24", state = i % 7 == 0 and "x" or nil,
			ports = i == 5 and { { proto = "tcp", host_port = 8080 } } or nil }))
	end
	-- after the snapshot (the 34th write wrote one): a rename, a delete,
	-- a new one, and one deleted and made again
	local f10 = assert(st:get("endpoint", "f10"))
	f10.name, f10.network = "renamed", "a"
	assert(st:put("endpoint", f10))
	assert(st:delete("endpoint", "f11"))
	assert(st:delete("endpoint", "f60"))
	assert(st:put("endpoint", { id = "f00", name = "n0", network = "a", ipv4 = "10.0.0.100/24" }))
	assert(st:put("endpoint", { id = "f60", name = "again", network = "b" }))
	local text = self:index_text()
	lu.assertStrContains(text, '"cols":{')
	lu.assertTrue(select(2, text:gsub("\n", "")) > 3, "rows follow the snapshot")
	local want, by_id = nil, nil
	local function expect()
		want, by_id = expected(st, "endpoint"), {}
		for _, w in ipairs(want) do by_id[w.id] = w end
	end
	expect()
	-- the answers of the store `get()` gives (lazy: a new process's for
	-- each question, whose snapshot must still be unbuilt after it)
	local function check(get, lazy, how)
		local function q(fn)
			local s2 = get()
			local r = fn(s2)
			if lazy then lu.assertNotNil(s2._c.ix.kinds.endpoint.snap, how .. ": the snapshot stays unbuilt") end
			return r
		end
		local function first(f, v) return q(function(s2) return s2:first("endpoint", f, v) end) end
		for _, w in ipairs(want) do
			lu.assertEquals(first("id", w.id), w, how)
			lu.assertEquals(first("name", w.name), w, how)
		end
		lu.assertEquals(first("network", "a").id, "f00", how)
		lu.assertEquals(first("state", "x").id, "f07", how)
		lu.assertNil(first("ports", nil), how)
		for _, absent in ipairs{ { "id", "f11" }, { "name", "n11" }, { "name", "n10" }, { "id", "zz" },
			{ "name", "nope" }, { "network", "c" } } do
			lu.assertNil(first(absent[1], absent[2]), how .. " " .. absent[2])
		end
		-- scan: every summary once, with the fields asked for
		local seen, n = {}, 0
		q(function(s2)
			return assert(s2:scan("endpoint", { "network", "ipv4", "state" }, function(id, network, ipv4, state)
				lu.assertNil(seen[id], how .. " " .. id)
				seen[id] = { id = id, network = network, ipv4 = ipv4, state = state }
				n = n + 1
			end))
		end)
		lu.assertEquals(n, #want, how)
		for _, w in ipairs(want) do
			lu.assertEquals(seen[w.id], { id = w.id, network = w.network, ipv4 = w.ipv4, state = w.state }, how)
		end
		-- more than three fields, a table among them
		n = 0
		q(function(s2)
			return assert(s2:scan("endpoint", { "name", "network", "ipv4", "ports" }, function(id, name, nw, ip, ports)
				n = n + 1
				local w = by_id[id]
				lu.assertEquals({ name, nw, ip, ports }, { w.name, w.network, w.ipv4, w.ports }, how .. " " .. id)
			end))
		end)
		lu.assertEquals(n, #want, how)
		lu.assertEquals(by_id.f05.ports, { { proto = "tcp", host_port = 8080 } })
	end
	-- a new process: answered from the snapshot, which stays unbuilt
	check(function() return fresh(self.dir) end, true, "lazy")
	-- one store asked more than a one-shot flow asks: built, and answered
	-- from its lookups
	local s2 = fresh(self.dir)
	check(function() return s2 end, false, "built")
	lu.assertNil(s2._c.ix.kinds.endpoint.snap)
	-- a new process that writes first: its write joins the snapshot's
	-- changes; a summary built later has it
	local s3 = fresh(self.dir)
	assert(s3:put("endpoint", { id = "f99", name = "late", network = "a" }))
	lu.assertNotNil(s3._c.ix.kinds.endpoint.snap)
	lu.assertEquals(s3:first("endpoint", "name", "late").id, "f99")
	lu.assertEquals(s3:summaries("endpoint"), expected(st, "endpoint"))
	lu.assertEquals(s3:first("endpoint", "name", "late").id, "f99")
	-- and what a new process reads after that write agrees too
	expect()
	check(function() return fresh(self.dir) end, true, "after")
	-- "id" among scan's fields is the id, lazy or built
	for _, st2 in ipairs{ fresh(self.dir), s2 } do
		local n = 0
		assert(st2:scan("endpoint", { "id", "name" }, function(id, id2, name)
			n = n + 1
			lu.assertEquals(id2, id)
			lu.assertEquals(name, by_id[id].name)
		end))
		lu.assertEquals(n, #want)
	end
	-- no index to trust, no transaction: the index built from the
	-- documents serves one question, each document read once for it
	os.remove(self.dir .. "/.index")
	local s4 = fresh(self.dir)
	-- (the brisk.core the new module copy holds: another spec may have
	-- loaded the module anew since this one took it)
	local c4 = package.loaded["brisk.core"]
	local reads, real = 0, c4.file_read
	c4.file_read = function(path)
		if path:find("/endpoint/", 1, true) then reads = reads + 1 end
		return real(path)
	end
	local ok, got = pcall(s4.first, s4, "endpoint", "name", "renamed")
	c4.file_read = real
	assert(ok, got)
	lu.assertEquals(got.id, "f10")
	lu.assertEquals(reads, #want)
	lu.assertErrorMsgContains("kind 'topology' is not indexed", function() s2:first("topology", "id", "x") end)
	lu.assertErrorMsgContains("bad argument #2 to 'first'", function() s2:first("endpoint", 1, "x") end)
	lu.assertErrorMsgContains("bad argument #3 to 'scan'", function() s2:scan("endpoint", {}, nil) end)
end

function TestStoreIndex:test_bad_args()
	local st = self.st
	lu.assertErrorMsgContains("kind 'topology' is not indexed", function() st:summaries("topology") end)
	lu.assertErrorMsgContains("bad argument #1 to 'summaries'", function() st:summaries("../x") end)
	lu.assertErrorMsgContains("bad argument #2 to 'find'", function() st:find("endpoint", 1, "x") end)
	lu.assertErrorMsgContains("is not indexed", function() assert(store.open(self.dir)):summaries("endpoint") end)
	lu.assertErrorMsgContains("index must be a table", function() store.open(self.dir, { index = "x" }) end)
	lu.assertErrorMsgContains("index.endpoint must be an array of field names",
		function() store.open(self.dir, { index = { endpoint = "name" } }) end)
	lu.assertErrorMsgContains("index.endpoint must be an array of field names",
		function() store.open(self.dir, { index = { endpoint = { "a", x = "b" } } }) end)
	lu.assertErrorMsgContains("index.endpoint must be an array of field names",
		function() store.open(self.dir, { index = { endpoint = { "no spaces" } } }) end)
	lu.assertErrorMsgContains("bad argument #2 to 'open'",
		function() store.open(self.dir, { index = { ["../x"] = {} } }) end)
end
