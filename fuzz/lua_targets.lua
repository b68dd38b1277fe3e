-- fuzz/lua_targets.lua: the Lua parsers fuzz_lua.c drives, with the
-- properties each must keep. Every target takes one string (the fuzzer's
-- bytes) and raises only on a finding: the parser raised instead of
-- returning `nil, msg`, returned something of the wrong shape, or a value
-- did not survive a round trip through its canonical text.
--
-- Also loadable without the fuzzer (spec/test_badinput.lua replays the
-- corpus through these same functions).
local ipnet = require "brisk.ipnet"
local ports = require "brisk.ports"
local netopts = require "brisk.netopts"
local store = require "brisk.store"
local cjson = require "cjson"

local function finding(fmt, ...)
	error("FINDING: " .. string.format(fmt, ...), 0)
end

-- Call fn(s); a raise is a finding. Returns what fn returned.
local function call(name, fn, ...)
	local r = table.pack(pcall(fn, ...))
	if not r[1] then finding("%s raised: %s", name, tostring(r[2])) end
	return table.unpack(r, 2, r.n)
end

-- nil, msg with msg a non-empty string.
local function check_failure(name, s, v, msg)
	if v == nil and (type(msg) ~= "string" or msg == "") then
		finding("%s(%q) failed without a message", name, s)
	end
end

local function deep_equal(a, b)
	if a == b then return true end
	if type(a) ~= "table" or type(b) ~= "table" then
		-- NaN is the one value unequal to itself
		return type(a) == "number" and type(b) == "number" and a ~= a and b ~= b
	end
	for k, v in pairs(a) do if not deep_equal(v, b[k]) then return false end end
	for k in pairs(b) do if a[k] == nil then return false end end
	return true
end

local BITS = { [4] = 32, [6] = 128 }

local function check_addr(name, s, a, with_plen)
	if type(a) ~= "table" or not BITS[a.family] or type(a.bytes) ~= "string"
		or #a.bytes ~= BITS[a.family] // 8 then
		finding("%s(%q) returned a malformed address", name, s)
	end
	if with_plen and (math.type(a.plen) ~= "integer" or a.plen < 0 or a.plen > BITS[a.family]) then
		finding("%s(%q) returned a prefix length out of range", name, s)
	end
end

-- "k=v" lines into an option table; a line without "=" is a key with the
-- value true, "#n" after the "=" an integer, so every value type is reached.
local function kv(s)
	local t = {}
	for line in (s .. "\n"):gmatch("([^\n]*)\n") do
		local k, v = line:match("^([^=]*)=(.*)$")
		if not k then
			t[line] = true
		elseif v:match("^#%-?%d+$") then
			t[k] = math.tointeger(tonumber(v:sub(2))) or v
		else
			t[k] = v
		end
	end
	return t
end

local function schema_target(name, schema)
	return function(s)
		local t = kv(s)
		local out, msg = call(name, schema.parse, schema, t)
		check_failure(name, s, out, msg)
		if out == nil then return end
		if type(out) ~= "table" then finding("%s(%q) returned a %s", name, s, type(out)) end
		local keys = {}
		for _, o in ipairs(schema:keys()) do keys[o.key] = true end
		for k in pairs(out) do
			if not keys[k] then finding("%s(%q) returned unknown key %s", name, s, tostring(k)) end
		end
		-- normalized values parse to themselves
		local again, amsg = call(name, schema.parse, schema, out)
		if not deep_equal(again, out) then
			finding("%s(%q): parsing the parsed options changed them (%s)", name, s, tostring(amsg))
		end
	end
end

local targets = {
	{ "ipnet.parse_cidr", function(s)
		local p, net = call("parse_cidr", ipnet.parse_cidr, s)
		check_failure("parse_cidr", s, p, net)
		if p == nil then return end
		check_addr("parse_cidr", s, p, true)
		check_addr("parse_cidr", s, net, true)
		if not ipnet.contains(net, p) then finding("parse_cidr(%q): the network does not contain the address", s) end
		local text = ipnet.format(p)
		local p2 = ipnet.parse_cidr(text)
		if not p2 or p2.bytes ~= p.bytes or p2.plen ~= p.plen or p2.family ~= p.family then
			finding("parse_cidr(%q): %s does not parse back to the same prefix", s, text)
		end
		-- the size and the broadcast of what parsed must not raise
		call("size", ipnet.size, net)
		if p.family == 4 then call("broadcast", ipnet.broadcast, net) end
	end },
	{ "ipnet.parse_ip", function(s)
		local a, msg = call("parse_ip", ipnet.parse_ip, s)
		check_failure("parse_ip", s, a, msg)
		if a == nil then return end
		check_addr("parse_ip", s, a, false)
		local text = ipnet.format(a)
		local a2 = ipnet.parse_ip(text)
		if not a2 or a2.bytes ~= a.bytes or a2.family ~= a.family then
			finding("parse_ip(%q): %s does not parse back to the same address", s, text)
		end
	end },
	{ "ipnet.mac_parse", function(s)
		local m, msg = call("mac_parse", ipnet.mac_parse, s)
		check_failure("mac_parse", s, m, msg)
		if m == nil then return end
		if type(m) ~= "string" or #m ~= 6 then finding("mac_parse(%q) returned no 6 bytes", s) end
		local text = ipnet.mac_format(m)
		if ipnet.mac_parse(text) ~= m then finding("mac_parse(%q): %s does not parse back", s, text) end
	end },
	{ "ports.parse", function(s)
		local r, msg = call("ports.parse", ports.parse, s)
		check_failure("ports.parse", s, r, msg)
		if r == nil then return end
		local PROTO = { tcp = true, udp = true, sctp = true }
		if type(r) ~= "table" or not PROTO[r.proto] then finding("ports.parse(%q): bad proto", s) end
		for _, k in ipairs{ "host_port", "container_port" } do
			local v = r[k]
			if math.type(v) ~= "integer" or v < 0 or v > 65535 then
				finding("ports.parse(%q): %s out of range", s, k)
			end
		end
		if r.container_port == 0 then finding("ports.parse(%q): container port 0", s) end
		for _, k in ipairs{ "host_port_end", "container_port_end" } do
			local v = r[k]
			if v ~= nil and (math.type(v) ~= "integer" or v > 65535) then
				finding("ports.parse(%q): %s out of range", s, k)
			end
		end
		-- the table form of a parsed request parses to the same request
		local again = call("ports.parse", ports.parse, r)
		if not deep_equal(again, r) then finding("ports.parse(%q): table form parses differently", s) end
	end },
	{ "ports.parse_list", function(s)
		local list = {}
		for spec in (s .. ","):gmatch("([^,]*),") do list[#list + 1] = spec end
		local r, msg = call("ports.parse_list", ports.parse_list, list)
		check_failure("ports.parse_list", s, r, msg)
		if r ~= nil and (type(r) ~= "table" or #r ~= #list) then
			finding("ports.parse_list(%q): result does not match the list", s)
		end
	end },
	{ "netopts.network", schema_target("network options", netopts.network) },
	{ "endpoint options", function(s)
		local eo = require("brisk.driver").endpoint_options
		return schema_target("endpoint options", eo)(s)
	end },
	{ "store.decode", function(s)
		local v, msg = call("store.decode", store.decode, s)
		if v == nil then
			check_failure("store.decode", s, v, msg)
			return
		end
		-- what decodes and encodes decodes to the same value (values JSON
		-- cannot carry, inf and NaN, are refused by encode: documented)
		local ok, text = pcall(store.encode, v)
		if not ok then
			if tostring(text):match("cannot encode") then return end
			finding("store.encode raised on decoded %q: %s", s, tostring(text))
		end
		local v2, msg2 = store.decode(text)
		if v2 == nil and v ~= cjson.null then
			finding("store.decode(%q): re-encoded text does not decode: %s", s, tostring(msg2))
		end
		if not deep_equal(v, v2) then finding("store.decode(%q): round trip changed the value", s) end
	end },
	-- the index's form: values and commas (brisk.core's json_decode list mode)
	{ "json_decode list", function(s)
		local json_decode = require("brisk.core").json_decode
		local r, msg = call("json_decode list", json_decode, s, true)
		if r == nil then
			check_failure("json_decode list", s, r, msg)
			return
		end
		if type(r) ~= "table" then finding("json_decode(%q, true) gave a %s", s, type(r)) end
		local lines = {}
		for i, v in ipairs(r) do
			local ok, text = pcall(store.encode, v)
			if not ok then return end            -- inf or NaN: not JSON
			lines[i] = text .. ","
		end
		local again = json_decode(table.concat(lines, "\n"), true)
		if not deep_equal(r, again) then finding("json_decode(%q, true): round trip changed the list", s) end
	end },
}

return targets
