#!/usr/bin/env lua5.4
-- scripts/luac.lua: precompile Lua sources for the brisk program (the
-- Makefile runs it; `make` and `make install`).
--
--   lua5.4 scripts/luac.lua [-g|-s] SRCDIR OUTDIR NAMEDIR FILE...
--
-- Each FILE (a path under SRCDIR, "brisk/cli.lua") becomes
-- OUTDIR/FILE with the extension .luac: the function luac5.4 would write for
-- that one file (string.dump is the lua_dump luac calls), with the chunk name
-- "@NAMEDIR/FILE": the path error messages and tracebacks name, which is
-- where that source is when the program runs (the source tree, or
-- PREFIX/share/lua/5.4 when installed).
--
-- By default a chunk keeps the source name and the line of every
-- instruction (errors and tracebacks say file:line) but not the names of
-- local variables and upvalues, which only some error messages of brisk's
-- own code use (a global is then named "field 'x'", an upvalue "upvalue
-- '?'", a local not at all): loading those names is most of what debug
-- information costs a process (they are strings, each made anew at every
-- start), ~0.4 ms per brisk run. -g keeps them (luac's
-- default); -s strips all debug information as `luac -s` does (brisk's own
-- frames lose file:line too).
--
-- The directories under OUTDIR must exist. A chunk is written to a
-- temporary file and renamed into place. Exits 1 on a syntax error, naming
-- the file and line.
local mode = "lines"
local args = { ... }
if args[1] == "-s" or args[1] == "-g" then
	mode = args[1] == "-s" and "strip" or "all"
	table.remove(args, 1)
end
local srcdir, outdir, namedir = args[1], args[2], args[3]
if not namedir or #args < 4 then
	io.stderr:write("usage: lua5.4 scripts/luac.lua [-g|-s] SRCDIR OUTDIR NAMEDIR FILE...\n")
	os.exit(2)
end

local function fail(msg)
	io.stderr:write("luac.lua: ", msg, "\n")
	os.exit(1)
end

-- A Lua 5.4 binary chunk (lundump.c's format) without the names of local
-- variables and upvalues: the function, its prototypes and the rest of
-- their debug information (source, lines) are copied as they are. Raises
-- on anything it does not know.
local function without_names(s)
	local pos, out = 1, {}
	local function take(n)
		if pos + n - 1 > #s then error("truncated chunk") end
		local b = s:sub(pos, pos + n - 1)
		pos = pos + n
		return b
	end
	local function emit(b) out[#out + 1] = b end
	-- a size: 7 bits a byte, most significant first, the last byte marked
	local function size()
		local x, start = 0, pos
		repeat
			local b = s:byte(pos) or error("truncated chunk")
			pos = pos + 1
			x = (x << 7) | (b & 0x7f)
		until b & 0x80 ~= 0
		return x, s:sub(start, pos - 1)
	end
	local function copy_size()
		local x, raw = size()
		emit(raw)
		return x
	end
	local function copy_string()                 -- size + 1, then the bytes (0: none)
		local n = copy_size()
		if n > 0 then emit(take(n - 1)) end
	end
	local function skip_string()
		local n = size()
		if n > 0 then take(n - 1) end
	end
	local NONE = "\x80"                         -- the size 0
	local function func()
		copy_string()                            -- source
		copy_size(); copy_size()                 -- first and last line
		emit(take(3))                            -- parameters, vararg, stack size
		emit(take(4 * copy_size()))              -- code
		for _ = 1, copy_size() do                -- constants
			local t = take(1)
			emit(t)
			t = t:byte()
			if t == 3 or t == 19 then emit(take(8))          -- integer, float
			elseif t == 4 or t == 20 then copy_string()      -- short, long string
			elseif t ~= 0 and t ~= 1 and t ~= 17 then        -- nil, false, true
				error("unknown constant type " .. t)
			end
		end
		emit(take(3 * copy_size()))              -- upvalues: in stack, index, kind
		for _ = 1, copy_size() do func() end     -- prototypes
		emit(take(copy_size()))                  -- line info
		for _ = 1, copy_size() do copy_size(); copy_size() end   -- absolute lines
		for _ = 1, size() do skip_string(); size(); size() end    -- local variables
		emit(NONE)
		for _ = 1, size() do skip_string() end                     -- upvalue names
		emit(NONE)
	end
	local header = take(31)
	if header:sub(1, 6) ~= "\27Lua\x54\0" then error("not a Lua 5.4 chunk") end
	emit(header)
	emit(take(1))                                -- upvalues of the main function
	func()
	if pos ~= #s + 1 then error("trailing bytes") end
	return table.concat(out)
end

local function dump(fn, rel)
	local bc = string.dump(fn, mode == "strip")
	if mode ~= "lines" then return bc end
	local ok, lean = pcall(without_names, bc)
	if not ok then fail(rel .. ": cannot rewrite the chunk: " .. tostring(lean)) end
	local f, msg = load(lean, "=" .. rel, "b")
	if not f then fail(rel .. ": the rewritten chunk does not load: " .. msg) end
	return lean
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
	local ok, werr = o:write(dump(fn, rel))
	if ok then ok, werr = o:close() else o:close() end
	if not ok then
		os.remove(tmp)
		fail(tmp .. ": " .. tostring(werr))
	end
	local rok, rerr = os.rename(tmp, out)
	if not rok then fail(rerr) end
end
