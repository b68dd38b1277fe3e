--- brisk.repl: the interactive Lua 5.4 prompt of `brisk` (`brisk repl`).
--
-- It reads like lua.c: a line is first tried as `return <line>` (so an
-- expression prints its values), then as a statement; a chunk whose error
-- ends in `<eof>` is incomplete and the prompt turns to ">> " for more.
-- Values print through brisk.pretty (network and endpoint records as
-- rows); errors print with a traceback trimmed to the chunk. Lines starting
-- with ':' are REPL commands (`:help`, `:quit`, `:plan`, `:apply`, `:raw`,
-- and those other modules add with `repl.command`).
--
-- The environment has `brisk` and `driver`: a brisk.driver over the state
-- directory (`--state-dir`, else $BRISK_STATE_DIR, else /var/lib/brisk),
-- opened the first time it is used. `:plan {definition}` shows what
-- creating that network would do and keeps the plan; `:apply` carries it
-- out through the driver.
--
-- On a terminal it edits lines with libedit (through brisk.host), keeps
-- history in $BRISK_HISTORY (empty: none) or ~/.brisk_history, and
-- completes with Tab: Lua names, fields along `a.b.c` paths and methods
-- after `:`, REPL commands, inside a string literal the names of
-- interfaces (of the current namespace), namespaces, networks and
-- endpoints, and whatever the functions in `repl.completers` offer.
-- Without a terminal it reads stdin silently (no prompts) and exits 1 if
-- any chunk failed.
local M = {}

local pretty = require "brisk.pretty"
local cli = require "brisk.cli"

local stdout, stderr = io.stdout, io.stderr

--- Functions `fn(text, line) -> array of candidates` consulted on Tab
-- (for interface, network and namespace names). `text` is the word being
-- completed; candidates that do not start with it are dropped.
M.completers = {}

local commands = {}

--- Register a REPL command `:name`.
-- @tparam string name without the colon
-- @tparam function fn called as `fn(args, session)` with the rest of the
--   line (trimmed) and the session (`session.env` is the REPL's
--   environment, `session:print(...)` prints values, `session.done = true`
--   leaves the REPL). A non-nil return value is printed.
--   (nil removes the command)
-- @tparam string help one line for `:help`
function M.command(name, fn, help)
	assert(type(name) == "string" and name:match("^[%a_][%w_-]*$"),
		"bad argument #1 to 'command' (command name expected)")
	assert(fn == nil or type(fn) == "function", "bad argument #2 to 'command' (function expected)")
	commands[name] = fn and { fn = fn, help = help or "" } or nil
end

--- The names of the registered REPL commands, sorted.
function M.command_names()
	local t = {}
	for n in pairs(commands) do t[#t + 1] = n end
	table.sort(t)
	return t
end

local debug_on, error_text = cli.debug_on, cli.error_text

-- Message handler: error objects (tables with a message) print as their
-- message; anything else gets a traceback cut at the REPL's own frames.
local function handler(e)
	if type(e) == "table" and type(rawget(e, "message")) == "string" and not debug_on() then
		return e.message
	end
	local tb = debug.traceback(error_text(e), 2)
	tb = tb:gsub("\n[^\n]*%[C%]: in function 'xpcall'.*$", "")
	return tb
end

-- The environment's metatable: globals fall through to _G; a name in
-- `__lazy` is made by its function on first use and kept.
local function env_mt(lazy)
	return {
		__index = function(t, k)
			local make = lazy[k]
			if make then
				local v = make()
				rawset(t, k, v)
				return v
			end
			return _G[k]
		end,
		__fallback = _G,
		__lazy = lazy,
	}
end

--- A fresh environment for REPL chunks: globals fall through to _G,
-- `brisk` is preloaded when `require "brisk"` works.
-- @tparam[opt] table opts `driver`: a function returning the driver the
--   name `driver` stands for, called the first time `driver` is read (it
--   raises when the driver cannot be opened)
-- @treturn table env
-- @treturn string|nil why brisk could not be loaded (nil when it was, or
--   when there is no brisk module at all)
function M.new_env(opts)
	local lazy = {}
	if opts and opts.driver then lazy.driver = opts.driver end
	local env = setmetatable({}, env_mt(lazy))
	local ok, brisk = pcall(require, "brisk")
	if ok then
		env.brisk = brisk
		return env
	end
	local msg = error_text(brisk)
	if msg:find("module 'brisk' not found", 1, true) then return env end
	return env, msg
end

-- Completion ----------------------------------------------------------------

local keywords = {}
for w in ([[and break do else elseif end false for function goto if in
	local nil not or repeat return then true until while]]):gmatch("%a+") do
	keywords[#keywords + 1] = w
end

-- Where a lookup goes after a value's own fields, without running code:
-- its metatable's __index when that is a table, else the __fallback table
-- of a REPL environment (whose __index is a function).
local function fallback(mt)
	if type(mt) ~= "table" then return nil end
	local idx = rawget(mt, "__index")
	if type(idx) == "table" then return idx end
	idx = rawget(mt, "__fallback")
	if type(idx) == "table" then return idx end
	return nil
end

-- Index without running __index functions: raw fields, then __index
-- tables up the chain (strings index the string library). A lazy name of
-- the REPL environment is made (under pcall) when completion reaches it.
local function safe_get(v, k, depth)
	depth = depth or 0
	if depth > 10 then return nil end
	if type(v) == "string" then return string[k] end
	if type(v) == "table" then
		local r = rawget(v, k)
		if r ~= nil then return r end
	end
	local mt = getmetatable(v)
	if type(mt) == "table" and type(rawget(mt, "__lazy")) == "table" and mt.__lazy[k] then
		local ok, r = pcall(function() return v[k] end)
		if ok then return r end
		return nil
	end
	local idx = fallback(mt)
	if idx then return safe_get(idx, k, depth + 1) end
	return nil
end

-- Field names of v (identifier strings), through __index tables.
local function field_names(v, out, methods_only, depth)
	depth = depth or 0
	if depth > 10 then return out end
	if type(v) == "string" then return field_names(string, out, methods_only, depth + 1) end
	if type(v) == "table" then
		for k, val in next, v do
			if type(k) == "string" and k:match("^[%a_][%w_]*$")
				and (not methods_only or type(val) == "function") then
				out[k] = true
			end
		end
	end
	local mt = getmetatable(v)
	if type(mt) == "table" and type(rawget(mt, "__lazy")) == "table" and not methods_only then
		for k in pairs(mt.__lazy) do out[k] = true end
	end
	local idx = fallback(mt)
	if idx then field_names(idx, out, methods_only, depth + 1) end
	return out
end

local function resolve(env, path)
	local v = env
	for part in path:gmatch("[^.]+") do
		v = safe_get(v, part)
		if v == nil then return nil end
	end
	return v
end

-- When `text` (the word being completed) is inside a string literal on
-- `line` (the line up to the cursor): the literal's content before the
-- word, which the line editor took as other words ('-' ends a word: "my-w"
-- comes as "w" after "my-"); nil when the cursor is not in a string.
local function string_prefix(text, line)
	local esc = text:gsub("%p", "%%%0")
	return line:match("[\"']([%w_.%-]-)" .. esc .. "$")
end

--- Completion candidates for `text` (the word before the cursor) on `line`.
-- @tparam table env the environment names are looked up in
-- @tparam string text
-- @tparam[opt] string line the whole line
-- @treturn table sorted array of candidates, each starting with `text`
function M.complete(env, text, line)
	line = line or text
	local found = {}
	if text:match("^:") then
		for _, n in ipairs(M.command_names()) do
			if (":" .. n):sub(1, #text) == text then found[":" .. n] = true end
		end
	else
		local base, sep, prefix = text:match("^([%a_][%w_.]*)([.:])([%w_]*)$")
		if base and not base:find("..", 1, true) and base:sub(-1) ~= "." then
			local obj = resolve(env, base)
			if obj ~= nil then
				for k in pairs(field_names(obj, {}, sep == ":")) do
					if k:sub(1, #prefix) == prefix then found[base .. sep .. k] = true end
				end
			end
		elseif text:match("^[%a_]?[%w_]*$") and not string_prefix(text, line) then
			for k in pairs(field_names(env, {})) do
				if k:sub(1, #text) == text then found[k] = true end
			end
			for _, k in ipairs(keywords) do
				if k:sub(1, #text) == text then found[k] = true end
			end
		end
	end
	for _, fn in ipairs(M.completers) do
		local ok, list = pcall(fn, text, line)
		if ok and type(list) == "table" then
			for _, c in ipairs(list) do
				if type(c) == "string" and c:sub(1, #text) == text then found[c] = true end
			end
		end
	end
	local out = {}
	for c in pairs(found) do out[#out + 1] = c end
	table.sort(out)
	return out
end

--- The names worth completing inside a string literal: the interfaces of
-- the current network namespace, the named namespaces (/run/netns), and
-- the networks and endpoints stored in `state_dir`. Reads only; whatever
-- cannot be read is left out.
-- @tparam[opt] string state_dir default $BRISK_STATE_DIR or /var/lib/brisk
-- @treturn table array of names, sorted, without duplicates
function M.names(state_dir)
	local found = {}
	local ok, brisk = pcall(require, "brisk")
	if ok and type(brisk) == "table" then
		local h = brisk.open and brisk.open()
		if h then
			local links = h.link_list and h:link_list()
			for _, l in ipairs(type(links) == "table" and links or {}) do
				if type(l.ifname) == "string" then found[l.ifname] = true end
			end
			h:close()
		end
		local ns = brisk.netns_list and brisk.netns_list()
		for _, n in ipairs(type(ns) == "table" and ns or {}) do found[n] = true end
	end
	local okn, N = pcall(require, "brisk.cli.network")
	if okn and type(N) == "table" and N.stored_names then
		local okl, list = pcall(N.stored_names, state_dir)
		for _, n in ipairs(okl and list or {}) do found[n] = true end
	end
	local out = {}
	for n in pairs(found) do out[#out + 1] = n end
	table.sort(out)
	return out
end

--- A completer for `repl.completers`: the names of `M.names(state_dir)`
-- that start with the word, when it is inside a string literal; nothing
-- otherwise.
-- @tparam[opt] string state_dir
-- @treturn function fn(text, line) -> sorted array of names
function M.name_completer(state_dir)
	return function(text, line)
		local pre = string_prefix(text, line or text)
		if not pre then return {} end
		-- a name is offered from where the word starts: "my-web" as "web"
		local want, out = pre .. text, {}
		for _, n in ipairs(M.names(state_dir)) do
			if n:sub(1, #want) == want then out[#out + 1] = n:sub(#pre + 1) end
		end
		return out
	end
end

-- Sessions ------------------------------------------------------------------

local Session = {}
Session.__index = Session
Session.__close = function(s) s:close() end

--- A REPL session that is fed lines (no terminal needed).
-- @tparam[opt] table opts `env` (default `repl.new_env()` with `driver`
--   bound to the session's driver), `state_dir` (the driver's; default
--   $BRISK_STATE_DIR or /var/lib/brisk), `write` and `ewrite` (functions
--   taking a string; default stdout/stderr)
-- @treturn table session with `feed(line)`, `print(...)`, `driver()`,
--   `close()`, `env`, `buffer` (the pending incomplete chunk or nil),
--   `pending` (the plan `:plan` made), `errors` (count) and `done` (set by
--   :quit)
function M.session(opts)
	opts = opts or {}
	local s = setmetatable({
		state_dir = opts.state_dir,
		write = opts.write or function(x) stdout:write(x); stdout:flush() end,
		ewrite = opts.ewrite or function(x) stderr:write(x); stderr:flush() end,
		buffer = nil,
		errors = 0,
		done = false,
	}, Session)
	s.env = opts.env
	if not s.env then
		s.env, s.warning = M.new_env { driver = function() return s:driver() end }
	end
	return s
end

--- The session's driver over its state directory, opened on first use.
-- Raises an error object (printed as its message) when it cannot be opened.
function Session:driver()
	if self._driver then return self._driver end
	local ok, driver = pcall(require, "brisk.driver")
	if not ok then
		error({ message = "driver: brisk.driver cannot be loaded: " .. error_text(driver) }, 0)
	end
	local dir = self.state_dir
	if dir == nil or dir == "" then
		dir = os.getenv("BRISK_STATE_DIR")
		if dir == "" then dir = nil end
	end
	local d, msg = driver.open { state_dir = dir }
	if not d then error({ message = "driver: " .. tostring(msg) }, 0) end
	self._driver = d
	return d
end

--- Close the session's driver, if it was opened (harmless twice).
function Session:close()
	if self._driver then self._driver:close() end
	self._driver = nil
end

--- Print values as the REPL does (pretty, tab separated, one line each;
-- network and endpoint records as rows).
function Session:print(...)
	local n = select("#", ...)
	if n == 0 then return end
	local parts = {}
	for i = 1, n do parts[i] = pretty.format((select(i, ...)), { compact = true }) end
	self.write(table.concat(parts, "\t") .. "\n")
end

function Session:fail(msg)
	self.errors = self.errors + 1
	self.ewrite(msg .. "\n")
	return "error"
end

function Session:exec(fn)
	-- in the brisk program, Ctrl-C interrupts the line, not the session
	if self.arm then self.arm() end
	local r = table.pack(xpcall(fn, handler))
	-- a Ctrl-C that came in a brisk call the line ended with (`return
	-- d:create_network{...}`: no code of the line ran after it)
	if self.disarm and self.disarm() and r[1] then
		r = { false, "interrupted", n = 2 }
	end
	if not r[1] then return self:fail(r[2]) end
	if r.n > 1 then
		-- a value whose __tostring (or __name) raises is an error of this
		-- line, not the end of the session
		local ok, err = xpcall(self.print, handler, self, table.unpack(r, 2, r.n))
		if not ok then return self:fail(err) end
	end
	return "ok"
end

function Session:command(line)
	local name, args = line:match("^%s*:([%w_-]*)%s*(.-)%s*$")
	local c = commands[name]
	if not c then
		local matches = {}
		for _, n in ipairs(M.command_names()) do
			if name ~= "" and n:sub(1, #name) == name then matches[#matches + 1] = n end
		end
		if #matches == 1 then c = commands[matches[1]] end
		if not c then
			local hint = ""
			if #matches > 1 then
				hint = "; one of :" .. table.concat(matches, ", :")
			else
				local s = cli.suggest(name, M.command_names())
				if s then hint = "; did you mean :" .. s .. "?" end
			end
			return self:fail(":" .. name .. ": unknown command" .. hint .. " (:help lists them)")
		end
	end
	local r = table.pack(xpcall(c.fn, handler, args, self))
	if not r[1] then return self:fail(r[2]) end
	if r[2] ~= nil then self:print(r[2]) end
	return self.done and "quit" or "ok"
end

--- Feed one line of input.
-- @tparam string line without its newline
-- @treturn string "ok" (ran), "more" (incomplete: send the next line),
--   "error" (reported on ewrite) or "quit"
function Session:feed(line)
	if self.buffer == nil then
		if line:match("^%s*:[%a_]") or line:match("^%s*:$") then return self:command(line) end
		local fn = load("return " .. line, "=stdin", "t", self.env)
		if fn then return self:exec(fn) end
		self.buffer = line
	else
		self.buffer = self.buffer .. "\n" .. line
	end
	local fn, err = load(self.buffer, "=stdin", "t", self.env)
	if not fn then
		if err:sub(-5) == "<eof>" then return "more" end
		self.buffer = nil
		return self:fail(err)
	end
	self.buffer = nil
	return self:exec(fn)
end

--- End of input: report a pending incomplete chunk.
function Session:finish()
	if self.buffer then
		local _, err = load(self.buffer, "=stdin", "t", self.env)
		self.buffer = nil
		if err then self:fail(err) end
	end
end

-- Built-in commands -----------------------------------------------------------

M.command("help", function(_, session)
	local rows = {}
	for _, n in ipairs(M.command_names()) do rows[#rows + 1] = { ":" .. n, commands[n].help } end
	local w = 0
	for _, r in ipairs(rows) do w = math.max(w, #r[1]) end
	local out = { "REPL commands (a unique prefix will do):" }
	for _, r in ipairs(rows) do out[#out + 1] = "  " .. r[1] .. string.rep(" ", w - #r[1] + 3) .. r[2] end
	out[#out + 1] = "Lua 5.4" .. (rawget(session.env, "brisk") and ", with brisk loaded as `brisk`" or "")
		.. ". Expressions print their values; Tab completes names; Ctrl-D quits."
	local mt = getmetatable(session.env)
	if type(mt) == "table" and type(rawget(mt, "__lazy")) == "table" and mt.__lazy.driver then
		out[#out + 1] = "`driver` is the bridge driver over " .. (session.state_dir
			or os.getenv("BRISK_STATE_DIR") or "/var/lib/brisk") .. " (opened on first use)."
	end
	session.write(table.concat(out, "\n") .. "\n")
end, "list the REPL commands")

M.command("quit", function(_, session)
	session.done = true
end, "leave the REPL (also Ctrl-D)")

-- Evaluate the expression of a REPL command in the session's environment.
local function eval(session, name, expr)
	local fn, err = load("return " .. expr, "=:" .. name, "t", session.env)
	if not fn then error({ message = ":" .. name .. ": " .. err }, 0) end
	return fn()
end

M.command("raw", function(args, session)
	if args == "" then error({ message = ":raw: usage: :raw EXPRESSION" }, 0) end
	local r = table.pack(eval(session, "raw", args))
	local parts = {}
	for i = 1, r.n do parts[i] = pretty.format(r[i], { rows = false }) end
	session.write(table.concat(parts, "\t") .. "\n")
end, "print values whole, as tables (no rows): :raw driver:networks()")

-- The plan as text, with the hint to apply it.
local function plan_text(plan)
	local N = require "brisk.cli.network"
	return N.plan_text(plan):gsub("; nothing was changed$", "; nothing was changed (:apply applies it)")
end

M.command("plan", function(args, session)
	if args == "" then
		if not session.pending then
			error({ message = ":plan: no pending plan (usage: :plan { name = \"web\", subnet = \"10.1.0.0/24\" })" }, 0)
		end
		return plan_text(session.pending)
	end
	local def = eval(session, "plan", args)
	if type(def) ~= "table" then
		error({ message = ":plan: a network definition table expected, got " .. type(def)
			.. " (example: :plan { name = \"web\", subnet = \"10.1.0.0/24\" })" }, 0)
	end
	local d = session:driver()
	local plan, msg = d:plan_network(def)
	if not plan then error({ message = ":plan: " .. tostring(msg) }, 0) end
	session.pending = plan
	return plan_text(plan)
end, "plan a network from a definition table and keep the plan: :plan { name = \"web\" }")

M.command("apply", function(args, session)
	if args ~= "" then error({ message = ":apply: takes no arguments (it applies the plan :plan made)" }, 0) end
	local plan = session.pending
	if not plan then error({ message = ":apply: no pending plan (make one with :plan { name = ... })" }, 0) end
	local d = session:driver()
	local net, msg = d:apply(plan)
	if not net then error({ message = ":apply: " .. tostring(msg) }, 0) end
	session.pending = nil
	local n = #(net.journal or {})
	session.write(string.format("network %s created: %d kernel operation%s\n", net.name, n, n == 1 and "" or "s"))
	return net
end, "carry out the pending plan through the driver")

-- The loop ----------------------------------------------------------------------

local function history_path()
	local p = os.getenv("BRISK_HISTORY")
	if p then return p ~= "" and p or nil end
	local home = os.getenv("HOME")
	if home and home ~= "" then return home .. "/.brisk_history" end
	return nil
end

--- Run the REPL on stdin until end of input or :quit.
-- @tparam[opt] table opts `interactive` (default: stdin is a terminal and
--   brisk.host is there), `env`, `state_dir` (the driver's)
-- @treturn integer exit code: 0; 1 when not interactive and a chunk failed
function M.run(opts)
	opts = opts or {}
	local has_host, host = pcall(require, "brisk.host")
	if not has_host then host = nil end
	local interactive = opts.interactive
	if interactive == nil then interactive = host ~= nil and host.isatty(0) end
	local s <close> = M.session { env = opts.env, state_dir = opts.state_dir }
	-- a Ctrl-C interrupts the line (its own code: a brisk call finishes)
	s.arm, s.disarm = require("brisk.cli").interrupts()
	if s.warning then s.ewrite("brisk: warning: require \"brisk\" failed: " .. s.warning .. "\n") end

	if not interactive then
		for line in io.stdin:lines() do
			if s:feed(line) == "quit" then break end
		end
		s:finish()
		return s.errors > 0 and 1 or 0
	end

	-- names inside string literals: interfaces, namespaces, and the networks
	-- and endpoints of this session's state directory (brisk.cli.network's
	-- own completer reads $BRISK_STATE_DIR only, so it stands aside)
	local okn, N = pcall(require, "brisk.cli.network")
	local saved = {}
	for i, f in ipairs(M.completers) do saved[i] = f end
	for i = #M.completers, 1, -1 do
		if okn and type(N) == "table" and M.completers[i] == N.complete then table.remove(M.completers, i) end
	end
	M.completers[#M.completers + 1] = M.name_completer(opts.state_dir)

	s.write(string.format("brisk %s (%s)  :help for help, Ctrl-D to quit\n",
		cli.version or "?", _VERSION))
	local hist = history_path()
	if hist then host.read_history(hist) end
	host.set_completer(function(text, line) return M.complete(s.env, text, line) end)
	while true do
		local line = host.readline(s.buffer and ">> " or "> ")
		if line == nil then
			s.write("\n")
			break
		end
		if line:match("%S") then
			host.add_history(line)
			if hist then
				local ok, err = host.write_history(hist)
				if not ok then
					s.ewrite("brisk: warning: " .. err .. " (history not saved)\n")
					hist = nil
				end
			end
		end
		if s:feed(line) == "quit" then break end
	end
	host.set_completer(nil)
	for i = #M.completers, 1, -1 do M.completers[i] = nil end
	for i, f in ipairs(saved) do M.completers[i] = f end
	return 0
end

return M
