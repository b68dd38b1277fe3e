-- spec/test_globals.lua: no module of brisk reads or writes a global that
-- Lua itself does not define. A misspelt local, or a local helper renamed
-- on one side of a merge, compiles fine and fails only when its line runs
-- (as `attempt to call a nil value (global 'x')`); the compiler's listing
-- (`luac5.4 -p -l`) names every global access, so they are checked here
-- for every file under lua/, whether or not a test reaches the line.
local lu = require "luaunit"
local H = require "helper"

local STANDARD = {}
for name in ([[_G _VERSION assert collectgarbage dofile error getmetatable ipairs load
	loadfile next pairs pcall print rawequal rawget rawlen rawset require select
	setmetatable tonumber tostring type xpcall warn coroutine debug io math os
	package string table utf8 arg]]):gmatch("%S+") do STANDARD[name] = true end

--- The globals a Lua file reads or writes: {name = first line}.
local function globals_of(path)
	local out = {}
	for line in H.must("luac5.4 -p -l " .. H.q(path)):gmatch("[^\n]+") do
		local ln, name = line:match("%[(%d+)%]%s+[GS]ETTABUP.-; _ENV \"([%w_]+)\"")
		if name and not out[name] then out[name] = tonumber(ln) end
	end
	return out
end

TestGlobals = {}

function TestGlobals:test_the_check_sees_a_stray_global()
	local p = H.tmppath() .. ".lua"
	H.spit(p, "local function f() return elem_comment(1) end\nx_set = 1\nreturn f\n")
	local g = globals_of(p)
	os.remove(p)
	lu.assertEquals(g, { elem_comment = 1, x_set = 2 })
end

function TestGlobals:test_modules_use_only_lua_globals()
	local files = H.must("cd " .. H.q(H.ROOT) .. " && find lua -name '*.lua' | LC_ALL=C sort")
	local bad, n = {}, 0
	for f in files:gmatch("[^\n]+") do
		n = n + 1
		for name, ln in pairs(globals_of(H.ROOT .. "/" .. f)) do
			if not STANDARD[name] then bad[#bad + 1] = string.format("%s:%d: global '%s'", f, ln, name) end
		end
	end
	table.sort(bad)
	lu.assertTrue(n >= 15, "found only " .. n .. " Lua files")
	lu.assertEquals(bad, {})
end
