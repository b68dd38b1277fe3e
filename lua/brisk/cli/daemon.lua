--- brisk.cli.daemon: `brisk daemon`, a long-running brisk that runs the
-- commands of `brisk` processes started with BRISK_HOST set to its socket.
--
-- A container runtime starts one brisk per endpoint. Without a daemon each
-- of them starts Lua, loads brisk and reads the store's index before doing
-- a few milliseconds of kernel work; with one, the process only hands its
-- arguments over (csrc/cli/daemon.c) and the daemon, with brisk loaded and
-- the store's documents parsed (reused while the store's generation says
-- nobody else wrote), runs the command in the caller's network namespace
-- and working directory; its output goes to the caller's stdout and stderr
-- (kept until their readers take it: csrc/cli/daemon.c).
--
-- This module is the policy: which commands a daemon serves (the network
-- and endpoint commands, version and help) and how (the caller's
-- environment, as far as it was passed, is what os.getenv sees). The rest
-- (repl, run, down, graph, daemon) runs in the caller, as does everything
-- when no daemon listens. Commands run one at a time, each under the
-- store's lock as always, so a daemon and brisk processes without one can
-- share a state directory.
local cli = require "brisk.cli"

local M = {}

M.default_socket = "/run/brisk/brisk.sock"

-- Groups whose commands a daemon runs, and single commands.
M.served_groups = { network = true, endpoint = true }
M.served_commands = { version = true, help = true }

--- Whether a daemon runs this command (a spec of cli.commands).
function M.serves(spec)
	local name = spec.name
	return M.served_groups[name:match("^%S+")] == true or M.served_commands[name] == true
end

--- Whether a command line's first word may name a served command: others
-- are left to the caller before their module is looked for.
function M.wants(word)
	return M.served_groups[word] == true or M.served_commands[word] == true
end

--- A search path without the entries relative to the working directory
-- ("./?.lua"): a served command runs in its caller's directory, and a
-- module found there would be loaded into the daemon, as root, and stay
-- for every later caller.
function M.absolute_paths(path)
	local keep = {}
	for entry in path:gmatch("[^;]+") do
		if entry:sub(1, 1) == "/" then keep[#keep + 1] = entry end
	end
	return table.concat(keep, ";")
end

-- Modules a served command would load on first use: loaded in the
-- daemon's first idle time (while its first caller starts), so that
-- caller does not wait for them; libnftables is opened then too.
local WARM = {
	"brisk.cli.network", "brisk.cli.endpoint", "brisk.driver", "brisk.endpoint", "brisk.store",
	"brisk.schema", "brisk.ipnet", "brisk.ports", "brisk.firewall",
}
local warm, spare_off = false, false

--- Run one request: argv as the caller gave it, env the variables it
-- passed. Returns the exit code and the command's name, or nil when the
-- command is left to the caller (nothing was done).
function M.handle(argv, env)
	local getenv = os.getenv
	local served = { filter = M.serves, wants = M.wants }
	os.getenv = function(k) return env[k] end
	local ok, code = pcall(cli.main, argv, served)
	os.getenv = getenv
	if not ok then error(code, 0) end
	return code, served.command
end

--- Seconds a spare namespace stays usable (see `idle`).
M.spare_ttl = 1

--- The daemon's work between requests: before the first, loading what a
-- served command uses (WARM); after each, a spare network namespace
-- (brisk.core netns_prepare), so that the next `endpoint create --netns NEW`
-- binds it instead of making one, which is most of the kernel's time for
-- a new namespace. It is made in the daemon's own namespace and taken only
-- by a request from that namespace within `ttl` seconds (default
-- `spare_ttl`, `--spare-ttl`); otherwise the namespace is made as without
-- a daemon (netns_prepare does not replace a spare that went stale unused
-- until a namespace is made again). A spare still held when its time is
-- up is dropped then, not kept until the next request: this returns the
-- seconds after which the daemon, no request having come, calls it again.
-- A daemon that may not make namespaces says so once and stops trying.
function M.idle(ttl)
	local core = require "brisk.core"
	if not warm then
		-- before the first request only: it is the first caller's wait
		warm = true
		for _, m in ipairs(WARM) do require(m) end
		core.nft_available()      -- a failure is the firewall's to report, when used
		return nil
	end
	if ttl == 0 or spare_off then return nil end
	ttl = ttl or M.spare_ttl
	-- (a spare gone stale is dropped here, and then none is made)
	local ok, msg, left = core.netns_prepare(ttl)
	if not ok then
		-- (not permitted, a namespace limit reached, ...): said once, and
		-- namespaces are made as without a daemon from then on
		spare_off = true
		error(msg .. "; no spare namespaces from now on", 0)
	end
	-- one is held: look again once it has gone stale
	return left and math.max(left, 0) + 0.01 or nil
end

--- The socket a `brisk` started with BRISK_HOST=VALUE talks to.
function M.socket_path(value)
	if value == nil or value == "" then return nil end
	return (value:gsub("^unix://", ""))
end

cli.register {
	name = "daemon",
	raw = true,
	summary = "serve brisk commands to brisk processes started with BRISK_HOST",
	usage = "[--socket PATH] [--quiet] [--spare-ttl SECONDS]",
	description = "Listens on a unix socket (mode 0600) until SIGINT, SIGTERM or SIGHUP. A brisk\n"
		.. "started with BRISK_HOST=PATH hands its command to the daemon, which runs it with\n"
		.. "brisk already loaded (an endpoint create in about two-thirds of the time) in the\n"
		.. "caller's network namespace and working directory, with the caller's stdin,\n"
		.. "stdout, stderr and its BRISK_*, PATH, HOME, TERM, COLUMNS, LINES and NO_COLOR\n"
		.. "variables; the caller exits with the command's exit code. Served: the network\n"
		.. "and endpoint commands, version and help. Everything else, and everything when\n"
		.. "no daemon listens, runs in the caller, as does a caller that could not run it as\n"
		.. "the daemon would (another user, fewer capabilities, a seccomp filter or\n"
		.. "no_new_privs, another LSM label, another mount, pid or user namespace or root\n"
		.. "directory, another build of brisk) or that gave up before its turn; callers\n"
		.. "queued when it stops run theirs. The socket's directory must be writable by its\n"
		.. "owner only (root's or the daemon's user). One command at a time; each request\n"
		.. "is logged on the daemon's stderr. A command's output is kept and goes to the\n"
		.. "caller's stdout and stderr as their readers take it, when the command is done,\n"
		.. "its exit code after it: an output nobody reads (a full pipe, a stopped terminal)\n"
		.. "holds that caller only; at a stop, callers still waiting get their exit codes\n"
		.. "and what their readers had not taken is dropped. Between requests the daemon\n"
		.. "makes a spare network namespace, which the next request from its own namespace\n"
		.. "that creates one (endpoint create --netns NEW) binds instead of making it (see\n"
		.. "--spare-ttl).",
	example = {
		"brisk daemon --socket /run/brisk/brisk.sock &",
		"BRISK_HOST=/run/brisk/brisk.sock brisk endpoint create --netns c1 web",
	},
	max_args = 0,
	flags = {
		{ "--socket", arg = "PATH",
		  doc = "the socket to listen on (default: $BRISK_HOST, else " .. M.default_socket .. ")" },
		{ "--quiet", "-q", doc = "no log line per request" },
		{ "--spare-ttl", arg = "SECONDS",
		  doc = "how long the spare namespace made between requests stays usable (default "
			.. M.spare_ttl .. "; 0: make none); one unused by then is dropped" },
	},
	run = function(o)
		local okh, host = pcall(require, "brisk.host")
		if not okh or type(host) ~= "table" or not host.serve then
			cli.error("daemon: only the brisk program can serve (not a Lua interpreter)")
		end
		-- every flag checked before anything is made
		local ttl = M.spare_ttl
		if o.spare_ttl ~= nil then
			ttl = tonumber(o.spare_ttl)
			if not ttl or ttl < 0 or ttl ~= ttl or ttl == math.huge then
				cli.usage_error("--spare-ttl takes a number of seconds >= 0, got '" .. o.spare_ttl .. "'",
					"daemon")
			end
		end
		package.path = M.absolute_paths(package.path)
		package.cpath = M.absolute_paths(package.cpath)
		local path = o.socket or M.socket_path(os.getenv("BRISK_HOST")) or M.default_socket
		local dir = path:match("^(.*)/[^/]*$")
		if dir and dir ~= "" then
			local core = require "brisk.core"
			local ok, msg = core.mkdir_p(dir, 493)     -- 0755
			if not ok then cli.error("daemon: " .. msg) end
		end
		local sig, msg = host.serve(path, M.handle, {
			quiet = o.quiet,
			idle = function() return M.idle(ttl) end,
			ready = function()
				io.stderr:write(string.format("brisk daemon: listening on %s\n", path))
				io.stderr:flush()
			end,
		})
		require("brisk.core").netns_prepare(false)
		if not sig then cli.error(msg) end
		if not o.quiet then io.stderr:write(string.format("brisk daemon: stopped (signal %d)\n", sig)) end
		-- nothing is left to close that exit does not close: no teardown of
		-- the Lua state (its modules, its caches) on the way out
		io.stdout:flush()
		io.stderr:flush()
		os.exit(0, false)
	end,
}

return M
