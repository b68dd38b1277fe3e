--- brisk.schema: declarative option tables.
--
-- A schema is declared once, as a list of options:
--
--     local s = schema.new{
--         { key = "mtu", type = "int", default = 1500,
--           label = "com.docker.network.driver.mtu",
--           check = function(v) if v < 0 then return false, "invalid MTU number: " .. v end return true end },
--         { key = "enable_icc", type = "bool", default = true,
--           label = "com.docker.network.bridge.enable_icc", aliases = { "icc" } },
--     }
--     local opts, err = s:parse{ ["com.docker.network.bridge.enable_icc"] = "false", mtu = "9000" }
--     --> { mtu = 9000, enable_icc = false }
--
-- An option may be named by its key, its Docker label or an alias; the
-- result uses keys. Values may be Lua values or strings, as Docker labels
-- are: `bool` follows Go's strconv.ParseBool, `int` Go's strconv.Atoi, and
-- conversion failures read like libnetwork's "failed to parse <label>
-- value: <value> (<reason>)". Addresses and MACs are normalized to their
-- canonical text (brisk.ipnet), so parsed tables stay printable and
-- JSON-encodable.
--
-- Types: bool, int, string, ip, ipv4, cidr, mac, ifname, enum (with
-- `values`).
-- @module brisk.schema

local ipnet = require "brisk.ipnet"

local type, pairs, ipairs, tostring, error, setmetatable, math = type, pairs, ipairs, tostring, error, setmetatable, math
local sfmt, concat, sort = string.format, table.concat, table.sort

local M = {}

local Schema = {}
Schema.__index = Schema

-- --- converters: value -> normalized value, or nil, reason ---------------

local BOOLS = {
	["1"] = true, t = true, T = true, TRUE = true, ["true"] = true, True = true,
	["0"] = false, f = false, F = false, FALSE = false, ["false"] = false, False = false,
}

-- Go's strconv.Atoi on 64-bit: optional sign, decimal digits, range checked.
local function atoi(s)
	local sign, digits = s:match("^([+-]?)(%d+)$")
	if not digits then return nil, sfmt('strconv.Atoi: parsing "%s": invalid syntax', s) end
	local neg = sign == "-"
	local v = 0
	for i = 1, #digits do
		local d = digits:byte(i) - 48
		-- accumulate negatively: math.mininteger has no positive twin;
		-- v * 10 - d must stay >= mininteger, i.e. v >= ceil((min + d) / 10)
		local limit = (math.mininteger + d) // 10
		if (math.mininteger + d) % 10 ~= 0 then limit = limit + 1 end
		if v < limit then
			return nil, sfmt('strconv.Atoi: parsing "%s": value out of range', s)
		end
		v = v * 10 - d
	end
	if not neg then
		if v == math.mininteger then
			return nil, sfmt('strconv.Atoi: parsing "%s": value out of range', s)
		end
		v = -v
	end
	return v
end

--- Why `s` cannot be an interface name (empty, longer than 15 bytes, "."
-- or "..", '/', ':', whitespace, '%'), or nil when it can.
local function ifname_invalid(s)
	if #s == 0 then return "empty interface name" end
	if #s >= 16 then return "interface name longer than 15 bytes" end
	if s == "." or s == ".." then return "interface name cannot be . or .." end
	if s:find("[/:%s]") then return "interface name contains '/', ':' or whitespace" end
	-- the kernel reads '%d' as a template and makes a name of its own
	if s:find("%", 1, true) then return "interface name contains '%' (a kernel name template)" end
	return nil
end

local convert = {}

function convert.bool(v)
	if type(v) == "boolean" then return v end
	if type(v) == "string" then
		local b = BOOLS[v]
		if b ~= nil then return b end
		return nil, sfmt('strconv.ParseBool: parsing "%s": invalid syntax', v)
	end
	return nil, nil, "a boolean"
end

function convert.int(v)
	if math.type(v) == "integer" then return v end
	if math.type(v) == "float" then
		local i = math.tointeger(v)
		if i then return i end
		return nil, "not an integer"
	end
	if type(v) == "string" then return atoi(v) end
	return nil, nil, "an integer"
end

function convert.string(v)
	if type(v) == "string" then return v end
	return nil, nil, "a string"
end

function convert.ip(v)
	if type(v) ~= "string" then return nil, nil, "an IP address string" end
	local a, err = ipnet.parse_ip(v)
	if not a then return nil, err end
	return ipnet.format(a)
end

function convert.ipv4(v)
	if type(v) ~= "string" then return nil, nil, "an IPv4 address string" end
	local a, err = ipnet.parse_ip(v)
	if not a then return nil, err end
	if a.family ~= 4 then return nil, sfmt("not an IPv4 address: '%s'", v) end
	return ipnet.format(a)
end

function convert.cidr(v)
	if type(v) ~= "string" then return nil, nil, "a CIDR string" end
	local a, err = ipnet.parse_cidr(v)
	if not a then return nil, err end
	return ipnet.format(a)
end

function convert.mac(v)
	if type(v) ~= "string" then return nil, nil, "a MAC address string" end
	local m, err = ipnet.mac_parse(v)
	if not m then return nil, err end
	return ipnet.mac_format(m)
end

function convert.ifname(v)
	if type(v) ~= "string" then return nil, nil, "an interface name string" end
	local why = ifname_invalid(v)
	if why then return nil, why end
	return v
end

function convert.enum(v, opt)
	if type(v) ~= "string" then return nil, nil, "a string" end
	for _, x in ipairs(opt.values) do
		if x == v then return v end
	end
	return nil, "must be one of " .. concat(opt.values, ", ")
end

-- Convert one value for `opt`, given under `name`; nil, msg on failure.
local function convert_value(opt, name, v)
	local r, reason, want = convert[opt.type](v, opt)
	if r == nil then
		if want then
			return nil, sfmt("option '%s' must be %s (got %s)", name, want, type(v))
		end
		return nil, sfmt("failed to parse %s value: %s (%s)", name, tostring(v), reason)
	end
	if opt.check then
		local ok, msg = opt.check(r)
		if not ok then return nil, msg or sfmt("invalid value for option '%s': %s", name, tostring(v)) end
	end
	return r
end

-- --- did you mean --------------------------------------------------------

-- Optimal string alignment distance (Levenshtein plus transpositions).
local function distance(a, b)
	local la, lb = #a, #b
	if la == 0 then return lb end
	if lb == 0 then return la end
	local d = {}
	for i = 0, la do d[i] = { [0] = i } end
	for j = 0, lb do d[0][j] = j end
	for i = 1, la do
		local ai = a:byte(i)
		for j = 1, lb do
			local cost = ai == b:byte(j) and 0 or 1
			local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
			if i > 1 and j > 1 and ai == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
				v = math.min(v, d[i - 2][j - 2] + 1)
			end
			d[i][j] = v
		end
	end
	return d[la][lb]
end

-- The closest of `names` (an array) to `name`, when it is close enough:
-- a third of its length in edits (at most 2, or a fifth of a long name;
-- a flag's dashes not counted), or it begins the name. A word of one or
-- two letters is close to too much ('-x' to '-f', 'rm' to 'run'): it
-- gets a name it begins, or for two letters one edit after the first.
-- A word longer than any name brisk has (128 bytes) gets nothing, and a
-- name too far from the word in length is not measured: the distance
-- costs the product of the lengths.
local function closest(name, names)
	if #name > 128 then return nil end
	local core = name:gsub("^%-+", "")
	local limit = math.min(#core // 3, math.max(2, #core // 5))
	local best, bestd
	for _, n in ipairs(names) do
		local dist = math.abs(#name - #n) <= math.max(limit, 1) and distance(name, n) or math.huge
		local l = limit
		if #name >= 2 and n:sub(1, #name) == name then
			dist, l = math.min(dist, 1), math.max(l, 1)
		elseif #core == 2 and n:gsub("^%-+", ""):sub(1, 1) == core:sub(1, 1) then
			l = 1
		end
		if dist <= l and (not bestd or dist < bestd or (dist == bestd and n < best)) then
			best, bestd = n, dist
		end
	end
	return best
end
M.closest = closest

local function suggest(self, name)
	return closest(name, self._names)
end

--- A " (did you mean 'x'?)" hint for an unknown name, or "".
-- @tparam string name the unknown name
-- @tparam table candidates an array of names, or a set (name -> true)
-- @return string
function M.suggest(name, candidates)
	local names = {}
	for k, v in pairs(candidates) do
		names[#names + 1] = type(k) == "number" and v or k
	end
	table.sort(names)
	local best = closest(tostring(name), names)
	if best then return sfmt(" (did you mean '%s'?)", best) end
	return ""
end

-- --- the schema ----------------------------------------------------------

local FIELDS = {
	key = "string", type = "string", default = true, label = "string", aliases = "table",
	check = "function", values = "table", doc = "string",
}

--- Declare a schema.
-- @tparam table opts an array of option declarations: `key` (string,
--   required), `type` (required), `default`, `label` (Docker label),
--   `aliases` (array of strings), `check` (function(v) -> ok, msg, called
--   on the normalized value), `values` (enum: array of strings), `doc`
-- @return schema
-- @raise on a malformed declaration (unknown field, duplicate name, bad
--   default, enum without values)
function M.new(opts)
	if type(opts) ~= "table" then
		error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2)
	end
	local self = setmetatable({ _opts = {}, _byname = {}, _names = {} }, Schema)
	local function claim(name, opt)
		if type(name) ~= "string" or name == "" then
			error(sfmt("schema: option '%s': names must be non-empty strings", opt.key), 3)
		end
		if self._byname[name] then error(sfmt("schema: name '%s' declared twice", name), 3) end
		self._byname[name] = opt
		self._names[#self._names + 1] = name
	end
	for i, o in ipairs(opts) do
		if type(o) ~= "table" then error(sfmt("schema: entry %d is not a table", i), 2) end
		for k, v in pairs(o) do
			local want = FIELDS[k]
			if not want then error(sfmt("schema: entry %d: unknown field '%s'", i, tostring(k)), 2) end
			if want ~= true and type(v) ~= want then
				error(sfmt("schema: entry %d: field '%s' must be a %s", i, k, want), 2)
			end
		end
		if type(o.key) ~= "string" then error(sfmt("schema: entry %d has no key", i), 2) end
		if not convert[o.type] then
			error(sfmt("schema: option '%s': unknown type '%s'", o.key, tostring(o.type)), 2)
		end
		if o.type == "enum" and (not o.values or #o.values == 0) then
			error(sfmt("schema: option '%s': enum needs values", o.key), 2)
		end
		local opt = {
			key = o.key, type = o.type, label = o.label, check = o.check, doc = o.doc,
			aliases = {}, values = o.values,
		}
		for _, a in ipairs(o.aliases or {}) do opt.aliases[#opt.aliases + 1] = a end
		claim(opt.key, opt)
		if opt.label then claim(opt.label, opt) end
		for _, a in ipairs(opt.aliases) do claim(a, opt) end
		if o.default ~= nil then
			local v, err = convert_value(opt, opt.key, o.default)
			if v == nil then error(sfmt("schema: option '%s': bad default: %s", opt.key, err), 2) end
			opt.default = v
		end
		self._opts[#self._opts + 1] = opt
	end
	sort(self._names)
	return self
end

--- Check and normalize an option table.
-- @tparam table t option names (key, label or alias) to values
-- @return a new table keyed by option key, defaults filled in
-- @return[2] nil, msg: "unknown option 'x' (did you mean 'y'?)", "option
--   'k' given twice (as 'a' and 'b')", "option 'k' must be an integer (got
--   boolean)", "failed to parse <name> value: <v> (<reason>)", or the
--   message of a check function
function Schema:parse(t)
	if type(t) ~= "table" then
		error("bad argument #1 to 'parse' (table expected, got " .. type(t) .. ")", 2)
	end
	-- names in sorted order so the error reported is always the same
	local names = {}
	for k in pairs(t) do
		if type(k) ~= "string" then
			return nil, sfmt("option names must be strings (got %s %s)", type(k), tostring(k))
		end
		names[#names + 1] = k
	end
	sort(names)
	local out, given = {}, {}
	for _, name in ipairs(names) do
		local opt = self._byname[name]
		if not opt then
			local s = suggest(self, name)
			if s then return nil, sfmt("unknown option '%s' (did you mean '%s'?)", name, s) end
			return nil, sfmt("unknown option '%s'", name)
		end
		if given[opt.key] then
			return nil, sfmt("option '%s' given twice (as '%s' and '%s')", opt.key, given[opt.key], name)
		end
		given[opt.key] = name
		local v, err = convert_value(opt, name, t[name])
		if v == nil then return nil, err end
		out[opt.key] = v
	end
	for _, opt in ipairs(self._opts) do
		if out[opt.key] == nil then out[opt.key] = opt.default end
	end
	return out
end

--- The declared options, in declaration order, for help texts and
-- completion.
-- @return array of copies `{key, type, default, label, aliases, values, doc}`
function Schema:keys()
	local r = {}
	for i, o in ipairs(self._opts) do
		local aliases = {}
		for j, a in ipairs(o.aliases) do aliases[j] = a end
		local values
		if o.values then
			values = {}
			for j, v in ipairs(o.values) do values[j] = v end
		end
		r[i] = {
			key = o.key, type = o.type, default = o.default, label = o.label,
			aliases = aliases, values = values, doc = o.doc,
		}
	end
	return r
end

M.ifname_invalid = ifname_invalid

return M
