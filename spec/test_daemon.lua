-- spec/test_daemon.lua: `brisk daemon` and the brisk program's BRISK_HOST
-- client (csrc/cli/daemon.c, lua/brisk/cli/daemon.lua). Every command is
-- also checked against the kernel (ip -j) and the store, and against the
-- same command run without a daemon.
local lu = require "luaunit"
local H = require "helper"
local cjson = require "cjson"

local BIN, q, slurp, spit = H.BIN, H.q, H.slurp, H.spit

-- Start `brisk daemon` on a socket in a scratch directory; returns a handle
-- with .sock, .log (its stderr), .pid and .p (the pipe that waits for it).
local function start(opts)
	opts = opts or {}
	local d = H.scratch("daemon")
	local dm = { dir = d, sock = opts.sock or (d .. "/brisk.sock"), log = d .. "/daemon.log" }
	dm.p = io.popen(string.format("exec sh -c 'echo $$; exec %s %s daemon --socket %s %s 2>%s'",
		opts.wrap or "", q(BIN):gsub("'", "'\\''"), q(dm.sock):gsub("'", "'\\''"), opts.flags or "",
		q(dm.log):gsub("'", "'\\''")))
	dm.pid = tonumber(dm.p:read("l"))
	local deadline = os.time() + 15
	while not (slurp(dm.log) or ""):find("listening on", 1, true) do
		if os.time() > deadline then error("daemon did not start: " .. tostring(slurp(dm.log))) end
		os.execute("sleep 0.01")
	end
	return dm
end

-- Stop it with `sig` (default TERM); returns its exit code and its log.
local function stop(dm, sig)
	if dm.stopped then return dm.code, slurp(dm.log) end
	os.execute("kill -" .. (sig or "TERM") .. " " .. dm.pid)
	local _, _, code = dm.p:close()
	dm.stopped, dm.code = true, code
	return code, slurp(dm.log)
end

local daemons = {}
local function daemon(opts)
	local dm = start(opts)
	daemons[#daemons + 1] = dm
	return dm
end

-- The log lines of requests (not the listening/stopped lines).
local function requests(dm)
	local t = {}
	for l in (slurp(dm.log) or ""):gmatch("[^\n]+") do
		if l:match("^brisk daemon: pid %d+: ") then t[#t + 1] = l end
	end
	return t
end

-- brisk ARGS (shell words) with BRISK_HOST set to the daemon's socket (or
-- without, when dm is nil); returns code, stdout, stderr.
local function brisk(dm, args, opts)
	opts = opts or {}
	local env = (opts.env or "") .. (dm and (" BRISK_HOST=" .. q(dm.sock)) or "")
	return H.run(args, { env = env, cwd = opts.cwd, bin = opts.bin })
end

local function json(out) return cjson.decode(out) end

-- Whether a shell command succeeds.
local function sh_ok(cmd) return H.sh(cmd) == true end

-- Text with the 12-digit ids (new ones differ from run to run) masked.
local function masked(s) return (s:gsub("%x%x%x%x%x%x%x%x%x%x%x%x+", "<id>")) end

---------------------------------------------------------------------------
TestDaemon = {}

-- State directories of the running test, whose networks tearDown removes.
local stores = {}
local function store()
	local st = H.scratch("st")
	stores[#stores + 1] = st
	return st
end

function TestDaemon:setUp()
	self.ns = {}
end

function TestDaemon:tearDown()
	for _, dm in ipairs(daemons) do stop(dm) end
	daemons = {}
	for _, n in ipairs(self.ns) do H.netns_del(n) end
	-- what the tests made here, removed as brisk removes it (bridge,
	-- firewall elements); those in the namespaces above went with them
	for _, st in ipairs(stores) do
		local _, out = brisk(nil, "--state-dir " .. q(st) .. " network ls --json")
		local ok, nets = pcall(json, out or "")
		for _, n in ipairs(ok and nets or {}) do
			H.sh(q(BIN) .. " --state-dir " .. q(st) .. " network rm --force " .. n.id)
		end
	end
	stores = {}
	H.scratch_cleanup()
end

function TestDaemon:test_serves_network_and_endpoint_commands_in_the_callers_namespace()
	local dm = daemon()
	local st = store()
	local ns = H.name("dns")
	self.ns[#self.ns + 1] = ns
	local code, out, err = brisk(dm, "--state-dir " .. q(st) .. " network create --subnet 10.61.0.0/24 dnet")
	lu.assertEquals(err, "")
	lu.assertEquals(code, 0)
	local nid = out:match("^(%x+)\n$")
	lu.assertNotNil(nid, out)
	code, out, err = brisk(dm, "--state-dir " .. q(st) .. " endpoint create --name e1 --netns " .. ns .. " dnet")
	lu.assertEquals(err, "")
	lu.assertEquals(code, 0)
	local eid = out:match("^(%x+)\n$")
	lu.assertNotNil(eid, out)
	-- the daemon ran both (its log), nothing was left to the caller
	local reqs = requests(dm)
	lu.assertEquals(#reqs, 2, table.concat(reqs, "\n"))
	lu.assertStrContains(reqs[1], ": network create: exit 0,")
	lu.assertStrContains(reqs[2], ": endpoint create: exit 0,")
	-- the kernel: the bridge with its gateway, the namespace's eth0
	local br = "br-" .. nid:sub(1, 12)
	lu.assertEquals(H.addrs(br, { family = "4" }), { "10.61.0.1/24" })
	lu.assertEquals(H.addrs("eth0", { netns = ns, family = "4" }), { "10.61.0.2/24" })
	-- the store, read by a brisk without daemon
	local eps = json(select(2, brisk(nil, "--state-dir " .. q(st) .. " endpoint ls --json")))
	lu.assertEquals(#eps, 1)
	lu.assertEquals(eps[1].id, eid)
	lu.assertEquals(eps[1].ipv4, "10.61.0.2/24")
	-- rm through the daemon removes both
	lu.assertEquals((brisk(dm, "--state-dir " .. q(st) .. " endpoint rm e1")), 0)
	lu.assertEquals((brisk(dm, "--state-dir " .. q(st) .. " network rm dnet")), 0)
	lu.assertFalse(sh_ok("ip link show " .. br))
	lu.assertEquals(json(select(2, brisk(nil, "--state-dir " .. q(st) .. " network ls --json"))), {})
end

-- The inode numbers of the network namespaces a process holds open (the
-- kernel's /proc/PID/fd links "net:[INO]"), but `except`'s.
local function held_netns(pid, except)
	local t = {}
	for l in io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null"):lines() do
		local ino = l:match("net:%[(%d+)%]")
		if ino and ino ~= except then t[#t + 1] = ino end
	end
	return t
end

-- The daemon makes its spare after it answered: wait for it to hold one.
local function spare_of(dm, own)
	local deadline = os.time() + 10
	local t = held_netns(dm.pid, own)
	while #t == 0 and os.time() <= deadline do
		os.execute("sleep 0.01")
		t = held_netns(dm.pid, own)
	end
	return t
end

local function netns_ino(path)
	return (H.must("stat -L -c %i " .. q(path)):gsub("%s+$", ""))
end

function TestDaemon:test_new_namespaces_bind_the_spare_made_between_requests()
	local dm = daemon{ flags = "--spare-ttl 60" }
	local st = store()
	local own = netns_ino("/proc/self/ns/net")      -- the daemon's, and ours
	lu.assertEquals((brisk(dm, "--state-dir " .. q(st) .. " network create --subnet 10.67.0.0/24 spn")), 0)
	local seen = {}
	for i = 1, 3 do
		-- the daemon holds one spare besides its own namespace
		local spare = spare_of(dm, own)
		lu.assertEquals(#spare, 1, "spare before create " .. i)
		local ns = H.name("dsp")
		self.ns[#self.ns + 1] = ns
		local code, _, err = brisk(dm, "--state-dir " .. q(st) .. " endpoint create --name s" .. i
			.. " --netns " .. ns .. " spn")
		lu.assertEquals(err, "")
		lu.assertEquals(code, 0)
		-- the new namespace is that spare, and each create had its own
		lu.assertEquals(netns_ino("/run/netns/" .. ns), spare[1])
		lu.assertNil(seen[spare[1]])
		seen[spare[1]] = true
		lu.assertEquals(H.addrs("eth0", { netns = ns, family = "4" }), { "10.67.0." .. (i + 1) .. "/24" })
		local routes = H.ip("-n " .. ns .. " route show default")
		lu.assertEquals(routes[1].gateway, "10.67.0.1")
	end
	-- a caller in another namespace gets one made for it, the spare stays
	local other = H.name("dspo")
	H.netns_add(other)
	local ns = H.name("dsp")
	self.ns[#self.ns + 1] = other
	self.ns[#self.ns + 1] = ns
	local spare = spare_of(dm, own)
	local code, _, err = H.run(string.format("--net=/run/netns/%s %s --state-dir %s network create "
		.. "--subnet 10.68.0.0/24 spo", other, q(BIN), q(st)), { bin = "nsenter", env = "BRISK_HOST=" .. q(dm.sock) })
	lu.assertEquals({ code, err }, { 0, "" })
	code, _, err = H.run(string.format("--net=/run/netns/%s %s --state-dir %s endpoint create --netns %s spo",
		other, q(BIN), q(st), ns), { bin = "nsenter", env = "BRISK_HOST=" .. q(dm.sock) })
	lu.assertEquals({ code, err }, { 0, "" })
	lu.assertNotEquals(netns_ino("/run/netns/" .. ns), spare[1])
	lu.assertEquals(spare_of(dm, own), spare)
	lu.assertEquals(H.addrs("eth0", { netns = ns, family = "4" }), { "10.68.0.2/24" })
	-- every request served, none left to the caller
	lu.assertEquals(#requests(dm), 6)
	-- a spare unused for --spare-ttl is dropped then, with no request to
	-- wake the daemon, and not made again until a create makes a namespace
	-- (on time: a request meanwhile, which keeps the fresh spare, does not
	-- put it off)
	local function uptime() return tonumber(H.slurp("/proc/uptime"):match("^[%d.]+")) end
	local dms = daemon{ flags = "--spare-ttl 2" }
	local t0 = uptime()
	lu.assertEquals((brisk(dms, "version")), 0)
	lu.assertEquals(#spare_of(dms, own), 1)
	while uptime() < t0 + 1 do os.execute("sleep 0.05") end
	lu.assertEquals((brisk(dms, "version")), 0)
	lu.assertEquals(#held_netns(dms.pid, own), 1)
	while #held_netns(dms.pid, own) > 0 and uptime() < t0 + 8 do os.execute("sleep 0.05") end
	local gone = uptime() - t0
	lu.assertEquals(held_netns(dms.pid, own), {})
	lu.assertTrue(gone >= 1.9 and gone < 2.8, "dropped after " .. gone .. " s")
	lu.assertEquals((brisk(dms, "version")), 0)
	os.execute("sleep 0.1")
	lu.assertEquals(held_netns(dms.pid, own), {})
	local ns2 = H.name("dsp")
	self.ns[#self.ns + 1] = ns2
	local c3, _, e3 = brisk(dms, "--state-dir " .. q(st) .. " endpoint create --netns " .. ns2 .. " spn")
	lu.assertEquals({ c3, e3 }, { 0, "" })
	lu.assertEquals(#spare_of(dms, own), 1)       -- a namespace was made: a spare again
	-- --spare-ttl 0: no spare at all (the second answer comes after the
	-- daemon's work between the two)
	local dm0 = daemon{ flags = "--spare-ttl 0" }
	lu.assertEquals((brisk(dm0, "version")), 0)
	lu.assertEquals((brisk(dm0, "version")), 0)
	lu.assertEquals(held_netns(dm0.pid, own), {})
	-- its first idle time loaded what a served command uses, libnftables
	-- too, although it served no network command (the firewall's first
	-- network create does not wait for it)
	lu.assertStrContains(H.slurp("/proc/" .. dm0.pid .. "/maps"), "libnftables.so")
	-- a daemon that may not make namespaces says so once, and serves on
	-- (here it may not enter its callers' either: they run their commands)
	local dmx = daemon{ wrap = "setpriv --bounding-set=-sys_admin --inh-caps=-sys_admin" }
	for _ = 1, 3 do
		local c, out = brisk(dmx, "version")
		lu.assertEquals(c, 0)
		lu.assertStrMatches(out, "^brisk .*\n$")
	end
	local _, log = stop(dmx)
	local said = 0
	for _ in log:gmatch("idle: prepare netns spare: Operation not permitted; no spare namespaces from now on") do
		said = said + 1
	end
	lu.assertEquals(said, 1, log)
	-- and a bad value is a usage error, which makes nothing (not the
	-- socket's directory)
	local c2, _, e2 = brisk(nil, "daemon --spare-ttl -1 --socket " .. q(dm.dir .. "/new/x.sock"))
	lu.assertEquals(c2, 2)
	lu.assertStrContains(e2, "--spare-ttl takes a number of seconds >= 0, got '-1'")
	lu.assertNotEquals(H.sh("test -e " .. q(dm.dir .. "/new")), true)
end

-- A raw caller (python3): `raw.py SOCKET BRISK MODE ...` (BRISK the
-- program whose identity the request carries). MODE "idle [S [MARK]]"
-- connects and sends nothing (for S seconds, default 2.6; MARK as below);
-- "send N [MARK]" sends a well-formed `brisk version` request padded to N
-- bytes (then creates the file MARK, when given);
-- "chroot DIR" sends `brisk version` from inside chroot DIR; "gone
-- WORD..." sends the command WORD... and exits at once. Prints the
-- daemon's reply code, or "closed".
local RAW = [[
import array, os, socket, struct, sys, time
path, exe, mode = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(path)
def request(words, size=0):
    e = os.stat(exe)
    msg = struct.pack("=IIQQQQII", 0x4b535242, 2, e.st_dev, e.st_ino, e.st_mtime_ns // 10**9,
                      e.st_mtime_ns % 10**9, len(words), 0)
    msg += b"".join(w.encode() + b"\0" for w in words)
    msg += b"\0" * max(0, size - len(msg))
    return msg, [0, 1, 2, os.open("/proc/self/ns/net", os.O_RDONLY), os.open(".", os.O_RDONLY)]
def send(msg, fds):
    s.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
if mode == "idle":
    if len(sys.argv) > 5:
        open(sys.argv[5], "w").close()
    time.sleep(float(sys.argv[4]) if len(sys.argv) > 4 else 2.6)
elif mode == "send":
    send(*request(["brisk", "version"], int(sys.argv[4])))
    if len(sys.argv) > 5:
        open(sys.argv[5], "w").close()
elif mode == "chroot":
    msg, fds = request(["brisk", "version"])
    os.chroot(sys.argv[4])
    send(msg, fds)
elif mode == "gone":
    send(*request(sys.argv[4:]))
    sys.exit(0)
try:
    r = s.recv(4)
except ConnectionResetError:
    r = b""
print(struct.unpack("=i", r)[0] if len(r) == 4 else "closed")
]]

-- `filt.py PROGRAM ARGS...`: PROGRAM under a seccomp filter that allows
-- everything (prctl SECCOMP_MODE_FILTER, one BPF instruction).
local FILTER = [[
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class F(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]
class P(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(F))]
prog = P(1, (F * 1)(F(0x06, 0, 0, 0x7fff0000)))
if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:
    sys.exit("prctl: %s" % os.strerror(ctypes.get_errno()))
os.execv(sys.argv[1], sys.argv[1:])
]]

-- RAW in a scratch file; its path.
local function raw_script()
	local raw = H.scratch("raw") .. "/raw.py"
	spit(raw, RAW)
	return raw
end

local function fd_table(pid)
	local t = {}
	for l in io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null"):lines() do
		local fd, target = l:match(" (%d+) %-> (.*)$")
		if fd then t[fd] = target:gsub("%[%d+%]$", "[]") end
	end
	return t
end

-- Callers that misbehave leave the daemon as it was (found by a review):
-- one that sends nothing had the daemon close descriptors it did not own
-- (the last request's numbers, left in the control buffer of the failed
-- recvmsg: the spare namespace among them); a request one byte too long
-- was served, its terminating NUL written past the buffer; and out of
-- descriptors, a pending caller made the daemon spin and ignore SIGTERM.
function TestDaemon:test_misbehaving_callers_leave_the_daemon_intact()
	local dm = daemon{ flags = "--spare-ttl 60" }
	local st = store()
	local raw = raw_script()
	local own = netns_ino("/proc/self/ns/net")
	lu.assertEquals((brisk(dm, "--state-dir " .. q(st) .. " network create --subnet 10.69.0.0/24 mis")), 0)
	local ns = H.name("dmis")
	self.ns[#self.ns + 1] = ns
	lu.assertEquals((brisk(dm, "--state-dir " .. q(st) .. " endpoint create --netns " .. ns .. " mis")), 0)
	local spare = spare_of(dm, own)
	lu.assertEquals(#spare, 1)
	-- sends nothing: timed out (2 s), answered, and nothing of the daemon's
	-- closed. The old code closed the last request's descriptor numbers:
	-- in a fresh daemon, the spare it makes after its first request takes
	-- one of them
	local dm2 = daemon{ flags = "--spare-ttl 60" }
	lu.assertEquals((brisk(dm2, "version")), 0)
	lu.assertEquals(#spare_of(dm2, own), 1)
	local fds = fd_table(dm2.pid)
	lu.assertEquals(H.must("python3 " .. q(raw) .. " " .. q(dm2.sock) .. " " .. q(BIN) .. " idle"), "-1\n")
	lu.assertEquals(fd_table(dm2.pid), fds)
	lu.assertEquals((brisk(dm2, "version")), 0)
	lu.assertEquals(fd_table(dm2.pid), fds)
	ns = H.name("dmis")
	self.ns[#self.ns + 1] = ns
	lu.assertEquals((brisk(dm, "--state-dir " .. q(st) .. " endpoint create --netns " .. ns .. " mis")), 0)
	lu.assertEquals(netns_ino("/run/netns/" .. ns), spare[1])
	-- the longest request is served; one byte more is left to the caller
	lu.assertStrMatches(H.must("python3 " .. q(raw) .. " " .. q(dm.sock) .. " " .. q(BIN) .. " send 65536"), "brisk [^\n]+\n0\n")
	lu.assertEquals(H.must("python3 " .. q(raw) .. " " .. q(dm.sock) .. " " .. q(BIN) .. " send 65537"), "-1\n")
	-- out of descriptors: the caller runs its command itself, at once
	spare_of(dm, own)
	local open, n = fd_table(dm.pid), 0
	while open[tostring(n)] do n = n + 1 end     -- its lowest free descriptor
	H.must(string.format("prlimit --pid %d --nofile=%d:%d", dm.pid, n, n))
	-- (every time: the request is read before the answer, or the caller
	-- could see its connection reset instead)
	for _ = 1, 20 do
		local code, out, err = brisk(dm, "version")
		lu.assertEquals({ code, err }, { 0, "" })
		lu.assertStrContains(out, "brisk ")
	end
	lu.assertStrContains(slurp(dm.log), "out of file descriptors: a caller was left to run its command")
	-- and it still stops on SIGTERM, having used little CPU
	local ticks = H.must("awk '{ print $14 + $15 }' /proc/" .. dm.pid .. "/stat"):gsub("%s+$", "")
	lu.assertTrue(tonumber(ticks) < 100, "CPU ticks " .. ticks)
	local scode, log = stop(dm)
	lu.assertEquals(scode, 0)
	lu.assertStrContains(log, "stopped (signal 15)")
end

function TestDaemon:test_same_output_and_exit_codes_as_without_daemon()
	local dm = daemon()
	local st = store()
	lu.assertEquals((brisk(nil, "--state-dir " .. q(st) .. " network create --subnet 10.62.0.0/24 same")), 0)
	local cases = {
		"network ls", "network ls --json", "network inspect same", "endpoint ls",
		"network inspect nosuch",                  -- exit 1
		"network lss",                             -- usage: did you mean
		"endpoint create --bogus same",            -- unknown flag
		"network create --subnet 10.62.0.0/33 bad", -- invalid CIDR
		"network create --subnet 10.62.0.0/25 ovl", -- overlap
		"version", "--version", "help network create",
	}
	for _, c in ipairs(cases) do
		local args = "--state-dir " .. q(st) .. " " .. c
		local c1, o1, e1 = brisk(nil, args)
		local c2, o2, e2 = brisk(dm, args)
		lu.assertEquals(c2, c1, c)
		lu.assertEquals(masked(o2), masked(o1), c)
		lu.assertEquals(masked(e2), masked(e1), c)
	end
	lu.assertEquals(#requests(dm), #cases)
	-- the refused creates changed nothing
	local nets = json(select(2, brisk(nil, "--state-dir " .. q(st) .. " network ls --json")))
	lu.assertEquals(#nets, 1)
	-- output into a pipe whose reader is gone: SIGPIPE in the caller's
	-- shell terms (128 + 13), served or not: stdout's (served, it was 0; a
	-- review), stderr's (served, it was the usage error's 2; a review).
	-- brisk starts once the reader has closed its end
	local function piped(env, args)
		return H.must("bash -c " .. q("(sleep 0.1; " .. env .. " " .. q(BIN) .. " " .. args .. ") | "
			.. "(exec 0<&-; sleep 0.3); echo ${PIPESTATUS[0]}"))
	end
	for _, args in ipairs{ "help", "network ls --bogus 2>&1 >/dev/null" } do
		lu.assertEquals(piped("", args), "141\n", args)
		lu.assertEquals(piped("BRISK_HOST=" .. q(dm.sock), args), "141\n", args)
	end
end

function TestDaemon:test_another_network_namespace_is_entered_and_left()
	local dm = daemon()
	local st = store()
	local ns = H.name("dother")
	H.netns_add(ns)
	self.ns[#self.ns + 1] = ns
	-- nsenter keeps the mount namespace (ip netns exec would not): served
	local code, out, err = H.run(string.format("--net=/run/netns/%s %s --state-dir %s network create "
		.. "--subnet 10.63.0.0/24 there", ns, q(BIN), q(st)),
		{ bin = "nsenter", env = "BRISK_HOST=" .. q(dm.sock) })
	lu.assertEquals(err, "")
	lu.assertEquals(code, 0)
	local br = "br-" .. out:match("^(%x+)"):sub(1, 12)
	lu.assertEquals(#requests(dm), 1)
	-- made in the caller's namespace, not in the daemon's
	lu.assertEquals(H.addrs(br, { netns = ns, family = "4" }), { "10.63.0.1/24" })
	lu.assertFalse(sh_ok("ip link show " .. br))
	-- and the daemon is back in its own: the next command works here
	local code2, out2 = brisk(dm, "--state-dir " .. q(store()) .. " network create --subnet 10.64.0.0/24 here")
	lu.assertEquals(code2, 0)
	local br2 = "br-" .. out2:match("^(%x+)"):sub(1, 12)
	lu.assertEquals(H.addrs(br2, { family = "4" }), { "10.64.0.1/24" })
	lu.assertFalse(sh_ok("ip -n " .. ns .. " link show " .. br2))
end

function TestDaemon:test_environment_and_working_directory_are_the_callers()
	local dm = daemon()
	local cwd = H.scratch("cwd")
	-- BRISK_STATE_DIR from the caller's environment
	local st = store()
	local code = brisk(dm, "network create --subnet 10.65.0.0/24 envnet", { env = "BRISK_STATE_DIR=" .. q(st) })
	lu.assertEquals(code, 0)
	lu.assertEquals(#json(select(2, brisk(nil, "--state-dir " .. q(st) .. " network ls --json"))), 1)
	-- a relative --state-dir is the caller's working directory's
	code = brisk(dm, "--state-dir rel network create --subnet 10.66.0.0/24 relnet", { cwd = cwd })
	lu.assertEquals(code, 0)
	lu.assertEquals(#json(select(2, brisk(nil, "--state-dir " .. q(cwd .. "/rel") .. " network ls --json"))), 1)
	-- the daemon's own directory got no store
	lu.assertNil(slurp(dm.dir .. "/rel/.gen"))
	lu.assertEquals(#requests(dm), 2)
	for _, l in ipairs(requests(dm)) do lu.assertStrContains(l, ": network create: exit 0,") end
	-- the same relative path in two directories: two stores, even without
	-- a generation file (the daemon's cache is keyed by the path it is given)
	local cwd2 = H.scratch("cwd")
	code = brisk(nil, "--state-dir rel network create --subnet 10.69.0.0/24 other", { cwd = cwd2 })
	lu.assertEquals(code, 0)
	stores[#stores + 1] = cwd .. "/rel"
	stores[#stores + 1] = cwd2 .. "/rel"
	for _, c in ipairs{ cwd, cwd2, cwd } do
		os.remove(c .. "/rel/.gen")
		os.remove(c .. "/rel/.index")
		local _, out = brisk(dm, "--state-dir rel network ls --json", { cwd = c })
		local nets = json(out)
		lu.assertEquals(#nets, 1)
		lu.assertEquals(nets[1].name, c == cwd and "relnet" or "other")
	end
	-- BRISK_DEBUG from the caller: the same traceback policy as without daemon
	local c1, _, e1 = brisk(nil, "--state-dir " .. q(st) .. " network rm nosuch", { env = "BRISK_DEBUG=1" })
	local c2, _, e2 = brisk(dm, "--state-dir " .. q(st) .. " network rm nosuch", { env = "BRISK_DEBUG=1" })
	lu.assertEquals(c2, c1)
	lu.assertEquals(e2:match("^[^\n]*"), e1:match("^[^\n]*"))
end

function TestDaemon:test_unserved_commands_and_no_daemon_run_in_the_caller()
	local dm = daemon()
	local d = H.scratch("script")
	spit(d .. "/s.lua", 'print("pid-differs", require("brisk.host") ~= nil)\n')
	local code, out = brisk(dm, "run s.lua", { cwd = d })
	lu.assertEquals(code, 0)
	lu.assertEquals(out, "pid-differs\ttrue\n")
	local reqs = requests(dm)
	lu.assertEquals(#reqs, 1)
	lu.assertStrContains(reqs[1], "left to the caller (not served)")
	-- a socket nobody listens on, and no socket at all: the caller runs it
	local st = store()
	for _, host in ipairs{ d .. "/nothing.sock", "unix://" .. d .. "/nothing.sock" } do
		local c = H.run("--state-dir " .. q(st) .. " network ls --json", { env = "BRISK_HOST=" .. q(host) })
		lu.assertEquals(c, 0)
	end
	-- another mount namespace: /run/netns would differ, so the caller runs it
	local c2, out2, err2 = H.run(string.format("-m %s --state-dir %s network create --subnet 10.67.0.0/24 mnt",
		q(BIN), q(st)), { bin = "unshare", env = "BRISK_HOST=" .. q(dm.sock) })
	lu.assertEquals(err2, "")
	lu.assertEquals(c2, 0)
	lu.assertNotNil(out2:match("^%x+\n$"))
	-- another pid namespace: a --netns PID would name another process
	local c3, out3, err3 = H.run(string.format("-p -f %s --state-dir %s network ls --json", q(BIN), q(st)),
		{ bin = "unshare", env = "BRISK_HOST=" .. q(dm.sock) })
	lu.assertEquals(err3, "")
	lu.assertEquals(c3, 0)
	lu.assertEquals(#json(out3), 1)
	reqs = requests(dm)
	lu.assertEquals(#reqs, 3)
	lu.assertStrContains(reqs[2], "left to the caller (another mount namespace)")
	lu.assertStrContains(reqs[3], "left to the caller (another pid namespace)")
	lu.assertEquals(#json(select(2, brisk(nil, "--state-dir " .. q(st) .. " network ls --json"))), 1)
end

function TestDaemon:test_socket_lifecycle()
	local dm = daemon()
	lu.assertEquals(H.mode_of(dm.sock), "600")
	-- a second daemon on the same socket refuses and leaves it alone
	local code, _, err = H.run("daemon --socket " .. q(dm.sock))
	lu.assertEquals(code, 1)
	lu.assertStrContains(err, "a daemon already listens on " .. dm.sock)
	lu.assertEquals(H.mode_of(dm.sock), "600")
	lu.assertEquals((brisk(dm, "version")), 0)
	-- SIGTERM: stops, exit 0, the socket removed
	local c, log = stop(dm)
	lu.assertEquals(c, 0)
	lu.assertStrContains(log, "stopped (signal 15)")
	lu.assertFalse(sh_ok("test -e " .. q(dm.sock)))
	-- a socket left by a killed daemon is taken over
	local dm2 = daemon()
	stop(dm2, "KILL")
	lu.assertTrue(sh_ok("test -S " .. q(dm2.sock)))
	local dm3 = daemon{ sock = dm2.sock }
	lu.assertEquals((brisk(dm3, "version")), 0)
	lu.assertEquals(#requests(dm3), 1)
	-- a path that is not a socket is refused, untouched
	local f = H.scratch("file") .. "/plain"
	spit(f, "keep\n")
	code, _, err = H.run("daemon --socket " .. q(f))
	lu.assertEquals(code, 1)
	lu.assertStrContains(err, f .. " exists and is not a socket")
	lu.assertEquals(slurp(f), "keep\n")
	-- an over-long path
	code, _, err = H.run("daemon --socket /tmp/" .. string.rep("x", 120))
	lu.assertEquals(code, 1)
	lu.assertStrContains(err, "longer than 107 bytes")
	-- an unknown flag, with a suggestion
	code, _, err = H.run("daemon --sockt /tmp/x.sock")
	lu.assertEquals(code, 2)
	lu.assertStrContains(err, "did you mean '--socket'?")
end

function TestDaemon:test_concurrent_callers_get_distinct_addresses()
	local dm = daemon{ flags = "--quiet" }
	local st = store()
	lu.assertEquals((brisk(dm, "--state-dir " .. q(st) .. " network create --subnet 10.68.0.0/24 conc")), 0)
	local d = H.scratch("conc")
	-- 4 shells, 8 endpoints each, all at once
	local script = {}
	for w = 1, 4 do
		script[#script + 1] = string.format("(for i in 1 2 3 4 5 6 7 8; do BRISK_HOST=%s %s --state-dir %s "
			.. "endpoint create --name w%d-$i conc >/dev/null 2>>%s/err || echo fail >>%s/err; done) &",
			q(dm.sock), q(BIN), q(st), w, d, d)
	end
	script[#script + 1] = "wait"
	H.must(table.concat(script, "\n"))
	lu.assertEquals(slurp(d .. "/err") or "", "")
	local eps = json(select(2, brisk(nil, "--state-dir " .. q(st) .. " endpoint ls --json")))
	lu.assertEquals(#eps, 32)
	local seen = {}
	for _, e in ipairs(eps) do
		lu.assertNil(seen[e.ipv4], "address given twice: " .. e.ipv4)
		seen[e.ipv4] = true
		-- each host side exists, on the bridge
		local link = H.iplink(e.host_ifname)
		lu.assertNotNil(link, e.host_ifname)
		lu.assertEquals(link.master, e.bridge)
	end
	-- --quiet: no request lines
	lu.assertEquals(#requests(dm), 0)
	local cc, co, ce = brisk(nil, "--state-dir " .. q(st) .. " network check")
	lu.assertEquals(cc, 0, co .. ce)
end

function TestDaemon:test_a_daemon_killed_mid_command_is_reported_and_repairable()
	local dm = daemon{ flags = "--quiet" }
	local st = store()
	local B = q(BIN) .. " --state-dir " .. q(st)
	local N = 80
	H.must("BRISK_HOST=" .. q(dm.sock) .. " " .. B .. " network create --subnet 10.70.0.0/24 doomed")
	H.must("for i in $(seq " .. N .. "); do BRISK_HOST=" .. q(dm.sock) .. " " .. B
		.. " endpoint create --name k$i doomed >/dev/null || exit 1; done")
	-- removing the veths takes a while: the daemon is killed half way
	local d = H.scratch("kill")
	-- (in the background, its output away from H.must's pipe, which would
	-- wait for it)
	H.must(string.format("(BRISK_HOST=%s %s network rm --force doomed >%s/out 2>%s/err; echo $? >%s/rc) "
		.. "</dev/null >/dev/null 2>&1 &", q(dm.sock), B, d, d, d))
	local core = require "brisk.core"
	local deadline = os.time() + 15
	-- until it has removed some endpoints' records
	local function records()
		local n = 0
		for _, f in ipairs(core.listdir(st .. "/endpoint") or {}) do
			if f:match("%.json$") and f:sub(1, 1) ~= "." then n = n + 1 end
		end
		return n
	end
	while records() >= N and os.time() <= deadline do end
	stop(dm, "KILL")
	repeat os.execute("sleep 0.02") until slurp(d .. "/rc") or os.time() > deadline
	lu.assertEquals(slurp(d .. "/rc"), "1\n")
	lu.assertStrContains(slurp(d .. "/err"), "closed the connection before it answered")
	lu.assertStrContains(slurp(d .. "/err"), "brisk network check")
	-- the store still parses; whatever is left is removed by brisk without daemon
	local c1 = brisk(nil, "--state-dir " .. q(st) .. " network ls --json")
	lu.assertEquals(c1, 0)
	local c2, o2, e2 = brisk(nil, "--state-dir " .. q(st) .. " network rm --force doomed")
	lu.assertEquals(c2, 0, o2 .. e2)
	local c3, o3, e3 = brisk(nil, "--state-dir " .. q(st) .. " network check")
	lu.assertEquals(c3, 0, o3 .. e3)
	lu.assertEquals(json(select(2, brisk(nil, "--state-dir " .. q(st) .. " endpoint ls --json"))), {})
	lu.assertEquals(H.must("ip -o link show type veth | wc -l"):gsub("%s", ""), "0")
end

-- Who is served is read from the kernel, never from the request (found by
-- a review: the request carried the caller's namespace ids, which a caller
-- can write as it likes, and a root process without capabilities got its
-- command run with all of the daemon's).
function TestDaemon:test_callers_that_could_not_do_it_themselves_run_it_themselves()
	local dm = daemon()
	local st = store()
	local raw = raw_script()
	-- a root process that dropped its capabilities: left to run it itself,
	-- where the kernel refuses it; nothing made
	local c1, _, e1 = H.run(string.format("--inh-caps=-all --ambient-caps=-all --bounding-set=-all %s "
		.. "--state-dir %s network create --subnet 10.72.0.0/24 nocap", q(BIN), q(st)),
		{ bin = "setpriv", env = "BRISK_HOST=" .. q(dm.sock) })
	lu.assertEquals(c1, 1)
	lu.assertStrContains(e1, "Operation not permitted")
	lu.assertEquals(json(select(2, brisk(nil, "--state-dir " .. q(st) .. " network ls --json"))), {})
	lu.assertEquals(H.must("ip -j link show type bridge"):gsub("%s", ""), "[]")
	-- a caller in a chroot (the same mount namespace: its paths still differ)
	local root = H.scratch("root")
	lu.assertEquals(H.must(string.format("python3 %s %s %s chroot %s", q(raw), q(dm.sock), q(BIN), q(root))),
		"-1\n")
	-- no_new_privs the daemon lacks, and any seccomp filter (a service's
	-- confinement; a filter's rules cannot be compared): left to the
	-- caller, served there
	local c4, out4, err4 = H.run("--no-new-privs " .. q(BIN) .. " version",
		{ bin = "setpriv", env = "BRISK_HOST=" .. q(dm.sock) })
	lu.assertEquals({ c4, err4 }, { 0, "" })
	lu.assertStrMatches(out4, "^brisk .*\n$")
	local filt = H.scratch("filt") .. "/filt.py"
	spit(filt, FILTER)
	local c6, out6, err6 = H.run(q(filt) .. " " .. q(BIN) .. " version",
		{ bin = "/usr/bin/python3", env = "BRISK_HOST=" .. q(dm.sock) })
	lu.assertEquals({ c6, err6 }, { 0, "" })
	lu.assertStrMatches(out6, "^brisk .*\n$")
	-- many supplementary groups (a status file longer than a page): served
	local c5 = H.run("--groups " .. H.must("seq -s, 1000 1800"):gsub("%s+$", "") .. " " .. q(BIN) .. " version",
		{ bin = "setpriv", env = "BRISK_HOST=" .. q(dm.sock) })
	lu.assertEquals(c5, 0)
	local reqs = requests(dm)
	lu.assertEquals(#reqs, 5, slurp(dm.log))
	lu.assertStrContains(reqs[1], "left to the caller (fewer capabilities than the daemon)")
	lu.assertStrContains(reqs[2], "left to the caller (another root directory)")
	lu.assertStrContains(reqs[3], "left to the caller (no_new_privs)")
	lu.assertStrContains(reqs[4], "left to the caller (a seccomp filter)")
	lu.assertStrContains(reqs[5], "version: exit 0")
	-- another build of brisk (here the same file, modified since the daemon
	-- started): runs its own code
	local ns = H.must("stat -c %.9Y " .. q(BIN)):gsub("%s+$", "")
	local touched = pcall(function()
		H.must("touch -d @" .. (tonumber(ns) + 1) .. " " .. q(BIN))
		local c, out, err = brisk(dm, "version")
		lu.assertEquals({ c, err }, { 0, "" })
		lu.assertStrMatches(out, "^brisk .*\n$")
	end)
	H.must("touch -d @" .. ns .. " " .. q(BIN))
	lu.assertTrue(touched)
	reqs = requests(dm)
	lu.assertStrContains(reqs[6], "left to the caller (another brisk program)")
	-- the same build again: served
	lu.assertEquals((brisk(dm, "version")), 0)
	lu.assertStrContains(requests(dm)[7], "^brisk daemon: pid %d+: version: exit 0, ", true)
end

-- A caller that gave up before its turn (timed out, killed) is not served
-- later: its command would run for no one (found by a review: a network
-- was created after its caller had gone).
function TestDaemon:test_a_caller_gone_before_its_turn_is_not_served()
	local dm = daemon()
	local st = store()
	local raw = raw_script()
	H.must("kill -STOP " .. dm.pid)
	-- (its stdout not a pipe read here: the request holds it open until the
	-- daemon takes it)
	local ok = os.execute(string.format("python3 %s %s %s gone brisk --state-dir %s network create "
		.. "--subnet 10.73.0.0/24 gone </dev/null >/dev/null 2>&1", q(raw), q(dm.sock), q(BIN), q(st)))
	H.must("kill -CONT " .. dm.pid)
	lu.assertTrue(ok)
	local deadline = os.time() + 10
	while #requests(dm) == 0 and os.time() <= deadline do os.execute("sleep 0.02") end
	lu.assertStrContains(requests(dm)[1] or "", "left to the caller (the caller is gone)")
	lu.assertEquals(json(select(2, brisk(nil, "--state-dir " .. q(st) .. " network ls --json"))), {})
	lu.assertEquals(H.must("ip -j link show type bridge"):gsub("%s", ""), "[]")
end

-- Wait (10 s at most) until cond() is true.
local function wait_for(what, cond)
	local deadline = os.time() + 10
	while not cond() do
		if os.time() > deadline then error("timed out waiting for " .. what) end
		os.execute("sleep 0.01")
	end
end

-- What the Python helpers below share: read a pipe, or a pty's master, to
-- its end (the master's is EIO once the slave is closed).
local PY_DRAIN = [[
import errno
def drain(fd):
    out = b""
    while True:
        try:
            d = os.read(fd, 65536)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            return out
        if not d:
            return out
        out += d
]]

-- A stop signal is taken even while callers keep the daemon busy (found by
-- a review: a ppoll that finds a caller waiting puts the signal mask back
-- without taking a pending signal, so the queue was served first); the
-- callers queued are told to run their commands themselves (a second
-- review: closing the socket under them made them report a connection
-- lost mid-command). The
-- daemon's stderr is a pipe of one page, filled: its log line after the
-- first request blocks it, mid-request, with the stop signals held; two
-- more callers queue, SIGTERM comes, the pipe drains.
local HOLD = [[
import fcntl, os, subprocess, sys, time
]] .. PY_DRAIN .. [[
exe, sock, ctl = sys.argv[1], sys.argv[2], sys.argv[3]
r, w = os.pipe()
fcntl.fcntl(w, 1031, 4096)      # F_SETPIPE_SZ
p = subprocess.Popen([exe, "daemon", "--socket", sock], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=w)
print(p.pid, flush=True)
log = b""
while b"listening on" not in log:
    log += os.read(r, 4096)
os.set_blocking(w, False)
filled = 0
try:
    while True:
        filled += os.write(w, b"x")
except BlockingIOError:
    pass
os.set_blocking(w, True)        # the daemon's stderr shares the flag
os.close(w)
open(ctl + "/full", "w").close()
while not os.path.exists(ctl + "/drain"):
    time.sleep(0.01)
out = drain(r)
p.wait()
sys.stdout.write((log + out[filled:]).decode())
]]

function TestDaemon:test_sigterm_stops_before_queued_callers()
	local d = H.scratch("queue")
	spit(d .. "/raw.py", RAW)
	spit(d .. "/hold.py", HOLD)
	local sock = d .. "/brisk.sock"
	local hold = io.popen(string.format("python3 %s %s %s %s", q(d .. "/hold.py"), q(BIN), q(sock), q(d)))
	local pid = hold:read("l")
	local function exists(f) return H.sh("test -e " .. q(f)) == true end
	local clients = {}
	local function client(i)
		clients[i] = io.popen(string.format("python3 %s %s %s send 0 %s 2>&1 </dev/null", q(d .. "/raw.py"),
			q(sock), q(BIN), q(d .. "/sent" .. i)))
		wait_for("caller " .. i, function() return exists(d .. "/sent" .. i) end)
	end
	local ok, err = pcall(function()
		wait_for("the full pipe", function() return exists(d .. "/full") end)
		client(1)
		-- the daemon blocked in its log line, the first caller's command run
		wait_for("the daemon to block", function()
			return (slurp("/proc/" .. pid .. "/wchan") or ""):find("pipe_write") ~= nil
		end)
		client(2)
		client(3)
		H.must("kill -TERM " .. pid)
	end)
	spit(d .. "/drain", "")
	local log = hold:read("a")
	hold:close()
	lu.assertTrue(ok, err)
	lu.assertStrMatches(clients[1]:read("a"), "brisk [^\n]+\n0\n")
	for i = 2, 3 do lu.assertEquals(clients[i]:read("a"), "-1\n") end
	local served = 0
	for _ in log:gmatch("version: exit 0") do served = served + 1 end
	lu.assertEquals(served, 1, log)
	lu.assertStrContains(log, "stopped (signal 15)")
	-- callers that connect and send nothing hold the stop one second at
	-- most, all of them (it took 0.2 s each), and the socket goes first
	local dm = daemon()
	H.must("kill -STOP " .. dm.pid)
	local idle = {}
	for i = 1, 20 do
		idle[i] = io.popen(string.format("python3 %s %s %s idle 8 %s >/dev/null 2>&1 </dev/null", q(d .. "/raw.py"),
			q(dm.sock), q(BIN), q(d .. "/idle" .. i)))
	end
	for i = 1, 20 do wait_for("idle caller " .. i, function() return exists(d .. "/idle" .. i) end) end
	H.must("kill -TERM " .. dm.pid)
	local t0 = os.time()
	H.must("kill -CONT " .. dm.pid)
	local code = stop(dm)
	lu.assertEquals(code, 0)
	lu.assertTrue(os.time() - t0 <= 3, "stopped after " .. (os.time() - t0) .. " s")
	lu.assertNotEquals(H.sh("test -e " .. q(dm.sock)), true)
	H.sh("pkill -f " .. q(d .. "/raw.py"))
	for i = 1, 20 do idle[i]:close() end
end

-- `slow.py EXE SOCK CTL MODE`: `brisk help options` through the daemon
-- with its stdout a pipe of one page that already holds 2000 bytes and is
-- not read until CTL/go exists (the output does not fit); then MODE
-- "read": reads it all, prints the caller's exit code and what it read;
-- "kill": kills the caller instead.
local SLOW = [[
import fcntl, os, subprocess, sys, time
]] .. PY_DRAIN .. [[
exe, sock, ctl, mode = sys.argv[1:5]
r, w = os.pipe()
fcntl.fcntl(w, 1031, 4096)      # F_SETPIPE_SZ: one page
os.write(w, b"x" * 2000)
p = subprocess.Popen([exe, "help", "options"], stdin=subprocess.DEVNULL, stdout=w,
                     env=dict(os.environ, BRISK_HOST=sock))
os.close(w)
print(p.pid, flush=True)
while not os.path.exists(ctl + "/go"):
    time.sleep(0.01)
running = p.poll() is None
if mode == "kill":
    p.kill()
    p.wait()
    print("killed" if running else "had exited")
    sys.exit(0)
out = drain(r)
print(p.wait(), "running" if running else "had exited")
sys.stdout.write(out.decode())
]]

-- A caller whose output nobody reads (a full pipe) held the daemon in a
-- write: every other caller waited, SIGTERM too. Its output is now kept
-- and delivered as its reader takes it; the exit code goes after it.
function TestDaemon:test_an_unread_output_does_not_hold_the_daemon()
	local d = H.scratch("slow")
	spit(d .. "/slow.py", SLOW)
	local want = select(2, brisk(nil, "help options"))
	lu.assertTrue(#want > 2200, "the output must not fit in the pipe")
	local function slow(dm, ctl, mode)
		H.must("mkdir -p " .. q(ctl))
		local p = io.popen(string.format("python3 %s %s %s %s %s", q(d .. "/slow.py"), q(BIN), q(dm.sock),
			q(ctl), mode))
		local pid = p:read("l")
		local function parked()
			local n = 0
			for _ in (slurp(dm.log) or ""):gmatch("help: exit 0, [%d.]+ ms %(its output waits for its reader%)") do
				n = n + 1
			end
			return n
		end
		local before = dm.parked or 0
		wait_for("the waiting output", function() return parked() > before end)
		dm.parked = before + 1
		return p, pid
	end
	local function go(ctl) spit(ctl .. "/go", "") end

	-- read later: meanwhile the daemon serves others; the caller waits for
	-- its output to be read, then exits with its code, the output whole
	local dm = daemon()
	local p = slow(dm, d .. "/a", "read")
	local t0 = os.time()
	local code, out = brisk(dm, "version")
	lu.assertEquals(code, 0)
	lu.assertStrContains(out, "brisk ")
	lu.assertTrue(os.time() - t0 <= 2)
	lu.assertEquals(#requests(dm), 2)
	go(d .. "/a")
	local res = p:read("a")
	p:close()
	lu.assertEquals(res, "0 running\n" .. string.rep("x", 2000) .. want)
	lu.assertStrContains(slurp(dm.log), "its output was read: exit 0")

	-- the caller killed before its reader took the output: dropped, and the
	-- daemon goes on
	p = slow(dm, d .. "/b", "kill")
	go(d .. "/b")
	lu.assertEquals(p:read("a"), "killed\n")
	p:close()
	wait_for("the drop", function()
		return (slurp(dm.log) or ""):find("gone before its output was read; the rest dropped", 1, true) ~= nil
	end)
	lu.assertEquals((brisk(dm, "version")), 0)

	-- SIGTERM with an output waiting: the daemon stops at once; the caller
	-- gets its exit code, with the output its reader had not taken dropped
	p = slow(dm, d .. "/c", "read")
	t0 = os.time()
	local scode, log = stop(dm)
	lu.assertEquals(scode, 0)
	lu.assertTrue(os.time() - t0 <= 2)
	lu.assertStrMatches(log, ".*stopping: %d+ bytes of its output not read, dropped\n.*")
	go(d .. "/c")
	res = p:read("a")
	p:close()
	lu.assertStrMatches(res, "0 had exited\nx+.*")
	lu.assertTrue(#res < #want + 2000, "some of the output was dropped")
end

-- `term.py EXE SOCK MODE`: `brisk version` through the daemon with its
-- stdout and stderr on a terminal (a pty), MODE "stopped": its output
-- stopped (Ctrl-S) until a second caller was served, or on a pipe made by
-- another user (MODE "foreign"); prints what the reader got and the exit
-- code.
local TTY = [[
import os, pty, subprocess, sys, termios, time
]] .. PY_DRAIN .. [[
exe, sock, mode = sys.argv[1:4]
env = dict(os.environ, BRISK_HOST=sock)
if mode == "foreign":
    os.seteuid(65534)
    r, w = os.pipe()                # the pipe's inode is nobody's, mode 0600
    os.seteuid(0)
    p = subprocess.Popen([exe, "version"], stdin=subprocess.DEVNULL, stdout=w, env=env)
    os.close(w)
    out = drain(r)
    print(p.wait(), out.decode().strip())
    sys.exit(0)
m, s = pty.openpty()
if mode == "stopped":
    termios.tcflow(s, termios.TCOOFF)
p = subprocess.Popen([exe, "version"], stdin=subprocess.DEVNULL, stdout=s, stderr=s, env=env)
if mode == "stopped":
    time.sleep(0.3)
    t0 = time.time()
    q = subprocess.run([exe, "version"], stdin=subprocess.DEVNULL, capture_output=True, env=env)
    print("second", q.returncode, round(time.time() - t0) <= 1, p.poll() is None)
    termios.tcflow(s, termios.TCOON)
code = p.wait()
os.close(s)
out = drain(m)
print(code, out.decode().replace("\r\n", "\n").strip())
]]

-- Where the output goes (found by a review of the unread-output change): a
-- terminal opened again through /proc is another object (/dev/tty is the
-- daemon's own terminal, /dev/ptmx a new pty), a pipe of another user
-- could not be opened again by a daemon without CAP_DAC_OVERRIDE (the
-- output was dropped, exit 0), and a terminal written through the caller's
-- blocking description held the daemon while its output was stopped.
function TestDaemon:test_output_reaches_terminals_and_pipes_of_others()
	local d = H.scratch("tty")
	spit(d .. "/term.py", TTY)
	local version = select(2, brisk(nil, "version")):gsub("%s+$", "")
	local dm = daemon{ wrap = "setpriv --bounding-set -dac_override" }
	local function run(mode)
		return H.must(string.format("python3 %s %s %s %s", q(d .. "/term.py"), q(BIN), q(dm.sock), mode))
	end
	lu.assertEquals(run("plain"), "0 " .. version .. "\n")
	lu.assertEquals(run("foreign"), "0 " .. version .. "\n")
	-- stopped: the second caller is served at once, the first one waits
	-- for its terminal and then gets its output
	lu.assertEquals(run("stopped"), "second 0 True True\n0 " .. version .. "\n")
	local log, served = slurp(dm.log), 0
	for _ in log:gmatch("version: exit 0") do served = served + 1 end
	lu.assertEquals(served, 4, log)
	lu.assertStrContains(log, "version: exit 0, ")
	lu.assertStrContains(log, " (its output waits for its reader)")
	lu.assertStrContains(log, "its output was read: exit 0")
end

-- `late.py EXE SOCK`: `brisk version` through the daemon onto a terminal
-- that is full (nobody reads it), then a second caller, which must be
-- answered; then the terminal is read, and the first caller exits.
local LATE = [[
import os, pty, subprocess, sys, time
exe, sock = sys.argv[1:3]
env = dict(os.environ, BRISK_HOST=sock)
m, s = pty.openpty()
os.set_blocking(s, False)
try:
    while True:
        os.write(s, b"x" * 1024)
except BlockingIOError:
    pass
os.set_blocking(s, True)
p = subprocess.Popen([exe, "version"], stdin=subprocess.DEVNULL, stdout=s, stderr=s, env=env)
time.sleep(0.5)
t0 = time.time()
try:
    q = subprocess.run([exe, "version"], stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=5)
    print("second", q.returncode, time.time() - t0 < 3)
except subprocess.TimeoutExpired:
    print("second: no answer in 5 s")
os.set_blocking(m, False)
got = b""
deadline = time.time() + 10
while p.poll() is None and time.time() < deadline:
    try:
        got += os.read(m, 65536)
    except BlockingIOError:
        time.sleep(0.01)
try:
    while True:
        got += os.read(m, 65536)
except BlockingIOError:
    pass
print("first", p.wait(), b"brisk " in got)
]]

-- `late.so`, preloaded into the daemon: setitimer, when it arms a timer,
-- returns 100 ms later (as if the daemon were off the CPU meanwhile).
local LATE_SO = [[
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/time.h>
#include <time.h>
typedef int setitimer_fn(__itimer_which_t, const struct itimerval *, struct itimerval *);
int setitimer(__itimer_which_t which, const struct itimerval *nv, struct itimerval *ov)
{
	static setitimer_fn *real;
	struct timespec ts = { 0, 100000000 };
	int r;

	if (!real)
		real = (setitimer_fn *)dlsym(RTLD_NEXT, "setitimer");
	r = real(which, nv, ov);
	if (nv && (nv->it_value.tv_sec || nv->it_value.tv_usec))
		while (nanosleep(&ts, &ts) != 0)
			;
	return r;
}
]]

-- A terminal's write is cut short by a timer that fires every 20 ms until
-- it is disarmed: with one shot, a daemon off the CPU when it fired began
-- the write with no timer left and waited for the terminal's reader,
-- every other caller and SIGTERM with it (a review).
function TestDaemon:test_a_late_timer_leaves_no_write_waiting()
	local d = H.scratch("late")
	spit(d .. "/late.py", LATE)
	spit(d .. "/late.c", LATE_SO)
	H.must("cc -shared -fPIC -o " .. q(d .. "/late.so") .. " " .. q(d .. "/late.c") .. " -ldl")
	-- (an ASan build wants its runtime first: the order is not checked)
	local dm = daemon{ wrap = "env LD_PRELOAD=" .. q(d .. "/late.so") .. " ASAN_OPTIONS=verify_asan_link_order=0" }
	local res = H.must(string.format("python3 %s %s %s", q(d .. "/late.py"), q(BIN), q(dm.sock)))
	lu.assertEquals(res, "second 0 True\nfirst 0 True\n")
	local code, log = stop(dm)
	lu.assertEquals(code, 0)
	lu.assertStrContains(log, "stopped (signal 15)")
end

-- The socket and what listens on it (found by a review): a client gave its
-- descriptors to whatever listened, and a daemon listened in a directory
-- anyone could write.
function TestDaemon:test_the_socket_is_trusted_only_when_root_or_the_caller_owns_it()
	local d = H.scratch("sockdir")
	H.must("chmod 1777 " .. q(d))
	local c, _, err = brisk(nil, "daemon --socket " .. q(d .. "/brisk.sock"))
	lu.assertEquals(c, 1)
	lu.assertStrContains(err, "the socket's directory " .. d .. " is writable by another user")
	lu.assertNotEquals(H.sh("test -e " .. q(d .. "/brisk.sock")), true)
	-- a server run by another user (nobody) gets nothing: the caller runs
	-- its command itself
	local fake = d .. "/fake.py"
	spit(fake, [[
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(sys.argv[1]); s.listen(1)
open(sys.argv[2], "w").close()
c, _ = s.accept()
c.settimeout(5)
try:
    m = c.recv(65536)
    print("got %d bytes" % len(m) if m else "nothing")
except OSError as e:
    print("nothing")
]])
	local nd = d .. "/nobody"
	H.must("mkdir " .. q(nd) .. " && chown 65534 " .. q(nd))
	local sock = nd .. "/brisk.sock"
	local p = io.popen(string.format("setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 %s %s %s",
		q(fake), q(sock), q(nd .. "/ready")))
	local deadline = os.time() + 10
	while H.sh("test -e " .. q(nd .. "/ready")) ~= true and os.time() <= deadline do os.execute("sleep 0.02") end
	local c2, out2, err2 = H.run("version", { env = "BRISK_HOST=" .. q(sock) })
	lu.assertEquals({ c2, err2 }, { 0, "" })
	lu.assertStrMatches(out2, "^brisk .*\n$")
	lu.assertEquals(p:read("a"), "nothing\n")
	p:close()
end

-- A daemon runs brisk's own modules only: a command it does not serve is
-- left to the caller before its module is looked for (found by a review:
-- `brisk foo` loaded ./brisk/cli/foo.lua from the caller's directory into
-- the daemon, as root, and it stayed for every later caller), and so is
-- a command it cannot resolve (a caller's LUA_PATH may have it).
function TestDaemon:test_modules_in_the_callers_directory_are_not_loaded_into_the_daemon()
	local dm = daemon()
	local d = H.scratch("plugin")
	H.must("mkdir -p " .. q(d .. "/brisk/cli"))
	spit(d .. "/brisk/cli/foo.lua", [[
local cli = require "brisk.cli"
cli.commands.version.run = function() print("HIJACKED") end
cli.register { name = "foo", summary = "a plugin", raw = true, run = function() print("plugin foo") end }
]])
	local c1, out1 = brisk(dm, "foo", { cwd = d })
	lu.assertEquals({ c1, out1 }, { 0, "plugin foo\n" })   -- as without a daemon
	local c2, out2 = brisk(dm, "version")
	lu.assertEquals(c2, 0)
	lu.assertStrMatches(out2, "^brisk %S+ %(Lua[^\n]*\n$")
	local c3, _, err3 = brisk(dm, "nosuchcommand")
	lu.assertEquals(c3, 2)
	lu.assertStrContains(err3, "unknown command")
	local reqs = requests(dm)
	lu.assertEquals(#reqs, 3, slurp(dm.log))
	lu.assertStrContains(reqs[1], "left to the caller (not served)")
	lu.assertStrContains(reqs[2], "^brisk daemon: pid %d+: version: exit 0, ", true)
	lu.assertStrContains(reqs[3], "left to the caller (not served)")
end
