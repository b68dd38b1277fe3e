--- brisk.store: the local store of networks and endpoints.
--
-- A store is a directory (0700) holding one JSON document per object,
-- `<dir>/<kind>/<id>.json` (0600), each replaced atomically
-- (core.file_write_atomic; the inode a write replaces waits as
-- `<dir>/<kind>/.spare` to be the next write's, so that a burst of writes
-- does not churn the file system's inodes). Like libnetwork's datastore, every document
-- carries `dbIndex`, an integer bumped on each write, for compare-and-swap:
--
--     local st = assert(store.open())
--     local net = assert(st:put("network", { id = "abc", name = "br0" }))  -- create: dbIndex = 1
--     net.mtu = 9000
--     assert(st:put("network", net))    -- CAS: fails with "modified" if someone wrote in between
--     st:transaction(function(s) ... end)  -- several steps, serialized across processes
--
-- Writers serialize on an flock'd `<dir>/.lock`; readers need no lock.
--
-- Kinds opened with an index keep the summaries of their documents (the
-- fields named in `open`'s `index` option) in `<dir>/.index`, so a process
-- reads all of them in one file instead of one file per document:
--
--     local st = assert(store.open(dir, { index = { endpoint = { "name", "network" } } }))
--     st:summaries("endpoint")               -- { {id=, name=, network=}, ... } sorted by id
--     st:find("endpoint", "network", net.id)  -- those of one network
--
-- The index is rebuilt from the documents whenever it cannot be trusted
-- (see "the index" below), so a summary always agrees with its document.
-- Failures return `nil, msg, code` with code one of "notfound", "exists",
-- "modified", "corrupt", "invalid", "io". Wrong argument types raise.
--
-- Numbers: integers are written exactly and come back as Lua integers when
-- within +-2^53 (brisk.core's json_decode); floats round-trip exactly.
-- @module brisk.store

local core = require "brisk.core"

local type, pairs, ipairs, setmetatable, error, pcall, tostring, tonumber, math, os, io =
	type, pairs, ipairs, setmetatable, error, pcall, tostring, tonumber, math, os, io
local sfmt, concat, sort, pack, unpack = string.format, table.concat, table.sort, table.pack, table.unpack

local M = {}

local Store = {}
Store.__index = Store

local json_decode, null = core.json_decode, core.null   -- null: the value lua-cjson uses too
local ENOENT = core.errno.ENOENT

-- --- JSON ---------------------------------------------------------------------

local ESC = {
	['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
	["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function esc(c)
	return ESC[c] or sfmt("\\u%04x", c:byte())
end

-- A JSON string: most (ids, names, addresses) need no escape.
local find, gsub = string.find, string.gsub
local function quote(s)
	if not find(s, '[%c"\\]') then return '"' .. s .. '"' end
	return '"' .. gsub(s, '[%c"\\]', esc) .. '"'
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

local function native_less(a, b) return a < b end

-- The bytewise order of ids: Lua's own `<` under the C collation (strcmp,
-- for strings without NUL bytes, as ids are), else byte_less.
local function id_less()
	local loc = os.setlocale(nil, "collate")
	if loc == "C" or loc == "POSIX" then return native_less end
	return byte_less
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
-- the order of object keys while M.encode runs (id_less: Lua's own `<`
-- under the C collation, byte_less under another)
local key_less = byte_less

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
	-- indent false: compact, on one line
	local inner = indent and indent .. "\t" or false
	local nl, close, colon = indent and "\n" or "", indent or "", indent and ": " or ":"
	if count == 0 then
		out[#out + 1] = "{}"
	elseif seq then                 -- keys are exactly 1..n: an array
		out[#out + 1] = "[" .. nl
		for i = 1, n do
			if inner then out[#out + 1] = inner end
			encode_value(t[i], inner, seen, out)
			out[#out + 1] = i < n and "," .. nl or nl
		end
		out[#out + 1] = close .. "]"
	elseif strings then
		local keys = {}
		for k in pairs(t) do keys[#keys + 1] = k end
		if key_less == native_less then sort(keys) else sort(keys, key_less) end
		out[#out + 1] = "{" .. nl
		for i, k in ipairs(keys) do
			out[#out + 1] = (inner or "") .. quote(k) .. colon
			encode_value(t[k], inner, seen, out)
			out[#out + 1] = i < #keys and "," .. nl or nl
		end
		out[#out + 1] = close .. "}"
	else
		error("cannot encode a table with mixed or non-string keys in JSON", 0)
	end
	seen[t] = nil
end

function encode_value(v, indent, seen, out)
	local ty = type(v)
	if ty == "string" then
		out[#out + 1] = quote(v)
	elseif ty == "number" then
		out[#out + 1] = encode_number(v)
	elseif ty == "boolean" then
		out[#out + 1] = v and "true" or "false"
	elseif v == null then
		out[#out + 1] = "null"
	elseif ty == "table" then
		encode_table(v, indent, seen, out)
	else
		error("cannot encode a " .. ty .. " in JSON", 0)
	end
end

--- Encode a value as JSON: keys sorted, tab-indented, integers exact, a
-- newline at the end; `core.null` (lua-cjson's null) is null. Strings are written as they
-- are (they should be UTF-8).
-- @param v a table, string, number, boolean or core.null
-- @return string
-- @raise on functions, userdata, cycles, NaN/inf, mixed keys
function M.encode(v)
	local out = {}
	key_less = id_less()
	encode_value(v, "", {}, out)
	out[#out + 1] = "\n"
	return concat(out)
end

--- Decode JSON (brisk.core's json_decode): integral numbers within
-- +-2^53 come back as Lua integers, null as `core.null`.
-- @tparam string s
-- @return value
-- @return[2] nil, "json: <what> at character N"
function M.decode(s)
	if type(s) ~= "string" then error("bad argument #1 to 'decode' (string expected, got " .. type(s) .. ")", 2) end
	return json_decode(s)
end

-- --- arguments -----------------------------------------------------------

-- (level: of the error, default 3, the caller of the method calling this)
local function check_kind(kind, n, fname, level)
	if type(kind) ~= "string" or not kind:match("^%a[%w_-]*$") or #kind > 64 then
		error(sfmt("bad argument #%d to '%s' (kind must be a word such as 'network', got %s)",
			n, fname, type(kind) == "string" and "'" .. kind .. "'" or type(kind)), level or 3)
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
	return core.file_read(dir .. "/.gen") or "0"
end

-- A new generation: a counter and random bytes, so a value never comes back
-- (not even after a crash left the file empty).
local function bump_gen(self)
	local n = (tonumber(tostring(self._c.gen):match("^%d+")) or 0) + 1
	-- fixed width, written in place: truncating the file first would make
	-- ext4 flush it (auto_da_alloc) on every write
	local gen = sfmt("%020d:%s", n, (core.random_bytes(6):gsub(".", function(c)
		return sfmt("%02x", c:byte()) end)))
	local f = io.open(self.dir .. "/.gen", "r+b")
	if f then
		local ok, wmsg = f:write(gen)
		f:close()
		if not ok then return nil, wmsg end
	else
		-- the first: made 0600, as every file of the store
		local ok, wmsg = core.file_write_atomic(self.dir .. "/.gen", gen, 384, false)
		if not ok then return nil, wmsg end
	end
	self._c.gen = gen
	return true
end

-- Caches by store directory: every Store object of a directory shares one.
local caches = {}

-- Keep a cached, sorted list in step with a write: replace or insert `doc`
-- by id, or remove `id` when doc is nil.
local function list_update(list, id, doc, less)
	local lo, hi = 1, #list
	less = less or id_less()
	while lo <= hi do
		local mid = (lo + hi) // 2
		local mid_id = list[mid].id
		if mid_id == id then
			if doc then list[mid] = doc else table.remove(list, mid) end
			return
		elseif less(mid_id, id) then
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

-- The index's spec as a string: kinds and their fields, sorted.
local function index_sig(index)
	local kinds = {}
	for kind, fields in pairs(index) do
		local f = { table.unpack(fields) }
		sort(f)
		kinds[#kinds + 1] = kind .. "=" .. concat(f, ",")
	end
	sort(kinds)
	return concat(kinds, ";")
end

local function normalize(dir)
	dir = dir:gsub("/+", "/"):gsub("/%./", "/"):gsub("/%.$", "")
	if #dir > 1 then dir = dir:gsub("/$", "") end
	return dir
end

--- Open (creating when needed) a store directory.
-- @tparam[opt] string dir default $BRISK_STATE_DIR, else /var/lib/brisk;
--   created 0700 with network/ and endpoint/
-- @tparam[opt] table o
--   `volatile = {KIND,...}`: kinds whose documents are written atomically
--   but not fsync'd (they describe kernel state that does not survive a
--   reboot either, so durability buys nothing), over the bytes of the inode
--   they reuse (after a power failure one may no longer parse: one that
--   does not and was written before this boot reads as not found, and goes
--   at the next transaction that reads it);
--   `index = {KIND = {FIELD,...}, ...}`: kinds to keep in the index, with
--   the fields of their summaries (see `summaries`)
-- @return store
-- @return[2] nil, "mkdir <dir>: <strerror>", errno
-- @raise when `index` is not a map of kinds to arrays of field names
function M.open(dir, o)
	if dir == nil then dir = os.getenv("BRISK_STATE_DIR") or "/var/lib/brisk" end
	if type(dir) ~= "string" or dir == "" then
		error("bad argument #1 to 'open' (directory name expected, got " .. type(dir) .. ")", 2)
	end
	local index, sig
	if o and o.index ~= nil then
		if type(o.index) ~= "table" then
			error("bad argument #2 to 'open' (index must be a table, got " .. type(o.index) .. ")", 2)
		end
		index = {}
		for kind, fields in pairs(o.index) do
			check_kind(kind, 2, "open")
			local ok = type(fields) == "table"
			local f = {}
			for i, x in pairs(ok and fields or {}) do
				ok = ok and math.type(i) == "integer" and type(x) == "string" and x:match("^[%w_]+$") ~= nil
				f[#f + 1] = x
			end
			if not ok or #f ~= #fields then
				error(sfmt("bad argument #2 to 'open' (index.%s must be an array of field names)", kind), 2)
			end
			index[kind] = f
		end
		sig = index_sig(index)
	end
	dir = normalize(dir)
	for _, d in ipairs({ dir, dir .. "/network", dir .. "/endpoint" }) do
		local ok, msg, err = core.mkdir_p(d, 448)     -- 0700
		if not ok then return nil, msg, err or "io" end
	end
	-- the cache is the directory's: a relative path is another directory
	-- from another working directory (brisk daemon serves callers in many)
	local key = dir
	if dir:sub(1, 1) ~= "/" then
		local cwd = core.getcwd()
		key = cwd and normalize(cwd .. "/" .. dir) or dir
	end
	caches[key] = caches[key] or {}
	local volatile = {}
	for _, k in ipairs(o and o.volatile or {}) do volatile[k] = true end
	return setmetatable({ dir = dir, _c = caches[key], _volatile = volatile, _index = index, _sig = sig }, Store)
end

-- --- the index --------------------------------------------------------------
--
-- `<dir>/.index` holds the summary (the indexed fields) of every document
-- of the indexed kinds, so a process sees all of them in one read instead
-- of one per document. Compact JSON values, each on its own line ending
-- in ",\n" (so the file, less its last comma, is a JSON array's inside):
--
--     {"boot":"<boot id>","spec":"<kinds and fields>","v":2}    the header
--     {"cols":{FIELD:[...]|{"v":[...],"i":[...]}},"id":[...],"k":KIND}
--         a snapshot of one kind: the ids sorted, one array per field
--         (null: none; "v"/"i": the distinct strings and 1-based indexes
--         into them, 0 for none, when few values repeat)
--     {"d":{<summary>},"g":"<gen>","id":"<id>","k":"<kind>"}   a put
--     {"d":null,"g":"<gen>","id":"<id>","k":"<kind>"}          a delete
--     {"g":"<gen>"}     a write of a kind not indexed; the end of a rewrite
--
-- Every write made by a store opened with `index` appends its line after
-- the document (under the lock, after bump_gen). The index is trusted only
-- when its last line carries the current generation, its header this
-- store's spec and this boot's id (the lines are not fsync'd: after a power
-- failure a document could outlive its line). Anything else (a crash
-- between a document and its line, a torn line, no index, a write by an
-- older brisk or by a store opened without `index`, a hand edit that bumped
-- .gen or removed .index) and it is rebuilt from the documents: inside a
-- transaction rewritten atomically, as a write (a new generation), outside
-- one computed without writing. Once the appended lines reach a sixteenth
-- of the live documents (plus 32) the next write rewrites it as snapshots.

local INDEX_VERSION = 2

local boot
local function boot_id()
	if not boot then
		boot = (core.file_read("/proc/sys/kernel/random/boot_id") or ""):match("^[^\n]*")
	end
	return boot
end

-- When this boot began (/proc/stat's btime), in seconds since the epoch.
local boot_time
local function booted()
	if not boot_time then
		local f = io.open("/proc/stat", "rb")
		local text = f and f:read("a") or ""
		if f then f:close() end
		boot_time = tonumber(text:match("\nbtime (%d+)")) or 0
	end
	return boot_time
end

local function compact(v)
	-- strings (most of an index: ids, names, addresses) without the tables
	if type(v) == "string" then return quote(v) end
	local out = {}
	encode_value(v, false, {}, out)
	return concat(out)
end

local function index_line(v)
	return compact(v) .. ",\n"
end

local function row_line(kind, id, summary, gen)
	local d = null
	if summary then
		d = {}
		for k, v in pairs(summary) do if k ~= "id" then d[k] = v end end
	end
	return index_line({ k = kind, id = id, d = d, g = gen })
end

local function new_index(self, gen)
	local ix = { gen = gen, sig = self._sig, kinds = {}, rows = 0, live = 0 }
	for kind in pairs(self._index) do ix.kinds[kind] = { map = {}, sorted = {} } end
	return ix
end

-- A kind read from a snapshot is kept lazy: k.snap = {ids=, cols=, n=} as
-- the file has it (the ids sorted, one array per field) and k.over, the
-- changes since (id -> summary, or false: deleted). Its summaries are
-- built only when something asks for them all (`full`); a one-shot
-- process that only looks a few up (`first`) or walks some fields once
-- (`scan`) builds none. At N=500 endpoints that is ~0.6 ms of a CLI
-- call's start.

-- The row of `id` in a lazy kind's snapshot, or nil.
local function snap_row(snap, id, less)
	local ids, lo, hi = snap.ids, 1, snap.n
	while lo <= hi do
		local mid = (lo + hi) // 2
		local x = ids[mid]
		if x == id then return mid end
		if less(x, id) then lo = mid + 1 else hi = mid - 1 end
	end
	return nil
end

-- Whether a lazy kind has `id` now.
local function lazy_has(k, id, less)
	local o = k.over[id]
	if o ~= nil then return o ~= false end
	return snap_row(k.snap, id, less) ~= nil
end

-- A snapshot column as a plain array (absent: null), the distinct
-- strings' form expanded once.
local function snap_column(snap, field)
	local col = snap.cols[field]
	if col == nil then return nil end
	if col.i == nil then return col end
	local plain = snap.plain[field]
	if not plain then
		local vals, idx = col.v, col.i
		plain = {}
		for i = 1, snap.n do
			local v = vals[idx[i]]
			plain[i] = type(v) == "string" and v or null
		end
		snap.plain[field] = plain
	end
	return plain
end

-- A snapshot cell as a summary holds it: null none.
local function cell(v)
	if v == null then return nil end
	return v
end

-- The summary of row i of a snapshot (a new table).
local function snap_summary(snap, fields, i)
	local s = { id = snap.ids[i] }
	for _, f in ipairs(fields) do
		local col = snap_column(snap, f)
		if col then s[f] = cell(col[i]) end
	end
	return s
end

-- The index's count of documents after one was there (`had`) or not,
-- and is (`now`) or not.
local function count_live(ix, had, now)
	if now and not had then
		ix.live = ix.live + 1
	elseif had and not now then
		ix.live = ix.live - 1
	end
end

-- Set (or, summary nil, remove) one entry, keeping the sorted array and
-- the kind's derived lookups (Store:derived).
local function index_apply(ix, kind, id, summary, less)
	local k = ix.kinds[kind]
	if k.snap then
		count_live(ix, lazy_has(k, id, less or id_less()), summary)
		k.over[id] = summary or false
		return
	end
	local old = k.map[id]
	k.map[id] = summary
	count_live(ix, old, summary)
	list_update(k.sorted, id, summary, less)
	for _, d in pairs(k.derived or {}) do d.update(d.obj, old, summary) end
end

-- The sorted array of a kind after rows changed its map: the entries of
-- the array still in the map (replaced ones by their new summary) merged
-- with the ids the rows touched.
local function merge_touched(k)
	local less, map, old = id_less(), k.map, k.sorted
	local ids = k.touched
	sort(ids, less)
	local out, j, n = {}, 1, #ids
	local function take(id)
		local s = map[id]
		if s then out[#out + 1] = s end
		local x = ids[j]
		while ids[j] == x do j = j + 1 end    -- past duplicates
	end
	for _, e in ipairs(old) do
		local id = e.id
		while j <= n and less(ids[j], id) do take(ids[j]) end
		if ids[j] == id then take(id) else out[#out + 1] = map[id] end
	end
	while j <= n do take(ids[j]) end
	return out
end

-- A summary table with room for its id and up to 7 (else 15) fields: the
-- constructor sizes the table, and its nil fields add no keys (Lua 5.4),
-- so filling it does not grow it field by field.
local function new_summary7(id)
	return { id = id, _1 = nil, _2 = nil, _3 = nil, _4 = nil, _5 = nil, _6 = nil, _7 = nil }
end
local function new_summary15(id)
	return { id = id, _1 = nil, _2 = nil, _3 = nil, _4 = nil, _5 = nil, _6 = nil, _7 = nil,
		_8 = nil, _9 = nil, _10 = nil, _11 = nil, _12 = nil, _13 = nil, _14 = nil, _15 = nil }
end

-- Take a snapshot line as an index's (empty) kind, lazy; false when it
-- does not fit. The cells are read as they are asked for (`cell`).
local function load_snapshot(ix, e)
	local k = ix.kinds[e.k]
	local ids, cols = e.id, e.cols
	if not k or k.snap or #k.sorted > 0 or type(ids) ~= "table" or type(cols) ~= "table" then
		return false
	end
	local n = #ids
	for i = 1, n do
		if type(ids[i]) ~= "string" then return false end
	end
	for _, col in pairs(cols) do
		if type(col) ~= "table" then return false end
		if col.i ~= nil then
			if type(col.v) ~= "table" or type(col.i) ~= "table" or #col.i ~= n then return false end
		elseif #col ~= n then
			return false
		end
	end
	k.snap, k.over, k.map, k.sorted = { ids = ids, cols = cols, n = n, plain = {} }, {}, nil, nil
	ix.live = ix.live + n
	return true
end

-- A kind's summaries, built now if it is lazy: the snapshot's rows, then
-- the changes since. Returns k.
local function full(k)
	local snap = k.snap
	if not snap then return k end
	local ids, n, map, sorted = snap.ids, snap.n, {}, {}
	local nf = 0
	for _ in pairs(snap.cols) do nf = nf + 1 end
	local new = nf <= 7 and new_summary7 or new_summary15
	for i = 1, n do
		local id = ids[i]
		local s = new(id)
		sorted[i], map[id] = s, s
	end
	for field in pairs(snap.cols) do
		local col = snap_column(snap, field)
		for i = 1, n do
			local v = col[i]
			if v ~= null then sorted[i][field] = v end
		end
	end
	local touched = {}
	for id, s in pairs(k.over) do
		map[id] = s or nil
		touched[#touched + 1] = id
	end
	k.snap, k.over, k.map, k.sorted = nil, nil, map, sorted
	if #touched > 0 then
		k.touched = touched
		k.sorted, k.touched = merge_touched(k), nil
	end
	return k
end

-- One snapshot line for a kind: its summaries, field by field.
local function snapshot_line(kind, fields, sorted)
	local n = #sorted
	local ids = {}
	for i, s in ipairs(sorted) do ids[i] = compact(s.id) end
	local cols = {}
	for _, f in ipairs(fields) do
		local vals, any, strings, distinct, ndistinct = {}, false, true, {}, 0
		for i = 1, n do
			local v = sorted[i][f]
			if v ~= nil then
				any = true
				if type(v) ~= "string" then
					strings = false
				elseif not distinct[v] then
					ndistinct = ndistinct + 1
					distinct[v] = ndistinct
				end
			end
			vals[i] = v
		end
		if any then
			local text
			if strings and ndistinct * 4 <= n then
				local v, idx = {}, {}
				for s, j in pairs(distinct) do v[j] = compact(s) end
				for i = 1, n do idx[i] = vals[i] and distinct[vals[i]] or 0 end
				text = '{"i":[' .. concat(idx, ",") .. '],"v":[' .. concat(v, ",") .. "]}"
			else
				local parts = {}
				for i = 1, n do parts[i] = vals[i] == nil and "null" or compact(vals[i]) end
				text = "[" .. concat(parts, ",") .. "]"
			end
			cols[#cols + 1] = compact(f) .. ":" .. text
		end
	end
	return '{"cols":{' .. concat(cols, ",") .. '},"id":[' .. concat(ids, ",") .. '],"k":' ..
		compact(kind) .. "},\n"
end

function Store:_summary(kind, doc)
	local s = { id = doc.id }
	for _, f in ipairs(self._index[kind]) do s[f] = deep_copy(doc[f]) end
	return s
end

-- The index file, if it can be trusted at generation `gen`.
function Store:_index_load(gen)
	local text = core.file_read(self.dir .. "/.index")
	if not text or text:sub(-2) ~= ",\n" then return nil end    -- none, empty, or a torn last line
	local arr = json_decode(text, true)                        -- the lines are values and commas
	if not arr then return nil end
	local head, last = arr[1], arr[#arr]
	if type(head) ~= "table" or head.v ~= INDEX_VERSION or head.spec ~= self._sig
		or head.boot ~= boot_id() or type(last) ~= "table" or last.g ~= gen then
		return nil
	end
	local ix = new_index(self, gen)
	local less = id_less()
	local rows = 0
	for i = 2, #arr do
		local e = arr[i]
		if type(e) ~= "table" then return nil end
		if e.cols ~= nil then
			if rows > 0 or not load_snapshot(ix, e) then return nil end
		else
			rows = rows + 1
			local kind = e.k
			if kind ~= nil then
				local id, d = e.id, e.d
				local k = ix.kinds[kind]
				if not k or type(id) ~= "string" then return nil end
				if d == null then
					d = nil
				elseif type(d) == "table" then
					d.id = id
				else
					return nil
				end
				-- into the map now, into the sorted array once at the end
				-- (a lazy kind: into its changes)
				local old
				if k.snap then
					old = lazy_has(k, id, less)
					k.over[id] = d or false
				else
					old = k.map[id]
					k.map[id] = d
					k.touched = k.touched or {}
					k.touched[#k.touched + 1] = id
				end
				count_live(ix, old, d)
			end
		end
	end
	for _, k in pairs(ix.kinds) do
		if k.touched then k.sorted, k.touched = merge_touched(k), nil end
	end
	ix.rows, ix.file = rows, true
	return ix
end

-- The index computed from the documents.
function Store:_index_build(gen)
	local ix = new_index(self, gen)
	for kind in pairs(self._index) do
		local docs, msg, code = self:list(kind, true)
		if not docs then return nil, msg, code end
		local k = ix.kinds[kind]
		for i, doc in ipairs(docs) do       -- sorted already
			local s = self:_summary(kind, doc)
			k.sorted[i], k.map[doc.id] = s, s
		end
		ix.live = ix.live + #docs
	end
	return ix
end

-- Rewrite the index file whole (under the lock), at generation ix.gen.
function Store:_index_write(ix)
	local ok, text = pcall(function()
		local out = { index_line({ v = INDEX_VERSION, spec = ix.sig, boot = boot_id() }) }
		local kinds = {}
		for kind in pairs(ix.kinds) do kinds[#kinds + 1] = kind end
		sort(kinds)
		for _, kind in ipairs(kinds) do
			out[#out + 1] = snapshot_line(kind, self._index[kind], full(ix.kinds[kind]).sorted)
		end
		out[#out + 1] = index_line({ g = ix.gen })
		return concat(out)
	end)
	-- written over the spare's bytes: an index a power failure left stale
	-- names another boot, and is rebuilt
	ok = ok and core.file_write_atomic(self.dir .. "/.index", text, 384, false, self.dir .. "/.spare", true)
	ix.file = ok and true or false
	if ok then ix.rows = 1 end
	return ix.file
end

-- The trusted index: cached, read from the file, or rebuilt.
-- @return index, or nil, msg, code when a document cannot be read
function Store:_ix()
	local c, intx = self._c, held[self.dir]
	local gen = intx and c.gen or read_gen(self.dir)
	local ix = c.ix
	if not (ix and ix.gen == gen and ix.sig == self._sig) then
		ix = self:_index_load(gen)
		if not ix and not intx then
			-- a writer may have come between .gen and the index: once more
			local again = read_gen(self.dir)
			if again ~= gen then gen = again; ix = self:_index_load(gen) end
		end
		if not ix then
			local msg, code
			ix, msg, code = self:_index_build(gen)
			if not ix then return nil, msg, code end
		end
		-- built without the lock, it serves this read only: a writer bumps
		-- .gen before it changes a document, so the build may show the state
		-- before a write under the generation of that write, and a later
		-- transaction would trust it (and write it as the index)
		if intx or ix.file then c.ix = ix end
	end
	if intx and not ix.file then
		-- as a write, under a new generation: a process that cached the
		-- index of another spec (another brisk) must not append to this one
		if bump_gen(self) then
			ix.gen = c.gen
			self:_index_write(ix)
		end
		if not ix.file then c.ix = nil end
	end
	return ix
end

-- Before a write, in its transaction: the index to append to afterwards
-- (nil when this store keeps none or it cannot be made right: it is then
-- left stale, to be rebuilt by the next reader).
function Store:_ix_for_write()
	if not self._index then return nil end
	local ix = self:_ix()
	return ix and ix.file and ix or nil
end

-- After a write at generation c.gen: record it in the index.
function Store:_ix_append(ix, kind, id, doc)
	local gen = self._c.gen
	local ok, line = true, nil
	if ix.kinds[kind] then
		local s = doc and self:_summary(kind, doc) or nil
		index_apply(ix, kind, id, s)
		ok, line = pcall(row_line, kind, id, s, gen)
	else
		line = index_line({ g = gen })
	end
	ix.gen = gen
	if not ok then
		ix.file = false           -- left stale: rebuilt by the next reader
	elseif ix.rows >= ix.live // 16 + 32 then
		self:_index_write(ix)
	else
		local f = io.open(self.dir .. "/.index", "ab")
		local wrote = f and f:write(line)
		if f then wrote = f:close() and wrote end
		if wrote then ix.rows = ix.rows + 1 else ix.file = false end
	end
	if not ix.file then self._c.ix = nil end
end

-- The index's entry of an indexed kind ({map=, sorted=, derived=}) for
-- the method `fname` (raises as that method when the kind is not indexed).
-- @return entry, or nil, msg, code as `summaries`
function Store:_indexed(kind, fname, lazy)
	check_kind(kind, 1, fname, 4)
	if not (self._index and self._index[kind]) then
		error(sfmt("bad argument #1 to '%s' (kind '%s' is not indexed: see the index option of open)",
			fname, kind), 3)
	end
	local ix, msg, code = self:_ix()
	if not ix then return nil, msg, code end
	local k = ix.kinds[kind]
	if not lazy then full(k) end
	return k, nil, nil, ix
end

--- Summaries of the documents of an indexed kind: the fields named for it
-- in `open`'s `index` option, and `id`, sorted by id as `list` sorts.
-- Served from `<dir>/.index` (one read, cached while the store's
-- generation stays the same), rebuilt from the documents when it cannot be
-- trusted, so a summary always agrees with its document.
-- @tparam string kind a kind given in `index`
-- @tparam[opt] boolean shared true: the cached tables themselves
--   (read-only); the default is fresh copies
-- @return array of summaries
-- @return[2] nil, msg, "corrupt" | "io" when the index had to be rebuilt
--   and a document could not be read
-- @raise when the kind is not indexed
function Store:summaries(kind, shared)
	local k, msg, code = self:_indexed(kind, "summaries")
	if not k then return nil, msg, code end
	local arr = k.sorted
	if shared then return arr end
	local copy = {}
	for i, s in ipairs(arr) do copy[i] = deep_copy(s) end
	return copy
end

--- A lookup over the summaries of an indexed kind, kept in step with
-- them: made by `build(summaries)` (the sorted, read-only array) the first
-- time it is asked for with this index, then changed by
-- `update(lookup, old, new)` on each write this process makes (old and new
-- are the summaries before and after; nil when absent). A new index (read
-- from the file after another process wrote, or rebuilt) makes it anew.
-- For flows that search the summaries by something other than their id
-- (names, address ranges) on every write, without a walk over all of them.
-- @tparam string kind a kind given in `index`
-- @tparam string name the lookup's name (one lookup per name and kind)
-- @tparam function build
-- @tparam function update
-- @return the lookup (build's result)
-- @return[2] nil, msg, code as `summaries`
-- The lookup `name` of a built kind's entry, made by build(sorted) the
-- first time.
local function derived_of(k, name, build, update)
	k.derived = k.derived or {}
	local d = k.derived[name]
	if not d then
		d = { obj = build(k.sorted), update = update }
		k.derived[name] = d
	end
	return d.obj
end

function Store:derived(kind, name, build, update)
	local k, msg, code = self:_indexed(kind, "derived")
	if not k then return nil, msg, code end
	return derived_of(k, name, build, update)
end

-- Maps whose values are one summary, or an array of the summaries that
-- share a key (summaries have a string `id`, arrays none): what `by_fields`
-- lookups and the driver's prefix sets keep.

--- Add summary s under key k of map m; true when k was new.
function M.one_add(m, k, s)
	local cur = m[k]
	if cur == nil then
		m[k] = s
	elseif cur.id ~= nil then
		m[k] = { cur, s }
	else
		cur[#cur + 1] = s
	end
	return cur == nil
end

--- Remove summary s from key k of map m; true when nothing is left there.
function M.one_del(m, k, s)
	local cur = m[k]
	if cur == s then
		m[k] = nil
		return true
	elseif cur and cur.id == nil then
		for i = #cur, 1, -1 do
			if cur[i] == s then table.remove(cur, i) end
		end
		if #cur == 1 then m[k] = cur[1] end
	end
	return false
end

--- One summary of a map's value (a summary or an array of them), or nil.
function M.one(cur)
	if cur == nil or cur.id ~= nil then return cur end
	return cur[1]
end

--- A lookup by fields, for `derived`: lookup[field][value] is the summary
-- whose `field` is `value`, or an array of them when several share it
-- (`first` reads either).
-- @tparam table fields field names
-- @return build, update (for `derived`)
function M.by_fields(fields)
	local function add(lk, s)
		for _, f in ipairs(fields) do
			if s[f] ~= nil then M.one_add(lk[f], s[f], s) end
		end
	end
	local function del(lk, s)
		for _, f in ipairs(fields) do
			if s[f] ~= nil then M.one_del(lk[f], s[f], s) end
		end
	end
	local one_add = M.one_add
	local function build(summaries)
		local lk = {}
		for _, f in ipairs(fields) do
			-- field by field, a first key set in place (a new process
			-- builds this over every summary before its first write)
			local m = {}
			for _, s in ipairs(summaries) do
				local k = s[f]
				if k ~= nil then
					if m[k] == nil then m[k] = s else one_add(m, k, s) end
				end
			end
			lk[f] = m
		end
		return lk
	end
	local function update(lk, old, new)
		if old then del(lk, old) end
		if new then add(lk, new) end
	end
	return build, update
end

--- One summary of a `by_fields` lookup whose `field` is `value`, or nil.
function M.first(lk, field, value)
	return value ~= nil and M.one(lk[field][value]) or nil
end

--- The summaries whose field `field` equals `value` (as `summaries`).
-- @tparam string kind a kind given in `index`
-- @tparam string field one of its indexed fields, or "id"
-- @param value compared with ==
-- @tparam[opt] boolean shared as for `summaries`
-- @return array of summaries, sorted by id
-- @return[2] nil, msg, code as `summaries`
function Store:find(kind, field, value, shared)
	check_kind(kind, 1, "find")
	if type(field) ~= "string" then
		error("bad argument #2 to 'find' (string expected, got " .. type(field) .. ")", 2)
	end
	local k, msg, code = self:_indexed(kind, "find")
	if not k then return nil, msg, code end
	local out = {}
	for _, s in ipairs(k.sorted) do
		if s[field] == value then out[#out + 1] = shared and s or deep_copy(s) end
	end
	return out
end

-- After this many `first` and `scan` calls on one lazy kind, it is built
-- whole: a long-lived process (brisk daemon, a topology script) then
-- answers from the lookups instead of walking the snapshot each time.
local LAZY_CALLS = 16

local function lazy_call(k)
	if not k.snap then return false end
	k.calls = (k.calls or 0) + 1
	if k.calls > LAZY_CALLS then
		full(k)
		return false
	end
	return true
end

-- The lookup by one field that `first` keeps (a `derived` one).
local by_field = {}

--- A summary of an indexed kind whose field `field` is `value`, or nil
-- (when several are, one of them: the first by id when the index was
-- just read). Cheaper than a walk over `summaries` when the index was
-- just read: the fields are compared where the index file keeps them, and
-- only the summary found is built (after a few calls, or once the
-- summaries were built anyway, the answers come from a lookup kept in step
-- with them, as `derived` ones; an index rebuilt outside a transaction,
-- which serves one read only, is walked).
-- @tparam string kind a kind given in `index`
-- @tparam string field one of its indexed fields, or "id"
-- @param value compared with ==
-- @return summary (a fresh table, or the shared one: read-only), or nil
-- @return[2] nil, msg, code as `summaries`
function Store:first(kind, field, value)
	if type(field) ~= "string" then
		error("bad argument #2 to 'first' (string expected, got " .. type(field) .. ")", 2)
	end
	local k, msg, code, ix = self:_indexed(kind, "first", true)
	if not k then return nil, msg, code end
	if value == nil then return nil end
	if not lazy_call(k) then
		if ix ~= self._c.ix then
			-- built for this read only: a lookup made over it would be
			-- made again, with the whole index, by the next call
			for _, s in ipairs(k.sorted) do
				if s[field] == value then return s end
			end
			return nil
		end
		local b = by_field[field]
		if not b then
			b = { M.by_fields{ field } }
			by_field[field] = b
		end
		-- (on the entry in hand: `derived` would read .gen and the index again)
		return M.first(derived_of(k, "\0first:" .. field, b[1], b[2]), field, value)
	end
	local less, snap, best = id_less(), k.snap, nil
	-- the changes since the snapshot
	for id, s in pairs(k.over) do
		if s and s[field] == value and (not best or less(id, best.id)) then best = s end
	end
	if field == "id" then
		local i = type(value) == "string" and snap_row(snap, value, less)
		if i and k.over[value] == nil then best = snap_summary(snap, self._index[kind], i) end
		return best
	end
	local col = snap_column(snap, field)
	if col then
		local ids, over = snap.ids, k.over
		for i = 1, snap.n do
			local v = col[i]
			if (v == value or (type(value) ~= "string" and cell(v) == value)) and over[ids[i]] == nil then
				if not best or less(ids[i], best.id) then best = snap_summary(snap, self._index[kind], i) end
				break
			end
		end
	end
	return best
end

--- Call fn(id, v1, v2, ...) for every summary of an indexed kind, with
-- the values of `fields` (nil where a summary has none; "id" is the id),
-- in no particular order, building no summary when the index was just
-- read: a walk over every summary made once (an address book, a count).
-- fn must not write to the store.
-- @tparam string kind a kind given in `index`
-- @tparam table fields field names, each one of the kind's indexed fields
-- @tparam function fn
-- @return true, or nil, msg, code as `summaries`
function Store:scan(kind, fields, fn)
	if type(fields) ~= "table" then
		error("bad argument #2 to 'scan' (table expected, got " .. type(fields) .. ")", 2)
	end
	if type(fn) ~= "function" then
		error("bad argument #3 to 'scan' (function expected, got " .. type(fn) .. ")", 2)
	end
	local k, msg, code = self:_indexed(kind, "scan", true)
	if not k then return nil, msg, code end
	local nf = #fields
	local vals = {}
	if not lazy_call(k) then
		for _, s in ipairs(k.sorted) do
			for j = 1, nf do vals[j] = s[fields[j]] end
			fn(s.id, unpack(vals, 1, nf))
		end
		return true
	end
	local snap, over = k.snap, k.over
	-- the snapshot's rows that changed since: skipped, read from `over`
	local skip, less = {}, id_less()
	for id in pairs(over) do
		local i = snap_row(snap, id, less)
		if i then skip[i] = true end
	end
	local cols = {}
	for j = 1, nf do cols[j] = fields[j] == "id" and snap.ids or snap_column(snap, fields[j]) or {} end
	local ids, n = snap.ids, snap.n
	if nf <= 3 then
		-- (the common case unrolled)
		local c1, c2, c3 = cols[1] or {}, cols[2] or {}, cols[3] or {}
		for i = 1, n do
			if not skip[i] then
				local a, b, c = c1[i], c2[i], c3[i]
				if a == null then a = nil end
				if b == null then b = nil end
				if c == null then c = nil end
				fn(ids[i], a, b, c)
			end
		end
	else
		for i = 1, n do
			if not skip[i] then
				for j = 1, nf do vals[j] = cell(cols[j][i]) end
				fn(ids[i], unpack(vals, 1, nf))
			end
		end
	end
	for id, s in pairs(over) do
		if s then
			for j = 1, nf do vals[j] = s[fields[j]] end
			fn(id, unpack(vals, 1, nf))
		end
	end
	return true
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

-- A document of a volatile kind that does not parse, written before this
-- boot: the kernel state it described went with the reboot, and its bytes
-- may be what a power failure left (a volatile document is written over
-- its inode's old bytes, not fsync'd). It reads as not found (and goes,
-- under the lock) instead of failing every command that lists the kind.
function Store:_stale_damaged(kind, id, path, msg, code)
	local mt = self._volatile[kind] and core.file_mtime(path)
	if not (mt and mt < booted()) then return nil, msg, code end
	if held[self.dir] then core.unlink(path) end
	return nil, sfmt("%s %s not found (its document, damaged before this boot, was dropped)", kind, id),
		"notfound"
end

function Store:_read_file(kind, id)
	local doc, msg, code = self:_parse_file(kind, id)
	if code == "corrupt" then return self:_stale_damaged(kind, id, self:_path(kind, id), msg, code) end
	return doc, msg, code
end

function Store:_parse_file(kind, id)
	local path = self:_path(kind, id)
	local text, msg, errno = core.file_read(path)
	if not text then
		if errno == ENOENT then return nil, sfmt("%s %s not found", kind, id), "notfound" end
		return nil, msg, "io"
	end
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
		local ix = self:_ix_for_write()
		local wrote, werr = bump_gen(self)
		if wrote then wrote, werr = core.mkdir_p(self.dir .. "/" .. kind, 448) end
		-- 0600; the inode a write replaces is kept (.spare) for the next one,
		-- and a document of a volatile kind is written over its bytes (after
		-- a power failure it may show some of them: _read_file checks the id)
		if wrote then wrote, werr = core.file_write_atomic(self:_path(kind, id), text, 384,
			not (self._c.batch or volatile), self.dir .. "/" .. kind .. "/.spare",
			self._volatile[kind] == true) end
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
		if ix then self:_ix_append(ix, kind, id, doc) end
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
		local ix = self:_ix_for_write()
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
		if ix then self:_ix_append(ix, kind, id, nil) end
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

--- The id of the document a file of a kind's directory holds ("<id>.json"),
-- or nil for anything else there (the spare inode, a temporary file).
-- @tparam string name a file name
-- @treturn string|nil
function M.doc_id(name)
	return name:match("^([%w_][%w_.-]*)%.json$")
end

function Store:_list(kind)
	local names, msg, errno = core.listdir(self.dir .. "/" .. kind)
	if not names then
		if errno == ENOENT then return {} end
		return nil, msg, "io"
	end
	local ids = {}
	for _, name in ipairs(names) do
		local id = M.doc_id(name)
		if id then ids[#ids + 1] = id end
	end
	sort(ids, id_less())
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
