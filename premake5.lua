-- premake5.lua: builds brisk.core (the Lua C module) and the brisk program.
-- Debian ships premake4 only: `premake4 --file=premake5.lua gmake && make -C build`
-- (the top-level Makefile does exactly that). Lua 5.1 syntax, valid in premake4 and 5.

local function pkg(args)
	local p = io.popen("pkg-config " .. args .. " 2>/dev/null")
	local out = p:read("*a") or ""
	p:close()
	return (out:gsub("%s+$", ""))
end

local function split(s)
	local t = {}
	for w in s:gmatch("%S+") do t[#t + 1] = w end
	return t
end

local cflags = split(pkg("--cflags lua5.4 libmnl libnftables libedit"))

-- libedit's soname: the brisk program opens it with dlopen when the REPL
-- first edits a line instead of linking it (csrc/cli/main.c)
local function libedit_soname()
	local dir = pkg("--variable=libdir libedit")
	local p = io.popen("objdump -p '" .. (dir ~= "" and dir or "/usr/lib") .. "/libedit.so' 2>/dev/null")
	local out = p:read("*a") or ""
	p:close()
	return out:match("SONAME%s+(%S+)") or "libedit.so.2"
end
local warn = { "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11" }
local sanitize = { "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
	"-fno-omit-frame-pointer" }

local function debug_symbols()
	if filter then filter "configurations:Debug" else configuration "Debug" end
	if symbols then symbols "On" else flags { "Symbols" } end
	defines { "DEBUG" }
	if filter then filter "configurations:Release" else configuration "Release" end
	if optimize then optimize "On" else flags { "OptimizeSpeed" } end
	defines { "NDEBUG" }
	-- ASan+UBSan (scripts/sanitize.sh): core.so is loaded by an
	-- uninstrumented lua5.4, so the ASan runtime must be LD_PRELOADed
	if filter then filter "configurations:ASan" else configuration "ASan" end
	if symbols then symbols "On" else flags { "Symbols" } end
	buildoptions(sanitize)
	linkoptions(sanitize)
	-- the start-up image's allocator would hide Lua's heap from ASan
	defines { "DEBUG", "BRISK_NO_IMAGE" }
	if filter then filter {} else configuration {} end
end

local ws = workspace or solution
ws "brisk"
	configurations { "Release", "Debug", "ASan" }
	location "build"

project "core"
	kind "SharedLib"
	language "C"
	files { "csrc/*.c", "csrc/*.h" }
	buildoptions(warn)
	buildoptions(cflags)
	-- libnftables is opened with dlopen on the first nft call (csrc/nft.c);
	-- dlopen is in libc since glibc 2.34
	links { "mnl" }
	targetprefix ""
	targetname "core"
	targetextension ".so"
	targetdir "build/lib/brisk"
	objdir "build/obj/core"
	debug_symbols()

-- The program has brisk.core linked in (preloaded, not looked up and opened
-- with dlopen) and Lua itself from liblua5.4.a: each run starts ~0.3 ms
-- sooner. -Wl,-E exports Lua's API to the C modules it opens (lua-cjson,
-- a user's), as lua5.4 does. It is not position-independent: its start-up
-- image (csrc/cli/image.c) holds the addresses of its functions, the same
-- in every run.
project "brisk"
	kind "ConsoleApp"
	language "C"
	files { "csrc/cli/*.c", "csrc/*.c", "csrc/*.h" }
	buildoptions(warn)
	buildoptions(cflags)
	links { ":liblua5.4.a", "mnl", "m", "dl" }
	defines { 'BRISK_LIBEDIT=\\"' .. libedit_soname() .. '\\"', "BRISK_CORE_BUILTIN" }
	buildoptions { "-fno-pie" }
	linkoptions { "-Wl,-E", "-no-pie" }
	targetdir "build/bin"
	objdir "build/obj/brisk"
	debug_symbols()
