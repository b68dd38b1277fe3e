-- spec/test_repl.lua: the REPL (lua/brisk/repl.lua), in-process through
-- sessions, through a pipe, and on a pseudo-terminal under tmux (libedit
-- line editing, history, completion in csrc/cli/main.c).
local lu = require "luaunit"
local H = require "helper"

local ROOT, BIN, q, slurp, spit = H.ROOT, H.BIN, H.q, H.slurp, H.spit

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
	-- a value that cannot be printed is that line's error (it ended the
	-- REPL; found by a review)
	lu.assertEquals(s:feed('setmetatable({}, { __tostring = function() error("bad tostring") end })'), "error")
	o, e = take()
	lu.assertEquals(o, "")
	lu.assertStrContains(e, "bad tostring")
	lu.assertEquals(s.errors, 4)
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
	-- globals fall through to _G without being copied
	lu.assertIs(env.print, print)
	lu.assertNil(rawget(env, "print"))
	lu.assertNil(rawget(env, "driver"))
	lu.assertNil(env.driver)              -- no driver asked for
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

function TestReplComplete:test_names_inside_strings()
	H.reset()
	local repl = require "brisk.repl"
	local dir = H.scratch("replc")
	H.must("ip link add rcbr0 type bridge")
	H.netns_add("rcns0")
	local driver = require "brisk.driver"
	local d = assert(driver.open { state_dir = dir })
	assert(d:create_network { name = "rcnet", subnet = "10.75.0.0/24", options = { bridge = "br-rcnet" } })
	assert(d:create_endpoint("rcnet", { name = "rcep" }))
	local names = repl.names(dir)
	for _, n in ipairs({ "lo", "rcbr0", "br-rcnet", "rcns0", "rcnet", "rcep" }) do lu.assertTableContains(names, n) end
	-- the witness: every link ip reports is offered
	for _, l in ipairs(H.ip("link show")) do lu.assertTableContains(names, l.ifname) end
	local c = repl.name_completer(dir)
	lu.assertEquals(c("rc", 'h:link_get("rc'), { "rcbr0", "rcep", "rcnet", "rcns0" })
	lu.assertEquals(c("rcn", "driver:network('rcn"), { "rcnet", "rcns0" })
	lu.assertEquals(c("rc", "rc"), {})                          -- not inside a string
	-- (the line is what comes before the cursor, as the brisk program gives it)
	-- '-' ends a word for the line editor: "br-rc" comes as "rc" after
	-- "br-", and br-rcnet is offered from there (a review found nothing was)
	lu.assertEquals(c("rc", 'h:link_get("br-rc'), { "rcnet" })
	lu.assertEquals(c("", 'h:link_get("br-'), { "rcnet" })
	-- a string earlier on the line: Lua names are still completed after it
	lu.assertEquals(c("rc", 'h:link_get("br-rc", rc'), {})
	-- through repl.complete, as Tab does
	table.insert(repl.completers, c)
	local env = repl.new_env()
	local got = repl.complete(env, "rcb", 'brisk.open():link_get("rcb')
	-- inside a string, after "br-": names, not Lua's globals and keywords
	local after_dash = repl.complete(env, "", 'x = "br-')
	-- past a string, Lua names again (a review found them gone)
	local past = repl.complete(env, "pri", 'x = {"pri", pri')
	table.remove(repl.completers)
	lu.assertTableContains(past, "print")
	lu.assertEquals(got, { "rcbr0" })
	lu.assertEquals(after_dash, { "rcnet" })
	assert(d:delete_network("rcnet", { force = true }))
	d:close()
	os.execute("rm -rf " .. q(dir))
	H.reset()
end

function TestReplComplete:test_lazy_driver_completes()
	local repl = require "brisk.repl"
	local dir = H.scratch("replc")
	local s = repl.session { state_dir = dir .. "/st", write = function() end, ewrite = function() end }
	lu.assertTableContains(repl.complete(s.env, "dri"), "driver")
	lu.assertEquals(repl.complete(s.env, "driver:create_n"), { "driver:create_network" })
	lu.assertTableContains(repl.complete(s.env, "driver:plan_"), "driver:plan_network")
	s:close()
	-- a driver that cannot be opened completes nothing, quietly
	local bad = repl.session { state_dir = "/proc/brisk-none/st", write = function() end, ewrite = function() end }
	lu.assertEquals(repl.complete(bad.env, "driver:cr"), {})
	lu.assertEquals(bad.errors, 0)
	os.execute("rm -rf " .. q(dir))
end

-- The driver, :plan and :apply, in-process, over a private state directory.
local function collecting(opts)
	local repl = require "brisk.repl"
	local out, err = {}, {}
	opts.write = function(x) out[#out + 1] = x end
	opts.ewrite = function(x) err[#err + 1] = x end
	local s = repl.session(opts)
	return s, function()
		local o, e = table.concat(out), table.concat(err)
		out, err = {}, {}
		return o, e
	end
end

TestReplDriver = {}

function TestReplDriver:setUp()
	H.reset()
	self.dir = H.must("mktemp -d /tmp/brisk-repld-XXXXXX"):gsub("%s+$", "")
	self.state = self.dir .. "/st"
	self.s, self.take = collecting { state_dir = self.state }
end

function TestReplDriver:tearDown()
	if self.s then
		pcall(function()
			local d = self.s:driver()
			for _, n in ipairs(d:networks()) do d:delete_network(n.id, { force = true }) end
		end)
		self.s:close()
		self.s:close()             -- harmless twice
	end
	if self.dir then os.execute("rm -rf " .. q(self.dir)) end
	H.reset()
end

function TestReplDriver:test_driver_opened_on_first_use()
	local s, take = self.s, self.take
	lu.assertFalse(H.sh("test -e " .. q(self.state)) and true or false)      -- nothing made yet
	lu.assertEquals(s:feed("getmetatable(driver) ~= nil and type(driver.create_network)"), "ok")
	lu.assertEquals(take(), "function\n")
	lu.assertTrue(H.sh("test -d " .. q(self.state .. "/network")))
	lu.assertIs(rawget(s.env, "driver"), s:driver())
	lu.assertEquals(s:feed("#driver:networks()"), "ok")
	lu.assertEquals(take(), "0\n")
	-- :help names the state directory
	s:feed(":help")
	lu.assertStrContains(take(), "`driver` is the bridge driver over " .. self.state)
end

function TestReplDriver:test_driver_open_failure_is_a_message()
	local s, take = collecting { state_dir = "/proc/brisk-none/st" }
	lu.assertEquals(s:feed("driver"), "error")
	local o, e = take()
	lu.assertEquals(o, "")
	lu.assertStrMatches(e, "driver: [^\n]*/proc/brisk%-none[^\n]*\n")
	lu.assertNotStrContains(e, "traceback")
	lu.assertEquals(s:feed(':plan { name = "x" }'), "error")
	_, e = take()
	lu.assertStrContains(e, "driver: ")
	s:close()
end

function TestReplDriver:test_plan_then_apply()
	local s, take = self.s, self.take
	local before = H.snapshot()
	lu.assertEquals(s:feed(':plan { name = "rp1", subnet = "10.77.0.0/24", options = { bridge = "br-rp1" } }'), "ok")
	local o, e = take()
	lu.assertEquals(e, "")
	lu.assertStrMatches(o, "network rp1: bridge br%-rp1, subnet 10%.77%.0%.0/24 gateway 10%.77%.0%.1\n"
		.. "  setup_device\n      link_add ifname=br%-rp1 kind=bridge address=02:42:.*")
	lu.assertStrContains(o, "\n  setup_bridge_ipv4\n      addr_add dev=br-rp1 address=10.77.0.1/24")
	lu.assertStrContains(o, "nothing was changed (:apply applies it)\n")
	-- nothing changed: the kernel and the store
	lu.assertEquals(H.snapshot(), before)
	lu.assertNil(H.iplink("br-rp1"))
	lu.assertEquals(#s:driver():networks(), 0)
	lu.assertEquals(s.pending.network.name, "rp1")
	-- :plan alone shows the pending plan again
	lu.assertEquals(s:feed(":plan"), "ok")
	lu.assertEquals(take(), o)
	lu.assertEquals(s:feed(":apply"), "ok")
	o, e = take()
	lu.assertEquals(e, "")
	lu.assertStrMatches(o, "network rp1 created: %d+ kernel operations\n"
		.. "NETWORK ID +NAME +BRIDGE +SUBNET +GATEWAY\n%x+ +rp1 +br%-rp1 +10%.77%.0%.0/24 +10%.77%.0%.1\n")
	lu.assertNil(s.pending)
	-- the kernel has what the plan said: the bridge with its MAC and address, up
	local l = H.iplink("br-rp1")
	lu.assertNotNil(l)
	lu.assertEquals(l.address, s:driver():network("rp1").mac)
	lu.assertTableContains(l.flags, "UP")
	local addrs = H.ip("addr show dev br-rp1")[1].addr_info
	lu.assertEquals(addrs[1]["local"], "10.77.0.1")
	lu.assertEquals(math.tointeger(addrs[1].prefixlen), 24)
	-- applied once only
	lu.assertEquals(s:feed(":apply"), "error")
	_, e = take()
	lu.assertStrContains(e, ":apply: no pending plan")
	lu.assertEquals(s:feed(":ap"), "error")     -- a prefix runs it too
end

function TestReplDriver:test_plan_errors_change_nothing()
	local s, take = self.s, self.take
	local before = H.snapshot()
	local cases = {
		{ ":plan 42", ":plan: a network definition table expected, got number" },
		{ ':plan { name = "x", bogus = 1 }', ":plan: unknown network field 'bogus'" },
		{ ":plan {", ":plan: :plan:1: unexpected symbol near <eof>" },
		{ ":plan nosuch.field", "attempt to index a nil value" },
		{ ':plan { name = "x", subnet = "10.0.0.0/33" }', ":plan: " },
		{ ":apply now", ":apply: takes no arguments" },
		{ ":apply", ":apply: no pending plan" },
	}
	for _, c in ipairs(cases) do
		lu.assertEquals(s:feed(c[1]), "error", c[1])
		local o, e = take()
		lu.assertEquals(o, "", c[1])
		lu.assertStrContains(e, c[2])
	end
	lu.assertEquals(s.errors, #cases)
	lu.assertNil(s.pending)
	lu.assertEquals(H.snapshot(), before)
	lu.assertEquals(#s:driver():networks(), 0)
end

function TestReplDriver:test_apply_failure_keeps_the_plan()
	local s, take = self.s, self.take
	lu.assertEquals(s:feed(':plan { name = "rp2", subnet = "10.78.0.0/24", options = { bridge = "br-rp2" } }'), "ok")
	take()
	-- meanwhile a network of that name is made
	lu.assertEquals(s:feed('assert(driver:create_network{ name = "rp2", subnet = "10.79.0.0/24", '
		.. 'options = { bridge = "br-rp2b" } }) and nil'), "ok")
	take()
	local before = H.snapshot()
	lu.assertEquals(s:feed(":apply"), "error")
	local _, e = take()
	lu.assertStrContains(e, ":apply: network rp2 conflicts with network rp2")
	lu.assertNotNil(s.pending)
	lu.assertEquals(H.snapshot(), before)
	lu.assertNil(H.iplink("br-rp2"))
	lu.assertNotNil(H.iplink("br-rp2b"))
end

function TestReplDriver:test_records_print_as_rows()
	local s, take = self.s, self.take
	lu.assertEquals(s:feed('net = assert(driver:create_network{ name = "rp3", subnet = "10.76.0.0/24", '
		.. 'options = { bridge = "br-rp3" } })'), "ok")
	lu.assertEquals(s:feed('ep = assert(driver:create_endpoint("rp3", { name = "rp3e", netns = "rh3" }))'), "ok")
	lu.assertEquals(take(), "")
	s:feed("driver:networks()")
	lu.assertStrMatches(take(), "NETWORK ID +NAME +BRIDGE +SUBNET +GATEWAY\n%x%x%x%x%x%x%x%x%x%x%x%x +rp3 +br%-rp3 +"
		.. "10%.76%.0%.0/24 +10%.76%.0%.1\n")
	s:feed("driver:endpoints()")
	local o = take()
	lu.assertStrMatches(o, "ENDPOINT ID +NAME +NETWORK +HOST IFNAME +NETNS +IFNAME +MAC +IPV4\n"
		.. "%x+ +rp3e +rp3 +veth%x+ +rh3 +eth0 +02:42:0a:4c:00:02 +10%.76%.0%.2/24\n")
	-- the witness: the namespace has that interface, address and MAC
	local l = H.iplink("eth0", "rh3")
	lu.assertEquals(l.address, "02:42:0a:4c:00:02")
	local host = o:match("\n%x+ +rp3e +rp3 +(veth%x+)")
	lu.assertEquals(H.iplink(host).master, "br-rp3")
	-- one record: its row; :raw shows it whole
	s:feed('driver:network("rp3")')
	lu.assertStrMatches(take(), "NETWORK ID[^\n]+\n%x+ +rp3 +br%-rp3 [^\n]+\n")
	s:feed('net, ep')
	lu.assertStrContains(take(), "NETWORK ID")
	s:feed(':raw driver:network("rp3")')
	o = take()
	lu.assertStrContains(o, 'bridge = "br-rp3",')
	lu.assertStrContains(o, "journal = {")
	lu.assertEquals(s:feed(":raw"), "error")
	lu.assertEquals(s:feed('assert(driver:delete_network("rp3", { force = true }))'), "ok")
	take()
	lu.assertNil(H.iplink("br-rp3"))
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

-- SIGINT interrupts the line that runs, not the session (a review)
function TestReplPipe:test_sigint_interrupts_the_line()
	local code, out, err = run_pipe('f = assert(io.open("/proc/self/stat")); pid = f:read("n"); f:close()\n'
		.. 'io.popen("kill -INT " .. math.tointeger(pid)):close() for i = 1, 1e9 do end\n'
		.. 'print("next line")\n')
	lu.assertEquals(out, "next line\n")
	lu.assertStrContains(err, "interrupted")
	lu.assertEquals(code, 1)
end

-- A Ctrl-C that comes while brisk waits for its store's lock lets the
-- brisk call finish (and let go of the lock), then interrupts the line: the
-- next line's create does not wait for ever on a lock nobody holds (a
-- review found it did when the error came as the lock was taken)
function TestReplPipe:test_sigint_while_brisk_holds_its_lock()
	local st = H.scratch("replsig")
	local code, out, err = run_pipe(string.format([[
d = require("brisk.driver").open{ state_dir = %q }
f = assert(io.open("/proc/self/stat")); pid = f:read("n"); f:close()
io.popen("flock %s/.lock sleep 0.6"); os.execute("sleep 0.1"); bg = io.popen("sleep 0.2; kill -INT " .. math.tointeger(pid)); print(assert(d:create_network{ name = "a", subnet = "10.52.0.0/24" }).name)
io.popen("flock %s/.lock sleep 0.6"); os.execute("sleep 0.1"); bg = io.popen("sleep 0.2; kill -INT " .. math.tointeger(pid))
d:create_network{ name = "c", subnet = "10.54.0.0/24" }
print(assert(d:create_network{ name = "b", subnet = "10.53.0.0/24" }).name, #d:networks())
print(#d:networks())
d:delete_network("a"); d:delete_network("b"); d:delete_network("c")
]], st, st, st), "timeout 20")
	-- the expression line (a tail call into brisk: none of the line's own
	-- code runs after it) is interrupted too
	lu.assertEquals(out, "b\t3\n3\n")
	lu.assertEquals(select(2, err:gsub("interrupted", "")), 2)
	lu.assertEquals(code, 1)
end

-- a debug hook the user set stays set from one line to the next
function TestReplPipe:test_users_debug_hook_is_kept()
	local code, out, err = run_pipe('debug.sethook(function() end, "c")\nprint(debug.gethook() ~= nil)\n')
	lu.assertEquals({ code, out, err }, { 0, "true\n", "" })
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

function TestReplTty:start(name, args)
	self.target = name or "repl"
	local cmd = string.format("env BRISK_HISTORY=%s HOME=%s %s %s; echo EXIT=$?; sleep 30",
		q(self.hist), q(self.dir), q(BIN), args or "")
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

-- Wait (at most 15 s: a loaded machine can be slow to start a process)
-- until the screen shows `text`; returns the screen.
function TestReplTty:wait(text)
	local screen
	local deadline = os.time() + 15
	repeat
		screen = self:screen()
		if screen:find(text, 1, true) then return screen end
		os.execute("sleep 0.05")
	until os.time() > deadline
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
	-- Ctrl-C interrupts a running line and the REPL goes on (it ended the
	-- REPL; a review)
	self:type("for i = 1, 1e12 do end", "Enter")
	os.execute("sleep 0.3")
	self:type("", "C-c")
	self:wait("interrupted")
	self:type("print('alive')", "Enter")
	self:wait("alive\n> ")
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

function TestReplTty:test_tty_completes_names()
	H.reset()
	local state = self.dir .. "/st"
	H.must("ip link add ttybr0 type bridge")
	H.netns_add("ttyns0")
	H.must(string.format("%s --state-dir %s network create --subnet 10.86.0.0/24 "
		.. "-o com.docker.network.bridge.name=br-webtty webtty", q(BIN), q(state)))
	self:start("repl", "--state-dir " .. q(state))
	-- an interface of the current namespace
	self:type('brisk.open():link_get("ttyb', "Tab")
	self:wait('> brisk.open():link_get("ttybr0')
	self:type('").ifname', "Enter")
	self:wait("\nttybr0\n> ")
	-- a namespace
	self:type('brisk.netns_exists("ttyn', "Tab")
	self:wait('> brisk.netns_exists("ttyns0')
	self:type('")', "Enter")
	self:wait("\ntrue\n> ")
	-- a network of --state-dir, and the lazily opened driver's methods
	self:type("driver:netw", "Tab")
	self:wait("> driver:network")
	self:type('("webt', "Tab")
	self:wait('> driver:network("webtty')
	self:type('").bridge', "Enter")
	self:wait("\nbr-webtty\n> ")
	self:type("", "C-d")
	self:wait("EXIT=0")
	H.must(string.format("%s --state-dir %s network rm webtty", q(BIN), q(state)))
	H.reset()
end

function TestReplTty:test_tty_plan_and_apply()
	H.reset()
	local state = self.dir .. "/st"
	self:start("repl", "--state-dir " .. q(state))
	self:type(':plan { name = "ttyp", subnet = "10.87.0.0/24", options = { bridge = "br-ttyp" } }', "Enter")
	local screen = self:wait("(:apply applies it)")
	lu.assertStrContains(screen, "network ttyp: bridge br-ttyp, subnet 10.87.0.0/24 gateway 10.87.0.1")
	lu.assertStrContains(screen, "link_add ifname=br-ttyp kind=bridge")
	lu.assertNil(H.iplink("br-ttyp"))
	self:type(":apply", "Enter")
	self:wait("network ttyp created: ")
	screen = self:wait("> ")
	lu.assertNotNil(H.iplink("br-ttyp"))
	self:type("", "C-d")
	self:wait("EXIT=0")
	-- the CLI over the same state directory sees it
	local out = H.must(string.format("%s --state-dir %s --json network ls", q(BIN), q(state)))
	local cjson = require "cjson"
	local nets = cjson.decode(out)
	lu.assertEquals(#nets, 1)
	lu.assertEquals(nets[1].name, "ttyp")
	lu.assertEquals(nets[1].bridge, "br-ttyp")
	H.must(string.format("%s --state-dir %s network rm ttyp", q(BIN), q(state)))
	lu.assertNil(H.iplink("br-ttyp"))
	H.reset()
end
