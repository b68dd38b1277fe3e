-- spec/test_cli_start.lua: what the brisk program's start-up rests on: the
-- precompiled chunks (scripts/luac.lua, `make`, `make install`, the chunk
-- searcher in csrc/cli/main.c) and the CLI's lazy loading of modules.
local lu = require "luaunit"
local H = require "helper"

local ROOT, BIN, q, slurp, spit = H.ROOT, H.BIN, H.q, H.slurp, H.spit

local function tmpdir() return H.scratch("start") end

-- The sanitizer runs (scripts/sanitize.sh) build with config=asan or debug:
-- no start-up image is made, and the ASan program does not use one.
local IMAGE = os.getenv("BRISK_SANITIZER") == nil
local cleanup = H.scratch_cleanup


--- Run `bin` (default BIN) with `args` in `cwd`; returns code, stdout, stderr.
local run = H.run

-- The line of `file` (under ROOT) where `text` first occurs.
local function line_of(file, text)
	local n = 0
	for l in io.lines(ROOT .. "/" .. file) do
		n = n + 1
		if l:find(text, 1, true) then return n end
	end
	error(text .. " not in " .. file)
end

-- A copy of the source-tree layout in a new directory: build/bin/brisk,
-- build/lib/brisk/core.so and build/lua (the chunks, mtimes kept), and lua/
-- when `with_sources`.
local function tree_copy(with_sources)
	local t = tmpdir()
	H.must(table.concat({
		"mkdir -p " .. q(t .. "/build/bin") .. " " .. q(t .. "/build/lib/brisk"),
		"cp " .. q(BIN) .. " " .. q(t .. "/build/bin/brisk"),
		"cp " .. q(ROOT .. "/build/lib/brisk/core.so") .. " " .. q(t .. "/build/lib/brisk/"),
		"cp -a " .. q(ROOT .. "/build/lua") .. " " .. q(t .. "/build/lua"),
	}, " && "))
	if with_sources then H.must("cp -a " .. q(ROOT .. "/lua") .. " " .. q(t .. "/lua")) end
	return t
end

-- A script printing where brisk.pretty came from and whether it is edited.
local WHERE = 'local p, from = require "brisk.pretty"\nprint(from, p.edited)\n'

-- A copy of the tree with its sources, and WHERE as s.lua in a scratch
-- directory: returns the tree, its program and the directory.
local function where_tree()
	local t = tree_copy(true)
	local d = tmpdir()
	spit(d .. "/s.lua", WHERE)
	return t, t .. "/build/bin/brisk", d
end

-- Run WHERE (s.lua in `d`) with the program `bin`: it exits 0 and prints
-- `expected`. Without the start-up image (where there is one, its modules
-- are loaded already and `require` says nothing of where they came from).
local function assert_where(bin, d, expected)
	local code, out, err = run("run s.lua", { bin = bin, cwd = d, env = "BRISK_NO_IMAGE=1" })
	lu.assertEquals(code, 0, err)
	lu.assertEquals(out, expected)
end

---------------------------------------------------------------------------
TestCliChunks = {}
function TestCliChunks:tearDown() cleanup() end

function TestCliChunks:test_every_source_has_a_chunk()
	lu.assertTrue(H.sh("test -x " .. q(BIN)), BIN .. " missing: run make")
	local files = H.must("cd " .. q(ROOT) .. " && find lua -name '*.lua' | sort")
	local n = 0
	for f in files:gmatch("[^\n]+") do
		local chunk = ROOT .. "/build/" .. f:gsub("%.lua$", ".luac")
		lu.assertEquals((slurp(chunk) or ""):sub(1, 4), "\27Lua", chunk .. " (run make)")
		n = n + 1
	end
	lu.assertTrue(n > 10)
end

function TestCliChunks:test_program_loads_chunks_named_after_sources()
	local d = tmpdir()
	spit(d .. "/s.lua", 'local ipnet, from = require "brisk.ipnet"\nprint(from)\n'
		.. 'local info = debug.getinfo(ipnet.parse_cidr, "S")\nprint(info.source, info.linedefined)\n')
	local code, out, err = run("run s.lua", { cwd = d, env = "BRISK_NO_IMAGE=1" })
	lu.assertEquals(err, "")
	lu.assertEquals(code, 0)
	-- from the chunk, with the source's name and lines (debug info kept)
	lu.assertEquals(out, ROOT .. "/build/lua/brisk/ipnet.luac\n@" .. ROOT .. "/lua/brisk/ipnet.lua\t"
		.. line_of("lua/brisk/ipnet.lua", "function M.parse_cidr(") .. "\n")
	-- package.path still names the sources, for scripts
	spit(d .. "/p.lua", 'print(package.searchpath("brisk.ipnet", package.path))\n'
		.. 'print(require("brisk.host").chunks)\n')
	code, out = run("run p.lua", { cwd = d })
	lu.assertEquals(code, 0)
	lu.assertEquals(out, ROOT .. "/lua/brisk/ipnet.lua\n" .. ROOT .. "/build/lua\n")
end

function TestCliChunks:test_errors_name_file_and_line()
	local d = tmpdir()
	-- raised in brisk's own (precompiled) code: its source file and line
	spit(d .. "/a.lua", 'local pretty = require "brisk.pretty"\nprint(pcall(pretty.table, 5, {}))\n')
	local code, out = run("run a.lua", { cwd = d })
	lu.assertEquals(code, 0)
	lu.assertEquals(out, "false\t" .. ROOT .. "/lua/brisk/pretty.lua:"
		.. line_of("lua/brisk/pretty.lua", "bad argument #1 to 'table'")
		.. ": bad argument #1 to 'table' (table expected)\n")
	-- raised in the user's script called back from brisk: the script's line;
	-- the traceback names brisk's frames with their lines
	spit(d .. "/cb.lua", 'local cli = require "brisk.cli"\n'
		.. 'local p = cli.progress(2, "x", { tty = true, write = function() error("in callback") end })\n'
		.. 'p:step("a")\n')
	local err
	code, _, err = run("run cb.lua", { cwd = d })
	lu.assertEquals(code, 1)
	lu.assertEquals(err, "brisk: cb.lua:2: in callback\n")
	code, _, err = run("run cb.lua", { cwd = d, env = "BRISK_DEBUG=1" })
	lu.assertEquals(code, 1)
	lu.assertStrContains(err, "cb.lua:3: in main chunk")
	lu.assertStrMatches(err, ".*\n\t" .. ROOT:gsub("%p", "%%%0") .. "/lua/brisk/cli%.lua:%d+: in method 'step'\n.*")
	-- a syntax error in the user's script
	spit(d .. "/x.lua", 'print("ok")\nx = = 1\n')
	code, out, err = run("run x.lua", { cwd = d })
	lu.assertEquals(code, 1)
	lu.assertEquals(out, "")
	lu.assertStrContains(err, "brisk: x.lua:2: unexpected symbol near '='")
end

-- `brisk run NAME` of `script` (written to d/NAME) in `d`: it succeeds
-- quietly; returns its stdout.
local function run_script(d, name, script, env)
	spit(d .. "/" .. name, script)
	local code, out, err = run("run " .. name, { cwd = d, env = env })
	lu.assertEquals(err, "")
	lu.assertEquals(code, 0)
	return out
end

function TestCliChunks:test_core_and_lua_are_linked_in()
	-- brisk.core is preloaded, not opened from core.so; Lua is not a shared library
	local script = 'local core, from = require "brisk.core"\n'
		.. 'local maps = io.open("/proc/self/maps"):read("a")\n'
		.. 'print(from, type(core.open), maps:find("core.so", 1, true) ~= nil, '
		.. 'maps:find("liblua5.4.so", 1, true) ~= nil)\n'
		.. 'print(require("cjson").encode({ 1 }))\n'
	local out = run_script(tmpdir(), "c.lua", script, "BRISK_NO_IMAGE=1")
	lu.assertEquals(out, ":preload:\tfunction\tfalse\tfalse\n[1]\n")
	-- from the start-up image: loaded already (and lua-cjson, opened with
	-- dlopen, is not in the image but opens as usual)
	if not IMAGE then return end
	out = run_script(tmpdir(), "c.lua", script)
	lu.assertEquals(out, "nil\tfunction\tfalse\tfalse\n[1]\n")
end

function TestCliChunks:test_user_code_gets_its_finalizers_at_exit()
	-- after `run` the state is closed as lua5.4 closes it: a script's __gc
	-- runs; the network and endpoint commands leave it to the exit
	local d = tmpdir()
	lu.assertEquals(run_script(d, "g.lua", 'setmetatable({}, { __gc = function() local f = io.open("' .. d
		.. '/gc", "w"); f:write("ran"); f:close() end })\n'
		-- a command the script runs itself does not change that
		.. 'local cli = require("brisk.cli")\nassert(cli.main({ "version" }) == 0)\n'
		.. 'print(cli.quick_exit)\n'), "brisk 0.1.0 (Lua 5.4)\nfalse\n")
	lu.assertEquals(slurp(d .. "/gc"), "ran")
	spit(d .. "/q.lua", 'package.path = arg[1] .. "/lua/?.lua;" .. package.path\n'
		.. 'package.cpath = arg[1] .. "/build/lib/?.so;" .. package.cpath\n'
		.. 'local cli = require "brisk.cli"\n'
		.. 'local out = arg[2]\n'
		.. 'local code = cli.main(table.move(arg, 3, #arg, 1, {}))\n'
		.. 'local f = io.open(out, "w"); f:write(tostring(code), " ", tostring(cli.quick_exit)); f:close()\n')
	local state = tmpdir()
	for _, c in ipairs{ { "network ls", "true" }, { "endpoint ls", "true" }, { "version", "true" },
		{ "run /dev/null", "false" } } do
		H.must("lua5.4 " .. q(d .. "/q.lua") .. " " .. q(ROOT) .. " " .. q(d .. "/got") .. " --state-dir "
			.. q(state) .. " " .. c[1])
		lu.assertEquals(slurp(d .. "/got"), "0 " .. c[2], c[1])
	end
end

function TestCliChunks:test_runs_without_the_sources()
	local t = tree_copy(false)
	local bin = t .. "/build/bin/brisk"
	local code, out, err = run("--version", { bin = bin })
	lu.assertEquals(err, "")
	lu.assertEquals(code, 0)
	lu.assertStrContains(out, "brisk 0.1.0")
	-- the command modules are found among the chunks
	code, out = run("--help", { bin = bin })
	lu.assertEquals(code, 0)
	lu.assertStrContains(out, "network create")
	lu.assertStrContains(out, "endpoint create")
	local state = tmpdir()
	code, out, err = run("--state-dir " .. q(state) .. " network ls", { bin = bin })
	lu.assertEquals(err, "")
	lu.assertEquals(code, 0)
	lu.assertStrContains(out, "NETWORK ID")
	local d = tmpdir()
	spit(d .. "/s.lua", WHERE)
	assert_where(bin, d, t .. "/build/lua/brisk/pretty.luac\tnil\n")
end

function TestCliChunks:test_newer_source_is_used_until_compiled()
	local t, bin, d = where_tree()
	assert_where(bin, d, t .. "/build/lua/brisk/pretty.luac\tnil\n")
	-- an edit (the source is now newer than its chunk) is used as it is
	local src = t .. "/lua/brisk/pretty.lua"
	spit(src, (slurp(src):gsub("\nreturn M%s*$", "\nM.edited = true\nreturn M\n")))
	assert_where(bin, d, src .. "\ttrue\n")
	-- compiled again, the chunk is used
	H.must("lua5.4 " .. q(ROOT .. "/scripts/luac.lua") .. " " .. q(t .. "/lua") .. " "
		.. q(t .. "/build/lua") .. " " .. q(t .. "/lua") .. " brisk/pretty.lua")
	assert_where(bin, d, t .. "/build/lua/brisk/pretty.luac\ttrue\n")
end

function TestCliChunks:test_broken_chunk_leaves_the_module_to_its_source()
	local t, bin, d = where_tree()
	spit(t .. "/build/lua/brisk/pretty.luac", "\27Lua not really a chunk")
	local code, out, err = run("run s.lua", { bin = bin, cwd = d })
	lu.assertEquals(err, "")
	lu.assertEquals(code, 0)
	lu.assertEquals(out, t .. "/lua/brisk/pretty.lua\tnil\n")
	-- without the source either: not found, saying what was wrong with the chunk
	H.must("rm " .. q(t .. "/lua/brisk/pretty.lua"))
	code, out, err = run("run s.lua", { bin = bin, cwd = d })
	lu.assertEquals(code, 1)
	lu.assertEquals(out, "")
	lu.assertStrContains(err, "module 'brisk.pretty' not found")
	lu.assertStrContains(err, t .. "/build/lua/brisk/pretty.luac")
	lu.assertStrContains(err, "bad binary format")
end

---------------------------------------------------------------------------
-- The start-up image (csrc/cli/image.c): `make` writes build/lua/brisk.image,
-- a run maps it, and only when it describes that run exactly.
TestCliImage = {}
function TestCliImage:setUp() lu.skipIf(not IMAGE, "a sanitizer build makes no image") end
function TestCliImage:tearDown() cleanup() end

-- Prints whether this run started from an image (its region at the image's
-- address; `run` has copied it out of the file by the time the script
-- runs) and whether brisk.driver was loaded before the script asked for it.
local MAPPED = 'local maps = io.open("/proc/self/maps"):read("a")\n'
	.. 'print(maps:find("\\n2b0000000000%-") ~= nil, package.loaded["brisk.driver"] ~= nil)\n'

-- Run MAPPED with `bin` (default BIN); returns what it printed.
local function mapped(bin, env)
	local d = tmpdir()
	spit(d .. "/m.lua", MAPPED)
	local code, out, err = run("run m.lua", { bin = bin, cwd = d, env = env })
	lu.assertEquals(err, "")
	lu.assertEquals(code, 0)
	return out
end

-- A copy of the tree (no sources) with an image its program wrote and
-- uses: returns the tree, its program and the image.
local function image_tree()
	local t = tree_copy(false)
	local bin, image = t .. "/build/bin/brisk", t .. "/build/lua/brisk.image"
	H.must(q(bin) .. " --write-image " .. q(image))
	lu.assertEquals(mapped(bin), "true\ttrue\n")
	return t, bin, image
end

function TestCliImage:test_the_program_maps_the_image_make_wrote()
	lu.assertTrue(H.sh("test -s " .. q(ROOT .. "/build/lua/brisk.image")), "no image: run make")
	lu.assertEquals(mapped(), "true\ttrue\n")
	lu.assertEquals(mapped(nil, "BRISK_NO_IMAGE=1"), "false\tfalse\n")
	lu.assertEquals(mapped(nil, "BRISK_NO_IMAGE=0"), "true\ttrue\n")
	-- what a command does is the same either way
	local st = tmpdir()
	local seen = {}
	for _, env in ipairs{ "BRISK_NO_IMAGE=1", "" } do
		local code, out, err = run("--state-dir " .. q(st) .. " network ls", { env = env })
		lu.assertEquals({ code, err }, { 0, "" })
		lu.assertStrContains(out, "NETWORK ID")
		seen[#seen + 1] = { run("--state-dir " .. q(st) .. " network create --subnet 10.0.0.0/33 x",
			{ env = env }) }
	end
	lu.assertEquals(seen[1][1], 1)
	lu.assertStrContains(seen[1][3], "10.0.0.0/33")
	lu.assertEquals(seen[2], seen[1])
end

function TestCliImage:test_what_is_per_process_is_fresh()
	-- the standard files are this process's; math.random has a seed of its own
	local d = tmpdir()
	spit(d .. "/in", "from stdin\n")
	spit(d .. "/f.lua", 'io.stdout:write("out ", io.read("l"), "\\n")\nio.stderr:write("err\\n")\n'
		.. 'io.write("default\\n")\nprint(math.random(1 << 40))\n')
	local seen = {}
	for i = 1, 2 do
		local code, out, err = run("run f.lua", { cwd = d, stdin = d .. "/in" })
		lu.assertEquals(code, 0)
		lu.assertEquals(err, "err\n")
		local n = out:match("^out from stdin\ndefault\n(%d+)\n$")
		lu.assertNotNil(n, out)
		seen[i] = n
	end
	lu.assertNotEquals(seen[1], seen[2])
end

function TestCliImage:test_used_only_while_what_it_names_is_unchanged()
	-- a copy of the tree: ROOT's image names ROOT's program, so it is not
	-- used here until the copy's program writes one of its own
	local t, bin, d = where_tree()
	local image = t .. "/build/lua/brisk.image"
	lu.assertEquals(mapped(bin), "false\tfalse\n")
	H.must(q(bin) .. " --write-image " .. q(image))
	lu.assertEquals(mapped(bin), "true\ttrue\n")
	-- Lua's path variables change package.path: not used
	lu.assertEquals(mapped(bin, "LUA_PATH=/nowhere/?.lua"), "false\tfalse\n")
	-- an edited source (newer than its chunk): not used, and the edit is
	local src = t .. "/lua/brisk/pretty.lua"
	H.must("sleep 0.01")
	spit(src, (slurp(src):gsub("\nreturn M%s*$", "\nM.edited = true\nreturn M\n")))
	lu.assertEquals(mapped(bin), "false\tfalse\n")
	local code, out = run("run s.lua", { bin = bin, cwd = d })
	lu.assertEquals(code, 0)
	lu.assertEquals(out, src .. "\ttrue\n")
	-- an image is made from chunks only
	local ok, msg = H.sh(q(bin) .. " --write-image " .. q(image))
	lu.assertTrue(not ok)
	lu.assertStrContains(msg, "brisk: --write-image: module brisk.pretty was not loaded from a precompiled chunk")
	lu.assertEquals(mapped(bin), "false\tfalse\n")
	-- compiled: a new image, with the edit
	H.must("lua5.4 " .. q(ROOT .. "/scripts/luac.lua") .. " " .. q(t .. "/lua") .. " "
		.. q(t .. "/build/lua") .. " " .. q(t .. "/lua") .. " brisk/pretty.lua")
	H.must(q(bin) .. " --write-image " .. q(image))
	lu.assertEquals(mapped(bin), "true\ttrue\n")
	code, out = run("run s.lua", { bin = bin, cwd = d })
	lu.assertEquals(code, 0)
	lu.assertEquals(out, "nil\ttrue\n")
	-- another build of the program (its size, inode and time): not used
	H.must("cp " .. q(bin) .. " " .. q(bin .. ".new") .. " && mv " .. q(bin .. ".new") .. " " .. q(bin))
	lu.assertEquals(mapped(bin), "false\tfalse\n")
end

function TestCliImage:test_a_long_running_process_keeps_its_image_when_the_file_changes()
	-- the REPL and `run` (before the user's code) and the daemon (before it
	-- serves) take the image's pages into memory of their own: the file
	-- truncated in place (not replaced by rename, as make does) no longer
	-- reaches them (a mapped page past the end of a file is SIGBUS)
	local _, bin, image = image_tree()
	local d = tmpdir()
	spit(d .. "/in", "print(package.loaded['brisk.driver'] ~= nil)\n"
		.. "os.execute('truncate -s 0 " .. image .. "')\n"
		.. "for i = 1, 3 do collectgarbage() end\n"
		.. "local t = {} for i = 1, 100000 do t[i] = ('x'):rep(i % 50) end\n"
		.. "print('alive', #require('brisk.cli').commands['network create'].name)\n")
	local code, out, err = run("repl", { bin = bin, cwd = d, stdin = d .. "/in" })
	lu.assertEquals(code, 0, err)
	lu.assertStrContains(out, "true")
	lu.assertStrContains(out, "alive\t14")
	H.must(q(bin) .. " --write-image " .. q(image))
	code, out, err = run("run -", { bin = bin, cwd = d, stdin = d .. "/in" })
	lu.assertEquals(code, 0, err)
	lu.assertEquals(out, "true\nalive\t14\n")
	-- an empty image is not used by the next run
	lu.assertEquals(mapped(bin), "false\tfalse\n")
end

function TestCliImage:test_a_damaged_image_is_not_used()
	local t, bin, image = image_tree()
	local whole = slurp(image)
	-- cut short, its header garbled, or empty: the program starts without it
	for _, text in ipairs{ whole:sub(1, #whole // 2), "BRISKIM1" .. ("\255"):rep(20000), "" } do
		spit(image, text)
		lu.assertEquals(mapped(bin), "false\tfalse\n")
		local code, out = run("--version", { bin = bin })
		lu.assertEquals(code, 0)
		lu.assertStrContains(out, "brisk 0.1.0")
	end
	-- where it cannot be written: a message and exit 1, nothing left behind
	local ok, msg = H.sh(q(bin) .. " --write-image " .. q(t .. "/no/such/dir/brisk.image"))
	lu.assertTrue(not ok)
	lu.assertStrContains(msg, "brisk: --write-image: open " .. t .. "/no/such/dir/brisk.image.tmp.")
end

---------------------------------------------------------------------------
-- The build: make compiles, recompiles what changed, prunes, installs.
TestCliBuild = {}
function TestCliBuild:tearDown() cleanup() end

function TestCliBuild:test_make_chunks_rebuilds_edited_sources_and_prunes()
	local t = tmpdir()
	H.must("mkdir -p " .. q(t .. "/scripts") .. " && cp -a " .. q(ROOT .. "/Makefile") .. " "
		.. q(ROOT .. "/lua") .. " " .. q(t) .. " && cp -a " .. q(ROOT .. "/scripts/luac.lua") .. " "
		.. q(t .. "/scripts/"))
	local out = H.must("make -C " .. q(t) .. " chunks")
	lu.assertStrContains(out, "brisk/cli.lua")
	local chunk = t .. "/build/lua/brisk/pretty.luac"
	lu.assertEquals(slurp(chunk):sub(1, 4), "\27Lua")
	lu.assertStrContains(slurp(chunk), "@" .. t .. "/lua/brisk/pretty.lua")
	lu.assertNotStrContains(H.must("make -C " .. q(t) .. " chunks"), "luac.lua")
	-- an edited source: only its chunk is compiled again
	local before = slurp(chunk)
	local src = t .. "/lua/brisk/pretty.lua"
	H.must("sleep 0.01")
	spit(src, (slurp(src):gsub("\nreturn M%s*$", "\nM.edited = true\nreturn M\n")))
	out = H.must("make -C " .. q(t) .. " chunks")
	lu.assertStrContains(out, "brisk/pretty.lua")
	lu.assertNotStrContains(out, "brisk/cli.lua")
	lu.assertNotEquals(slurp(chunk), before)
	lu.assertStrContains(slurp(chunk), "edited")
	-- a removed source: its chunk goes too
	H.must("rm " .. q(t .. "/lua/brisk/helptopics.lua"))
	H.must("make -C " .. q(t) .. " chunks")
	lu.assertTrue(not H.sh("test -e " .. q(t .. "/build/lua/brisk/helptopics.luac")))
	lu.assertTrue(H.sh("test -e " .. q(t .. "/build/lua/brisk/cli.luac")))
	-- a syntax error fails the build, naming file and line
	spit(t .. "/lua/brisk/bad.lua", "local x = 1\nx = = 2\n")
	local ok
	ok, out = H.sh("make -C " .. q(t) .. " chunks")
	lu.assertTrue(not ok)
	lu.assertStrContains(out, "bad.lua:2:")
	lu.assertTrue(not H.sh("test -e " .. q(t .. "/build/lua/brisk/bad.luac")))
end

function TestCliBuild:test_chunks_keep_lines_not_local_names()
	-- by default: file and line stay, the names of locals and upvalues go;
	-- -g keeps everything (luac's default), -s nothing
	local t = tmpdir()
	local src = t .. "/src"
	H.must("mkdir -p " .. q(src .. "/m") .. " " .. q(t .. "/out/m"))
	spit(src .. "/m/x.lua", "local up = {}\n"
		.. "local function f(alpha, beta)\n"
		.. "  local gamma = alpha + beta\n"
		.. "  if gamma > 10 then error('too big') end\n"
		.. "  return up, gamma, function() return up end\n"
		.. "end\n"
		.. "return { f = f, k = { 1.5, 2, 'str', true, false } }\n")
	local probe = t .. "/probe.lua"
	spit(probe, "local m = assert(loadfile(arg[1], 'b'))()\n"
		.. "print(m.f(1, 2) ~= nil, select(2, m.f(1, 2)), m.k[1], m.k[2], m.k[3], m.k[4], m.k[5])\n"
		.. "print(debug.getlocal(m.f, 1), (debug.getupvalue(select(3, m.f(1, 2)), 1)))\n"
		.. "print(select(2, pcall(m.f, 10, 5)))\n")
	local function build(flag)
		H.must("lua5.4 " .. q(ROOT .. "/scripts/luac.lua") .. " " .. flag .. " " .. q(src) .. " "
			.. q(t .. "/out") .. " /named m/x.lua")
		return H.must("lua5.4 " .. q(probe) .. " " .. q(t .. "/out/m/x.luac"))
	end
	lu.assertEquals(build(""), "true\t3\t1.5\t2\tstr\ttrue\tfalse\n"
		.. "nil\t(no name)\n" .. "/named/m/x.lua:4: too big\n")
	lu.assertEquals(build("-g"), "true\t3\t1.5\t2\tstr\ttrue\tfalse\n"
		.. "alpha\tup\n" .. "/named/m/x.lua:4: too big\n")
	lu.assertEquals(build("-s"), "true\t3\t1.5\t2\tstr\ttrue\tfalse\n"
		.. "nil\t(no name)\n" .. "too big\n")
	-- the brisk chunks `make` wrote are the default kind: smaller than -g's
	local g = t .. "/g"
	H.must("mkdir -p " .. q(g .. "/brisk") .. " && lua5.4 " .. q(ROOT .. "/scripts/luac.lua") .. " -g "
		.. q(ROOT .. "/lua") .. " " .. q(g) .. " " .. q(ROOT .. "/lua") .. " brisk/driver.lua")
	local made, full = slurp(ROOT .. "/build/lua/brisk/driver.luac"), slurp(g .. "/brisk/driver.luac")
	lu.assertTrue(#made < #full, #made .. " vs " .. #full)
	lu.assertStrContains(made, "@" .. ROOT .. "/lua/brisk/driver.lua")
end

function TestCliBuild:test_make_install_installs_chunks()
	local p = tmpdir()
	-- `-o all`: install what is built (a sanitizer build stays as it is)
	H.must("make -C " .. q(ROOT) .. " -o all install PREFIX=" .. q(p))
	local files = H.must("cd " .. q(ROOT) .. "/lua && find . -name '*.lua' | sort")
	for f in files:gmatch("[^\n]+") do
		f = f:gsub("^%./", "")
		local chunk = slurp(p .. "/lib/lua/5.4/" .. f:gsub("%.lua$", ".luac"))
		lu.assertNotNil(chunk, f)
		-- named after the installed source
		lu.assertStrContains(chunk, "@" .. p .. "/share/lua/5.4/" .. f)
		lu.assertNotNil(slurp(p .. "/share/lua/5.4/" .. f), f)
	end
	local bin = p .. "/bin/brisk"
	local d = tmpdir()
	spit(d .. "/s.lua", WHERE)
	assert_where(bin, d, p .. "/lib/lua/5.4/brisk/pretty.luac\tnil\n")
	-- the start-up image, made for the installed program, is used
	lu.assertTrue(H.sh("test -s " .. q(p .. "/lib/lua/5.4/brisk.image")))
	if IMAGE then lu.assertEquals(mapped(bin), "true\ttrue\n") end
	-- without the installed sources it still runs
	H.must("mv " .. q(p .. "/share") .. " " .. q(p .. "/share.gone"))
	local code, out, err = run("--version", { bin = bin })
	lu.assertEquals(err, "")
	lu.assertEquals(code, 0)
	lu.assertStrContains(out, "brisk 0.1.0")
	code, out = run("--state-dir " .. q(d .. "/state") .. " network ls", { bin = bin })
	lu.assertEquals(code, 0)
	lu.assertStrContains(out, "NETWORK ID")
end

---------------------------------------------------------------------------
-- Lazy loading: a command loads the modules it needs, no more. The CLI runs
-- under lua5.4 from the sources with a searcher that records every module
-- asked for.
TestCliLazy = {}
function TestCliLazy:tearDown() cleanup() end

local HARNESS = [[
local root, record = arg[1], arg[2]
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/lib/?.so;" .. package.cpath
local asked = {}
table.insert(package.searchers, 1, function(name) asked[#asked + 1] = name; return nil end)
local code = require("brisk.cli").main(table.move(arg, 3, #arg, 1, {}))
local f = assert(io.open(record, "w"))
f:write(table.concat(asked, " "))
f:close()
os.exit(code)
]]

-- The modules `brisk ARGS...` asks for (a set), and its stdout.
local function modules_for(...)
	local d = tmpdir()
	spit(d .. "/h.lua", HARNESS)
	local args = { ... }
	for i, a in ipairs(args) do args[i] = q(a) end
	local ok, out = H.sh("cd " .. q(d) .. " && lua5.4 h.lua " .. q(ROOT) .. " " .. q(d .. "/rec") .. " "
		.. table.concat(args, " "))
	lu.assertTrue(ok, out)
	local set = {}
	for m in (slurp(d .. "/rec") or ""):gmatch("%S+") do set[m] = true end
	return set, out
end

function TestCliLazy:test_version_loads_the_framework_only()
	local set, out = modules_for("--version")
	lu.assertEquals(out, "brisk 0.1.0 (Lua 5.4)\n")
	-- no pretty printer, no search for a `brisk.cli.version` group
	lu.assertEquals(set, { ["brisk.cli"] = true })
	set = modules_for("run", "/dev/null")
	lu.assertEquals(set, { ["brisk.cli"] = true })
end

function TestCliLazy:test_network_and_endpoint_commands_leave_repl_help_and_topo()
	local state = tmpdir()
	for _, cmd in ipairs{ { "network", "ls" }, { "endpoint", "ls" }, { "--json", "network", "ls" } } do
		local set = modules_for("--state-dir", state, table.unpack(cmd))
		local what = table.concat(cmd, " ")
		lu.assertTrue(set["brisk.driver"], what)
		for _, m in ipairs{ "brisk.repl", "brisk.helptopics", "brisk.topo", "brisk.cli.graph",
			"brisk.cli.down", "brisk.ports", "brisk.netopts" } do
			lu.assertNil(set[m], what .. " loads " .. m)
		end
	end
	-- JSON output needs no pretty printer
	lu.assertNil(modules_for("--state-dir", state, "--json", "network", "ls")["brisk.pretty"])
	-- an endpoint command loads its group and the shared helpers, not the
	-- network group (nor a network command the endpoint group)
	local set = modules_for("--state-dir", state, "endpoint", "ls")
	lu.assertTrue(set["brisk.cli.endpoint"])
	lu.assertTrue(set["brisk.cliutil"])
	lu.assertNil(set["brisk.cli.network"])
	lu.assertNil(modules_for("--state-dir", state, "network", "ls")["brisk.cli.endpoint"])
end

function TestCliLazy:test_modules_load_no_repl()
	local d = tmpdir()
	spit(d .. "/m.lua", 'package.path = arg[1] .. "/lua/?.lua;" .. package.path\n'
		.. 'require "brisk.cli.network"\nrequire "brisk.cli.endpoint"\n'
		.. 'print(package.loaded["brisk.repl"], package.loaded["brisk.pretty"], package.loaded["brisk.driver"])\n')
	lu.assertEquals(H.must("lua5.4 " .. q(d .. "/m.lua") .. " " .. q(ROOT)), "nil\tnil\tnil\n")
end
