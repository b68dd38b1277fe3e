--- brisk.cli: the command framework behind the `brisk` program.
--
-- Commands are registered with `cli.register{...}` and run by
-- `cli.main(argv)`, which the `brisk` host calls. Modules under
-- `lua/brisk/cli/*.lua` register the commands of one group and are loaded
-- lazily by the first word of the command line: `brisk network create ...`
-- requires "brisk.cli.network" (when it exists) before looking the command
-- up. Built in: `version`, `help [COMMAND|TOPIC]` (topics: brisk.helptopics),
-- `repl` (also: no arguments) and `run SCRIPT [ARGS]`. `cli.progress` shows
-- the progress of long operations on a terminal.
--
-- Exit codes: 0 success, 1 failure (an error raised or returned by the
-- command), 2 usage error (unknown command or flag, missing value, wrong
-- number of arguments).
local M = {}

-- brisk.pretty is loaded when a result is printed through it (a command
-- with its own `format` never needs it)
local pretty

local stdout, stderr = io.stdout, io.stderr

--- brisk's version.
M.version = "0.1.0"

--- Where state is kept unless `--state-dir` or `$BRISK_STATE_DIR` says.
M.default_state_dir = "/var/lib/brisk"

--- Registered commands by full name ("network create").
M.commands = {}

local GLOBAL_FLAGS = {
	{ "--state-dir", arg = "DIR", key = "state_dir",
		doc = "where brisk keeps its state (default: $BRISK_STATE_DIR or "
			.. M.default_state_dir .. ")" },
	{ "--json", doc = "print results as JSON" },
	{ "-h", "--help", key = "help", doc = "show help (after a command: that command's help)" },
	{ "--version", doc = "print the version" },
}

-- Errors ------------------------------------------------------------------

local Error = {}
Error.__index = Error
Error.__tostring = function(e) return e.message end

--- Raise a brisk error: printed as `brisk: message` (no traceback) and
-- turned into exit code `exit` (default 1).
-- @tparam string message
-- @tparam[opt=1] integer exit
function M.error(message, exit)
	error(setmetatable({ message = tostring(message), exit = exit or 1 }, Error), 2)
end

--- Raise a usage error (exit code 2). `command` (a registered name) adds
-- that command's usage line to the message.
function M.usage_error(message, command)
	error(setmetatable({ message = tostring(message), exit = 2, command = command }, Error), 2)
end

--- Whether `e` is an error object raised by `cli.error`/`cli.usage_error`.
function M.is_error(e)
	return getmetatable(e) == Error
end

--- Whether $BRISK_DEBUG asks for tracebacks (set, not empty, not "0").
-- Shared with brisk.repl.
function M.debug_on()
	local d = os.getenv("BRISK_DEBUG")
	return d ~= nil and d ~= "" and d ~= "0"
end

--- The text of anything raised: error objects (tables with a string
-- `message`, or a `__tostring`) give their message, strings and numbers
-- themselves, anything else says what type it is. Shared with brisk.repl.
function M.error_text(e)
	if type(e) == "table" then
		if type(rawget(e, "message")) == "string" then return e.message end
		local mt = getmetatable(e)
		if type(mt) == "table" and mt.__tostring then return tostring(e) end
	end
	if type(e) == "string" or type(e) == "number" then return tostring(e) end
	return "(error object is a " .. type(e) .. " value)"
end

local debug_on, error_text = M.debug_on, M.error_text

-- Did you mean ----------------------------------------------------------

--- The candidate closest to `word`, or nil when none is close (brisk.schema's
-- rule: a few edits for the word's length, or a candidate the word begins).
-- @tparam string word
-- @tparam table candidates array of strings
-- @treturn string|nil
function M.suggest(word, candidates)
	-- only on the way to an error: brisk.schema is not loaded before (its
	-- rule breaks ties by name, so the candidates' order does not matter)
	return require("brisk.schema").closest(word, candidates)
end

local function did_you_mean(word, candidates)
	local s = M.suggest(word, candidates)
	return s and ("; did you mean '" .. s .. "'?") or ""
end

-- JSON ----------------------------------------------------------------------

--- Metatable that marks a table as a JSON array (so `{}` encodes as `[]`).
M.array_mt = { __name = "brisk.cli.array" }

--- Mark `t` (default a new table) as an array for JSON output.
function M.array(t)
	return setmetatable(t or {}, M.array_mt)
end

local cjson
local find, math_type, huge = string.find, math.type, math.huge
-- json_encode's stack[KEYS]: the object keys encoded so far in a document
local KEYS = {}
-- Bytes that are not UTF-8 (a name the kernel took: it takes any byte)
-- become U+FFFD, as Go's encoding/json does: a parser rejects them raw.
local function valid_utf8(s)
	if utf8.len(s) then return s end
	local out, i, n = {}, 1, #s
	while i <= n do
		local len, bad = utf8.len(s, i)
		if len then out[#out + 1] = s:sub(i); break end
		out[#out + 1] = s:sub(i, bad - 1)
		out[#out + 1] = "\u{FFFD}"
		i = bad + 1
	end
	return table.concat(out)
end

local function json_string(s)
	-- most strings (names, ids, addresses) need no escape
	if not find(s, '[%c"\\\128-\255]') then return '"' .. s .. '"' end
	s = valid_utf8(s)
	if not find(s, '[%c"\\]') then return '"' .. s .. '"' end
	cjson = cjson or require "cjson"
	-- cjson escapes '/' as '\/' (valid, but noisy): an odd run of
	-- backslashes before '/' ends in that escape
	return (cjson.encode(s):gsub("(\\+)/", function(bs)
		if #bs % 2 == 1 then return bs:sub(2) .. "/" end
	end))
end

local function json_number(v)
	if math.type(v) == "integer" then return string.format("%d", v) end
	if v ~= v or v == math.huge or v == -math.huge then return "null" end
	local s = string.format("%.14g", v)
	if tonumber(s) ~= v then s = string.format("%.17g", v) end
	return s
end

local function json_encode(v, out, stack, as_array)
	local t = type(v)
	if v == nil or (t == "userdata" and v == (cjson or require "cjson").null) then
		out[#out + 1] = "null"
	elseif t == "boolean" then
		out[#out + 1] = tostring(v)
	elseif t == "number" then
		out[#out + 1] = json_number(v)
	elseif t == "string" then
		out[#out + 1] = json_string(v)
	elseif t == "table" then
		local mt = getmetatable(v)
		if mt ~= M.array_mt and type(mt) == "table" and mt.__tostring then
			out[#out + 1] = json_string(tostring(v))
			return
		end
		if stack[v] then
			out[#out + 1] = json_string("<cycle>")
			return
		end
		stack[v] = true
		-- one pass: the keys, how many, the largest positive integer key
		-- (huge when another kind is there), whether all are strings
		local keys, count, max, strings = {}, 0, 0, true
		for k in pairs(v) do
			count = count + 1
			keys[count] = k
			if math_type(k) == "integer" and k > 0 then
				if k > max then max = k end
			else
				max = huge
			end
			if strings and type(k) ~= "string" then strings = false end
		end
		if (count > 0 and max == count) or (count == 0 and (as_array or mt == M.array_mt)) then
			out[#out + 1] = "["
			for i = 1, count do
				if i > 1 then out[#out + 1] = "," end
				json_encode(v[i], out, stack)
			end
			out[#out + 1] = "]"
		else
			if strings then
				table.sort(keys)
			else
				table.sort(keys, function(a, b)
					if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then
						return a < b
					end
					return type(a) < type(b)
				end)
			end
			-- (object keys repeat from row to row: each is encoded once,
			-- with its colon, per document)
			local kc = stack[KEYS]
			out[#out + 1] = "{"
			for i, k in ipairs(keys) do
				if i > 1 then out[#out + 1] = "," end
				local ks = kc[k]
				if not ks then
					ks = json_string(type(k) == "number" and json_number(k) or tostring(k)) .. ":"
					kc[k] = ks
				end
				out[#out + 1] = ks
				local x = v[k]
				if type(x) == "string" then
					out[#out + 1] = json_string(x)
				else
					json_encode(x, out, stack)
				end
			end
			out[#out + 1] = "}"
		end
		stack[v] = nil
	else
		out[#out + 1] = json_string(tostring(v))
	end
end

--- Encode a value as one JSON document (always valid JSON).
-- Arrays are tables with keys 1..n; an empty table is `{}` unless marked by
-- `cli.array` or `as_array` is true. Object keys are sorted. Non-finite
-- numbers become null, functions and userdata their `tostring`, cycles the
-- string "<cycle>". Strings are escaped by cjson.
-- @param v any value
-- @tparam[opt] boolean as_array encode an empty top-level table as `[]`
-- @treturn string
function M.json(v, as_array)
	local out = {}
	json_encode(v, out, { [KEYS] = {} }, as_array)
	return table.concat(out)
end

-- Registry ------------------------------------------------------------------

local function flag_key(name)
	return (name:gsub("^%-%-?", ""):gsub("-", "_"))
end

--- Register a command.
-- @tparam table spec
--   `name` (string, words separated by one space: "network create"),
--   `run` (function(opts, positional, ctx) -> value to print, or raises),
--   `summary` (one line for listings), `usage` (string or array of strings:
--   "[FLAGS] NAME" or a full "brisk ..." line), `description` (paragraph:
--   a string, an array of lines, or a function returning either, called
--   when the help is shown),
--   `example` (string or array of strings),
--   `flags` (array of `{ "--name", "-n", arg = "META", multi = bool,
--   doc = "...", default = v, choices = {...}, key = "opts_key" }`: the
--   first name is canonical, `arg` makes the flag take a value, `multi`
--   collects repeated values into an array; the value lands in
--   `opts[key]`, key defaulting to the long name without dashes, `-` as
--   `_`: `--ip-range` -> `opts.ip_range`),
--   `min_args`/`max_args` (positional count), `passthrough` (stop parsing
--   flags at the first positional), `columns` (text output of an array
--   result through `pretty.table`), `format` (function(result, ctx) ->
--   string for text output), `list` (JSON output is an array even when
--   empty).
--   The run function's `ctx` has `json`, `state_dir`, `command` (the spec),
--   `argv`, `out(string)` and `err(string)`. It returns a value to print
--   (nil prints nothing), or `nil, message` for a failure (exit 1), or
--   `value, code` to choose the exit code. `raw = true`: print nothing
--   (the command writes its own output).
-- @treturn table the registered spec
function M.register(spec)
	assert(type(spec) == "table", "bad argument #1 to 'register' (table expected)")
	local name = spec.name
	if type(name) ~= "string" or not name:match("^[%w_]") or not name:match("[%w_-]$")
		or name:find("[^%w_ -]") or name:find("  ", 1, true) then
		error("bad command name " .. tostring(name) .. " (words separated by single spaces)", 2)
	end
	if type(spec.run) ~= "function" then
		error("command '" .. name .. "': run must be a function", 2)
	end
	local flags, index = {}, {}
	for i, f in ipairs(spec.flags or {}) do
		if type(f) ~= "table" or type(f[1]) ~= "string" then
			error("command '" .. name .. "': flag " .. i .. " has no name", 2)
		end
		local long
		for _, n in ipairs(f) do
			if type(n) ~= "string" or not n:match("^%-%-?[%w][%w_-]*$") then
				error("command '" .. name .. "': bad flag name " .. tostring(n), 2)
			end
			if index[n] then
				error("command '" .. name .. "': flag " .. n .. " declared twice", 2)
			end
			if not long and n:sub(1, 2) == "--" then long = n end
		end
		local flag = {
			names = { table.unpack(f) },
			key = f.key or flag_key(long or f[1]),
			arg = f.arg, multi = f.multi, doc = f.doc,
			default = f.default, choices = f.choices,
		}
		for _, n in ipairs(flag.names) do index[n] = flag end
		flags[#flags + 1] = flag
	end
	local s = {}
	for k, v in pairs(spec) do s[k] = v end
	s.flag_list, s.flag_index = flags, index
	M.commands[name] = s
	return s
end

local function group_of(name) return name:match("^(%S+)") end

local function names_sorted()
	local names = {}
	for n in pairs(M.commands) do names[#names + 1] = n end
	table.sort(names)
	return names
end

-- Lazy loading --------------------------------------------------------------

local function module_for(word)
	if not word:match("^[%a_][%w_-]*$") then return nil end
	return "brisk.cli." .. word:gsub("-", "_")
end

--- Load the command module of a group (`brisk.cli.<word>`) if there is one.
-- A module that is not found is not an error; one that fails to load is.
-- @tparam string word
-- @treturn boolean whether a module was loaded (now or before)
local load_failed = {}

function M.load_group(word)
	local mod = module_for(word)
	if not mod then return false end
	if package.loaded[mod] then return true end
	if load_failed[mod] == false then return false end
	if load_failed[mod] then M.error(load_failed[mod]) end
	local ok, err = pcall(require, mod)
	if ok then return true end
	err = error_text(err)
	if err:find("module '" .. mod .. "' not found", 1, true) then
		load_failed[mod] = false
		return false
	end
	-- the first line says what failed; the search list after it is noise
	if not debug_on() then err = err:match("^[^\n]*") end
	load_failed[mod] = "cannot load " .. mod .. ": " .. err
	M.error(load_failed[mod])
end

local function shell_quote(s)
	return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Directories that may hold command modules: the directories of
-- package.path (sources, "*.lua") and the brisk program's precompiled chunks
-- (brisk.host.chunks, "*.luac"), which it loads even without the sources.
local function command_dirs()
	local dirs, seen = {}, {}
	for template in package.path:gmatch("[^;]+") do
		local dir = template:match("^(.*)%?%.lua$")
		if dir and dir ~= "" and not seen[dir] then
			seen[dir] = true
			dirs[#dirs + 1] = { dir .. "brisk/cli", "lua" }
		end
	end
	local ok, host = pcall(require, "brisk.host")
	if ok and type(host) == "table" and type(host.chunks) == "string" then
		dirs[#dirs + 1] = { host.chunks .. "/brisk/cli", "luac" }
	end
	return dirs
end

--- Load every command module found under brisk/cli/ on package.path (and
-- among the brisk program's precompiled chunks).
-- Modules that fail to load are reported on stderr and skipped.
function M.load_all()
	for _, d in ipairs(command_dirs()) do
		local p = io.popen("ls -1 -- " .. shell_quote(d[1]) .. " 2>/dev/null")
		if p then
			for f in p:lines() do
				local word = f:match("^([%a_][%w_]*)%." .. d[2] .. "$")
				if word then
					local ok, err = pcall(M.load_group, word)
					if not ok then stderr:write("brisk: ", error_text(err), "\n") end
				end
			end
			p:close()
		end
	end
end

-- Help ----------------------------------------------------------------------

local function as_lines(v)
	if v == nil then return {} end
	if type(v) == "table" then return v end
	local t = {}
	for l in (tostring(v) .. "\n"):gmatch("(.-)\n") do t[#t + 1] = l end
	return t
end

local function usage_lines(spec)
	local lines = {}
	local u = as_lines(spec.usage)
	if #u == 0 then
		u = { (#spec.flag_list > 0 and "[FLAGS]" or "") }
	end
	for _, l in ipairs(u) do
		if not l:match("^brisk ") then
			l = ("brisk " .. spec.name .. " " .. l):gsub("%s+$", "")
		end
		lines[#lines + 1] = l
	end
	return lines
end

local function flag_rows(flags)
	local rows = {}
	for _, f in ipairs(flags) do
		local left = table.concat(f.names or { f[1], f[2] }, ", ")
		if f.arg then left = left .. " " .. f.arg end
		local doc = { f.doc }
		if f.multi then doc[#doc + 1] = "(repeatable)" end
		if f.choices then doc[#doc + 1] = "(one of: " .. table.concat(f.choices, ", ") .. ")" end
		if f.default ~= nil then doc[#doc + 1] = "(default: " .. tostring(f.default) .. ")" end
		rows[#rows + 1] = { "  " .. left, table.concat(doc, " ") }
	end
	return rows
end

local function two_columns(rows)
	local w = 0
	for _, r in ipairs(rows) do w = math.max(w, #r[1]) end
	local out = {}
	for _, r in ipairs(rows) do
		out[#out + 1] = (r[1] .. string.rep(" ", w - #r[1] + 3) .. r[2]):gsub("%s+$", "")
	end
	return out
end

local function global_flag_list()
	local t = {}
	for i, f in ipairs(GLOBAL_FLAGS) do
		t[i] = { names = { f[1], f[2] }, arg = f.arg, doc = f.doc }
	end
	return t
end

--- The help text of a registered command.
-- @tparam string name
-- @treturn string
function M.command_help(name)
	local spec = assert(M.commands[name], "no command " .. name)
	local out = {}
	for i, l in ipairs(usage_lines(spec)) do
		out[#out + 1] = (i == 1 and "usage: " or "       ") .. l
	end
	out[#out + 1] = ""
	if spec.summary then out[#out + 1] = spec.summary end
	local description = spec.description
	if type(description) == "function" then description = description() end
	for _, l in ipairs(as_lines(description)) do out[#out + 1] = l end
	if spec.summary or description then out[#out + 1] = "" end
	local flags = {}
	for _, f in ipairs(spec.flag_list) do flags[#flags + 1] = f end
	if not spec.flag_index["-h"] and not spec.flag_index["--help"] then
		flags[#flags + 1] = { names = { "-h", "--help" }, doc = "show this help" }
	end
	out[#out + 1] = "flags:"
	for _, l in ipairs(two_columns(flag_rows(flags))) do out[#out + 1] = l end
	out[#out + 1] = ""
	out[#out + 1] = "global flags:"
	local globals = {}
	for _, f in ipairs(global_flag_list()) do
		if f.names[1] ~= "-h" and f.names[1] ~= "--version" then globals[#globals + 1] = f end
	end
	for _, l in ipairs(two_columns(flag_rows(globals))) do out[#out + 1] = l end
	local ex = as_lines(spec.example)
	if #ex > 0 then
		out[#out + 1] = ""
		out[#out + 1] = #ex > 1 and "examples:" or "example:"
		for _, l in ipairs(ex) do out[#out + 1] = "  " .. l end
	end
	return table.concat(out, "\n")
end

local function commands_in(group)
	local t = {}
	for _, n in ipairs(names_sorted()) do
		if group == nil or group_of(n) == group and n ~= group then t[#t + 1] = n end
	end
	return t
end

local function command_rows(names)
	local rows = {}
	for _, n in ipairs(names) do rows[#rows + 1] = { "  " .. n, M.commands[n].summary or "" } end
	return two_columns(rows)
end

--- The help text of a group of commands ("network").
function M.group_help(group)
	local out = { "usage: brisk " .. group .. " COMMAND [FLAGS] [ARGS]", "", "commands:" }
	for _, l in ipairs(command_rows(commands_in(group))) do out[#out + 1] = l end
	out[#out + 1] = ""
	out[#out + 1] = "Run 'brisk " .. group .. " COMMAND --help' for a command's flags and an example."
	return table.concat(out, "\n")
end

--- The top-level help text (loads every command module first).
function M.help()
	M.load_all()
	local out = {
		"usage: brisk [GLOBAL FLAGS] COMMAND [FLAGS] [ARGS]",
		"       brisk                     start the Lua REPL",
		"",
		"brisk (bridge scripting kit) sets up Linux bridge networks the way Docker's",
		"bridge driver does, from the command line or from Lua scripts.",
		"",
		"commands:",
	}
	for _, l in ipairs(command_rows(commands_in(nil))) do out[#out + 1] = l end
	local okt, topics = pcall(require, "brisk.helptopics")
	if okt and type(topics) == "table" then
		out[#out + 1] = ""
		out[#out + 1] = "help topics (brisk help TOPIC):"
		local rows = {}
		for _, t in ipairs(topics.list) do rows[#rows + 1] = { "  " .. t.name, t.summary } end
		for _, l in ipairs(two_columns(rows)) do out[#out + 1] = l end
	end
	out[#out + 1] = ""
	out[#out + 1] = "global flags:"
	for _, l in ipairs(two_columns(flag_rows(global_flag_list()))) do out[#out + 1] = l end
	out[#out + 1] = ""
	out[#out + 1] = "exit status: 0 success, 1 failure, 2 usage error. Errors go to stderr."
	out[#out + 1] = "Run 'brisk help COMMAND' or 'brisk COMMAND --help' for a command's flags and an example."
	out[#out + 1] = "Set BRISK_DEBUG=1 for tracebacks on errors."
	return table.concat(out, "\n")
end

local function is_group(word)
	for n in pairs(M.commands) do
		if group_of(n) == word and n ~= word then return true end
	end
	return false
end

-- Parsing -------------------------------------------------------------------

local function parse_bool(name, val, cmd)
	local v = val:lower()
	if v == "true" or v == "1" or v == "yes" or v == "on" then return true end
	if v == "false" or v == "0" or v == "no" or v == "off" then return false end
	M.usage_error("flag " .. name .. " takes no value (or true/false), got '" .. val .. "'", cmd)
end

local function global_flag(name)
	for _, f in ipairs(GLOBAL_FLAGS) do
		if f[1] == name or f[2] == name then return f end
	end
end

-- Apply a global flag at args[i]; returns the next index, or nil when
-- args[i] is not a global flag.
local function take_global(args, i, ctx, cmd)
	local a = args[i]
	local name, val = a:match("^(%-%-[^=]+)=(.*)$")
	name = name or a
	local f = global_flag(name)
	if not f then return nil end
	local key = f.key or flag_key(f[1])
	if f.arg then
		if val == nil then
			i = i + 1
			val = args[i]
			if val == nil then M.usage_error("flag " .. name .. " needs a value (" .. f.arg .. ")", cmd) end
		end
		if val == "" then M.usage_error("flag " .. name .. " needs a non-empty value", cmd) end
		ctx[key] = val
	else
		ctx[key] = val == nil and true or parse_bool(name, val, cmd)
	end
	return i + 1
end

-- Every name of the global flags (into t, when given).
local function global_flag_names(t)
	t = t or {}
	for _, f in ipairs(GLOBAL_FLAGS) do
		for _, n in ipairs(f) do t[#t + 1] = n end
	end
	return t
end

local function all_flag_names(spec)
	local t = {}
	for n in pairs(spec.flag_index) do t[#t + 1] = n end
	global_flag_names(t)
	table.sort(t)
	return t
end

-- Parse a command's flags and positional arguments. Returns opts,
-- positional, or "help" when -h/--help was given.
local function parse_command(spec, args, ctx)
	local cmd = spec.name
	local opts, pos, seen = {}, {}, {}
	for _, f in ipairs(spec.flag_list) do
		if f.multi and f.arg then opts[f.key] = M.array() elseif f.default ~= nil then opts[f.key] = f.default end
	end
	local i = 1
	while i <= #args do
		local a = args[i]
		if a == "--" then
			table.move(args, i + 1, #args, #pos + 1, pos)
			break
		elseif a:sub(1, 1) == "-" and a ~= "-" then
			local name, val = a, nil
			local f = spec.flag_index[a]
			if not f then
				local n, v = a:match("^(%-%-?[^=]+)=(.*)$")
				if n and spec.flag_index[n] then
					f, name, val = spec.flag_index[n], n, v
				elseif a:match("^%-[^-]") and spec.flag_index[a:sub(1, 2)]
					and spec.flag_index[a:sub(1, 2)].arg then
					f, name, val = spec.flag_index[a:sub(1, 2)], a:sub(1, 2), a:sub(3)
				end
			end
			if not f then
				local n = (a:match("^(%-%-?[^=]+)=") or a)
				if n == "-h" or n == "--help" then return "help" end
				local nxt = take_global(args, i, ctx, cmd)
				if not nxt then
					M.usage_error("unknown flag " .. n .. " for '" .. cmd .. "'"
						.. did_you_mean(n, all_flag_names(spec)), cmd)
				end
				i = nxt
				goto continue
			end
			if f.arg then
				if val == nil then
					i = i + 1
					val = args[i]
					if val == nil then
						M.usage_error("flag " .. name .. " needs a value (" .. f.arg .. ")", cmd)
					end
				end
				if f.choices then
					local ok = false
					for _, c in ipairs(f.choices) do ok = ok or c == val end
					if not ok then
						M.usage_error("flag " .. name .. ": '" .. val .. "' is not one of "
							.. table.concat(f.choices, ", ") .. did_you_mean(val, f.choices), cmd)
					end
				end
				if f.multi then
					local list = opts[f.key]
					list[#list + 1] = val
				else
					if seen[f] then M.usage_error("flag " .. name .. " given more than once", cmd) end
					opts[f.key] = val
				end
			else
				local b = val == nil and true or parse_bool(name, val, cmd)
				if f.multi then
					opts[f.key] = (opts[f.key] or 0) + (b and 1 or 0)
				else
					opts[f.key] = b
				end
			end
			seen[f] = true
		else
			pos[#pos + 1] = a
			if spec.passthrough then
				table.move(args, i + 1, #args, #pos + 1, pos)
				break
			end
		end
		i = i + 1
		::continue::
	end
	-- --version after the command: the version, whatever else was given
	if ctx.version then
		if opts.json ~= nil and spec.flag_index["--json"] then ctx.json = ctx.json or opts.json end
		return "version"
	end
	if spec.min_args and #pos < spec.min_args then
		M.usage_error("'" .. cmd .. "' needs " .. (spec.min_args == spec.max_args and "" or "at least ")
			.. spec.min_args .. " argument" .. (spec.min_args == 1 and "" or "s"), cmd)
	end
	if spec.max_args and #pos > spec.max_args then
		M.usage_error("'" .. cmd .. "' takes " .. (spec.max_args == 0 and "no arguments"
			or ("at most " .. spec.max_args .. " argument" .. (spec.max_args == 1 and "" or "s")))
			.. ", got '" .. pos[spec.max_args + 1] .. "'", cmd)
	end
	if opts.json ~= nil and spec.flag_index["--json"] then ctx.json = ctx.json or opts.json end
	if spec.flag_index["--json"] then opts.json = ctx.json end
	return opts, pos
end

-- Find the longest registered command that prefixes the leading words of
-- `args`; returns spec, number of words used.
local function resolve(args)
	local best
	for n = 1, #args do
		if args[n]:sub(1, 1) == "-" then break end
		if M.commands[table.concat(args, " ", 1, n)] then best = n end
	end
	if best then return M.commands[table.concat(args, " ", 1, best)], best end
end

local function unknown_command(args)
	local word = args[1]
	if is_group(word) then
		local subs = {}
		for _, n in ipairs(commands_in(word)) do subs[#subs + 1] = n:sub(#word + 2) end
		local sub = args[2]
		if sub ~= nil and sub:sub(1, 1) == "-" and sub ~= "-" then
			-- (the global ones were taken already)
			local n = sub:match("^(%-%-?[^=]+)=") or sub
			M.usage_error("unknown flag " .. n .. " before the command of '" .. word .. "'"
				.. did_you_mean(n, global_flag_names())
				.. " (its commands: " .. table.concat(subs, ", ") .. "; see 'brisk help " .. word .. "')")
		elseif sub == nil then
			M.usage_error("'" .. word .. "' needs a command: " .. table.concat(subs, ", ")
				.. " (see 'brisk help " .. word .. "')")
		end
		local hint = M.suggest(sub, subs)
		M.usage_error("unknown command '" .. word .. " " .. sub .. "'"
			.. (hint and ("; did you mean '" .. word .. " " .. hint .. "'?") or "")
			.. " (see 'brisk help " .. word .. "')")
	end
	M.load_all()
	local words = {}
	for _, n in ipairs(names_sorted()) do
		words[#words + 1] = n
		local g = group_of(n)
		if g ~= n then words[#words + 1] = g end
	end
	M.usage_error("unknown command '" .. word .. "'" .. did_you_mean(word, words)
		.. " (see 'brisk --help')")
end

-- Output --------------------------------------------------------------------

local function emit(spec, result, ctx)
	if ctx.json then
		stdout:write(M.json(result, spec and (spec.list or spec.columns ~= nil)), "\n")
		return
	end
	if result == nil or result == true then return end
	local s
	if spec and spec.format then
		s = spec.format(result, ctx)
	elseif type(result) == "table" and spec and spec.columns and (#result > 0 or next(result) == nil) then
		pretty = pretty or require "brisk.pretty"
		s = pretty.table(result, spec.columns)
	else
		pretty = pretty or require "brisk.pretty"
		s = pretty.format(result)
	end
	if s and s ~= "" then
		stdout:write(s, s:sub(-1) == "\n" and "" or "\n")
	end
end

-- Main ------------------------------------------------------------------------

local function new_ctx(argv)
	local ctx = {
		json = false,
		argv = argv,
		cli = M,
	}
	function ctx.out(s) stdout:write(s) end
	function ctx.err(s) stderr:write(s) end
	return ctx
end

-- Commands (and groups) that run no Lua code of the user's. After one of
-- them the brisk program exits without closing the Lua state
-- (`M.quick_exit`): the finalizers left only release what the exit releases
-- (sockets, locks, descriptors), and freeing every object one by one is a
-- tenth of a millisecond or more of each run. After any other command
-- (run, repl, down, ...) it closes the state, as lua5.4 does, so that the
-- finalizers a user's script set run.
local NO_USER_CODE = { network = true, endpoint = true, version = true, help = true }

--- Set by `main` when the command it ran may end without closing the Lua state.
M.quick_exit = false

local function dispatch(argv, ctx)
	local args = {}
	for i = 1, #argv do args[i] = argv[i] end
	local i = 1
	local help, version = false, false
	while i <= #args do
		local a = args[i]
		if a == "--" then i = i + 1; break end
		if a:sub(1, 1) ~= "-" or a == "-" then break end
		local nxt = take_global(args, i, ctx, nil)
		if not nxt then
			local n = a:match("^(%-%-?[^=]+)=") or a
			M.usage_error("unknown flag " .. n .. did_you_mean(n, global_flag_names())
				.. " (global flags go before or after the command, command flags after it)")
		end
		i = nxt
	end
	help, version = ctx.help, ctx.version
	ctx.help, ctx.version = nil, nil
	local rest = table.move(args, i, #args, 1, {})

	if version then rest = { "version" } end
	if #rest == 0 then
		if help then
			stdout:write(M.help(), "\n")
			return 0
		end
		rest = { "repl" }
	end
	-- a daemon (brisk.cli.daemon) leaves to the caller a word it does not
	-- serve, before looking for its module (which the caller's directory
	-- or LUA_PATH may hold), and a command it cannot resolve
	local served = ctx.served
	if served and served.wants and not served.wants(rest[1]) then return nil end
	-- a word that is a command itself (version, help, repl, run) names no
	-- group: no module search for it
	if not M.commands[rest[1]] then M.load_group(rest[1]) end
	-- global flags may also come between a group and its command
	-- (`brisk network --json ls`), as before the group or after the command
	if is_group(rest[1]) then
		while rest[2] ~= nil and rest[2]:sub(1, 1) == "-" and rest[2] ~= "-" do
			local name = rest[2]:match("^(%-%-?[^=]+)") or rest[2]
			if name == "-h" or name == "--help" or name == "--version" then break end
			local nxt = take_global(rest, 2, ctx, nil)
			if not nxt then break end
			for _ = 2, nxt - 1 do table.remove(rest, 2) end
		end
	end
	ctx.state_dir = ctx.state_dir or os.getenv("BRISK_STATE_DIR") or M.default_state_dir
	if ctx.state_dir == "" then ctx.state_dir = M.default_state_dir end
	M.state_dir = ctx.state_dir   -- for scripts run by `brisk run`, and `brisk down`
	local spec, used = resolve(rest)
	if not spec then
		if (help or rest[2] == "-h" or rest[2] == "--help") and is_group(rest[1]) then
			stdout:write(M.group_help(rest[1]), "\n")
			return 0
		end
		if served then return nil end
		unknown_command(rest)
	end
	-- a daemon's filter (brisk.cli.daemon) leaves some commands to the caller
	if served then
		if served.filter and not served.filter(spec) then return nil end
		served.command = spec.name
	end
	if help then
		stdout:write(M.command_help(spec.name), "\n")
		return 0
	end
	ctx.command = spec
	-- (the outermost command only: a script may run commands through main)
	if ctx.depth == 1 then M.quick_exit = NO_USER_CODE[spec.name:match("^%S+")] == true end
	local opts, pos = parse_command(spec, table.move(rest, used + 1, #rest, 1, {}), ctx)
	if opts == "help" then
		stdout:write(M.command_help(spec.name), "\n")
		return 0
	end
	if opts == "version" then        -- after the command, as before it
		ctx.version = nil
		spec = M.commands.version
		ctx.command = spec
		opts, pos = parse_command(spec, {}, ctx)
	end
	local result, extra = spec.run(opts, pos, ctx)
	if result == nil and type(extra) == "string" then
		M.error(extra)
	end
	if not spec.raw then emit(spec, result, ctx) end
	if math.type(extra) == "integer" then return extra end
	return 0
end

local function traceback_handler(e)
	if debug_on() then
		return { err = e, traceback = debug.traceback("", 2) }
	end
	return { err = e }
end

--- Run the brisk command line.
-- @tparam table argv the arguments (argv[0] may hold the program name)
-- @tparam[opt] table served for a daemon (brisk.cli.daemon): `filter`, a
--   function(spec) that says whether this process runs the command (when
--   it says no, main returns nil having done nothing); main sets
--   `served.command` to the command's name
-- @treturn integer|nil exit code: 0 success, 1 failure, 2 usage error
local depth = 0

function M.main(argv, served)
	argv = argv or {}
	local ctx = new_ctx(argv)
	ctx.served = served
	depth = depth + 1
	ctx.depth = depth
	local ok, res = xpcall(dispatch, traceback_handler, argv, ctx)
	depth = depth - 1
	stdout:flush()
	if ok then return res end
	local e = res.err
	local text = error_text(e)
	stderr:write("brisk: ", text, "\n")
	-- a damaged record stops every command that reads its kind: say how it goes
	local kind, id = text:match("store: cannot parse .-/(%a+)/(%x+)%.json")
	if (kind == "network" or kind == "endpoint") and #id == 64 then
		stderr:write(string.format("brisk: a damaged %s record: 'brisk %s rm %s' removes it "
			.. "(what it made in the kernel stays)\n", kind, kind, id))
	end
	if M.is_error(e) and e.exit == 2 and e.command and M.commands[e.command] then
		local lines = usage_lines(M.commands[e.command])
		stderr:write("usage: ", lines[1], "\n")
	end
	if res.traceback and not (M.is_error(e) and e.traced) then stderr:write(res.traceback:gsub("^\n", ""), "\n") end
	if M.is_error(e) then return e.exit end
	return 1
end

-- Progress ------------------------------------------------------------------

local Progress = {}
Progress.__index = Progress

-- Whether stderr is a terminal: through brisk.host in the brisk program,
-- else by asking the shell (whose stderr is ours).
local function stderr_tty()
	local ok, host = pcall(require, "brisk.host")
	if ok and type(host) == "table" and host.isatty then return host.isatty(2) end
	local r = os.execute("test -t 2")
	return r == true
end

--- A progress display for a long operation (restore, scale): a bar and a
-- counter redrawn on one line of stderr, only when stderr is a terminal;
-- silent otherwise (piped, redirected, in scripts). It never writes stdout.
--
--     local p <close> = cli.progress(#nets, "restore")
--     for _, n in ipairs(nets) do ...; p:step(n.name) end
--     p:done()          -- (or leave it to <close>, also on errors)
--
-- @tparam[opt] integer total the number of steps (nil: a plain counter)
-- @tparam[opt=""] string label what is in progress
-- @tparam[opt] table opts `tty` (boolean: override the terminal check),
--   `write` (function taking a string; default stderr), `width` (bar
--   width, default 30)
-- @treturn table progress with `step([what])` (one more done; `what` names
--   it), `done()` (clear the line; harmless twice) and `count`, `active`
--   (whether it draws)
function M.progress(total, label, opts)
	opts = opts or {}
	if total ~= nil and (math.type(total) ~= "integer" or total < 0) then
		error("bad argument #1 to 'progress' (non-negative integer or nil expected)", 2)
	end
	local active = opts.tty
	if active == nil then active = stderr_tty() end
	return setmetatable({
		total = total, label = label or "", count = 0, active = active and true or false,
		write = opts.write or function(x) stderr:write(x); stderr:flush() end,
		width = opts.width or 30, drawn = 0,
	}, Progress)
end

function Progress:draw(what)
	local s
	if self.total and self.total > 0 then
		local fill = math.floor(self.width * math.min(self.count, self.total) / self.total)
		s = string.format("%s [%s%s] %d/%d", self.label, string.rep("#", fill),
			string.rep("-", self.width - fill), self.count, self.total)
	else
		s = string.format("%s %d", self.label, self.count)
	end
	if what and what ~= "" then s = s .. " " .. tostring(what) end
	s = s:gsub("^ ", ""):gsub("%c", " ")
	-- one terminal line: a wrapped line could not be redrawn
	if #s > 79 then s = s:sub(1, 78) .. "~" end
	-- pad over the longer line drawn before, then return to the line's start
	local pad = self.drawn > #s and string.rep(" ", self.drawn - #s) or ""
	self.write("\r" .. s .. pad)
	self.drawn = #s
end

--- One more step done.
-- @tparam[opt] string what the step's name, shown after the counter
function Progress:step(what)
	self.count = self.count + 1
	if self.active then self:draw(what) end
	return self
end

--- Clear the progress line (the terminal is as before it started).
function Progress:done()
	if self.active and self.drawn > 0 then
		self.write("\r" .. string.rep(" ", self.drawn) .. "\r")
	end
	self.drawn = 0
	self.active = false
	return self
end
Progress.__close = Progress.done

-- Built-in commands ---------------------------------------------------------

M.register {
	name = "version",
	summary = "print brisk's version",
	usage = "",
	example = "brisk version --json",
	max_args = 0,
	run = function()
		return { version = M.version, lua = _VERSION }
	end,
	format = function(r) return "brisk " .. r.version .. " (" .. r.lua .. ")" end,
}

local function help_topics()
	local ok, topics = pcall(require, "brisk.helptopics")
	if ok and type(topics) == "table" then return topics end
	return nil
end

M.register {
	name = "help",
	summary = "show help for brisk, a command or a topic",
	usage = "[COMMAND...|TOPIC]",
	description = "Topics: options, steps, hooks, store, firewall, examples ('brisk help' lists them).\n"
		.. "--json gives a topic as { topic =, summary =, text = }.",
	example = { "brisk help", "brisk help network create", "brisk help options" },
	run = function(_, pos, ctx)
		if #pos == 0 then return M.help() end
		local topics = help_topics()
		local t = #pos == 1 and topics and topics.get(pos[1])
		if t and not M.commands[pos[1]] then
			if ctx.json then return { topic = t.name, summary = t.summary, text = t.text() } end
			return t.name .. ": " .. t.summary .. "\n\n" .. t.text()
		end
		M.load_group(pos[1])
		local topic = table.concat(pos, " ")
		if M.commands[topic] then return M.command_help(topic) end
		if #pos == 1 and is_group(pos[1]) then return M.group_help(pos[1]) end
		M.load_all()
		-- commands, their groups ('network'), topics
		local words, seen = names_sorted(), {}
		for _, n in ipairs(words) do seen[n] = true end
		for i = 1, #words do
			local g = group_of(words[i])
			if not seen[g] then seen[g] = true; words[#words + 1] = g end
		end
		for _, n in ipairs(topics and topics.names() or {}) do words[#words + 1] = n end
		M.usage_error("no help for '" .. topic .. "'" .. did_you_mean(topic, words))
	end,
	format = function(s) return s end,
}

M.register {
	name = "repl",
	raw = true,
	summary = "start the interactive Lua REPL (also: brisk with no command)",
	usage = "",
	description = "Lua 5.4 with brisk preloaded as `brisk` and the bridge driver over the state\n"
		.. "directory as `driver` (opened on first use). Expressions print their values;\n"
		.. "networks, endpoints, links and addresses print as rows. :plan {definition}\n"
		.. "shows what creating a network would do, :apply does it; :help lists the REPL's\n"
		.. "commands. Tab completes Lua names and, inside strings, interface, namespace,\n"
		.. "network and endpoint names. History is kept in $BRISK_HISTORY or ~/.brisk_history.",
	example = { "brisk repl", "brisk --state-dir /tmp/brisk" },
	max_args = 0,
	run = function(_, _, ctx)
		return nil, require("brisk.repl").run { state_dir = ctx.state_dir }
	end,
}

-- Where the error was raised in `script`: "script:line", or nil.
local function script_where(chunkname, level)
	for l = level, 200 do
		local info = debug.getinfo(l, "Sl")
		if not info then break end
		if info.source == chunkname and info.currentline and info.currentline > 0 then
			return info.short_src .. ":" .. info.currentline, info.short_src
		end
	end
end

--- Ctrl-C in the user's code (the brisk program's brisk.host.interrupts):
-- `arm()` makes SIGINT raise "interrupted" in the code the caller runs
-- next, once no brisk call is under way (brisk's code, and the user's
-- functions it calls, finish first); `disarm()` ends that (an outer run
-- takes over again) and says whether one was still waiting. Without the
-- brisk program, both do nothing.
function M.interrupts()
	local host = package.preload["brisk.host"] and require("brisk.host")
	if not (host and host.interrupts) then
		return function() end, function() return false end
	end
	-- brisk's modules by their source names: this module's, where the
	-- chunks say they came from (a chunk is read, not run, to learn it:
	-- this module may be loaded from a newer source elsewhere), where the
	-- sources are now (a source newer than its chunk is loaded from
	-- there), and stripped chunks
	local lib = { "=?" }
	local function add(source)
		local dir = type(source) == "string" and source:match("^(@.*/)[^/]*%.lua$")
		if dir then lib[#lib + 1] = dir end
	end
	add(debug.getinfo(1, "S").source)
	local chunk = host.chunks and loadfile(host.chunks .. "/brisk/cli.luac", "b")
	if chunk then add(debug.getinfo(chunk, "S").source) end
	add("@" .. (package.searchpath("brisk.cli", package.path) or ""))
	return function() host.interrupts(true, lib) end, function() return host.interrupts(false) end
end

M.register {
	name = "run",
	raw = true,
	summary = "run a Lua script with brisk on the path",
	usage = "SCRIPT [ARGS...]",
	description = "The script gets its arguments in `arg` (arg[0] is the script) and as `...`.\n"
		.. "Use `local brisk = require \"brisk\"`. SCRIPT `-` reads the script from stdin.\n"
		.. "Ctrl-C raises \"interrupted\" in the script (a topology is then torn down).",
	example = "brisk run setup.lua mynet 10.1.0.0/24",
	min_args = 1,
	passthrough = true,
	run = function(_, pos)
		local script = pos[1]
		local chunk, err = loadfile(script ~= "-" and script or nil)
		if not chunk then M.error(err) end
		local chunkname = script ~= "-" and ("@" .. script) or "=stdin"
		local args = { [-1] = "brisk", [0] = script, table.unpack(pos, 2) }
		_G.arg = args
		-- Ctrl-C raises "interrupted" in the script (its topology is torn
		-- down as on any error), as under lua5.4
		local arm, disarm = M.interrupts()
		arm()
		local ok, e = xpcall(chunk, function(e)
			if M.is_error(e) and e.exit == 2 then return e end
			local msg = error_text(e)
			local where, short = script_where(chunkname, 2)
			if where and msg:sub(1, #short + 1) ~= short .. ":" then msg = where .. ": " .. msg end
			if debug_on() then
				local tb = debug.traceback("", 2)
				-- trim the frames below the script (this module, the host)
				tb = tb:gsub("\n%s*%[C%]: in function 'xpcall'.*$", "")
				msg = msg .. tb
			end
			return setmetatable({ message = msg, exit = M.is_error(e) and e.exit or 1,
				traced = debug_on() }, Error)
		end, table.unpack(args, 1, #pos - 1))
		local pending = disarm()
		if not ok then error(e, 0) end
		-- the script ended in brisk's code, with a Ctrl-C still waiting
		if pending then M.error("interrupted") end
		return nil
	end,
}

return M
