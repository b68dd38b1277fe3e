-- spec/test_repl.lua: the REPL (lua/brisk/repl.lua), in-process through
-- sessions, through a pipe, and on a pseudo-terminal under tmux (libedit
-- line editing, history, completion in csrc/cli/main.c).
local lu = require "luaunit"
local H = require "helper"

local ROOT = (debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or ".")
ROOT = H.must("realpath " .. ROOT):gsub("%s+$", "")
local BIN = ROOT .. "/build/bin/brisk"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function slurp(path)
	local f = io.open(path, "rb")
	if not f then return nil end
	local s = f:read("a")
	f:close()
	return s
end

local function spit(path, s)
	local f = assert(io.open(path, "wb"))
	f:write(s)
	f:close()
end

-- A session whose output is collected.
local function session(env)
	local repl = require "brisk.repl"
	local out, err = {}, {}
	local s = repl.session {
		env = env,
		write = function(x) out[#out + 1] = x end,
		ewrite = function(x) err[#err + 1] = x end,
	}
	local function take()
		local o, e = table.concat(out), table.concat(err)
		out, err = {}, {}
		return o, e
	end
	return s, take
end

TestReplSession = {}

function TestReplSession:test_expression_prints_values()
	local s, take = session()
	lu.assertEquals(s:feed("1 + 1"), "ok")
	lu.assertEquals(take(), "2\n")
	lu.assertEquals(s:feed("1, 'a', nil, {a = 1, b = {2}}"), "ok")
	lu.assertEquals(take(), "1\ta\tnil\t{ a = 1, b = { 2 } }\n")
	lu.assertEquals(s:feed("nil"), "ok")
	lu.assertEquals(take(), "nil\n")
	lu.assertEquals(s:feed(""), "ok")
	lu.assertEquals(take(), "")
end

function TestReplSession:test_statement_and_own_environment()
	local s, take = session()
	lu.assertEquals(s:feed("repl_test_x = 5"), "ok")
	lu.assertEquals(take(), "")
	lu.assertEquals(s.env.repl_test_x, 5)
	lu.assertNil(rawget(_G, "repl_test_x"))
	lu.assertEquals(s:feed("repl_test_x * 2"), "ok")
	lu.assertEquals(take(), "10\n")
	lu.assertEquals(s:feed("local y = 3"), "ok")  -- a statement, not an expression
	lu.assertEquals(take(), "")
	lu.assertEquals(s:feed("string.rep('ab', 2)"), "ok")
	lu.assertEquals(take(), "abab\n")
end

function TestReplSession:test_multiline_function()
	local s, take = session()
	lu.assertEquals(s:feed("function sq(a)"), "more")
	lu.assertEquals(s.buffer, "function sq(a)")
	lu.assertEquals(s:feed("  return a * a"), "more")
	lu.assertEquals(s:feed("end"), "ok")
	lu.assertNil(s.buffer)
	lu.assertEquals(s:feed("sq(12)"), "ok")
	lu.assertEquals(take(), "144\n")
	lu.assertEquals(s:feed("t = {"), "more")
	lu.assertEquals(s:feed("1, 2,"), "more")
	lu.assertEquals(s:feed("}"), "ok")
	lu.assertEquals(s:feed("#t"), "ok")
	lu.assertEquals(take(), "2\n")
end

function TestReplSession:test_errors_with_trimmed_traceback()
	local s, take = session()
	lu.assertEquals(s:feed('error("boom")'), "error")
	local o, e = take()
	lu.assertEquals(o, "")
	lu.assertEquals(e, "stdin:1: boom\nstack traceback:\n\t[C]: in function 'error'\n\tstdin:1: in main chunk\n")
	lu.assertEquals(s:feed("local function f() return nil + 1 end"), "ok")
	lu.assertEquals(s:feed("local function f() return nil + 1 end f()"), "error")
	_, e = take()
	lu.assertStrContains(e, "stdin:1: attempt to perform arithmetic on a nil value")
	lu.assertStrContains(e, "in local 'f'")
	lu.assertNotStrContains(e, "repl.lua")
	lu.assertNotStrContains(e, "xpcall")
	-- an error object prints as its message, without traceback
	lu.assertEquals(s:feed('error(setmetatable({ message = "network n1 not found" }, {}))'), "error")
	_, e = take()
	lu.assertEquals(e, "network n1 not found\n")
	lu.assertEquals(s.errors, 3)
	-- the session goes on
	lu.assertEquals(s:feed("2"), "ok")
	lu.assertEquals(take(), "2\n")
end

function TestReplSession:test_syntax_errors()
	local s, take = session()
	lu.assertEquals(s:feed("x = = 1"), "error")
	local _, e = take()
	lu.assertEquals(e, "stdin:1: unexpected symbol near '='\n")
	lu.assertNil(s.buffer)
	lu.assertEquals(s:feed("if true then"), "more")
	s:finish()
	_, e = take()
	lu.assertStrContains(e, "'end' expected")
	lu.assertNil(s.buffer)
end

function TestReplSession:test_commands()
	local repl = require "brisk.repl"
	local s, take = session()
	lu.assertEquals(s:feed(":help"), "ok")
	local o = take()
	lu.assertStrContains(o, "REPL commands")
	lu.assertStrMatches(o, ".*\n  :help +list the REPL commands\n.*")
	lu.assertStrMatches(o, ".*\n  :quit +leave the REPL.*")
	repl.command("echo", function(args, sess)
		lu.assertIs(sess, s)
		return "got " .. args
	end, "echo the arguments")
	lu.assertEquals(s:feed(":echo hi there  "), "ok")
	lu.assertEquals(take(), "got hi there\n")
	s:feed(":help")
	lu.assertStrMatches(take(), ".*\n  :echo +echo the arguments\n.*")
	repl.command("echo", nil)
	lu.assertEquals(s:feed(":echo x"), "error")
	local _, e = take()
	lu.assertStrContains(e, ":echo: unknown command")
	lu.assertEquals(s:feed(":hlep"), "error")
	_, e = take()
	lu.assertStrContains(e, ":hlep: unknown command; did you mean :help?")
	lu.assertEquals(s:feed(":h"), "ok")              -- unique prefix
	lu.assertStrContains(take(), "REPL commands")
	lu.assertEquals(s:feed(":q"), "quit")
	lu.assertTrue(s.done)
	lu.assertErrorMsgContains("bad argument #1", repl.command, "no spaces", print)
	lu.assertErrorMsgContains("bad argument #2", repl.command, "x", 42)
end

function TestReplSession:test_brisk_preloaded_when_present()
	local repl = require "brisk.repl"
	local env = repl.new_env()
	lu.assertIs(getmetatable(env).__index, _G)
	if package.searchpath("brisk", package.path) then
		lu.assertIs(rawget(env, "brisk"), require "brisk")
	else
		lu.assertNil(rawget(env, "brisk"))
	end
end

TestReplComplete = {}

function TestReplComplete:test_fields_and_globals()
	local repl = require "brisk.repl"
	local env = repl.new_env()
	lu.assertEquals(repl.complete(env, "string.fo"), { "string.format" })
	lu.assertEquals(repl.complete(env, "string.f"), { "string.find", "string.format" })
	lu.assertEquals(repl.complete(env, "os.ex"), { "os.execute", "os.exit" })
	lu.assertEquals(repl.complete(env, "whi"), { "while" })
	lu.assertEquals(repl.complete(env, "pri"), { "print" })
	env.my_table = { inner = { deep_field = 1 } }
	lu.assertEquals(repl.complete(env, "my_t"), { "my_table" })
	lu.assertEquals(repl.complete(env, "my_table.inner.de"), { "my_table.inner.deep_field" })
	env.str = "abc"
	lu.assertEquals(repl.complete(env, "str:up"), { "str:upper" })
	lu.assertEquals(repl.complete(env, ":he"), { ":help" })
	lu.assertEquals(repl.complete(env, "nosuch.x"), {})
	lu.assertEquals(repl.complete(env, "string..x"), {})
	-- __index functions are never called by completion
	env.proxy = setmetatable({}, { __index = function() error("called") end })
	lu.assertEquals(repl.complete(env, "proxy.x"), {})
	if rawget(env, "brisk") then
		local some = next(env.brisk)
		if type(some) == "string" then
			lu.assertTableContains(repl.complete(env, "brisk." .. some), "brisk." .. some)
		end
	end
end

function TestReplComplete:test_completer_hook()
	local repl = require "brisk.repl"
	local env = repl.new_env()
	local seen
	local hook = function(text, line)
		seen = line
		return { "br0", "br1", "eth0", 42 }
	end
	local bad = function() error("broken provider") end
	table.insert(repl.completers, hook)
	table.insert(repl.completers, bad)
	local ok, got = pcall(repl.complete, env, "br", "brisk.link_get(br")
	table.remove(repl.completers)
	table.remove(repl.completers)
	lu.assertTrue(ok, got)
	-- the env preloads `brisk`, so it completes too
	lu.assertEquals(got, { "br0", "br1", "break", "brisk" })
	lu.assertEquals(seen, "brisk.link_get(br")
end

-- Through a pipe: no prompts, exit 1 when a chunk failed.
TestReplPipe = {}

local function run_pipe(input, env)
	local d = H.must("mktemp -d /tmp/brisk-repl-XXXXXX"):gsub("%s+$", "")
	spit(d .. "/in", input)
	local _, _, code = os.execute(string.format("env BRISK_HISTORY= %s %s <%s >%s 2>%s",
		env or "", q(BIN), q(d .. "/in"), q(d .. "/out"), q(d .. "/err")))
	local out, err = slurp(d .. "/out"), slurp(d .. "/err")
	os.execute("rm -rf " .. q(d))
	return code, out, err
end

function TestReplPipe:test_pipe_runs_chunks()
	local code, out, err = run_pipe("1+1\nfunction f(a)\nreturn a .. '!'\nend\nf('hi')\n:help\n:quit\nprint('after quit')\n")
	lu.assertEquals(err, "")
	lu.assertEquals(code, 0)
	lu.assertStrMatches(out, "2\nhi!\nREPL commands.*")
	lu.assertNotStrContains(out, "after quit")
	lu.assertNotStrContains(out, "> ")
end

function TestReplPipe:test_pipe_error_exit_1()
	local code, out, err = run_pipe("error('bad')\n3\n")
	lu.assertEquals(code, 1)
	lu.assertEquals(out, "3\n")
	lu.assertStrContains(err, "stdin:1: bad\nstack traceback:")
	code, out, err = run_pipe("repl\n", "")
	lu.assertEquals(code, 0)                 -- a global: the repl module is not one
	lu.assertEquals(out, "nil\n")
end

-- On a terminal, through tmux with a private server.
local has_tmux = H.sh("command -v tmux")

TestReplTty = {}
local tty_count = 0

function TestReplTty:setUp()
	lu.skipIf(not has_tmux, "tmux is not installed")
	local pid = assert(io.open("/proc/self/stat")):read("n")
	self.dir = H.must("mktemp -d /tmp/brisk-tty-XXXXXX"):gsub("%s+$", "")
	-- a private server per test (a new server on the name of one just
	-- killed can race with its exit)
	tty_count = tty_count + 1
	self.tmux = "tmux -L brisk-test-" .. pid .. "-" .. tty_count .. " -f /dev/null"
	self.hist = self.dir .. "/history"
	self.socket = nil
end

function TestReplTty:tearDown()
	if self.tmux then
		H.sh(self.tmux .. " kill-server")
		if self.socket then os.remove(self.socket) end
	end
	if self.dir then os.execute("rm -rf " .. q(self.dir)) end
end

function TestReplTty:start(name)
	self.target = name or "repl"
	local cmd = string.format("env BRISK_HISTORY=%s HOME=%s %s; echo EXIT=$?; sleep 30",
		q(self.hist), q(self.dir), q(BIN))
	H.must(self.tmux .. " new-session -d -s " .. self.target .. " -x 120 -y 40 " .. q(cmd))
	if not self.socket then
		self.socket = H.must(self.tmux .. " display-message -p '#{socket_path}'"):gsub("%s+$", "")
	end
	self:wait("> ")
end

function TestReplTty:screen()
	local _, out = H.sh(self.tmux .. " capture-pane -p -N -t " .. self.target)
	return out
end

-- Wait (at most 3 s) until the screen shows `text`; returns the screen.
function TestReplTty:wait(text)
	local screen
	for _ = 1, 60 do
		screen = self:screen()
		if screen:find(text, 1, true) then return screen end
		os.execute("sleep 0.05")
	end
	lu.fail("screen never showed " .. string.format("%q", text) .. ":\n" .. screen)
end

-- Type text literally, then the named keys.
function TestReplTty:type(text, ...)
	if text ~= "" then H.must(self.tmux .. " send-keys -t " .. self.target .. " -l " .. q(text)) end
	for _, k in ipairs({ ... }) do H.must(self.tmux .. " send-keys -t " .. self.target .. " " .. k) end
end

function TestReplTty:test_tty_expression_prints()
	self:start()
	lu.assertStrContains(self:screen(), ":help for help")
	self:type("6 * 7", "Enter")
	self:wait("> 6 * 7\n42\n> ")
	self:type("{ answer = 42 }", "Enter")
	self:wait("{ answer = 42 }\n> ")
	self:type('error("kaput")', "Enter")
	self:wait("stdin:1: kaput\nstack traceback:")
	self:type("", "C-d")
	self:wait("EXIT=0")
end

function TestReplTty:test_tty_multiline_function()
	self:start()
	self:type("function sq(x)", "Enter")
	self:wait(">> ")
	self:type("return x * x", "Enter")
	self:type("end", "Enter")
	self:type("sq(12)", "Enter")
	local screen = self:wait("144\n")
	lu.assertStrContains(screen, "> function sq(x)\n>> return x * x\n>> end\n> sq(12)\n144\n")
end

function TestReplTty:test_tty_history_written_and_read()
	self:start()
	self:type("hist_marker = 1", "Enter")
	self:type("hist_marker + 1", "Enter")
	self:wait("2\n> ")
	self:type("", "C-d")
	self:wait("EXIT=0")
	local text = slurp(self.hist) or ""
	-- libedit's format: a cookie line, spaces and other specials as \ooo
	local lines = {}
	for l in text:gmatch("[^\n]+") do
		lines[#lines + 1] = l:gsub("\\(%d%d%d)", function(o) return string.char(tonumber(o, 8)) end)
	end
	lu.assertEquals(lines, { "_HiStOrY_V2_", "hist_marker = 1", "hist_marker + 1" })
	-- a new REPL reads it back: Up recalls the last line
	self:start("repl2")
	self:type("", "Up")
	self:wait("> hist_marker + 1")
	self:type("", "Enter")
	self:wait("attempt to perform arithmetic on a nil value")   -- fresh environment
end

function TestReplTty:test_tty_help()
	self:start()
	self:type(":help", "Enter")
	local screen = self:wait("REPL commands")
	lu.assertStrContains(screen, ":quit")
	self:type(":quit", "Enter")
	self:wait("EXIT=0")
end

function TestReplTty:test_tty_tab_completion()
	self:start()
	self:type("string.fo", "Tab")
	self:wait("> string.format")
	self:type('("%d-%d", 4, 2)', "Enter")
	self:wait('> string.format("%d-%d", 4, 2)\n4-2\n')
	-- names defined in the session complete too
	self:type("my_long_variable = 5", "Enter")
	self:type("my_lo", "Tab")
	self:wait("> my_long_variable")
	self:type(" + 1", "Enter")
	self:wait("6\n")
	-- several candidates: a second Tab lists them
	self:type("string.", "Tab", "Tab")
	local screen = self:wait("string.upper")
	lu.assertStrContains(screen, "string.gsub")
end
