#!/usr/bin/env lua5.4
-- scripts/luac.lua: precompile Lua sources for the brisk program (the
-- Makefile runs it; `make` and `make install`).
--
--   lua5.4 scripts/luac.lua [-s] SRCDIR OUTDIR NAMEDIR FILE...
--
-- Each FILE (a path under SRCDIR, "brisk/cli.lua") becomes
-- OUTDIR/FILE with the extension .luac: the function luac5.4 would write for
-- that one file (string.dump is the lua_dump luac calls), with the chunk name
-- "@NAMEDIR/FILE": the path error messages and tracebacks name, which is
-- where that source is when the program runs (the source tree, or
-- PREFIX/share/lua/5.4 when installed). Without -s the chunks keep their
-- debug information (file:line in errors); -s strips it as `luac -s` does.
-- The directories under OUTDIR must exist. A chunk is written to a
-- temporary file and renamed into place. Exits 1 on a syntax error, naming
-- the file and line.
local strip = false
local args = { ... }
if args[1] == "-s" then
	strip = true
	table.remove(args, 1)
end
local srcdir, outdir, namedir = args[1], args[2], args[3]
if not namedir or #args < 4 then
	io.stderr:write("usage: lua5.4 scripts/luac.lua [-s] SRCDIR OUTDIR NAMEDIR FILE...\n")
	os.exit(2)
end

local function fail(msg)
	io.stderr:write("luac.lua: ", msg, "\n")
	os.exit(1)
end

for i = 4, #args do
	local rel = args[i]
	local h, err = io.open(srcdir .. "/" .. rel, "rb")
	if not h then fail(err) end
	local text = h:read("a")
	h:close()
	-- as luaL_loadfile: a first line starting with '#' is skipped (its
	-- newline kept, so line numbers stay right)
	if text:sub(1, 1) == "#" then text = text:gsub("^[^\n]*", "", 1) end
	local fn, msg = load(text, "@" .. namedir .. "/" .. rel, "t")
	if not fn then fail(msg) end
	local out = outdir .. "/" .. rel:gsub("%.lua$", "") .. ".luac"
	local tmp = out .. ".tmp"
	local o, oerr = io.open(tmp, "wb")
	if not o then fail(oerr) end
	local ok, werr = o:write(string.dump(fn, strip))
	if ok then ok, werr = o:close() else o:close() end
	if not ok then
		os.remove(tmp)
		fail(tmp .. ": " .. tostring(werr))
	end
	local rok, rerr = os.rename(tmp, out)
	if not rok then fail(rerr) end
end
