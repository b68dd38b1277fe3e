-- bench/profile_api.lua endpoints|networks|cli|cli-network N STATE_DIR:
-- where brisk's Lua API spends its time. Wraps, with a monotonic clock (build/bench/
-- benchclock.so, made by bench/run.sh), the netlink handle's methods, the
-- brisk.core functions, the store's methods, the JSON codec, the IPAM
-- functions, the endpoint steps and the ipnet helpers; then builds the
-- workload (one network, N endpoints) or creates N networks, and prints the
-- self time of each wrapped function (time inside it minus time in wrapped
-- functions it called) per item, wall clock and CPU (os.clock: user and
-- system time, so kernel work done in the calling thread counts, waiting
-- does not), for the first and the last 100 items. "(unwrapped Lua)" is the
-- rest of the item's time: Lua code of the flow itself (resolve_endpoint,
-- the journal, schema parsing, ...).
--
-- `cli` profiles what one `brisk endpoint create` process does: the state
-- (one network, N endpoints) is built first by a separate process
-- (bench/brisk_api.lua), then this fresh process opens a driver and creates
-- one more endpoint, 20 times over (each time with brisk's Lua modules
-- loaded afresh: no cached documents, index, lookups or address book, as in
-- a new process; "require X" is a module's load and top level), and
-- reports per create. `cli-network` does the same for one `brisk network
-- create`, with N networks there (made by bench/netcreate.lua).
--
--   scripts/isolate.sh lua5.4 bench/profile_api.lua endpoints 1000 "$(mktemp -d)"
--
-- Each wrapper costs about 0.3 us; run only inside a private namespace.
local here = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = here .. "/../lua/?.lua;" .. here .. "/../lua/?/init.lua;" .. package.path
package.cpath = here .. "/../build/lib/?.so;" .. here .. "/../build/bench/?.so;" .. package.cpath

-- brisk's modules from the chunks the build precompiled (build/lua/X.luac,
-- as the brisk program loads them; made anew first where a source is
-- newer), else from source
assert(os.execute("make -s -C " .. here .. "/.. chunks >/dev/null"), "make chunks failed")
table.insert(package.searchers, 2, function(name)
	local path = here .. "/../build/lua/" .. name:gsub("%.", "/") .. ".luac"
	local f = io.open(path, "rb")
	if not f then return "\n\tno chunk '" .. path .. "'" end
	local text = f:read("a")
	f:close()
	return assert(load(text, "@" .. path, "b")), path
end)

if os.getenv("BRISK_ISOLATED") ~= "1" then
	io.stderr:write("profile_api.lua: run me through scripts/isolate.sh\n")
	os.exit(2)
end
local mode, n, state = arg[1], math.tointeger(tonumber(arg[2] or "")), arg[3]
local cli = mode == "cli" or mode == "cli-network"
if not (cli or mode == "endpoints" or mode == "networks") or not n or not state then
	io.stderr:write("usage: profile_api.lua endpoints|networks|cli|cli-network N STATE_DIR\n")
	os.exit(2)
end

if mode == "cli" then
	assert(os.execute(string.format("lua5.4 %q %d %q", here .. "/brisk_api.lua", n, state)))
elseif mode == "cli-network" then
	assert(os.execute(string.format("printf 'fill %d\\nquit\\n' | lua5.4 %q %q >/dev/null", n,
		here .. "/netcreate.lua", state)))
end

local now = require("benchclock").now
local core = require "brisk.core"

local stats, stack = {}, {}
local pack, unpack = table.pack, table.unpack

local clock = os.clock

-- stack entries: {wall time of wrapped children, cpu time of them}
local function wrap(name, f)
	return function(...)
		local fr = { 0, 0 }
		stack[#stack + 1] = fr
		local t0, c0 = now(), clock()
		local r = pack(f(...))
		local dt, dc = now() - t0, clock() - c0
		stack[#stack] = nil
		local s = stats[name]
		if not s then s = { calls = 0, self = 0, cpu = 0 }; stats[name] = s end
		s.calls = s.calls + 1
		s.self = s.self + dt - fr[1]
		s.cpu = s.cpu + dc - fr[2]
		local up = stack[#stack]
		if up then up[1] = up[1] + dt; up[2] = up[2] + dc end
		return unpack(r, 1, r.n)
	end
end

local function wrap_table(t, prefix, skip)
	for k, v in pairs(t) do
		if type(v) == "function" and not (skip and skip[k]) then t[k] = wrap(prefix .. k, v) end
	end
end

-- once: the handle's methods (before any handle exists), brisk.core's
-- functions, io.open by file kind and mode (the store's generation file,
-- JSON, /proc), file methods, and require (a module's load and top level)
wrap_table(debug.getregistry()["brisk.nl"].__index, "h:", { close = true })
wrap_table(core, "core.", { open = false })
wrap_table(core.steps, "step ")
do
	local open, by = io.open, {}
	io.open = function(path, mode)
		local kind = path:match("/(%.%w+)$") or path:match("(%.json)$") or path:match("^/proc/") or "other"
		local key = kind .. " " .. (mode or "r")
		by[key] = by[key] or wrap("io.open " .. key, open)
		return by[key](path, mode)
	end
end
wrap_table(debug.getregistry()["FILE*"].__index, "file:")
do
	local req, loaded = require, package.loaded
	require = function(name)
		if loaded[name] ~= nil then return req(name) end
		return wrap("require " .. name, req)(name)
	end
end

-- the Lua modules' functions: again after each reload (cli mode)
local brisk, handle
local function instrument()
	brisk = require "brisk"
	handle = require "brisk.handle"
	require "brisk.driver"
	wrap_table(require "brisk.store", "store.", { open = true, one_add = true, one_del = true, one = true })
	wrap_table(require "brisk.ipnet", "ipnet.")
	handle.copy = wrap("handle.copy", handle.copy)
end

local function instrument_driver(d)
	wrap_table(getmetatable(d.store).__index, "store:")
	wrap_table(require("brisk.driver").ipam, "ipam.")
	for _, list in ipairs{ d.endpoint_steps, d.network_steps } do
		for _, s in ipairs(list) do
			if type(s.run) == "function" then s.run = wrap("step " .. s.name, s.run) end
		end
	end
	local D = getmetatable(d)
	D.network = wrap("d:network", D.network)
end

local d
if not cli then
	instrument()
	d = assert(brisk.driver{ state_dir = state })
	instrument_driver(d)
end

local function item(i)
	if cli then
		-- as a new process: brisk's Lua modules loaded afresh (no cached
		-- documents, index, lookups or address book), a new driver
		for name in pairs(package.loaded) do
			if name:match("^brisk") and name ~= "brisk.core" then package.loaded[name] = nil end
		end
		instrument()
		local dd <close> = assert(brisk.driver{ state_dir = state })
		instrument_driver(dd)
		if mode == "cli" then
			assert(dd:create_endpoint("bench", { name = "x" .. i, netns = "x" .. i }))
		else
			local k = n + i
			assert(dd:create_network{ name = "x" .. i,
				subnet = string.format("10.%d.%d.0/24", 100 + k // 256, k % 256) })
		end
	elseif mode == "endpoints" then
		assert(d:create_endpoint("bench", { name = "ep" .. i, netns = "ep" .. i }))
	else
		assert(d:create_network{ name = "n" .. i,
			subnet = string.format("10.%d.%d.0/24", 100 + i // 256, i % 256) })
	end
end

local function report(title, count)
	local rows = {}
	local whole = stats["(item total)"]
	local wrapped, wcpu = 0, 0
	for name, s in pairs(stats) do
		if name ~= "(item total)" then
			rows[#rows + 1] = { name, s.calls / count, s.self * 1e3 / count, s.cpu * 1e3 / count }
			wrapped, wcpu = wrapped + s.self, wcpu + s.cpu
		end
	end
	rows[#rows + 1] = { "(unwrapped Lua)", 1, whole.self * 1e3 / count, whole.cpu * 1e3 / count }
	table.sort(rows, function(a, b) return a[3] > b[3] end)
	local sum = (whole.self + wrapped) * 1e3 / count
	print(string.format("%s: %.3f ms per item (%.3f ms of it on the CPU)", title, sum,
		(whole.cpu + wcpu) * 1e3 / count))
	print(string.format("  %-34s %9s %9s %9s %6s", "function (self time)", "calls/it", "ms/item", "cpu ms", "share"))
	for i = 1, math.min(#rows, tonumber(os.getenv("PROFILE_ROWS") or "") or 18) do
		local r = rows[i]
		print(string.format("  %-34s %9.2f %9.3f %9.3f %5.1f%%", r[1], r[2], r[3], r[4], r[3] * 100 / sum))
	end
end

local total = wrap("(item total)", item)
if mode == "endpoints" then
	assert(d:create_network{ name = "bench", subnet = "10.88.0.0/16" })
elseif cli then
	stats = {}
	for i = 1, 20 do total(i) end
	report(string.format("one %s create in a fresh driver, %d %ss there", mode == "cli" and "endpoint" or
		"network", n, mode == "cli" and "endpoint" or "network"), 20)
	os.exit(0)
end

local first = math.min(100, n)
stats = {}
for i = 1, first do total(i) end
report(string.format("%s 1..%d", mode, first), first)
if n > 200 then
	for i = first + 1, n - 100 do total(i) end
	stats = {}
	for i = n - 99, n do total(i) end
	report(string.format("%s %d..%d", mode, n - 99, n), 100)
end
if d then d:close() end
