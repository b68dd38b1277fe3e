--- brisk.store: the local store of networks and endpoints.
--
-- A store is a directory (0700) holding one JSON document per object,
-- `<dir>/<kind>/<id>.json` (0600), each replaced atomically
-- (core.file_write_atomic). Like libnetwork's datastore, every document
-- carries `dbIndex`, an integer bumped on each write, for compare-and-swap:
--
--     local st = assert(store.open())
--     local net = assert(st:put("network", { id = "abc", name = "br0" }))  -- create: dbIndex = 1
--     net.mtu = 9000
--     assert(st:put("network", net))    -- CAS: fails with "modified" if someone wrote in between
--     st:transaction(function(s) ... end)  -- several steps, serialized across processes
--
-- Writers serialize on an flock'd `<dir>/.lock`; readers need no lock.
-- Failures return `nil, msg, code` with code one of "notfound", "exists",
-- "modified", "corrupt", "invalid", "io". Wrong argument types raise.
--
-- Numbers: integers are written exactly and come back as Lua integers when
-- within +-2^53 (lua-cjson decodes to doubles); floats round-trip exactly.
-- @module brisk.store

local core = require "brisk.core"
local cjson = require "cjson"

local type, pairs, ipairs, setmetatable, error, pcall, tostring, tonumber, math, os, io =
	type, pairs, ipairs, setmetatable, error, pcall, tostring, tonumber, math, os, io
local sfmt, concat, sort, pack, unpack = string.format, table.concat, table.sort, table.pack, table.unpack

local M = {}

local Store = {}
Store.__index = Store

local json = cjson.new()          -- a private instance: global settings untouched
local ENOENT = core.errno.ENOENT
local MAX_EXACT = 1 << 53

-- --- JSON ---------------------------------------------------------------------

local ESC = {
	['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
	["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function esc(c)
	return ESC[c] or sfmt("\\u%04x", c:byte())
end

-- Bytewise string order, whatever the C locale's collation says.
local function byte_less(a, b)
	local n = math.min(#a, #b)
	for i = 1, n do
		local x, y = a:byte(i), b:byte(i)
		if x ~= y then return x < y end
	end
	return #a < #b
end

local function encode_number(v)
	if math.type(v) == "integer" then return sfmt("%d", v) end
	if v ~= v or v == math.huge or v == -math.huge then
		error("cannot encode " .. tostring(v) .. " in JSON", 0)
	end
	for p = 15, 17 do
		local s = sfmt("%." .. p .. "g", v)
		if tonumber(s) == v then return s end
	end
	return sfmt("%.17g", v)
end

local encode_value

local function encode_table(t, indent, seen, out)
	if seen[t] then error("cannot encode a table with cycles in JSON", 0) end
	seen[t] = true
	local count, strings, seq = 0, true, true
	for k in pairs(t) do
		count = count + 1
		if type(k) ~= "string" then strings = false end
		if math.type(k) ~= "integer" or k < 1 then seq = false end
	end
	-- count distinct positive integer keys, none above count: exactly 1..count
	if seq then
		for k in pairs(t) do
			if k > count then seq = false end
		end
	end
	local n = count
	local inner = indent .. "\t"
	if count == 0 then
		out[#out + 1] = "{}"
	elseif seq then                 -- keys are exactly 1..n: an array
		out[#out + 1] = "[\n"
		for i = 1, n do
			out[#out + 1] = inner
			encode_value(t[i], inner, seen, out)
			out[#out + 1] = i < n and ",\n" or "\n"
		end
		out[#out + 1] = indent .. "]"
	elseif strings then
		local keys = {}
		for k in pairs(t) do keys[#keys + 1] = k end
		sort(keys, byte_less)
		out[#out + 1] = "{\n"
		for i, k in ipairs(keys) do
			out[#out + 1] = inner .. '"' .. k:gsub('[%c"\\]', esc) .. '": '
			encode_value(t[k], inner, seen, out)
			out[#out + 1] = i < #keys and ",\n" or "\n"
		end
		out[#out + 1] = indent .. "}"
	else
		error("cannot encode a table with mixed or non-string keys in JSON", 0)
	end
	seen[t] = nil
end

function encode_value(v, indent, seen, out)
	local ty = type(v)
	if ty == "string" then
		out[#out + 1] = '"' .. v:gsub('[%c"\\]', esc) .. '"'
	elseif ty == "number" then
		out[#out + 1] = encode_number(v)
	elseif ty == "boolean" then
		out[#out + 1] = v and "true" or "false"
	elseif v == cjson.null then
		out[#out + 1] = "null"
	elseif ty == "table" then
		encode_table(v, indent, seen, out)
	else
		error("cannot encode a " .. ty .. " in JSON", 0)
	end
end

--- Encode a value as JSON: keys sorted, tab-indented, integers exact, a
-- newline at the end; `cjson.null` is null. Strings are written as they
-- are (they should be UTF-8).
-- @param v a table, string, number, boolean or cjson.null
-- @return string
-- @raise on functions, userdata, cycles, NaN/inf, mixed keys
function M.encode(v)
	local out = {}
	encode_value(v, "", {}, out)
	out[#out + 1] = "\n"
	return concat(out)
end

local function integers(v)
	if type(v) == "table" then
		for k, x in pairs(v) do
			if math.type(x) == "float" and x == math.floor(x) and x >= -MAX_EXACT and x <= MAX_EXACT then
				v[k] = math.tointeger(x)
			elseif type(x) == "table" then
				integers(x)
			end
		end
	end
	return v
end

--- Decode JSON (lua-cjson), turning integral numbers within +-2^53 into
-- Lua integers. null stays `cjson.null`.
-- @tparam string s
-- @return value
-- @return[2] nil, cjson's message
function M.decode(s)
	if type(s) ~= "string" then error("bad argument #1 to 'decode' (string expected, got " .. type(s) .. ")", 2) end
	local ok, v = pcall(json.decode, s)
	if not ok then return nil, tostring(v) end
	if math.type(v) == "float" and v == math.floor(v) and v >= -MAX_EXACT and v <= MAX_EXACT then
		return math.tointeger(v)
	end
	return integers(v)
end

-- --- arguments -----------------------------------------------------------

local function check_kind(kind, n, fname)
	if type(kind) ~= "string" or not kind:match("^%a[%w_-]*$") or #kind > 64 then
		error(sfmt("bad argument #%d to '%s' (kind must be a word such as 'network', got %s)",
			n, fname, type(kind) == "string" and "'" .. kind .. "'" or type(kind)), 3)
	end
end

local function check_id(id, n, fname)
	if type(id) ~= "string" or not id:match("^[%w_][%w_.-]*$") or #id > 200 then
		error(sfmt("bad argument #%d to '%s' (id must be 1..200 of [A-Za-z0-9_.-], not starting with '.' or '-', got %s)",
			n, fname, type(id) == "string" and "'" .. id .. "'" or type(id)), 3)
	end
end

-- --- the store ------------------------------------------------------------

-- Locks held by this process, by store directory: transactions nest.
local held = {}

-- The document cache. Inside a transaction (the lock held) nobody else can
-- write, so parsed documents are kept per store object and reused; every
-- writer bumps `<dir>/.gen` before it changes a file, and a transaction that
-- finds another generation than the one its cache was filled at drops the
-- cache. Outside a transaction every read goes to the files.
local function read_gen(dir)
	local f = io.open(dir .. "/.gen", "rb")
	if not f then return "0" end
	local g = f:read("a") or "0"
	f:close()
	return g
end

-- A new generation: a counter and random bytes, so a value never comes back
-- (not even after a crash left the file empty).
local function bump_gen(self)
	local n = (tonumber(tostring(self._c.gen):match("^%d+")) or 0) + 1
	-- fixed width, written in place: truncating the file first would make
	-- ext4 flush it (auto_da_alloc) on every write
	local gen = sfmt("%020d:%s", n, (core.random_bytes(6):gsub(".", function(c)
		return sfmt("%02x", c:byte()) end)))
	local f, msg = io.open(self.dir .. "/.gen", "r+b")
	if not f then f, msg = io.open(self.dir .. "/.gen", "wb") end
	if not f then return nil, msg end
	local ok, wmsg = f:write(gen)
	f:close()
	if not ok then return nil, wmsg end
	self._c.gen = gen
	return true
end

-- Caches by store directory: every Store object of a directory shares one.
local caches = {}

-- Keep a cached, sorted list in step with a write: replace or insert `doc`
-- by id, or remove `id` when doc is nil.
local function list_update(list, id, doc)
	local lo, hi = 1, #list
	while lo <= hi do
		local mid = (lo + hi) // 2
		local mid_id = list[mid].id
		if mid_id == id then
			if doc then list[mid] = doc else table.remove(list, mid) end
			return
		elseif byte_less(mid_id, id) then
			lo = mid + 1
		else
			hi = mid - 1
		end
	end
	if doc then table.insert(list, lo, doc) end
end

local function deep_copy(v)
	if type(v) ~= "table" then return v end
	local t = {}
	for k, x in pairs(v) do t[k] = deep_copy(x) end
	return t
end

local function normalize(dir)
	dir = dir:gsub("/+", "/"):gsub("/%./", "/"):gsub("/%.$", "")
	if #dir > 1 then dir = dir:gsub("/$", "") end
	return dir
end

--- Open (creating when needed) a store directory.
-- @tparam[opt] string dir default $BRISK_STATE_DIR, else /var/lib/brisk;
--   created 0700 with network/ and endpoint/
-- @tparam[opt] table o {volatile={KIND,...}}: kinds whose documents are
--   written atomically but not fsync'd (they describe kernel state that does
--   not survive a reboot either, so durability buys nothing)
-- @return store
-- @return[2] nil, "mkdir <dir>: <strerror>", errno
function M.open(dir, o)
	if dir == nil then dir = os.getenv("BRISK_STATE_DIR") or "/var/lib/brisk" end
	if type(dir) ~= "string" or dir == "" then
		error("bad argument #1 to 'open' (directory name expected, got " .. type(dir) .. ")", 2)
	end
	dir = normalize(dir)
	for _, d in ipairs({ dir, dir .. "/network", dir .. "/endpoint" }) do
		local ok, msg, err = core.mkdir_p(d, 448)     -- 0700
		if not ok then return nil, msg, err or "io" end
	end
	caches[dir] = caches[dir] or {}
	local volatile = {}
	for _, k in ipairs(o and o.volatile or {}) do volatile[k] = true end
	return setmetatable({ dir = dir, _c = caches[dir], _volatile = volatile }, Store)
end

function Store:_path(kind, id)
	return sfmt("%s/%s/%s.json", self.dir, kind, id)
end

-- The document kind/id (the cached table itself inside a transaction: copy
-- before changing it); nil, msg, "notfound"|"corrupt"|"io" otherwise.
function Store:_read(kind, id)
	local cache = held[self.dir] and self._c.cache
	if cache then
		local c = cache[kind .. "/" .. id]
		if c ~= nil then
			if c == false then return nil, sfmt("%s %s not found", kind, id), "notfound" end
			return c
		end
	end
	local doc, msg, code = self:_read_file(kind, id)
	if cache and (doc or code == "notfound") then cache[kind .. "/" .. id] = doc or false end
	return doc, msg, code
end

function Store:_read_file(kind, id)
	local path = self:_path(kind, id)
	local f, msg, errno = io.open(path, "rb")
	if not f then
		if errno == ENOENT then return nil, sfmt("%s %s not found", kind, id), "notfound" end
		return nil, msg, "io"
	end
	local text, rmsg = f:read("a")
	f:close()
	if not text then return nil, sfmt("read %s: %s", path, tostring(rmsg)), "io" end
	local doc, err = M.decode(text)
	if doc == nil then return nil, sfmt("store: cannot parse %s: %s", path, err), "corrupt" end
	if type(doc) ~= "table" or not text:match("^%s*{") then
		return nil, sfmt("store: cannot parse %s: not a JSON object", path), "corrupt"
	end
	if doc.id ~= id then
		return nil, sfmt("store: %s: id %s does not match the file name", path,
			type(doc.id) == "string" and "'" .. doc.id .. "'" or "missing"), "corrupt"
	end
	if math.type(doc.dbIndex) ~= "integer" then
		return nil, sfmt("store: %s: dbIndex missing or not an integer", path), "corrupt"
	end
	return doc
end

--- Read one document.
-- @tparam string kind "network", "endpoint", ...
-- @tparam string id
-- @return the document (a fresh table)
-- @return[2] nil, "network abc not found", "notfound"
-- @return[3] nil, "store: cannot parse <path>: <why>", "corrupt" (or "io")
function Store:get(kind, id)
	check_kind(kind, 1, "get")
	check_id(id, 2, "get")
	local doc, msg, code = self:_read(kind, id)
	if not doc then return nil, msg, code end
	return deep_copy(doc)
end

--- Write a document `{id = ..., ...}`. Without `dbIndex` it is created and
-- must not exist; with `dbIndex` it replaces the stored one only if that
-- still has the same dbIndex (compare-and-swap). On success doc.dbIndex is
-- updated in place.
-- @tparam string kind
-- @tparam table doc with a string `id`
-- @tparam[opt] table o {volatile=true}: written atomically but not fsync'd,
--   whatever the kind (a record that only has to survive the process, such
--   as the intent a create writes before it changes the kernel)
-- @return doc
-- @return[2] nil, "network abc exists", "exists"
-- @return[3] nil, "network abc modified (stored dbIndex 3, given 2)", "modified"
-- @return[4] nil, msg, "notfound" | "corrupt" | "invalid" (not encodable) | "io"
function Store:put(kind, doc, o)
	check_kind(kind, 1, "put")
	if o ~= nil and type(o) ~= "table" then
		error("bad argument #3 to 'put' (table expected, got " .. type(o) .. ")", 2)
	end
	local volatile = self._volatile[kind] or (o ~= nil and o.volatile == true)
	if type(doc) ~= "table" then
		error("bad argument #2 to 'put' (table expected, got " .. type(doc) .. ")", 2)
	end
	check_id(doc.id, 2, "put")
	local given = doc.dbIndex
	if given ~= nil and (math.type(given) ~= "integer" or given < 1) then
		error("bad argument #2 to 'put' (dbIndex must be a positive integer or nil)", 2)
	end
	local id = doc.id
	return self:transaction(function()
		local cur, msg, code = self:_read(kind, id)
		if not cur and code ~= "notfound" then return nil, msg, code end
		if given == nil and cur then
			return nil, sfmt("%s %s exists", kind, id), "exists"
		elseif given ~= nil and not cur then
			return nil, msg, code
		elseif given ~= nil and cur.dbIndex ~= given then
			return nil, sfmt("%s %s modified (stored dbIndex %d, given %d)", kind, id,
				cur.dbIndex, given), "modified"
		end
		doc.dbIndex = (given or 0) + 1
		local ok, text = pcall(M.encode, doc)
		if not ok then
			doc.dbIndex = given
			return nil, sfmt("cannot encode %s %s: %s", kind, id, tostring(text)), "invalid"
		end
		local wrote, werr = bump_gen(self)
		if wrote then wrote, werr = core.mkdir_p(self.dir .. "/" .. kind, 448) end
		if wrote then wrote, werr = core.file_write_atomic(self:_path(kind, id), text, 384,
			not (self._c.batch or volatile)) end  -- 0600
		if wrote and self._c.batch then self._c.batch_dirty = true end
		if not wrote then
			doc.dbIndex = given
			if self._c.cache then self._c.cache[kind .. "/" .. id] = nil; self._c.lists[kind] = nil end
			return nil, werr, "io"
		end
		if self._c.cache then
			local c = deep_copy(doc)
			self._c.cache[kind .. "/" .. id] = c
			if self._c.lists[kind] then list_update(self._c.lists[kind], id, c) end
		end
		return doc
	end)
end

--- Delete a document, only if its dbIndex still matches when one is given.
-- A document that does not parse can be deleted without a dbIndex.
-- @tparam string kind
-- @tparam string id
-- @tparam[opt] integer dbIndex
-- @return true
-- @return[2] nil, msg, "notfound" | "modified" | "corrupt" | "io"
function Store:delete(kind, id, dbIndex)
	check_kind(kind, 1, "delete")
	check_id(id, 2, "delete")
	if dbIndex ~= nil and math.type(dbIndex) ~= "integer" then
		error("bad argument #3 to 'delete' (integer expected, got " .. type(dbIndex) .. ")", 2)
	end
	return self:transaction(function()
		local cur, msg, code = self:_read(kind, id)
		if not cur and not (code == "corrupt" and dbIndex == nil) then return nil, msg, code end
		if dbIndex ~= nil and cur.dbIndex ~= dbIndex then
			return nil, sfmt("%s %s modified (stored dbIndex %d, given %d)", kind, id,
				cur.dbIndex, dbIndex), "modified"
		end
		local ok, umsg = bump_gen(self)
		if ok then ok, umsg = core.unlink(self:_path(kind, id)) end
		local c = self._c
		if not ok then
			if c.cache then c.cache[kind .. "/" .. id] = nil; c.lists[kind] = nil end
			return nil, umsg, "io"
		end
		if c.cache then
			c.cache[kind .. "/" .. id] = false
			if c.lists[kind] then list_update(c.lists[kind], id, nil) end
		end
		return true
	end)
end

--- All documents of a kind, sorted by id (bytewise).
-- @tparam string kind
-- @tparam[opt] boolean shared true: inside a transaction, the cached
--   documents themselves (read-only: copy one before changing it); the
--   default is fresh copies
-- @return array of documents (empty when the kind has none)
-- @return[2] nil, "store: cannot parse <path>: <why>", "corrupt" (or "io")
function Store:list(kind, shared)
	check_kind(kind, 1, "list")
	local lists = held[self.dir] and self._c.cache and self._c.lists
	local out = lists and lists[kind]
	if not out then
		local msg, code
		out, msg, code = self:_list(kind)
		if not out then return nil, msg, code end
		if lists then lists[kind] = out end
	end
	if shared and lists then return out end
	local copy = {}
	for i, d in ipairs(out) do copy[i] = deep_copy(d) end
	return copy
end

function Store:_list(kind)
	local names, msg, errno = core.listdir(self.dir .. "/" .. kind)
	if not names then
		if errno == ENOENT then return {} end
		return nil, msg, "io"
	end
	local ids = {}
	for _, name in ipairs(names) do
		local id = name:match("^([%w_][%w_.-]*)%.json$")
		if id then ids[#ids + 1] = id end
	end
	sort(ids, byte_less)
	local out = {}
	for _, id in ipairs(ids) do
		local doc, rmsg, code = self:_read(kind, id)
		if doc then
			out[#out + 1] = doc
		elseif code ~= "notfound" then     -- deleted meanwhile: skip
			return nil, rmsg, code
		end
	end
	return out
end

--- Run fn(store) as one transaction whose writes are made durable together
-- at the end (one syncfs) instead of one by one (two fsyncs per document).
-- Every write is still atomic; a crash inside the batch can lose the
-- documents written in it, which `check` then reports as drift.
-- @tparam function fn
-- @return what fn returns
function Store:batch(fn)
	if type(fn) ~= "function" then
		error("bad argument #1 to 'batch' (function expected, got " .. type(fn) .. ")", 2)
	end
	return self:transaction(function()
		if self._c.batch then return fn(self) end
		self._c.batch, self._c.batch_dirty = true, false
		local r = pack(pcall(fn, self))
		self._c.batch = nil
		if self._c.batch_dirty then
			local ok, msg = core.syncfs(self.dir)
			if not ok and r[1] then r = pack(true, nil, msg, "io") end
		end
		if not r[1] then error(r[2], 0) end
		return unpack(r, 2, r.n)
	end)
end

--- Run fn(store) holding the store's exclusive lock (flock on
-- `<dir>/.lock`), so read-modify-write sequences of concurrent processes
-- serialize. Nested transactions on the same directory in one process run
-- inside the outer one. An error raised by fn releases the lock and
-- propagates unchanged.
-- @tparam function fn
-- @return what fn returns
-- @return[2] nil, "lock <dir>/.lock: <strerror>", "io" when the lock
--   cannot be taken
function Store:transaction(fn)
	if type(fn) ~= "function" then
		error("bad argument #1 to 'transaction' (function expected, got " .. type(fn) .. ")", 2)
	end
	if held[self.dir] then return fn(self) end
	local lock, msg = core.lock(self.dir .. "/.lock")
	if not lock then return nil, msg, "io" end
	held[self.dir] = lock
	local gen = read_gen(self.dir)
	if gen ~= self._c.gen or not self._c.cache then
		self._c.cache, self._c.lists, self._c.gen = {}, {}, gen
	end
	local r = pack(pcall(fn, self))
	held[self.dir] = nil
	lock:unlock()
	if not r[1] then error(r[2], 0) end
	return unpack(r, 2, r.n)
end

return M
