-- spec/test_json.lua: brisk.core's JSON decoder (csrc/json.c), which reads
-- the store's documents and index. lua-cjson (the decoder it replaced
-- there) is the witness for valid text.
local lu = require "luaunit"

local core = require "brisk.core"
local cjson = require "cjson"

local decode, null = core.json_decode, core.null

-- cjson's result with integral numbers within +-2^53 as integers: what
-- json_decode gives
local function exact(v)
	if type(v) == "table" then
		local t = {}
		for k, x in pairs(v) do t[k] = exact(x) end
		return t
	end
	if math.type(v) == "float" and v == math.floor(v) and v >= -2 ^ 53 and v <= 2 ^ 53 then
		return math.tointeger(v)
	end
	return v
end

-- deep equality that tells integers from floats
local function same(a, b)
	if type(a) ~= type(b) then return false end
	if type(a) ~= "table" then return a == b and math.type(a) == math.type(b) end
	for k, v in pairs(a) do if not same(v, b[k]) then return false end end
	for k in pairs(b) do if a[k] == nil then return false end end
	return true
end

TestJson = {}

function TestJson:test_values()
	lu.assertEquals(null, cjson.null)
	local v = assert(decode(' {"a": 1, "b": [1, 2.5, {"c": null}], "d": "x\\u00e9\\ud83d\\ude00\\n\\"\\/",'
		.. ' "e": true, "f": false, "g": {}, "h": []} '))
	lu.assertEquals(v.a, 1)
	lu.assertEquals(math.type(v.a), "integer")
	lu.assertEquals(v.b[2], 2.5)
	lu.assertEquals(v.b[3].c, null)
	lu.assertEquals(v.d, "x\u{e9}\u{1f600}\n\"/")
	lu.assertIsTrue(v.e)
	lu.assertIsFalse(v.f)
	lu.assertEquals(v.g, {})
	lu.assertEquals(v.h, {})
	-- numbers: integral within 2^53 exact as integers, the rest floats
	for text, want in pairs { ["1.0"] = 1, ["1e3"] = 1000, ["-0"] = 0, ["9007199254740992"] = 1 << 53,
		["-9007199254740992"] = -(1 << 53) } do
		local got = decode(text)
		lu.assertEquals(math.type(got), "integer", text)
		lu.assertEquals(got, want, text)
	end
	for text, want in pairs { ["9007199254740994"] = 2.0 ^ 53 + 2, ["0.1"] = 0.1, ["-1.25e-7"] = -1.25e-7,
		["1e400"] = math.huge } do
		local got = decode(text)
		lu.assertEquals(math.type(got), "float", text)
		lu.assertEquals(got, want, text)
	end
	-- a repeated key: the last wins; bytes that are not UTF-8 pass through
	lu.assertEquals(decode('{"a":1,"a":2}'), { a = 2 })
	lu.assertEquals(decode('"\xff\xfe"'), "\xff\xfe")
	-- nesting up to 1000 levels
	lu.assertNotNil(decode(string.rep("[", 1000) .. string.rep("]", 1000)))
end

function TestJson:test_bad_text_is_refused_with_where()
	local cases = {
		[""] = "unexpected end at character 1",
		["["] = "unexpected end at character 2",
		['{"a"}'] = "expected ':' at character 5",
		["[1,]"] = "unexpected character at character 4",
		["[1 2]"] = "expected ',' or ']' at character 4",
		['{"a":1,}'] = "expected a string key at character 8",
		["01"] = "text after the value at character 2",
		["+1"] = "unexpected character at character 1",
		["0x10"] = "text after the value at character 2",
		["1."] = "bad number at character 1",
		["1e"] = "bad number at character 1",
		["nan"] = "unexpected character at character 1",
		["inf"] = "unexpected character at character 1",
		["tru"] = "unexpected character at character 1",
		['"abc'] = "unfinished string at character 1",
		['"\\x"'] = "bad escape in string at character 2",
		['"\\u12"'] = "bad \\u escape at character 2",
		['"a\tb"'] = "control character in string at character 3",
		['"\\ud800"'] = "unpaired surrogate in \\u escape at character 2",
		['"\\udc00"'] = "unpaired surrogate in \\u escape at character 2",
		[string.rep("[", 1001) .. string.rep("]", 1001)] = "nested too deeply at character 1001",
	}
	for text, want in pairs(cases) do
		local v, msg = decode(text)
		lu.assertNil(v, text)
		lu.assertEquals(msg, "json: " .. want, text)
	end
	lu.assertErrorMsgContains("string expected", decode, {})
end

function TestJson:test_list_mode_reads_values_and_commas()
	lu.assertEquals(decode('{"a":1},\n{"b":2},\n', true), { { a = 1 }, { b = 2 } })
	lu.assertEquals(decode("1,2", true), { 1, 2 })
	lu.assertEquals(decode("", true), {})
	lu.assertEquals(decode("  \n", true), {})
	local v, msg = decode("1,,2", true)
	lu.assertNil(v)
	lu.assertEquals(msg, "json: unexpected character at character 3")
	v, msg = decode("1 2", true)
	lu.assertNil(v)
	lu.assertEquals(msg, "json: expected ',' at character 3")
end

-- Random documents of every kind of value: the same result as lua-cjson.
function TestJson:test_agrees_with_cjson_on_random_documents()
	math.randomseed(7)
	local function gen(depth)
		local r = math.random(depth > 4 and 4 or 7)
		if r == 1 then return tostring(math.random(-1000000, 1000000)) end
		if r == 2 then return string.format("%.17g", (math.random() - 0.5) * 10 ^ math.random(-20, 20)) end
		if r == 3 then
			local s = {}
			for i = 1, math.random(0, 8) do
				local c = math.random(0, 4) == 0 and string.format("\\u%04x", math.random(1, 0xd7ff))
					or string.char(math.random(32, 126)):gsub('[\\"]', "\\%0")
				s[i] = c
			end
			return '"' .. table.concat(s) .. '"'
		end
		if r == 4 then return ({ "true", "false", "null" })[math.random(3)] end
		local s = {}
		if r <= 6 then
			for i = 1, math.random(0, 4) do s[i] = gen(depth + 1) end
			return "[" .. table.concat(s, ", ") .. "]"
		end
		for i = 1, math.random(0, 4) do s[i] = '"k' .. math.random(5) .. '" : ' .. gen(depth + 1) end
		return "{" .. table.concat(s, ",\n") .. "}"
	end
	for _ = 1, 5000 do
		local text = gen(0)
		local got = decode(text)
		lu.assertIsTrue(same(got, exact(cjson.decode(text))), text)
	end
end
