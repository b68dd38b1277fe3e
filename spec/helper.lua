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
-- the first time a link comes up, never detached), address lifetimes and
-- the flags of duplicate address detection.
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

--- A snapshot of a namespace's kernel state (links, addresses, routes of
--- every table), for "nothing changed" checks.
function H.snapshot(netns)
	local pre = netns and ("-n " .. netns .. " ") or ""
	return cjson.encode({
		links = steady(H.ip(pre .. "link show")),
		addrs = steady(H.ip(pre .. "addr show")),
		routes = steady(H.ip(pre .. "route show table all")),
	})
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

return H
