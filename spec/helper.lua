-- spec/helper.lua: what the specs share. Every spec already runs inside the
-- private network namespace spec/run.lua made; helpers here make further
-- namespaces and read state back through iproute2 as an independent witness.
local cjson = require "cjson"

local H = {}

--- Run a shell command; returns ok, combined output.
function H.sh(cmd)
	local p = io.popen(cmd .. " 2>&1")
	local out = p:read("a")
	local ok = p:close()
	return ok, out
end

--- Run a shell command and raise when it fails.
function H.must(cmd)
	local ok, out = H.sh(cmd)
	if not ok then error(cmd .. " failed: " .. out, 2) end
	return out
end

--- A string quoted for the shell.
function H.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- The checkout's root (absolute) and the built program in it.
H.ROOT = H.must("realpath " .. H.q(debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."))
	:gsub("%s+$", "")
H.BIN = H.ROOT .. "/build/bin/brisk"

--- A file's contents; nil, message when it cannot be opened.
function H.slurp(path)
	local f, err = io.open(path, "rb")
	if not f then return nil, err end
	local s = f:read("a")
	f:close()
	return s
end

--- Write `s` to a file (raises when it cannot be opened).
function H.spit(path, s)
	local f = assert(io.open(path, "wb"))
	f:write(s)
	f:close()
end

-- Every H.tmppath of a run is in one directory, removed when the run ends
-- (spec/run.lua calls H.run_cleanup): what a test leaves there (it forgot,
-- or failed before its H.rmtree) does not stay in /tmp, as it did when they
-- were os.tmpname paths directly in /tmp.
local run_dir, run_n = nil, 0

--- A fresh path (/tmp/lua_brisk-spec.XXXXXX/tN) that does not exist yet.
function H.tmppath()
	if not run_dir then
		run_dir = H.must("mktemp -d /tmp/lua_brisk-spec.XXXXXX"):gsub("%s+$", "")
		H.must("chmod 755 " .. H.q(run_dir))   -- as /tmp would be for what is in it
	end
	run_n = run_n + 1
	return string.format("%s/t%d", run_dir, run_n)
end

--- At the end of a run: remove every path H.tmppath gave.
function H.run_cleanup()
	if run_dir then os.execute("rm -rf " .. H.q(run_dir)) end
	run_dir, run_n = nil, 0
end

--- A fresh empty directory (mode 0700) under /tmp; remove it with H.rmtree.
function H.tmpdir()
	local p = H.tmppath()
	H.must("mkdir -m 700 " .. H.q(p))
	return p
end

--- Remove a tree made by H.tmpdir/H.tmppath (refuses any other path).
function H.rmtree(p)
	assert(p:match("^/tmp/lua_"), "refusing to remove " .. p)
	os.execute("rm -rf " .. H.q(p))
end

-- The scratch directories of the running test (H.scratch), removed by
-- H.scratch_cleanup (a tearDown).
local scratch = {}

--- A fresh directory /tmp/brisk-TAG-XXXXXX, removed by the next
--- H.scratch_cleanup.
function H.scratch(tag)
	local d = H.must("mktemp -d /tmp/brisk-" .. (tag or "spec") .. "-XXXXXX"):gsub("%s+$", "")
	scratch[#scratch + 1] = d
	return d
end

--- Remove every directory H.scratch made since the last call.
function H.scratch_cleanup()
	for _, d in ipairs(scratch) do os.execute("rm -rf " .. H.q(d)) end
	scratch = {}
end

--- The permission bits of a path in octal, as `stat -c %a` gives them.
function H.mode_of(p)
	return (H.must("stat -c %a " .. H.q(p)):gsub("%s+$", ""))
end

--- The shell command running Lua `code` in a new lua5.4 with our module paths.
function H.lua_cmd(code)
	local pre = ("package.path = %q; package.cpath = %q; "):format(package.path, package.cpath)
	return "lua5.4 -e " .. H.q(pre .. code)
end

--- Run the built program with state dir `dir` and `args` (a shell-quoted
--- string), stdin from /dev/null; returns exit code, stdout, stderr.
function H.brisk_in(dir, args)
	local out, err = dir .. "/.out", dir .. "/.err"
	local _, _, code = os.execute(string.format("%s --state-dir %s %s </dev/null >%s 2>%s",
		H.q(H.BIN), H.q(dir), args, H.q(out), H.q(err)))
	local o, e = H.slurp(out), H.slurp(err)
	os.remove(out)
	os.remove(err)
	return code, o, e
end

--- Run the program `opts.bin` (default the built brisk) with `args` (a
--- shell-quoted string) in `opts.cwd` (default a scratch directory), with
--- `opts.env` ("K=V ...") and stdin from `opts.stdin` (default /dev/null);
--- returns code, stdout, stderr.
function H.run(args, opts)
	opts = opts or {}
	local d = H.scratch("run")
	local cmd = string.format("cd %s && env %s %s %s <%s >%s/out 2>%s/err",
		H.q(opts.cwd or d), opts.env or "", H.q(opts.bin or H.BIN), args or "",
		opts.stdin and H.q(opts.stdin) or "/dev/null", d, d)
	local _, _, code = os.execute(cmd)
	return code, H.slurp(d .. "/out"), H.slurp(d .. "/err")
end

--- H.brisk_in that must exit 0 (a test failure otherwise); returns stdout, stderr.
function H.brisk_ok(dir, args)
	local code, out, err = H.brisk_in(dir, args)
	require("luaunit").assertEquals(code, 0, "brisk " .. args .. ": " .. tostring(err))
	return out, err
end

--- H.brisk_ok with stdout decoded as JSON.
function H.brisk_json(dir, args)
	return cjson.decode((H.brisk_ok(dir, args)))
end

--- Whether list `list` (nil counts as empty) holds `x`.
function H.has(list, x)
	for _, v in ipairs(list or {}) do if v == x then return true end end
	return false
end

--- `ip -j ARGS` decoded (an empty output gives {}).
function H.ip(args)
	local out = H.must("ip -j " .. args)
	if out:match("^%s*$") then return {} end
	return cjson.decode(out)
end

--- `bridge -j ARGS` decoded.
function H.bridge(args)
	local out = H.must("bridge -j " .. args)
	if out:match("^%s*$") then return {} end
	return cjson.decode(out)
end

--- The one link `ip -j -d link show NAME` reports (nil when absent).
function H.iplink(name, netns)
	local pre = netns and ("-n " .. netns .. " ") or ""
	local ok, out = H.sh("ip -j -d " .. pre .. "link show dev " .. name)
	if not ok then return nil end
	return cjson.decode(out)[1]
end

--- The addresses on `dev` as `ip -j addr` reports them, as sorted
--- "local/prefixlen" strings. Options: `netns` (a named namespace), `family`
--- ("4" or "6"), `global` (leave out link-scope addresses).
function H.addrs(dev, o)
	o = o or {}
	local pre = (o.netns and ("-n " .. o.netns .. " ") or "") .. (o.family and ("-" .. o.family .. " ") or "")
	local t = {}
	for _, l in ipairs(H.ip(pre .. "addr show dev " .. dev)) do
		for _, a in ipairs(l.addr_info or {}) do
			if not (o.global and a.scope == "link") then
				t[#t + 1] = string.format("%s/%d", a["local"], a.prefixlen)
			end
		end
	end
	table.sort(t)
	return t
end

local counter = 0
--- A fresh name with a prefix, short enough for an interface (<= 15 bytes).
function H.name(prefix)
	counter = counter + 1
	return string.format("%s%d", prefix or "t", counter)
end

--- Create a named namespace (private to the test run's /run/netns).
function H.netns_add(name)
	H.must("ip netns add " .. name)
	H.must("ip -n " .. name .. " link set lo up")
	return name
end

function H.netns_del(name)
	H.sh("ip netns del " .. name)
end

-- What changes by itself, left out of snapshots: carrier (a bridge loses
-- it a moment after its last active port), operstate, the qdisc (attached
-- the first time a link comes up, never detached), address lifetimes, the
-- flags of duplicate address detection, and the IPv6 local and anycast
-- routes of the local table: the kernel adds those when an address's DAD
-- ends, at a moment of its choosing (a link-local address appears at once,
-- its fe80::/anycast routes up to a second later). The addresses they come
-- from are compared.
local VOLATILE = { ["NO-CARRIER"] = true, LOWER_UP = true, ["M-DOWN"] = true, DORMANT = true,
	linkdown = true }

local function steady(list)
	for _, l in ipairs(list) do
		l.stats, l.stats64, l.operstate, l.qdisc = nil, nil, nil, nil
		local flags = {}
		for _, f in ipairs(type(l.flags) == "table" and l.flags or {}) do
			if not VOLATILE[f] then flags[#flags + 1] = f end
		end
		l.flags = flags
		for _, a in ipairs(l.addr_info or {}) do
			a.tentative, a.dadfailed, a.optimistic = nil, nil, nil
			a.preferred_life_time, a.valid_life_time = nil, nil
		end
	end
	return list
end

local function follows_dad(r)
	return r.table == "local" and (r.type == "local" or r.type == "anycast")
		and tostring(r.dst):find(":", 1, true) ~= nil
end

local function steady_routes(list)
	local out = {}
	for _, r in ipairs(steady(list)) do
		if not follows_dad(r) then out[#out + 1] = r end
	end
	return out
end

--- A snapshot of a namespace's kernel state (links, addresses, routes of
--- every table), for "nothing changed" checks.
function H.snapshot(netns)
	local pre = netns and ("-n " .. H.q(netns) .. " ") or ""
	return cjson.encode({
		links = steady(H.ip(pre .. "link show")),
		addrs = steady(H.ip(pre .. "addr show")),
		routes = steady_routes(H.ip(pre .. "route show table all")),
	})
end

--- Fail (a LuaUnit failure) unless two state texts are the same, naming
--- the first line that differs and `what` ("state" by default).
function H.assert_same_text(actual, expected, what)
	if actual == expected then return end
	local al, el = {}, {}
	for l in (actual .. "\n"):gmatch("(.-)\n") do al[#al + 1] = l end
	for l in (expected .. "\n"):gmatch("(.-)\n") do el[#el + 1] = l end
	for i = 1, math.max(#al, #el) do
		if al[i] ~= el[i] then
			require("luaunit").fail(string.format("%s: line %d differs\n  now:    %s\n  before: %s",
				what or "state", i, tostring(al[i]):sub(1, 300), tostring(el[i]):sub(1, 300)))
		end
	end
end

--- Flush the ruleset and delete every link but lo in the current namespace,
--- and every named namespace: run between tests.
function H.reset()
	H.sh("nft flush ruleset")
	for _, l in ipairs(H.ip("link show")) do
		if l.ifname ~= "lo" then H.sh("ip link del dev " .. l.ifname) end
	end
	local ok, out = H.sh("ip netns list")
	for name in out:gmatch("(%S+)[^\n]*\n?") do H.netns_del(name) end
end

-- The echo probe for traffic tests (there is no nc or ping here): a
-- python3 program written to a temporary file on first use.
local PY = "/usr/bin/python3"
local PROBE_SRC = [[
import select, socket, sys
if sys.argv[1] == 'serve':           # serve PORT: tcp+udp echo, v4 and v6
    port, socks = int(sys.argv[2]), []
    for typ in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET6, typ)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('::', port))
        if typ == socket.SOCK_STREAM:
            s.listen(16)
        socks.append(s)
    print('ready', flush=True)
    while True:
        for s in select.select(socks, [], [])[0]:
            if s.type == socket.SOCK_STREAM:
                c, a = s.accept()
                c.settimeout(2)
                try:
                    d = c.recv(256)
                    c.sendall(b'echo:' + d)
                except OSError:
                    d = b''
                c.close()
            else:
                d, a = s.recvfrom(256)
                try:
                    s.sendto(b'echo:' + d, a)
                except OSError:
                    pass
            peer = a[0][7:] if a[0].startswith('::ffff:') else a[0]
            print('tcp' if s.type == socket.SOCK_STREAM else 'udp', peer, d.decode(), flush=True)
else:                                 # send PROTO HOST PORT TIMEOUT MSG
    proto, host, port, tmo, msg = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM)
    s.settimeout(tmo)
    try:
        if proto == 'tcp':
            s.connect((host, port))
            s.sendall(msg.encode())
            print(s.recv(256).decode())
        else:
            s.sendto(msg.encode(), (host, port))
            print(s.recvfrom(256)[0].decode())
    except OSError as e:
        print('error', e)
        sys.exit(1)
]]
local probe_path

local function probe()
	if not probe_path then
		probe_path = H.tmppath() .. ".py"
		H.spit(probe_path, PROBE_SRC)
	end
	return probe_path
end

--- Start the TCP+UDP echo server in namespace `ns` on `port` (v4 and v6);
--- returns a handle for H.stop once it is listening.
function H.serve(ns, port)
	local p = io.popen("exec ip netns exec " .. ns .. " sh -c 'echo $$; exec timeout 30 " ..
		PY .. " " .. probe() .. " serve " .. port .. "'")
	local s = { pid = tonumber(p:read("l")), p = p }
	require("luaunit").assertEquals(p:read("l"), "ready")
	return s
end

--- Stop a server; returns the lines it printed ({proto, peer, msg} each).
function H.stop(s)
	if s.done then return s.lines end
	os.execute("kill " .. s.pid .. " 2>/dev/null")
	local lines = {}
	for line in s.p:lines() do
		local proto, peer, msg = line:match("^(%S+) (%S+) ?(.*)$")
		lines[#lines + 1] = { proto, peer, msg }
	end
	s.p:close()
	s.done, s.lines = true, lines
	return lines
end

--- Send `msg` (default "hi") from namespace `ns` to host:port over `proto`,
--- waiting `timeout` seconds (default 1); returns ok, the probe's output.
function H.send(ns, proto, host, port, msg, timeout)
	return H.sh(string.format("ip netns exec %s %s %s send %s %s %d %s %s",
		ns, PY, probe(), proto, host, port, timeout or 1, msg or "hi"))
end

--- Names of the globals defined since `before` (a copy of _G's keys).
function H.globals_snapshot()
	local t = {}
	for k in pairs(_G) do t[k] = true end
	return t
end

function H.new_globals(before)
	local new = {}
	for k in pairs(_G) do
		if not before[k] and not tostring(k):match("^Test") then new[#new + 1] = tostring(k) end
	end
	table.sort(new)
	return new
end

--- Load each module in `mods` afresh (dropping it from package.loaded
--- first) and assert that no global was defined meanwhile.
function H.assert_no_globals(mods)
	local before = H.globals_snapshot()
	for _, m in ipairs(mods) do
		package.loaded[m] = nil
		require(m)
	end
	require("luaunit").assertEquals(H.new_globals(before), {})
end

return H
