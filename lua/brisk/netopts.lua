--- brisk.netopts: the bridge network option schema (libnetwork's labels).
--
-- Declared once: key, type, default, Docker label, short aliases, check.
-- Labels and aliases share the defaults of a label map (ICC and masquerade
-- on), as `docker network create -o` does. Unknown keys are errors with a
-- "did you mean" hint: Docker ignores typos silently, brisk does not.
local schema = require "brisk.schema"

local M = {}

local function mtu_check(v)
	if v < 0 then return nil, string.format("invalid MTU number: %d", v) end
	if v ~= 0 and (v < 68 or v > 65535) then
		return nil, string.format("invalid MTU number: %d (must be 68..65535, or 0 for the default)", v)
	end
	return true
end

-- The names brisk makes from options (the bridge, the container side from
-- its prefix) keep to characters that need no quoting where they go: the
-- firewall's rules (nft reads a trailing '*' as a wildcard, iptables '+'),
-- JSON, a shell. The kernel takes more, control bytes included.
local PLAIN, PLAIN_TEXT = "^[%w_.%-]+$", "A-Z a-z 0-9 _ . -"

-- %q-like: the bytes of a refused value, printable
local function shown(v)
	return (v:gsub("[^\32-\126]", function(c) return string.format("\\x%02x", c:byte()) end))
end

local function bridge_check(v)
	if not v:match(PLAIN) then
		return nil, string.format("invalid bridge name '%s' (%s only)", shown(v), PLAIN_TEXT)
	end
	return true
end

local function prefix_check(v)
	if #v == 0 or #v > 13 or not v:match(PLAIN) then
		return nil, string.format("invalid container_iface_prefix '%s' (1..13 of %s)", shown(v), PLAIN_TEXT)
	end
	return true
end

-- The default host IP of published ports: not a loopback address
-- (brisk.ports.loopback; loaded only when the option is given).
local function binding_check(v)
	local why = require("brisk.ports").loopback(v)
	if why then return nil, why end
	return true
end

--- The network option schema.
M.network = schema.new{
	{ key = "bridge", type = "ifname", label = "com.docker.network.bridge.name",
	  aliases = { "bridge_name", "name" }, check = bridge_check,
	  doc = "bridge device name (default br-<id[:12]>; A-Z a-z 0-9 _ . -)" },
	{ key = "icc", type = "bool", default = true, label = "com.docker.network.bridge.enable_icc",
	  aliases = { "enable_icc" }, doc = "allow traffic between endpoints of this network" },
	{ key = "masquerade", type = "bool", default = true,
	  label = "com.docker.network.bridge.enable_ip_masquerade",
	  aliases = { "enable_ip_masquerade", "ip_masquerade" }, doc = "masquerade traffic leaving the network" },
	{ key = "host_binding_ipv4", type = "ipv4", label = "com.docker.network.bridge.host_binding_ipv4",
	  aliases = { "host_binding" }, check = binding_check,
	  doc = "default host IP for published ports (IPv4 only unless 0.0.0.0; not loopback)" },
	{ key = "default_bridge", type = "bool", default = false,
	  label = "com.docker.network.bridge.default_bridge", doc = "the default bridge (docker0): never deleted" },
	{ key = "inhibit_ipv4", type = "bool", default = false, label = "com.docker.network.bridge.inhibit_ipv4",
	  doc = "no IPv4 address on the bridge" },
	{ key = "mtu", type = "int", default = 0, label = "com.docker.network.driver.mtu",
	  check = mtu_check, doc = "MTU of the bridge and its veths (0 = kernel default)" },
	{ key = "enable_ipv6", type = "bool", default = false, label = "com.docker.network.enable_ipv6",
	  aliases = { "ipv6" }, doc = "IPv6 on the network" },
	{ key = "internal", type = "bool", default = false, label = "com.docker.network.internal",
	  doc = "no NAT and no traffic leaving the network" },
	{ key = "container_iface_prefix", type = "string", default = "eth",
	  label = "com.docker.network.container_iface_prefix", aliases = { "iface_prefix" },
	  check = prefix_check, doc = "interface name prefix inside the namespace" },
	{ key = "ipv6_alloc", type = "bool", default = true, label = "brisk.ipam.ipv6_alloc",
	  doc = "allocate endpoint IPv6 addresses in sequence (off: derive them from the MAC, as libnetwork)" },
	{ key = "host_ipv4", type = "ipv4", label = "com.docker.network.host_ipv4",
	  aliases = { "snat" }, doc = "SNAT to this address instead of masquerading" },
}

--- The top-level keys of a network definition (beyond `options`).
M.spec_keys = {
	"name", "id", "subnet", "gateway", "ip_range", "aux_addresses", "ipv6", "internal", "options",
}

return M
