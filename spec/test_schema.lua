-- spec/test_schema.lua: declarative option tables (lua/brisk/schema.lua).
local lu = require "luaunit"
local H = require "helper"

local schema = require "brisk.schema"

local function bridge_schema()
	return schema.new {
		{ key = "name", type = "ifname", label = "com.docker.network.bridge.name", doc = "bridge device" },
		{ key = "mtu", type = "int", default = 1500, label = "com.docker.network.driver.mtu",
		  check = function(v)
			if v < 0 then return false, ("invalid MTU number: %d"):format(v) end
			return true
		  end },
		{ key = "enable_icc", type = "bool", default = true,
		  label = "com.docker.network.bridge.enable_icc", aliases = { "icc" } },
		{ key = "enable_ip_masquerade", type = "bool", default = true,
		  label = "com.docker.network.bridge.enable_ip_masquerade" },
		{ key = "host_binding_ipv4", type = "ip", default = "0.0.0.0",
		  label = "com.docker.network.bridge.host_binding_ipv4" },
		{ key = "gateway", type = "ipv4" },
		{ key = "bip", type = "cidr" },
		{ key = "mac", type = "mac" },
		{ key = "comment", type = "string" },
		{ key = "gateway_mode_ipv4", type = "enum", values = { "nat", "nat-unprotected", "routed" },
		  default = "nat", label = "com.docker.network.bridge.gateway_mode_ipv4" },
	}
end

TestSchema = {}

function TestSchema:test_module_loads_without_globals()
	local before = H.globals_snapshot()
	package.loaded["brisk.schema"] = nil
	package.loaded["brisk.ipnet"] = nil
	local m = require "brisk.schema"
	bridge_schema():parse { mtu = "1" }
	lu.assertEquals(H.new_globals(before), {})
	lu.assertIsFunction(m.new)
end

function TestSchema:test_defaults()
	local s = bridge_schema()
	lu.assertEquals(s:parse {}, {
		mtu = 1500, enable_icc = true, enable_ip_masquerade = true,
		host_binding_ipv4 = "0.0.0.0", gateway_mode_ipv4 = "nat",
	})
	local o = s:parse { mtu = 9000, icc = false, name = "br-x" }
	lu.assertEquals(o.mtu, 9000)
	lu.assertFalse(o.enable_icc)
	lu.assertEquals(o.name, "br-x")
	lu.assertTrue(o.enable_ip_masquerade)
	lu.assertNil(o.icc)                 -- results are keyed by key only
end

function TestSchema:test_labels_and_aliases()
	local s = bridge_schema()
	local o = assert(s:parse {
		["com.docker.network.bridge.name"] = "br0",
		["com.docker.network.driver.mtu"] = "9000",
		["com.docker.network.bridge.enable_icc"] = "false",
	})
	lu.assertEquals(o.name, "br0")
	lu.assertEquals(o.mtu, 9000)
	lu.assertEquals(math.type(o.mtu), "integer")
	lu.assertFalse(o.enable_icc)
	lu.assertFalse(s:parse { icc = "0" }.enable_icc)
end

function TestSchema:test_given_twice()
	local s = bridge_schema()
	local o, msg = s:parse { icc = true, ["com.docker.network.bridge.enable_icc"] = false }
	lu.assertNil(o)
	lu.assertEquals(msg, "option 'enable_icc' given twice (as 'com.docker.network.bridge.enable_icc' and 'icc')")
	o, msg = s:parse { mtu = 1, ["com.docker.network.driver.mtu"] = 1 }
	lu.assertNil(o)
	lu.assertStrContains(msg, "option 'mtu' given twice")
end

function TestSchema:test_bool_parsing_like_go()
	local s = schema.new { { key = "b", type = "bool" } }
	for _, t in ipairs { "1", "t", "T", "TRUE", "true", "True" } do
		lu.assertTrue(s:parse({ b = t }).b, t)
	end
	for _, f in ipairs { "0", "f", "F", "FALSE", "false", "False" } do
		lu.assertFalse(s:parse({ b = f }).b, f)
	end
	lu.assertTrue(s:parse({ b = true }).b)
	for _, bad in ipairs { "yes", "tRUE", "", " true", "2" } do
		local o, msg = s:parse { b = bad }
		lu.assertNil(o, bad)
		lu.assertEquals(msg, ('failed to parse b value: %s (strconv.ParseBool: parsing "%s": invalid syntax)'):format(bad, bad))
	end
	local o, msg = s:parse { b = 1 }
	lu.assertNil(o)
	lu.assertEquals(msg, "option 'b' must be a boolean (got number)")
end

function TestSchema:test_int_parsing_like_go()
	local s = schema.new { { key = "n", type = "int" } }
	local ok = { ["0"] = 0, ["42"] = 42, ["+7"] = 7, ["-7"] = -7, ["007"] = 7,
		["9223372036854775807"] = math.maxinteger, ["-9223372036854775808"] = math.mininteger }
	for str, v in pairs(ok) do
		local o = s:parse { n = str }
		lu.assertEquals(o.n, v, str)
		lu.assertEquals(math.type(o.n), "integer")
	end
	lu.assertEquals(s:parse({ n = 3.0 }).n, 3)
	for _, bad in ipairs { "", "1.5", "0x10", " 1", "1 ", "--1", "1e3" } do
		local o, msg = s:parse { n = bad }
		lu.assertNil(o, bad)
		lu.assertEquals(msg, ('failed to parse n value: %s (strconv.Atoi: parsing "%s": invalid syntax)'):format(bad, bad))
	end
	for _, big in ipairs { "9223372036854775808", "-9223372036854775809", "99999999999999999999" } do
		local o, msg = s:parse { n = big }
		lu.assertNil(o, big)
		lu.assertStrContains(msg, "value out of range")
	end
	local o, msg = s:parse { n = 1.5 }
	lu.assertNil(o)
	lu.assertEquals(msg, "failed to parse n value: 1.5 (not an integer)")
	o, msg = s:parse { n = {} }
	lu.assertNil(o)
	lu.assertEquals(msg, "option 'n' must be an integer (got table)")
end

function TestSchema:test_check_function_docker_text()
	local s = bridge_schema()
	local o, msg = s:parse { ["com.docker.network.driver.mtu"] = "-2" }
	lu.assertNil(o)
	lu.assertEquals(msg, "invalid MTU number: -2")
	o, msg = s:parse { ["com.docker.network.driver.mtu"] = "abc" }
	lu.assertNil(o)
	lu.assertEquals(msg, 'failed to parse com.docker.network.driver.mtu value: abc (strconv.Atoi: parsing "abc": invalid syntax)')
	local s2 = schema.new { { key = "x", type = "int", check = function(v) return v < 10 end } }
	o, msg = s2:parse { x = 11 }
	lu.assertNil(o)
	lu.assertEquals(msg, "invalid value for option 'x': 11")
end

function TestSchema:test_unknown_key_did_you_mean()
	local s = bridge_schema()
	local o, msg = s:parse { ["com.docker.network.bridge.enabel_icc"] = "true" }
	lu.assertNil(o)
	lu.assertEquals(msg, "unknown option 'com.docker.network.bridge.enabel_icc' " ..
		"(did you mean 'com.docker.network.bridge.enable_icc'?)")
	o, msg = s:parse { mtuu = 1 }
	lu.assertEquals(msg, "unknown option 'mtuu' (did you mean 'mtu'?)")
	o, msg = s:parse { enable_ipmasquerade = true }
	lu.assertEquals(msg, "unknown option 'enable_ipmasquerade' (did you mean 'enable_ip_masquerade'?)")
	o, msg = s:parse { frobnicate = 1 }
	lu.assertNil(o)
	lu.assertEquals(msg, "unknown option 'frobnicate'")
	o, msg = s:parse { [1] = "x" }
	lu.assertNil(o)
	lu.assertStrContains(msg, "option names must be strings")
end

function TestSchema:test_typed_values_normalized()
	local s = bridge_schema()
	local o = assert(s:parse {
		host_binding_ipv4 = "2001:DB8::0001", gateway = "172.17.0.1", bip = "172.17.0.1/16",
		mac = "02-42-AC-11-00-02", gateway_mode_ipv4 = "routed", comment = "hi",
	})
	lu.assertEquals(o.host_binding_ipv4, "2001:db8::1")
	lu.assertEquals(o.gateway, "172.17.0.1")
	lu.assertEquals(o.bip, "172.17.0.1/16")
	lu.assertEquals(o.mac, "02:42:ac:11:00:02")
	lu.assertEquals(o.gateway_mode_ipv4, "routed")
	local bad = {
		{ { gateway = "fd00::1" }, "failed to parse gateway value: fd00::1 (not an IPv4 address: 'fd00::1')" },
		{ { host_binding_ipv4 = "1.2.3" }, "failed to parse host_binding_ipv4 value: 1.2.3 (invalid IP address '1.2.3')" },
		{ { bip = "172.17.0.1/33" }, "failed to parse bip value: 172.17.0.1/33 (invalid CIDR '172.17.0.1/33')" },
		{ { mac = "02:42" }, "failed to parse mac value: 02:42 (invalid MAC address '02:42')" },
		{ { name = "a-very-long-bridge-name" }, "failed to parse name value: a-very-long-bridge-name (interface name longer than 15 bytes)" },
		{ { name = "br/0" }, "failed to parse name value: br/0 (interface name contains '/', ':' or whitespace)" },
		{ { name = "" }, "failed to parse name value:  (empty interface name)" },
		{ { gateway_mode_ipv4 = "bridge" }, "failed to parse gateway_mode_ipv4 value: bridge (must be one of nat, nat-unprotected, routed)" },
		{ { comment = 5 }, "option 'comment' must be a string (got number)" },
		{ { gateway = true }, "option 'gateway' must be an IPv4 address string (got boolean)" },
	}
	for _, c in ipairs(bad) do
		local r, msg = s:parse(c[1])
		lu.assertNil(r)
		lu.assertEquals(msg, c[2])
	end
end

function TestSchema:test_errors_are_deterministic()
	local s = bridge_schema()
	-- two bad options: the one first in byte order is reported, every time
	for _ = 1, 20 do
		local _, msg = s:parse { mtu = "x", bip = "y", zz = 1, icc = "q" }
		lu.assertStrContains(msg, "failed to parse bip value")
	end
end

function TestSchema:test_keys()
	local s = bridge_schema()
	local k = s:keys()
	lu.assertEquals(#k, 10)
	lu.assertEquals(k[1].key, "name")
	lu.assertEquals(k[1].doc, "bridge device")
	lu.assertEquals(k[3].aliases, { "icc" })
	lu.assertEquals(k[3].label, "com.docker.network.bridge.enable_icc")
	lu.assertEquals(k[2].default, 1500)
	lu.assertEquals(k[10].values, { "nat", "nat-unprotected", "routed" })
	k[3].aliases[1] = "changed"         -- copies: the schema is unaffected
	lu.assertFalse(s:parse({ icc = false }).enable_icc)
end

function TestSchema:test_bad_declarations_raise()
	lu.assertErrorMsgContains("table expected", function() schema.new("x") end)
	lu.assertErrorMsgContains("unknown type 'float'", function() schema.new { { key = "a", type = "float" } } end)
	lu.assertErrorMsgContains("has no key", function() schema.new { { type = "int" } } end)
	lu.assertErrorMsgContains("unknown field 'defualt'", function()
		schema.new { { key = "a", type = "int", defualt = 1 } } end)
	lu.assertErrorMsgContains("declared twice", function()
		schema.new { { key = "a", type = "int" }, { key = "b", type = "int", aliases = { "a" } } } end)
	lu.assertErrorMsgContains("bad default", function() schema.new { { key = "a", type = "int", default = "x" } } end)
	lu.assertErrorMsgContains("enum needs values", function() schema.new { { key = "a", type = "enum" } } end)
	lu.assertErrorMsgContains("field 'check' must be a function", function()
		schema.new { { key = "a", type = "int", check = 1 } } end)
	lu.assertErrorMsgContains("bad argument #1 to 'parse'", function() bridge_schema():parse("mtu=1") end)
end
