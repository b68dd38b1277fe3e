--- brisk.topo: a whole topology in a dozen lines of Lua.
--
-- A topology is a named set of networks, hosts (network namespaces),
-- endpoints joining hosts to networks, routers (hosts forwarding between
-- networks), extra routes and uplinks (a host wired straight to the
-- machine). The script declares them, then `t:up()` makes the kernel agree:
--
--     local topo = require "brisk.topo"
--     local t <close> = topo.new{ name = "lab" }
--     t:network{ name = "web", subnet = "10.88.0.0/24" }
--     t:host "h1"
--     t:host "h2"
--     t:connect("h1", "web")
--     t:connect("h2", "web")
--     t:up()
--     t:ping("h1", "h2")
--
-- What a topology creates is written down first, in a record in the state
-- directory (`<state_dir>/topology/<name>.json`), so teardown removes
-- exactly that and nothing else: a namespace, link or network the topology
-- did not create is an error to declare (or, for a namespace, adopted on
-- request and left in place). Networks and endpoints are recorded with
-- their ids: one removed and made again by hand under the same name is not
-- the topology's.
--
-- `t:up()` is idempotent: what exists and matches its declaration is left
-- alone (the second run of a script prints "nothing to do"); what is
-- missing from the kernel is made again. Teardown happens
--
-- * when a `<close>` variable holding the topology goes out of scope:
--   everything, unless `keep = true`, in which case only an error removes
--   something (what this run made: the topology is left as it was);
-- * on `t:down()`; on `brisk down SCRIPT [ARGS]`, which removes, without
--   running the script, every topology recorded as made by it (with those
--   arguments, when given); on `brisk down NAME`;
-- * when `t:up()` fails: what that call made is removed again.
--
-- Errors name the script's line: a bad declaration the line declaring it,
-- a failure while making an object the line that declared that object.
local core = require "brisk.core"
local driver = require "brisk.driver"
local ipnet = require "brisk.ipnet"
local netopts = require "brisk.netopts"
local schema = require "brisk.schema"
local copy = require("brisk.handle").copy

local M = {}

local T = {}
T.__index = T

local Proc = {}
Proc.__index = Proc

local sfmt, concat = string.format, table.concat
local errno = core.errno

---------------------------------------------------------------------------
-- Errors that point at the script
---------------------------------------------------------------------------

-- brisk's own Lua files: every frame from them is skipped when looking for
-- the line to blame.
local SELF = debug.getinfo(1, "S").source
local BRISK_DIR = SELF:match("^@(.*/)[^/]+$")

local function internal(info)
	if info.what == "C" or info.source == SELF then return true end
	local src = info.source
	return BRISK_DIR ~= nil and src:sub(1, 1) == "@" and src:sub(2, #BRISK_DIR + 1) == BRISK_DIR
end

-- "file:line" of the innermost caller outside brisk (nil when none).
local function caller()
	for level = 2, 200 do
		local info = debug.getinfo(level, "Sl")
		if not info then return nil end
		if not internal(info) and info.currentline > 0 then
			return info.short_src .. ":" .. info.currentline, info
		end
	end
end

-- The source of the script calling: the innermost main chunk outside brisk
-- on the stack (a wrapper function of the user's, or a function of the
-- script's, may be the caller), else the caller's.
local function calling_source()
	local first
	for level = 2, 200 do
		local info = debug.getinfo(level, "S")
		if not info then break end
		if not internal(info) then
			if info.what == "main" then return info.source end
			first = first or info.source
		end
	end
	return first
end

-- Raise `msg` located at `where` (default: the caller outside brisk).
local function raise(msg, where)
	where = where or caller()
	error((where and (where .. ": ") or "") .. msg, 0)
end

---------------------------------------------------------------------------
-- Small helpers
---------------------------------------------------------------------------

local function equal(a, b)
	if type(a) ~= type(b) then return false end
	if type(a) ~= "table" then return a == b end
	for k, v in pairs(a) do
		if not equal(v, b[k]) then return false end
	end
	for k in pairs(b) do
		if a[k] == nil then return false end
	end
	return true
end

local function sorted_keys(t)
	local keys = {}
	for k in pairs(t) do keys[#keys + 1] = k end
	table.sort(keys)
	return keys
end

local function bare(cidr)
	return cidr and cidr:match("^[^/]+")
end

local function quote(s)
	return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- A command as a shell string: a string as is, an argv table quoted.
local function command(cmd, what)
	if type(cmd) == "string" then return cmd end
	if type(cmd) ~= "table" or #cmd == 0 then raise(what .. ": command string or argv table expected") end
	local out = {}
	for i, a in ipairs(cmd) do out[i] = quote(a) end
	return concat(out, " ")
end

local function check_table(v, what)
	if type(v) ~= "table" then raise(sfmt("%s: table expected, got %s", what, type(v))) end
end

local function check_keys(t, allowed, what)
	for k in pairs(t) do
		if type(k) ~= "string" or not allowed[k] then
			raise(sfmt("%s: unknown field '%s'%s", what, tostring(k), schema.suggest(tostring(k), allowed)))
		end
	end
end

local function check_type(v, ty, what)
	if v ~= nil and type(v) ~= ty then raise(sfmt("%s must be a %s, got %s", what, ty, type(v))) end
end

local NAME = "^[%w][%w_.-]*$"

local function check_name(v, what, max)
	if type(v) ~= "string" or not v:match(NAME) or #v > max then
		raise(sfmt("%s: invalid name %s (letters, digits, '_', '.', '-'; 1..%d bytes)", what,
			type(v) == "string" and ("'" .. v .. "'") or tostring(v), max))
	end
end

-- Unknown `name` among `known` (a map): raise with a hint.
local function unknown(kind, name, known)
	raise(sfmt("unknown %s '%s'%s (declare it first)", kind, tostring(name), schema.suggest(tostring(name), known)))
end

-- "name" or {"name", k = v}: the name and the other fields.
local function named(a, b, what)
	if type(a) == "table" then
		if b ~= nil then raise(what .. ": one table expected") end
		local o = copy(a)
		local name = o[1] or o.name
		o[1], o.name = nil, nil
		return name, o
	end
	if b ~= nil then check_table(b, what) end
	local o = copy(b or {})
	if o.name ~= nil and o.name ~= a then raise(what .. ": two names given") end
	o.name = nil
	return a, o
end

-- A route destination as `ip -j route` prints it, and its family.
local function norm_dst(dst)
	if dst == "default" then return "default", nil end
	if type(dst) ~= "string" then return nil, "dst must be a string" end
	local c, msg = ipnet.parse_cidr(dst:find("/") and dst or (dst .. (dst:find(":") and "/128" or "/32")))
	if not c then return nil, msg end
	c = ipnet.network(c)
	if (c.family == 4 and c.plen == 32) or (c.family == 6 and c.plen == 128) then
		return ipnet.format(ipnet.addr(c)), c.family
	end
	return ipnet.format(c), c.family
end

local function same_ip(a, b)
	if a == nil or b == nil then return a == b end
	local x, y = ipnet.parse_ip(a), ipnet.parse_ip(b)
	return x ~= nil and y ~= nil and ipnet.compare(x, y) == 0
end

-- How long a spawned process group has to go after SIGTERM before SIGKILL.
local GRACE = 2

-- A shell command's output, through a pipe (system() would ignore SIGINT
-- while it waits).
local function sh(cmd)
	local p = io.popen(cmd, "r")
	if not p then return nil end
	local out = p:read("a")
	p:close()
	return out
end

-- Whether a process of group `pgid` still runs: kill -0 would find its
-- zombies too, which an init that reaps late keeps for a while.
local function group_running(pgid)
	for _, name in ipairs(core.listdir("/proc") or {}) do
		if name:match("^%d+$") then
			local f = io.open("/proc/" .. name .. "/stat", "r")
			local stat = f and f:read("a")
			if f then f:close() end
			-- pid (comm) state ppid pgrp ...: comm may hold anything but ')' last
			local state, pgrp = (stat or ""):match("^.*%) (%S+) %-?%d+ (%d+) ")
			if tonumber(pgrp) == pgid and state ~= "Z" and state ~= "X" then return true end
		end
	end
	return false
end

---------------------------------------------------------------------------
-- Time
---------------------------------------------------------------------------

--- Seconds on a monotonic clock, for timings (brisk.core's clock_gettime).
-- @treturn number
M.clock = core.now

---------------------------------------------------------------------------
-- Opening a topology
---------------------------------------------------------------------------

local function default_state_dir()
	local cli = package.loaded["brisk.cli"]
	local d = type(cli) == "table" and rawget(cli, "state_dir") or nil
	if type(d) == "string" and d ~= "" then return d end
	local env = os.getenv("BRISK_STATE_DIR")
	if env and env ~= "" then return env end
	return "/var/lib/brisk"
end

local NEW_KEYS = { name = true, state_dir = true, keep = true, quiet = true, log = true,
	firewall = true, userland_proxy = true, takeover = true }

local BUCKETS = { "networks", "hosts", "uplinks", "endpoints", "routes" }

local function empty_record(name, script)
	local r = { id = name, name = name, script = script }
	for _, b in ipairs(BUCKETS) do r[b] = {} end
	return r
end

local function empty(rec)
	for _, b in ipairs(BUCKETS) do
		if next(rec[b]) ~= nil then return false end
	end
	return true
end

-- `path` with its "." and ".." components and repeated '/' resolved
-- (lexically: symbolic links stay).
local function normpath(path)
	local abs = path:sub(1, 1) == "/"
	local parts = {}
	for seg in path:gmatch("[^/]+") do
		if seg == ".." then
			if #parts > 0 and parts[#parts] ~= ".." then parts[#parts] = nil
			elseif not abs then parts[#parts + 1] = ".." end
		elseif seg ~= "." then
			parts[#parts + 1] = seg
		end
	end
	return (abs and "/" or "") .. concat(parts, "/")
end

--- A script's path as a topology records it: the file's real path (every
-- symlink resolved: one name per file, whichever way the script was
-- reached); for a file that is not there (a script removed since), the
-- path made absolute (from the working directory) and normalised.
-- @tparam string path
-- @treturn string
function M.script_path(path)
	local real = core.realpath(path)
	if real then return real end
	if path:sub(1, 1) ~= "/" then
		local cwd = core.getcwd()
		if cwd then path = cwd .. "/" .. path end
	end
	return normpath(path)
end

--- Whether a record's script is `script` (an absolute path, as
-- script_path gives it; nil for a topology made interactively, which
-- matches only another). A record written before scripts were recorded
-- absolute holds the path as it was given: it matches a script whose path
-- ends with it.
-- @tparam string|nil stored the record's `script`
-- @tparam string|nil script
-- @treturn boolean
function M.same_script(stored, script)
	if stored == nil or script == nil then return stored == script end
	stored = normpath(stored)
	if stored:sub(1, 1) == "/" then return stored == script or core.realpath(stored) == script end
	return script == stored or script:sub(-(#stored + 1)) == "/" .. stored
end

local function owner_text(script)
	return script and ("script " .. script) or "an interactive session (no script)"
end

--- Open a topology.
-- @tparam table|string o the name, or `{name=, state_dir=, keep=, quiet=,
--   log=, firewall=, userland_proxy=, takeover=}`:
--   `name` (required) keys the record, which also names the script that
--   made the topology (none when made interactively, as in the REPL): a
--   topology recorded by another script is refused by up(), and never torn
--   down by this one (`brisk down NAME` removes it);
--   `state_dir` default `$BRISK_STATE_DIR` or /var/lib/brisk;
--   `keep` leave the topology up when a `<close>` scope ends without error;
--   `quiet` print only the summary line of up and down;
--   `log` a function(line) that gets the output lines (false: silent);
--   `firewall`, `userland_proxy` as for brisk.driver.open;
--   `takeover` let up() take over a topology recorded by another script
--   (or interactively): the record then names this script.
-- @return the topology object (misuse and failures raise, naming the
--   script's line)
function M.new(o)
	if type(o) == "string" then o = { name = o } end
	check_table(o, "topo.new")
	check_keys(o, NEW_KEYS, "topo.new")
	check_name(o.name, "topo.new", 32)
	check_type(o.state_dir, "string", "topo.new: state_dir")
	check_type(o.keep, "boolean", "topo.new: keep")
	check_type(o.quiet, "boolean", "topo.new: quiet")
	check_type(o.firewall, "boolean", "topo.new: firewall")
	check_type(o.userland_proxy, "boolean", "topo.new: userland_proxy")
	check_type(o.takeover, "boolean", "topo.new: takeover")
	if o.log ~= nil and o.log ~= false and type(o.log) ~= "function" then
		raise("topo.new: log must be a function or false")
	end
	local src = (calling_source() or ""):match("^@(.*)$")
	local script = src and M.script_path(src) or nil
	-- the script's arguments, when it is the main script (brisk run, lua5.4):
	-- `brisk down SCRIPT ARGS` picks the topologies they made
	local args
	local a = rawget(_G, "arg")
	if script and type(a) == "table" and type(a[0]) == "string" and a[0] ~= "-"
		and M.script_path(a[0]) == script then
		args = {}
		for i = 1, #a do args[i] = tostring(a[i]) end
	end
	local d, msg = driver.open{ state_dir = o.state_dir or default_state_dir(), firewall = o.firewall,
		userland_proxy = o.userland_proxy }
	if not d then raise("topology " .. o.name .. ": " .. tostring(msg)) end
	return setmetatable({
		name = o.name, driver = d, keep = o.keep == true, quiet = o.quiet == true, log = o.log,
		script = script, args = args, takeover = o.takeover == true,
		nets = {}, net_order = {}, hosts = {}, host_order = {}, links = {}, link_order = {},
		routes = {}, route_order = {}, routers = {}, uplinks = {}, uplink_order = {},
		procs = {}, eps = {}, netrecs = {}, handles = {}, run_made = {}, run_replaced = {},
	}, T)
end

function T:_check_open(what)
	if self.closed then raise(sfmt("%s: topology %s is closed", what, self.name)) end
end

---------------------------------------------------------------------------
-- Output
---------------------------------------------------------------------------

function T:_emit(line)
	if self.log == false then return end
	if self.log then return self.log(line) end
	io.stdout:write(line, "\n")
	io.stdout:flush()
end

-- A line about one object (left out when quiet).
function T:_say(fmt, ...)
	if not self.quiet then self:_emit(sfmt(fmt, ...)) end
end

local function plural(n, word)
	return sfmt("%d %s%s", n, word, n == 1 and "" or "s")
end

---------------------------------------------------------------------------
-- Declarations
---------------------------------------------------------------------------

local NET_KEYS = { bridge = true }
for _, k in ipairs(netopts.spec_keys) do NET_KEYS[k] = true end

--- Declare a network (a bridge, as brisk.driver creates it).
-- @param name the network's name, or the whole table with `name`
-- @tparam[opt] table spec as for driver:create_network (`subnet`,
--   `gateway`, `ip_range`, `ipv6`, `internal`, `aux_addresses`,
--   `options`), plus `bridge` (the bridge's name: options.bridge)
-- @return the topology
function T:network(name, spec)
	self:_check_open("network")
	name, spec = named(name, spec, "network")
	check_name(name, "network", 64)
	check_keys(spec, NET_KEYS, "network " .. name)
	if self.nets[name] then
		raise(sfmt("network %s is declared twice (first at %s)", name, self.nets[name].where))
	end
	spec.name = name
	if spec.bridge ~= nil then
		check_type(spec.bridge, "string", "network " .. name .. ": bridge")
		spec.options = spec.options or {}
		check_table(spec.options, "network " .. name .. ": options")
		if spec.options.bridge ~= nil and spec.options.bridge ~= spec.bridge then
			raise("network " .. name .. ": bridge given twice (bridge and options.bridge)")
		end
		spec.options.bridge, spec.bridge = spec.bridge, nil
	end
	local cfg, msg = netopts.network:parse(copy(spec.options or {}))
	if not cfg then raise("network " .. name .. ": " .. msg) end
	local subnets = type(spec.subnet) == "table" and spec.subnet or { spec.subnet }
	for _, s in ipairs(subnets) do
		local ok, emsg = ipnet.parse_cidr(s)
		if not ok then raise("network " .. name .. ": subnet: " .. tostring(emsg)) end
	end
	self.nets[name] = { name = name, spec = spec, where = caller(),
		ipv6 = spec.ipv6 == true or cfg.enable_ipv6 == true }
	self.net_order[#self.net_order + 1] = name
	return self
end

local HOST_KEYS = { netns = true, adopt = true, sysctl = true }

--- Declare a host: a network namespace.
-- @param name the host's name, or `{name, netns=, adopt=, sysctl=}`
-- @tparam[opt] table o `netns` (default the host's name), `adopt` (use a
--   namespace that exists already; teardown leaves it, undoing only what
--   the topology did inside), `sysctl` ({["net/ipv4/ip_forward"] = 1, ...},
--   set inside the namespace)
-- @return the topology
function T:host(name, o)
	self:_check_open("host")
	name, o = named(name, o, "host")
	check_name(name, "host", 32)
	check_keys(o, HOST_KEYS, "host " .. name)
	if self.hosts[name] then
		raise(sfmt("host %s is declared twice (first at %s)", name, self.hosts[name].where))
	end
	local netns = o.netns or name
	check_name(netns, "host " .. name .. ": netns", 64)
	for _, other in pairs(self.hosts) do
		if other.netns == netns then
			raise(sfmt("host %s: namespace %s belongs to host %s already", name, netns, other.name))
		end
	end
	check_type(o.adopt, "boolean", "host " .. name .. ": adopt")
	local sysctl = {}
	if o.sysctl ~= nil then
		check_table(o.sysctl, "host " .. name .. ": sysctl")
		for path, v in pairs(o.sysctl) do
			if type(path) ~= "string" or not path:match("^[%w_][%w_./-]*$") or path:find("..", 1, true) then
				raise(sfmt("host %s: invalid sysctl path %s", name, tostring(path)))
			end
			if type(v) == "boolean" then v = v and 1 or 0 end
			if type(v) ~= "string" and type(v) ~= "number" then
				raise(sfmt("host %s: sysctl %s: string or number expected", name, path))
			end
			sysctl[path] = tostring(v)
		end
	end
	self.hosts[name] = { name = name, netns = netns, adopt = o.adopt == true, sysctl = sysctl, where = caller() }
	self.host_order[#self.host_order + 1] = name
	return self
end

function T:_need_host(name)
	local h = self.hosts[name]
	if not h then unknown("host", name, self.hosts) end
	return h
end

function T:_need_net(name)
	local n = self.nets[name]
	if not n then unknown("network", name, self.nets) end
	return n
end

-- Names may hold '.': host a.b on network c and host a on network b.c
-- would share an endpoint name. Refused at the second declaration.
function T:_check_epname(host, net, epname)
	for _, other in pairs(self.links) do
		if other.epname == epname then
			raise(sfmt("connect %s to %s: its endpoint name %s is that of host %s on network %s too (declared at %s); "
				.. "rename a host or a network", host, net, epname, other.host, other.net, other.where))
		end
	end
end

local LINK_KEYS = { ip = true, ip6 = true, mac = true, ifname = true, publish = true, options = true }

--- Connect a host to a network: an endpoint (a veth pair, one end on the
-- bridge, the other in the host with its addresses and a default route).
-- @tparam string host a declared host
-- @tparam string net a declared network
-- @tparam[opt] table o `ip`, `ip6`, `mac`, `ifname`, `publish`
--   (`{"8080:80", ...}`), `options` as for driver:create_endpoint
-- @return the topology
function T:connect(host, net, o)
	self:_check_open("connect")
	o = o or {}
	check_table(o, "connect")
	local h, n = self:_need_host(host), self:_need_net(net)
	check_keys(o, LINK_KEYS, sfmt("connect %s to %s", host, net))
	local key = host .. "/" .. net
	if self.links[key] then
		raise(sfmt("host %s is connected to network %s twice (first at %s)", host, net, self.links[key].where))
	end
	local epname = self.name .. "." .. h.name .. "." .. n.name
	if #epname > 64 then
		raise(sfmt("connect %s to %s: endpoint name %s is longer than 64 bytes (shorter names, please)",
			host, net, epname))
	end
	self:_check_epname(host, net, epname)
	if o.publish ~= nil then
		local ok, msg = require("brisk.ports").parse_list(o.publish)
		if not ok then raise(sfmt("connect %s to %s: publish: %s", host, net, msg)) end
	end
	for _, k in ipairs{ "ip", "ip6", "mac", "ifname" } do
		check_type(o[k], "string", sfmt("connect %s to %s: %s", host, net, k))
	end
	self.links[key] = { key = key, host = host, net = net, epname = epname, spec = copy(o), where = caller() }
	self.link_order[#self.link_order + 1] = key
	return self
end

local ROUTER_KEYS = { nets = true, ips = true, routes = true, netns = true }

--- Declare a router: a host connected to every network of `nets`, with
-- forwarding on inside, and (unless `routes = false`) a route in every
-- other host of those networks to the router's other networks through it.
-- On IPv6 networks its interfaces forward IPv6 too, and skip duplicate
-- address detection.
-- @param name the router's name, or `{name, nets=, ips=, routes=, netns=}`
-- @tparam[opt] table o `nets` (two or more declared networks), `ips`
--   (`{net = "10.1.0.254"}` or `{net = {ip=, ip6=}}`), `routes` (boolean,
--   default true), `netns`
-- @return the topology
function T:router(name, o)
	self:_check_open("router")
	name, o = named(name, o, "router")
	check_keys(o, ROUTER_KEYS, "router " .. tostring(name))
	check_table(o.nets, "router " .. tostring(name) .. ": nets")
	if #o.nets < 2 then raise("router " .. tostring(name) .. ": nets must list two networks or more") end
	local ips = o.ips or {}
	check_table(ips, "router " .. tostring(name) .. ": ips")
	local ipv6 = false
	local on = {}
	for _, net in ipairs(o.nets) do
		ipv6 = self:_need_net(net).ipv6 or ipv6
		on[net] = true
	end
	for net in pairs(ips) do
		if not on[net] then raise(sfmt("router %s: ips names network %s, which is not in nets", name, tostring(net))) end
	end
	check_type(o.routes, "boolean", "router " .. tostring(name) .. ": routes")
	local sysctl = { ["net/ipv4/ip_forward"] = "1" }
	if ipv6 then
		sysctl["net/ipv6/conf/all/forwarding"] = "1"
		-- no duplicate address detection on the router's interfaces: while
		-- its link-local address is tentative, it cannot resolve the
		-- neighbours it forwards to (the first second of traffic is lost)
		sysctl["net/ipv6/conf/default/accept_dad"] = "0"
	end
	-- before the host is declared: a clash declares nothing
	for _, net in ipairs(o.nets) do
		self:_check_epname(name, net, self.name .. "." .. tostring(name) .. "." .. net)
	end
	self:host(name, { netns = o.netns, sysctl = sysctl })
	for _, net in ipairs(o.nets) do
		local ip = ips[net]
		if type(ip) == "table" then
			self:connect(name, net, { ip = ip.ip, ip6 = ip.ip6 })
		else
			self:connect(name, net, { ip = ip })
		end
	end
	self.routers[#self.routers + 1] = { name = name, nets = copy(o.nets), auto = o.routes ~= false, where = caller() }
	return self
end

local ROUTE_KEYS = { dst = true, via = true, dev = true }

--- Add a route inside a host.
-- @tparam string host a declared host
-- @tparam table o `dst` ("default", a prefix or an address), `via` (the
--   gateway), `dev` (an interface inside the host); via or dev or both
-- @return the topology
function T:route(host, o)
	self:_check_open("route")
	self:_need_host(host)
	check_table(o, "route")
	check_keys(o, ROUTE_KEYS, "route in " .. host)
	local dst, fam = norm_dst(o.dst)
	if not dst then raise(sfmt("route in %s: dst: %s", host, tostring(fam))) end
	if o.via == nil and o.dev == nil then raise(sfmt("route in %s to %s: via or dev expected", host, dst)) end
	check_type(o.dev, "string", sfmt("route in %s to %s: dev", host, dst))
	if o.via ~= nil then
		local ip = ipnet.parse_ip(o.via)
		if not ip then raise(sfmt("route in %s to %s: via: invalid address %s", host, dst, tostring(o.via))) end
		if fam and ip.family ~= fam then raise(sfmt("route in %s to %s: via %s is of another family", host, dst, o.via)) end
		fam = ip.family
	end
	fam = fam or 4
	local key = sfmt("%s %d %s", host, fam, dst)
	if self.routes[key] then
		raise(sfmt("route in %s to %s is declared twice (first at %s)", host, dst, self.routes[key].where))
	end
	self.routes[key] = { key = key, host = host, dst = dst, family = fam, via = o.via, dev = o.dev, where = caller() }
	self.route_order[#self.route_order + 1] = key
	return self
end

local UPLINK_KEYS = { ip = true, gateway = true, ifname = true, peer = true }

--- Wire a host straight to the machine (no bridge, no brisk network): a
-- veth pair with `gateway` on the machine's side and `ip` on the host's,
-- and the host's default route through the gateway. An outside client of
-- published ports, for example.
-- @tparam string host a declared host
-- @tparam table o `ip` (CIDR, the host's side), `gateway` (address, the
--   machine's side, inside ip's prefix), `ifname` (the machine's side;
--   default "up-" .. host), `peer` (the host's side; default "up0")
-- @return the topology
function T:uplink(host, o)
	self:_check_open("uplink")
	local h = self:_need_host(host)
	check_table(o, "uplink")
	check_keys(o, UPLINK_KEYS, "uplink " .. host)
	if self.uplinks[host] then raise(sfmt("host %s has an uplink already (at %s)", host, self.uplinks[host].where)) end
	local ip = type(o.ip) == "string" and ipnet.parse_cidr(o.ip)
	if not ip then raise(sfmt("uplink %s: ip must be an address with a prefix length, got %s", host, tostring(o.ip))) end
	local gw = type(o.gateway) == "string" and ipnet.parse_ip(o.gateway)
	if not gw or gw.family ~= ip.family or not ipnet.contains(ipnet.network(ip), gw) then
		raise(sfmt("uplink %s: gateway must be an address inside %s, got %s", host, o.ip, tostring(o.gateway)))
	end
	local ifname, peer = o.ifname or ("up-" .. h.name), o.peer or "up0"
	for _, n in ipairs{ ifname, peer } do
		if type(n) ~= "string" or #n > 15 or not n:match(NAME) then
			raise(sfmt("uplink %s: invalid interface name '%s' (1..15 bytes; give ifname=)", host, tostring(n)))
		end
	end
	self.uplinks[host] = { host = host, spec = { ip = o.ip, gateway = o.gateway, ifname = ifname, peer = peer },
		ifname = ifname, where = caller() }
	self.uplink_order[#self.uplink_order + 1] = host
	return self
end

---------------------------------------------------------------------------
-- The record
---------------------------------------------------------------------------

function T:_load()
	local rec, _, code = self.driver.store:get("topology", self.name)
	if not rec then
		if code ~= "notfound" then raise(sfmt("topology %s: cannot read its record", self.name)) end
		rec = empty_record(self.name, self.script)
	end
	for _, b in ipairs(BUCKETS) do rec[b] = rec[b] or {} end
	self.rec = rec
	return rec
end

function T:_save()
	local rec = self.rec
	local st = self.driver.store
	if empty(rec) then
		if rec.dbIndex then
			local ok, msg, code = st:delete("topology", self.name, rec.dbIndex)
			if not ok and code ~= "notfound" then raise(sfmt("topology %s: record: %s", self.name, msg)) end
			rec.dbIndex = nil
		end
		return
	end
	if not rec.created_at then rec.created_at = os.date("!%Y-%m-%dT%H:%M:%SZ") end
	local ok, msg = st:put("topology", rec)
	if not ok then raise(sfmt("topology %s: record: %s", self.name, msg)) end
end

-- A handle inside a namespace, opened once per up/down (nil when missing).
function T:_h(netns)
	local h = self.handles[netns]
	if h then return h end
	if not core.netns_exists(netns) then return nil end
	h = core.open(netns)
	self.handles[netns] = h
	return h
end

function T:_close_handles()
	for k, h in pairs(self.handles) do
		h:close()
		self.handles[k] = nil
	end
end

---------------------------------------------------------------------------
-- up: classify every declared object, record the intents, then act
---------------------------------------------------------------------------

function T:_classify_network(n)
	local d = self.driver
	local r = self.rec.networks[n.name]
	local stored = d:network(n.name)
	local a = { bucket = "networks", key = n.name, decl = n, entry = { spec = n.spec }, net = stored }
	if r then
		if not equal(r.spec, n.spec) then
			raise(sfmt("network %s: topology %s made it from another definition; remove the topology (brisk down) to change it",
				n.name, self.name), n.where)
		end
		if stored and r.id and stored.id ~= r.id then
			-- removed and made again by hand under the same name
			raise(sfmt("network %s exists and is not part of topology %s (made by hand, or by another topology)",
				n.name, self.name), n.where)
		end
		if not stored then a.action = "create"
		elseif not d.h:link_get(stored.bridge) then a.action, a.why = "repair", "its bridge was missing"
		else a.action = "ok" end
		return a
	end
	if stored then
		raise(sfmt("network %s exists and is not part of topology %s (made by hand, or by another topology)",
			n.name, self.name), n.where)
	end
	a.action = "create"
	return a
end

function T:_classify_host(h)
	local r = self.rec.hosts[h.name]
	local exists = core.netns_exists(h.netns)
	local a = { bucket = "hosts", key = h.name, decl = h,
		entry = { netns = h.netns, adopted = h.adopt or nil, sysctl_old = r and r.sysctl_old or nil } }
	if r then
		if r.netns ~= h.netns or (r.adopted == true) ~= h.adopt then
			raise(sfmt("host %s: topology %s made it another way (netns %s%s); remove the topology (brisk down) to change it",
				h.name, self.name, r.netns, r.adopted and ", adopted" or ""), h.where)
		end
		if exists then a.action = "ok"
		elseif r.adopted then
			raise(sfmt("host %s: its namespace %s is gone, and the topology did not make it", h.name, h.netns), h.where)
		else a.action, a.why = "repair", "its namespace was missing" end
		return a
	end
	if exists then
		if not h.adopt then
			raise(sfmt("host %s: namespace %s exists and is not part of topology %s (made by hand?); "
				.. "choose another name, or give adopt = true to use it", h.name, h.netns, self.name), h.where)
		end
		a.action = "adopt"
	else
		a.action = "create"
	end
	return a
end

-- Whether the host's default route (of the uplink's family) is the uplink's.
local function uplink_default(hs, sp)
	local fam = ipnet.parse_ip(sp.gateway).family == 6 and "inet6" or "inet"
	for _, x in ipairs(hs:route_list{ family = fam } or {}) do
		if x.dst == "default" and x.type == nil then return same_ip(x.gateway, sp.gateway) and x.dev == sp.peer end
	end
	return false
end

function T:_classify_uplink(u)
	local d = self.driver
	local h = self.hosts[u.host]
	local r = self.rec.uplinks[u.host]
	local l = d.h:link_get(u.ifname)
	local a = { bucket = "uplinks", key = u.host, decl = u, entry = { netns = h.netns, spec = u.spec } }
	if r then
		local hs = self:_h(h.netns)
		local healthy = l and hs and hs:link_get(u.spec.peer) and equal(r.spec, u.spec)
		a.action = healthy and "ok" or (l and "replace" or "create")
		-- an endpoint made before the uplink has the default route, or one set by hand
		if healthy and not uplink_default(hs, u.spec) then
			a.action, a.why, a.route_only = "repair", "the host's default route was not the uplink's", true
		end
		return a
	end
	if l then
		raise(sfmt("uplink %s: link %s exists and is not part of topology %s", u.host, u.ifname, self.name), u.where)
	end
	a.action = "create"
	return a
end

function T:_ep_healthy(ep, h)
	local hl = self.driver.h:link_get(ep.host_ifname)
	if not hl or hl.master ~= ep.bridge then return false end
	local hs = self:_h(h.netns)
	return hs ~= nil and hs:link_get(ep.ifname) ~= nil
end

function T:_classify_link(l)
	local d = self.driver
	local r = self.rec.endpoints[l.key]
	local ep = d:endpoint(l.epname)
	local a = { bucket = "endpoints", key = l.key, decl = l, old = ep,
		entry = { name = l.epname, host = l.host, net = l.net, spec = l.spec } }
	if r and ep and r.id and ep.id ~= r.id then
		-- removed and made again by hand under the same name
		r = nil
	end
	if r then
		if not ep then a.action = "create"
		elseif not equal(r.spec, l.spec) or ep.network_name ~= l.net then a.action, a.why = "replace", "changed"
		elseif not self:_ep_healthy(ep, self.hosts[l.host]) then a.action, a.why = "replace", "it was broken"
		else a.action = "ok" end
		return a
	end
	if ep then
		raise(sfmt("connect %s to %s: endpoint %s exists and is not part of topology %s", l.host, l.net, l.epname,
			self.name), l.where)
	end
	a.action = "create"
	return a
end

local function ep_text(ep)
	local t = { sfmt("%s %s", ep.ifname, ep.ipv4) }
	if ep.ipv6 then t[#t + 1] = ep.ipv6 end
	t[#t + 1] = "mac " .. ep.mac
	-- a port published on both families is one binding per family: said once
	local said = {}
	for _, p in ipairs(ep.ports or {}) do
		local s = sfmt("port %s%d->%d/%s", p.host_ip and (p.host_ip .. ":") or "", p.host_port,
			p.container_port, p.proto)
		if not said[s] then
			said[s] = true
			t[#t + 1] = s
		end
	end
	return concat(t, ", ")
end

local function net_text(net)
	local t = { "bridge " .. net.bridge, net.subnet4 .. " (gateway " .. net.gateway4 .. ")" }
	if net.subnet6 then t[#t + 1] = net.subnet6 .. " (gateway " .. tostring(net.gateway6) .. ")" end
	return concat(t, ", ")
end

-- Note that this run made something (for rollback and for `keep`).
function T:_made(st, bucket, key, how)
	st.made[#st.made + 1] = { bucket = bucket, key = key }
	self.run_made[bucket .. "\0" .. key] = true
	if how == "create" then st.created = st.created + 1 else st.changed = st.changed + 1 end
end

local MARK = { create = "+", adopt = "+", replace = "~", repair = "~" }

local function why(a)
	return a.why and (" (" .. a.why .. ")") or ""
end

function T:_act(a, st)
	local d = self.driver
	local decl = a.decl
	local mark = MARK[a.action]
	if a.bucket == "networks" then
		if a.action == "repair" then
			for key, e in pairs(self.rec.endpoints) do
				if e.net == decl.name then
					local ok, msg, err = d:delete_endpoint(e.name)
					if not ok and err ~= errno.ENOENT then raise(msg, decl.where) end
					self.eps[key] = nil
				end
			end
			local ok, msg = d:delete_network(decl.name)
			if not ok then raise(msg, decl.where) end
		end
		local net, msg = d:create_network(copy(decl.spec))
		if not net then raise(msg, decl.where) end
		self:_made(st, "networks", decl.name, a.action)
		-- its id: a network made again by hand under its name is not the topology's
		self.rec.networks[decl.name].id = net.id
		st.dirty = true
		self.netrecs[decl.name] = net
		self:_say("%s network %s: %s%s", mark, decl.name, net_text(net), why(a))
	elseif a.bucket == "hosts" then
		if a.action ~= "adopt" then
			local ok, msg = core.netns_add(decl.netns)
			if not ok then raise(msg, decl.where) end
			self:_made(st, "hosts", decl.name, a.action)
			local hs = self:_h(decl.netns)
			local up, umsg = hs and hs:link_set{ dev = "lo", up = true }
			if not up then raise(sfmt("host %s: lo up: %s", decl.name, tostring(umsg)), decl.where) end
			self:_say("%s host %s: netns %s%s", mark, decl.name, decl.netns, why(a))
		else
			self:_made(st, "hosts", decl.name, "create")
			self:_say("+ host %s: adopted netns %s (made by hand: left in place)", decl.name, decl.netns)
		end
	elseif a.bucket == "uplinks" then
		local sp, netns = decl.spec, self.hosts[decl.host].netns
		local hs = self:_h(netns)
		if a.route_only then
			local ok, msg = hs:route_replace{ dst = "default", gateway = sp.gateway, dev = sp.peer }
			if not ok then raise(sfmt("uplink %s: %s", decl.host, tostring(msg)), decl.where) end
			st.changed = st.changed + 1
			self:_say("~ uplink %s: default route via %s%s", decl.host, sp.gateway, why(a))
			return
		end
		if a.action == "replace" then d.h:link_del(decl.ifname) end
		local ok, msg = d.h:link_add{ ifname = decl.ifname, kind = "veth", peer = { ifname = sp.peer, netns = netns } }
		if not ok then raise(msg, decl.where) end
		self:_made(st, "uplinks", decl.host, a.action)
		local plen = ipnet.parse_cidr(sp.ip).plen
		local steps = {
			function() return d.h:addr_add{ dev = decl.ifname, address = sp.gateway .. "/" .. plen } end,
			function() return d.h:link_set{ dev = decl.ifname, up = true } end,
			function() return hs:addr_add{ dev = sp.peer, address = sp.ip } end,
			function() return hs:link_set{ dev = sp.peer, up = true } end,
			function() return hs:link_set{ dev = "lo", up = true } end,
		}
		for _, f in ipairs(steps) do
			local sok, smsg = f()
			if not sok then raise(sfmt("uplink %s: %s", decl.host, tostring(smsg)), decl.where) end
		end
		-- the uplink's default route replaces one through a network the host had already
		local rok, rmsg = hs:route_replace{ dst = "default", gateway = sp.gateway, dev = sp.peer }
		if not rok then raise(sfmt("uplink %s: %s", decl.host, tostring(rmsg)), decl.where) end
		self:_say("%s uplink %s: %s %s/%d <-> %s %s%s", mark, decl.host, decl.ifname, sp.gateway, plen,
			sp.peer, sp.ip, why(a))
	elseif a.bucket == "endpoints" then
		local spec = copy(decl.spec)
		if a.action == "replace" then
			local ok, msg, err = d:delete_endpoint(decl.epname)
			if not ok and err ~= errno.ENOENT then raise(msg, decl.where) end
			if a.prev then self.run_replaced[#self.run_replaced + 1] = a end
			-- a repair keeps the addresses it had, on the network it had
			local netact = st.net_action[decl.net]
			if a.old and a.why ~= "changed" and netact == "ok" then
				spec.ip = spec.ip or bare(a.old.ipv4)
				spec.ip6 = spec.ip6 or (a.old.ipv6 and self.netrecs[decl.net].subnet6 and bare(a.old.ipv6)) or nil
			end
		end
		spec.name, spec.netns = decl.epname, self.hosts[decl.host].netns
		local ep, msg = d:create_endpoint(decl.net, spec)
		if not ep then raise(sfmt("connect %s to %s: %s", decl.host, decl.net, tostring(msg)), decl.where) end
		self:_made(st, "endpoints", decl.key, a.action)
		self.rec.endpoints[decl.key].id = ep.id
		st.dirty = true
		self.eps[decl.key] = ep
		self:_say("%s %s on %s: %s%s", mark, decl.host, decl.net, ep_text(ep), why(a))
	end
end

function T:_sysctls(h, st)
	local changed = false
	local r = self.rec.hosts[h.name]
	for _, path in ipairs(sorted_keys(h.sysctl)) do
		local want = h.sysctl[path]
		local hs = self:_h(h.netns)
		if not hs then raise(sfmt("host %s: namespace %s is missing", h.name, h.netns), h.where) end
		local cur, msg = hs:sysctl_get(path)
		if not cur then raise(sfmt("host %s: %s", h.name, msg), h.where) end
		if cur ~= want then
			if h.adopt then
				r.sysctl_old = r.sysctl_old or {}
				if r.sysctl_old[path] == nil then r.sysctl_old[path] = cur end
				changed = true
			end
			local ok, smsg = hs:sysctl_set(path, want)
			if not ok then raise(sfmt("host %s: %s", h.name, smsg), h.where) end
			st.changed = st.changed + 1
			self:_say("~ host %s: %s = %s (was %s)", h.name, path, want, cur)
		end
	end
	return changed
end

-- The routes wanted: the declared ones, then the routers'.
function T:_wanted_routes()
	local list, seen = {}, {}
	for _, k in ipairs(self.route_order) do
		list[#list + 1] = self.routes[k]
		seen[k] = true
	end
	local function add(host, dst, fam, via, where, router)
		local ndst = norm_dst(dst)
		local key = sfmt("%s %d %s", host, fam, ndst)
		if seen[key] then return end
		seen[key] = true
		list[#list + 1] = { key = key, host = host, dst = ndst, family = fam, via = via, where = where, router = router }
	end
	for _, r in ipairs(self.routers) do
		if r.auto then
			for _, n in ipairs(r.nets) do
				local rep = self.eps[r.name .. "/" .. n]
				for _, host in ipairs(self.host_order) do
					local hep = self.eps[host .. "/" .. n]
					if host ~= r.name and hep then
						for _, m in ipairs(r.nets) do
							local mnet = self.netrecs[m]
							if m ~= n and not self.links[host .. "/" .. m] then
								add(host, mnet.subnet4, 4, bare(rep.ipv4), r.where, r.name)
								if mnet.subnet6 and rep.ipv6 and hep.ipv6 then
									add(host, mnet.subnet6, 6, bare(rep.ipv6), r.where, r.name)
								end
							end
						end
					end
				end
			end
		end
	end
	return list
end

function T:_ensure_route(rt, st)
	local h = self.hosts[rt.host]
	local hs = self:_h(h.netns)
	if not hs then raise(sfmt("route in %s: namespace %s is missing", rt.host, h.netns), rt.where) end
	local fam = rt.family == 6 and "inet6" or "inet"
	local list, msg = hs:route_list{ family = fam }
	if not list then raise(sfmt("route in %s: %s", rt.host, msg), rt.where) end
	local cur
	for _, x in ipairs(list) do
		if x.dst == rt.dst and x.type == nil then cur = x; break end
	end
	local recorded = self.rec.routes[rt.key]
	local entry = { host = rt.host, netns = h.netns, dst = rt.dst, family = rt.family, via = rt.via, dev = rt.dev }
	local spec = { dst = rt.dst, gateway = rt.via, dev = rt.dev, family = fam }
	local text = sfmt("route in %s: %s%s%s%s", rt.host, rt.dst, rt.via and (" via " .. rt.via) or "",
		rt.dev and (" dev " .. rt.dev) or "", rt.router and (" (router " .. rt.router .. ")") or "")
	if cur and same_ip(cur.gateway, rt.via) and (rt.dev == nil or cur.dev == rt.dev) then
		st.unchanged = st.unchanged + 1
		if not recorded and not h.adopt then self.rec.routes[rt.key] = entry; return true end
		return false
	end
	if cur then
		if not recorded and h.adopt then
			raise(sfmt("route in %s: the host has a route to %s already (not made by topology %s)", rt.host, rt.dst,
				self.name), rt.where)
		end
		local ok, rmsg = hs:route_replace(spec)
		if not ok then raise(rmsg, rt.where) end
		st.changed = st.changed + 1
		self:_say("~ %s", text)
	else
		local ok, rmsg = hs:route_add(spec)
		if not ok then raise(rmsg, rt.where) end
		st.created = st.created + 1
		self:_say("+ %s", text)
	end
	self.rec.routes[rt.key] = entry
	st.made[#st.made + 1] = { bucket = "routes", key = rt.key }
	self.run_made["routes\0" .. rt.key] = true
	return true
end

-- The record's owner when it is not this topology's script (nil when it
-- is, or when the record is empty).
function T:_other_owner(rec)
	if empty(rec) or M.same_script(rec.script, self.script) then return nil end
	return owner_text(rec.script)
end

function T:_apply(st)
	local rec = self:_load()
	local other = self:_other_owner(rec)
	if other and not self.takeover then
		raise(sfmt("topology %s belongs to %s, not to %s: choose another name, remove it (brisk down %s), "
			.. "or give topo.new takeover = true", self.name, other, owner_text(self.script), self.name))
	end
	-- the record names this script (absolute) and its arguments
	if rec.script ~= self.script or not equal(rec.args, self.args) then
		rec.script, rec.args = self.script, self.args
		st.dirty = true
	end
	local plan = {}
	st.net_action = {}
	for _, name in ipairs(self.net_order) do
		local a = self:_classify_network(self.nets[name])
		st.net_action[name] = a.action
		plan[#plan + 1] = a
	end
	for _, name in ipairs(self.host_order) do plan[#plan + 1] = self:_classify_host(self.hosts[name]) end
	for _, name in ipairs(self.uplink_order) do plan[#plan + 1] = self:_classify_uplink(self.uplinks[name]) end
	for _, key in ipairs(self.link_order) do plan[#plan + 1] = self:_classify_link(self.links[key]) end

	-- the intents go into the record before anything is made
	local dirty = false
	for _, a in ipairs(plan) do
		if a.action ~= "ok" then
			if not rec[a.bucket][a.key] then st.intents[#st.intents + 1] = a end
			-- what a replaced endpoint was: a rollback makes it again
			if a.action == "replace" and a.bucket == "endpoints" then a.prev = rec[a.bucket][a.key] end
			rec[a.bucket][a.key] = a.entry
			dirty = true
		end
	end
	if dirty then self:_save() end

	-- progress on a terminal (a bar on stderr), nothing when piped
	local todo = 0
	for _, a in ipairs(plan) do if a.action ~= "ok" then todo = todo + 1 end end
	local progress <close> = require("brisk.cli").progress(todo > 20 and todo or 0, "up " .. self.name,
		{ tty = todo > 20 and nil or false })
	for _, a in ipairs(plan) do
		if a.action ~= "ok" then progress:step(a.key) end
		if a.action == "ok" then
			st.unchanged = st.unchanged + 1
			if a.bucket == "networks" then self.netrecs[a.key] = a.net end
			if a.bucket == "endpoints" then self.eps[a.key] = a.old end
		else
			self:_act(a, st)
		end
		if a.bucket == "hosts" then
			if self:_sysctls(a.decl, st) then dirty = true end
		end
	end

	for _, rt in ipairs(self:_wanted_routes()) do
		if self:_ensure_route(rt, st) then dirty = true end
	end

	-- what the record holds and the script no longer declares
	local wanted = { networks = self.nets, hosts = self.hosts, uplinks = self.uplinks, endpoints = self.links }
	local routes = {}
	for _, rt in ipairs(self:_wanted_routes()) do routes[rt.key] = true end
	wanted.routes = routes
	for _, b in ipairs(BUCKETS) do
		for _, key in ipairs(sorted_keys(rec[b])) do
			if not wanted[b][key] then st.stale[#st.stale + 1] = b:sub(1, -2) .. " " .. key end
		end
	end
	if dirty or st.dirty then self:_save() end
end

--- Make the kernel agree with the declarations: create what is missing,
-- remake what is broken, leave alone what matches. Prints one line per
-- change and a summary ("nothing to do" when nothing changed).
-- @return summary `{created=n, changed=n, unchanged=n, stale={...},
--   seconds=s}`; raises on failure (naming the line that declared the
--   object that failed), after removing what this call made
function T:up()
	self:_check_open("up")
	local t0 = M.clock()
	local st = { made = {}, intents = {}, stale = {}, created = 0, changed = 0, unchanged = 0 }
	local ok, err = self.driver.store:transaction(function()
		local aok, aerr = pcall(self._apply, self, st)
		if not aok then
			local errs = self:_undo(st)
			if #errs > 0 then aerr = tostring(aerr) .. "; rollback failed: " .. concat(errs, "; ") end
		end
		self:_close_handles()
		return aok, aerr
	end)
	if not ok then
		if err == nil then raise("topology " .. self.name .. ": store transaction failed") end
		error(err, 0)
	end
	self.upped = true
	local secs = M.clock() - t0
	local changes = st.created + st.changed
	if changes == 0 then
		self:_emit(sfmt("topology %s: nothing to do (%s up to date, %.2f s)", self.name,
			plural(st.unchanged, "object"), secs))
	else
		local parts = {}
		if st.created > 0 then parts[#parts + 1] = st.created .. " created" end
		if st.changed > 0 then parts[#parts + 1] = st.changed .. " changed" end
		if st.unchanged > 0 then parts[#parts + 1] = st.unchanged .. " unchanged" end
		self:_emit(sfmt("topology %s: up: %s (%.2f s)", self.name, concat(parts, ", "), secs))
	end
	if #st.stale > 0 then
		self:_emit(sfmt("topology %s: recorded but no longer declared (brisk down removes them): %s", self.name,
			concat(st.stale, ", ")))
	end
	return { created = st.created, changed = st.changed, unchanged = st.unchanged, stale = st.stale, seconds = secs }
end

---------------------------------------------------------------------------
-- Removal
---------------------------------------------------------------------------

local GONE = { [errno.ENOENT] = true, [errno.ENODEV] = true, [errno.ESRCH] = true }

-- A network or endpoint whose recorded id is not the one of that name.
local REMADE = "it was re-created outside the topology: left in place"

-- Remove one recorded object; returns true, or nil, msg and whether the
-- record forgets it anyway (the topology's object is gone: what has its
-- name now is someone else's).
function T:_remove(bucket, key, e)
	local d = self.driver
	if bucket == "networks" then
		local cur = e.id and d:network(key)
		if cur and cur.id ~= e.id then return nil, REMADE, true end
		local ok, msg, err = d:delete_network(key)
		if not ok and not GONE[err] then return nil, msg end
	elseif bucket == "hosts" then
		local h = self.handles[e.netns]
		if h then h:close(); self.handles[e.netns] = nil end
		if e.adopted then
			local hs = core.netns_exists(e.netns) and core.open(e.netns)
			for _, path in ipairs(sorted_keys(e.sysctl_old or {})) do
				if hs then hs:sysctl_set(path, e.sysctl_old[path]) end
			end
			if hs then hs:close() end
		else
			local ok, msg, err = core.netns_del(e.netns)
			if not ok and not GONE[err] then return nil, msg end
		end
	elseif bucket == "endpoints" then
		local cur = e.id and d:endpoint(e.name)
		if cur and cur.id ~= e.id then return nil, REMADE, true end
		local ok, msg, err = d:delete_endpoint(e.name)
		if not ok and not GONE[err] then return nil, msg end
	elseif bucket == "uplinks" then
		local ok, msg, err = d.h:link_del(e.spec.ifname)
		if not ok and not GONE[err] then return nil, msg end
	elseif bucket == "routes" then
		if core.netns_exists(e.netns) then
			local hs = core.open(e.netns)
			if hs then
				local ok, msg, err = hs:route_del{ dst = e.dst, gateway = e.via, dev = e.dev,
					family = e.family == 6 and "inet6" or "inet" }
				hs:close()
				if not ok and not GONE[err] then return nil, msg end
			end
		end
	end
	return true
end

-- Removal order: routes and uplinks first, then the namespaces (their
-- veths go with them, which is faster than deleting them one by one), the
-- endpoints' records and rules, the networks last.
local REMOVE_ORDER = { "routes", "uplinks", "hosts", "endpoints", "networks" }

local function label(bucket, key)
	if bucket == "endpoints" then return (key:gsub("/", " on ", 1)) end
	return bucket:sub(1, -2) .. " " .. key
end

-- The namespaces the topology made and is to remove (pick as for
-- _teardown) that hold endpoints it did not make: host -> their names.
-- Removing one would take their veths, leaving their records dangling.
function T:_blocked_hosts(pick)
	local rec, blocked = self.rec, {}
	local hosts = {}
	for key, e in pairs(rec.hosts) do
		if not e.adopted and (not pick or pick("hosts", key)) then hosts[e.netns] = key end
	end
	if next(hosts) == nil then return blocked end
	local mine = {}
	for _, e in pairs(rec.endpoints) do mine[e.name] = e.id or true end
	local eps, msg = self.driver:endpoints()
	if not eps then raise(sfmt("topology %s: %s", self.name, tostring(msg))) end
	for _, ep in ipairs(eps) do
		local netns = type(ep.netns) == "string" and ep.netns:gsub("^/run/netns/", "") or nil
		local key = netns and hosts[netns]
		local id = mine[ep.name]
		if key and (id == nil or (id ~= true and id ~= ep.id)) then
			blocked[key] = blocked[key] or {}
			blocked[key][#blocked[key] + 1] = ep.name
		end
	end
	for _, names in pairs(blocked) do table.sort(names) end
	return blocked
end

-- Remove the recorded objects `pick(bucket, key)` selects (all when nil);
-- returns the number removed and the failures.
function T:_teardown(pick)
	local rec = self.rec
	local removed, errs, forgot = 0, {}, false
	local blocked = self:_blocked_hosts(pick)
	for _, b in ipairs(REMOVE_ORDER) do
		for _, key in ipairs(sorted_keys(rec[b])) do
			if not pick or pick(b, key) then
				local e = rec[b][key]
				-- routes die with a namespace the topology made and removes now
				local host = b == "routes" and rec.hosts[e.host]
				local skip = host and not host.adopted and (not pick or pick("hosts", e.host)) and not blocked[e.host]
				local ok, msg, forget = true, nil, false
				if b == "hosts" and blocked[key] then
					ok, msg = nil, sfmt("namespace %s holds endpoints topology %s did not make (%s): left in place",
						e.netns, self.name, concat(blocked[key], ", "))
				elseif not skip then
					ok, msg, forget = self:_remove(b, key, e)
				end
				if ok then
					rec[b][key] = nil
					removed = removed + 1
					if b ~= "routes" then self:_say("- %s", label(b, key)) end
				else
					errs[#errs + 1] = label(b, key) .. ": " .. tostring(msg)
					if forget then
						rec[b][key] = nil
						forgot = true
					end
				end
			end
		end
	end
	if removed > 0 or forgot then self:_save() end
	return removed, errs
end

-- Roll back a failed up: remove what it made, forget its intents.
function T:_undo(st)
	local made = {}
	for _, m in ipairs(st.made) do made[m.bucket .. "\0" .. m.key] = true end
	local ok, removed, errs = pcall(self._teardown, self, function(b, key) return made[b .. "\0" .. key] end)
	if not ok then return { tostring(removed) } end
	local forgot = false
	for _, a in ipairs(st.intents) do
		if not made[a.bucket .. "\0" .. a.key] then
			self.rec[a.bucket][a.key] = nil
			forgot = true
		end
	end
	for k in pairs(made) do self.run_made[k] = nil end
	if forgot then
		local sok, serr = pcall(self._save, self)
		if not sok then errs[#errs + 1] = tostring(serr) end
	end
	if removed > 0 then self:_say("topology %s: rolled back %s", self.name, plural(removed, "object")) end
	for _, e in ipairs(self:_restore_replaced()) do errs[#errs + 1] = e end
	return errs
end

-- Make again, as they were, the endpoints this run replaced (deleted to
-- create them anew) and then rolled back: a failed or rolled-back run
-- leaves the topology as it found it, not without them. Their addresses
-- and MAC are the old ones. Returns the failures.
function T:_restore_replaced()
	local errs, d = {}, self.driver
	for i = #self.run_replaced, 1, -1 do
		local a = self.run_replaced[i]
		self.run_replaced[i] = nil
		local prev, old, decl = a.prev, a.old, a.decl
		-- (the new one rolled back, or never made: the replacement's own
		-- create failed, its record entry still the new declaration)
		if not d:endpoint(decl.epname) then
			local h = self.rec.hosts[prev.host]
			local spec = copy(prev.spec or {})
			spec.name, spec.netns = prev.name or decl.epname, h and h.netns or self.hosts[prev.host].netns
			if old then
				spec.ip = spec.ip or (old.ipv4 and bare(old.ipv4)) or nil
				spec.ip6 = spec.ip6 or (old.ipv6 and bare(old.ipv6)) or nil
				spec.mac = spec.mac or old.mac
			end
			local ep, msg = nil, "its namespace " .. tostring(spec.netns) .. " is gone"
			if core.netns_exists(spec.netns) then ep, msg = d:create_endpoint(prev.net, spec) end
			-- the record says what the topology had (a next run makes it
			-- when this could not)
			local e = copy(prev)
			if ep then
				e.id = ep.id
				self.eps[a.key] = ep
				self:_say("~ %s on %s: made again as it was (%s)", prev.host, prev.net, ep_text(ep))
			else
				errs[#errs + 1] = sfmt("%s on %s: cannot make it again as it was: %s", prev.host, prev.net,
					tostring(msg))
			end
			self.rec.endpoints[a.key] = e
			local sok, serr = pcall(self._save, self)
			if not sok then errs[#errs + 1] = tostring(serr) end
		end
	end
	return errs
end

-- Stop the processes spawn started: SIGTERM to all, then one grace period
-- for all of them (see Proc:kill).
function T:_kill_procs()
	for i = #self.procs, 1, -1 do self.procs[i]:_term() end
	local deadline = M.clock() + GRACE
	for i = #self.procs, 1, -1 do
		self.procs[i]:_reap(deadline)
		self.procs[i] = nil
	end
end

-- Tear down (pick as for _teardown) under the store lock; the summary.
-- `tell_empty`: say so when there was nothing to remove. `guard`: what to
-- do when the record belongs to another script: "raise", or "leave" (say
-- so on stderr); nil: remove it all the same (topo.down by name).
function T:_down(pick, verb, tell_empty, guard)
	local t0 = M.clock()
	self:_kill_procs()
	local res
	local ok, err = self.driver.store:transaction(function()
		local rok, rerr = pcall(function()
			local other = guard and self:_other_owner(self:_load())
			if other then
				local msg = sfmt("topology %s belongs to %s, not to %s: left in place (brisk down %s removes it)",
					self.name, other, owner_text(self.script), self.name)
				if guard == "raise" then raise("down: " .. msg) end
				io.stderr:write("brisk: ", msg, "\n")
				res = { removed = 0, errors = {}, left = true }
				return
			end
			if not guard then self:_load() end
			local removed, errs = self:_teardown(pick)
			res = { removed = removed, errors = errs }
		end)
		self:_close_handles()
		return rok, rerr
	end)
	if not ok then error(err or ("topology " .. self.name .. ": store transaction failed"), 0) end
	self.eps, self.netrecs, self.upped = {}, {}, false
	res.seconds = M.clock() - t0
	if #res.errors > 0 then
		self:_emit(sfmt("topology %s: %s: %s, %d could not be removed: %s", self.name, verb,
			plural(res.removed, "object") .. " removed", #res.errors, concat(res.errors, "; ")))
	elseif res.removed > 0 then
		self:_emit(sfmt("topology %s: %s: %s removed (%.2f s)", self.name, verb, plural(res.removed, "object"),
			res.seconds))
	elseif tell_empty and not res.left then
		self:_emit(sfmt("topology %s: nothing to remove", self.name))
	end
	return res
end

--- Remove everything the topology made (recorded in this run or earlier),
-- and kill the processes `spawn` started. What was adopted stays; what was
-- made by hand is never touched. A topology recorded by another script (or
-- interactively) is not removed: that raises (`brisk down NAME` removes it).
-- @return summary `{removed=n, errors={msg...}, seconds=s}`
function T:down()
	self:_check_open("down")
	return self:_down(nil, "down", true, "raise")
end

--- Close the topology (what a `<close>` variable does at the end of its
-- scope): kill the spawned processes, then tear down everything, or, with
-- `keep`, nothing unless `err` is given, in which case what this run made.
-- A topology recorded by another script is left, which it says on stderr.
-- Never raises: failures are written to stderr. Harmless twice.
-- @param[opt] err the error that is ending the scope
function T:close(err)
	if self.closed then return end
	local ok, e = pcall(function()
		if not self.keep then
			self:_down(nil, "down", false, "leave")
		elseif err ~= nil then
			local made = self.run_made
			if next(made) ~= nil then
				self:_down(function(b, key) return made[b .. "\0" .. key] end, "rolled back after an error", false,
					"leave")
				for _, m in ipairs(self:_restore_replaced()) do
					io.stderr:write("brisk: topology ", self.name, ": ", m, "\n")
				end
			else
				self:_kill_procs()
			end
		else
			self:_kill_procs()
		end
	end)
	if not ok then io.stderr:write("brisk: topology ", self.name, ": teardown failed: ", tostring(e), "\n") end
	self:_close_handles()
	self.driver:close()
	self.closed = true
end

T.__close = function(t, err) t:close(err) end

--- Remove a recorded topology by name, without its script.
-- @tparam string name
-- @tparam[opt] table o `state_dir`, `quiet`, `log`, `firewall`, `userland_proxy`
-- @return summary `{removed=n, errors={...}, seconds=s}`
function M.down(name, o)
	o = o or {}
	check_name(name, "topo.down", 32)
	local d, msg = driver.open{ state_dir = o.state_dir or default_state_dir(), firewall = o.firewall,
		userland_proxy = o.userland_proxy }
	if not d then raise("topology " .. name .. ": " .. tostring(msg)) end
	local t = setmetatable({ name = name, driver = d, quiet = o.quiet == true, log = o.log, procs = {},
		handles = {}, run_made = {}, run_replaced = {}, eps = {}, netrecs = {} }, T)
	local ok, res = pcall(t._down, t, nil, "down", true)
	d:close()
	if not ok then error(res, 0) end
	return res
end

--- The recorded topologies, and those a script made (`brisk down SCRIPT
-- [ARGS]`), read from the records without running anything.
-- @tparam[opt] string script a script's path (relative: from the working
--   directory); nil: no selection
-- @tparam[opt] table args the script's arguments (strings): only the
--   topologies it made when run with exactly these; nil: whatever they were
-- @tparam[opt] table o `state_dir`
-- @return the names of the topologies `script` made (sorted), and every
--   record as `{name=, script=, args=}` (sorted by name)
function M.recorded(script, args, o)
	o = o or {}
	local d, msg = driver.open{ state_dir = o.state_dir or default_state_dir(), firewall = false }
	if not d then raise(tostring(msg)) end
	local recs, lmsg = d.store:list("topology")
	d:close()
	if not recs then raise(tostring(lmsg)) end
	local path = script and M.script_path(script)
	local names, all = {}, {}
	for _, r in ipairs(recs) do
		local name = r.name or r.id
		all[#all + 1] = { name = name, script = r.script, args = r.args }
		if path and M.same_script(r.script, path) and (args == nil or equal(r.args, args)) then
			names[#names + 1] = name
		end
	end
	table.sort(names)
	table.sort(all, function(a, b) return a.name < b.name end)
	return names, all
end

---------------------------------------------------------------------------
-- Using a topology that is up
---------------------------------------------------------------------------

function T:_need_up(what)
	self:_check_open(what)
	if not self.upped then raise(sfmt("%s: topology %s is not up (call t:up() first)", what, self.name)) end
end

--- A network's record (bridge, subnet4, gateway4, ...), as the driver keeps it.
function T:net(name)
	self:_need_up("net")
	self:_need_net(name)
	return copy(self.netrecs[name])
end

-- The endpoint of host on net (net defaults to the host's first).
function T:_ep(host, net, what)
	self:_need_host(host)
	if net == nil then
		for _, key in ipairs(self.link_order) do
			if self.links[key].host == host then net = self.links[key].net; break end
		end
		if net == nil then raise(sfmt("%s: host %s is connected to no network", what, host)) end
	end
	local ep = self.eps[host .. "/" .. net]
	if not ep then raise(sfmt("%s: host %s is not connected to network %s", what, host, tostring(net))) end
	return ep
end

--- An endpoint's record (ifname, ipv4, ipv6, mac, host_ifname, ports, ...).
-- @tparam string host
-- @tparam[opt] string net default the host's first network
function T:endpoint(host, net)
	self:_need_up("endpoint")
	return copy(self:_ep(host, net, "endpoint"))
end

--- A host's address (without prefix length) on a network.
-- @tparam string host
-- @tparam[opt] string net default the host's first network
-- @tparam[opt=4] integer family 4 or 6
-- @return the address, or nil when the endpoint has none of that family
function T:ip(host, net, family)
	self:_need_up("ip")
	local ep = self:_ep(host, net, "ip")
	return bare(family == 6 and ep.ipv6 or ep.ipv4)
end

-- The address to reach `to` (a host or an address) from host `from`.
function T:_target(from, to, family, what)
	if not self.hosts[to] then
		if ipnet.parse_ip(to) then return to end
		unknown("host", to, self.hosts)
	end
	for _, key in ipairs(self.link_order) do
		local l = self.links[key]
		if l.host == from and self.links[to .. "/" .. l.net] then
			local ip = self:ip(to, l.net, family)
			if ip then return ip end
		end
	end
	local ip = self:ip(to, nil, family)
	if not ip then raise(sfmt("%s: host %s has no IPv%d address", what, to, family or 4)) end
	return ip
end

--- Run a shell command inside a host; its output is captured.
-- @tparam string host
-- @param cmd a shell command string, or an argv table (quoted for you)
-- @return ok (boolean), output (stdout and stderr)
function T:run(host, cmd)
	self:_check_open("run")
	local h = self:_need_host(host)
	cmd = command(cmd, "run")
	local ok, out = core.netns_run(h.netns, function()
		local p = assert(io.popen(cmd .. " 2>&1", "r"))
		local text = p:read("a")
		return p:close() == true, text
	end)
	if ok == nil then return false, tostring(out) end
	return ok, out
end

--- Ping from a host, printing ping's output (unless `quiet`).
-- @tparam string from a host
-- @tparam string to a host (its address on a network both share, else its
--   first) or an address
-- @tparam[opt] table o `count` (default 3), `family` (4 or 6), `quiet`
-- @return true when the replies came back
function T:ping(from, to, o)
	self:_need_up("ping")
	o = o or {}
	check_table(o, "ping")
	check_keys(o, { count = true, family = true, quiet = true }, "ping")
	local h = self:_need_host(from)
	local ip = self:_target(from, to, o.family, "ping")
	local cmd = sfmt("ping %s-c %d -i 0.2 -W 1 %s", (o.family == 6 or ip:find(":")) and "-6 " or "",
		o.count or 3, ip)
	if o.quiet then
		local ok = self:run(from, cmd)
		return ok
	end
	self:_emit(sfmt("$ %s: %s", from, cmd))
	io.stdout:flush()
	-- through a pipe, not os.execute: system() ignores SIGINT while it
	-- waits, so a Ctrl-C would end ping and be lost to the script
	local p = core.netns_run(h.netns, io.popen, cmd, "r")
	if not p then return false end
	for line in p:lines() do
		io.stdout:write(line, "\n")
		io.stdout:flush()
	end
	return p:close() == true
end

--- Start a command inside a host in the background, in a process group
-- of its own; the group is killed at teardown (down, close) if it is still
-- running: SIGTERM, and SIGKILL for what is left of it 2 s later.
-- @tparam string host
-- @param cmd a shell command string or an argv table
-- @return a process: `p.pid` (also the group's id), `p:read(...)` (its
--   stdout), `p:kill()`
function T:spawn(host, cmd)
	self:_check_open("spawn")
	local h = self:_need_host(host)
	cmd = command(cmd, "spawn")
	local p, msg = core.netns_run(h.netns, io.popen, "echo $$; exec setsid sh -c " .. quote(cmd) .. " </dev/null", "r")
	if not p then raise(sfmt("spawn in %s: %s", host, tostring(msg))) end
	local pid = tonumber(p:read("l"))
	local proc = setmetatable({ pid = pid, host = host, p = p }, Proc)
	self.procs[#self.procs + 1] = proc
	return proc
end

--- Read the process's standard output (as file:read).
function Proc:read(...)
	return self.p:read(...)
end

-- Send SIGTERM to the process's group (once).
function Proc:_term()
	if self.termed or self.done then return end
	self.termed = true
	if self.pid then sh(sfmt("kill -TERM -%d 2>/dev/null", self.pid)) end
end

-- Wait for the process and its group, SIGKILLing what is left at `deadline`
-- (a M.clock() time).
function Proc:_reap(deadline)
	if self.done then return end
	self.done = true
	local pgid = self.pid
	if not pgid then self.p:close(); return end
	-- p:close() waits for the group's leader, which may ignore SIGTERM: a
	-- killer in the background ends the wait at the deadline. (Until
	-- p:close() reaps it, the leader is a zombie that kill -0 still finds,
	-- so the wait itself cannot poll.)
	local killer = tonumber(sh("sh -c " .. quote(sfmt(
		"trap 'kill $s 2>/dev/null; exit 0' TERM; sleep %.2f & s=$!; wait $s && kill -KILL -%d 2>/dev/null",
		math.max(0, deadline - M.clock()), pgid)) .. " >/dev/null 2>&1 </dev/null & echo $!") or "")
	self.p:close()
	-- the leader is reaped; the rest of its group gets what is left of the grace period
	while group_running(pgid) do
		if M.clock() >= deadline then
			sh(sfmt("kill -KILL -%d 2>/dev/null", pgid))
			break
		end
		sh("sleep 0.05")
	end
	if killer then sh(sfmt("kill %d 2>/dev/null", killer)) end
end

--- Stop the process and its group and wait for it: SIGTERM, then SIGKILL
-- for what is left of the group after a grace period (2 s). Harmless twice.
function Proc:kill()
	self:_term()
	self:_reap(M.clock() + GRACE)
end

return M
