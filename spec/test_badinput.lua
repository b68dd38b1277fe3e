-- spec/test_badinput.lua: malformed input, through the CLI (build/bin/brisk)
-- and through the Lua API (brisk.driver). Every row of the table below is
-- one test: the request must fail with a clear message and the right exit
-- code (CLI: 1 for a value brisk rejects, 2 for a usage error) or error
-- value (nil, msg, errno; misuse of the Lua API raises, naming the
-- argument), and leave the kernel and the store exactly as they were:
-- links, addresses and routes of every namespace, `ip netns list`, `nft
-- list ruleset`, the forwarding sysctls, and every document of the state
-- directory (its .gen and index are bookkeeping that a rolled-back create
-- moves on: it stored its intent, then removed it). Rows marked `bug` are
-- known bugs: skipped, naming the bug, unless BRISK_KNOWN_BUGS=1 (then they
-- run, and fail until fixed).
-- Inside the private namespace spec/run.lua made.
local lu = require "luaunit"
local H = require "helper"
local core = require "brisk.core"
local driver = require "brisk.driver"

local E = core.errno

local ROOT, BIN, q, slurp = H.ROOT, H.BIN, H.q, H.slurp

---------------------------------------------------------------------------
-- The world: kernel and store
---------------------------------------------------------------------------

-- The kernel of one namespace, as iproute2 shows it, without what changes
-- by itself (carrier, DAD, lifetimes, counters).
local kernel = H.snapshot

local function sysctl(path)
	return (slurp("/proc/sys/" .. path) or ""):gsub("%s+$", "")
end

--- Everything a request could change, as one string.
local function world(dir)
	local parts = { "main: " .. kernel() }
	local netns = H.must("ip netns list")
	parts[#parts + 1] = "netns: " .. netns
	for name in netns:gmatch("(%S+)[^\n]*\n?") do
		parts[#parts + 1] = "netns " .. name .. ": " .. kernel(name)
	end
	parts[#parts + 1] = "nft: " .. H.must("nft list ruleset")
	parts[#parts + 1] = "sysctl: " .. sysctl("net/ipv4/ip_forward") .. " " ..
		sysctl("net/ipv6/conf/all/forwarding")
	-- the store's documents; not its bookkeeping (.gen, .lock, the index),
	-- which a rolled-back create moves on: it wrote and removed its intent
	local files = H.must("cd " .. q(dir) .. " && find . -type f -name '*.json' | LC_ALL=C sort")
	for f in files:gmatch("[^\n]+") do
		parts[#parts + 1] = "file " .. f .. ": " .. tostring(slurp(dir .. "/" .. f))
	end
	return table.concat(parts, "\n")
end


---------------------------------------------------------------------------
-- Running a row
---------------------------------------------------------------------------

local function cli(dir, args)
	local parts = { q(BIN), "--state-dir", q(dir) }
	for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
	local errf = os.tmpname()
	local p = io.popen(table.concat(parts, " ") .. " 2>" .. errf)
	local out = p:read("a")
	local _, _, code = p:close()
	local err = slurp(errf) or ""
	os.remove(errf)
	return code, out, err
end

local function setup(self)
	H.reset()
	self.dir = H.must("mktemp -d /tmp/brisk-bad-XXXXXX"):gsub("%s+$", "")
	self.d = assert(driver.open{ state_dir = self.dir })
	-- something to conflict with, to delete, and a namespace to aim at
	assert(self.d:create_network{ name = "base", subnet = "10.77.0.0/24" })
	assert(self.d:create_endpoint("base", { name = "e1", netns = "ns1", ip = "10.77.0.10" }))
	assert(self.d:create_network{ name = "spare", subnet = "10.78.0.0/24" })
end

local function teardown(self)
	if self.d then self.d:close() end
	H.reset()
	if self.dir then H.sh("rm -rf " .. q(self.dir)) end
end

TestBadInput = { setUp = setup, tearDown = teardown }

local ROWS = {}
local function row(t) ROWS[#ROWS + 1] = t end

-- CLI rows: { name, "cli", args, exit code, message }
-- Lua rows: { name, "lua", function(d) ... end, errno name, message } or
--           { name, "raise", function(d) ... end, nil, message }

-- CIDRs
row{ "cli_subnet_plen_33", "cli", { "network", "create", "--subnet", "10.0.0.0/33", "x" }, 1,
	"invalid CIDR '10.0.0.0/33'" }
row{ "cli_subnet_without_plen", "cli", { "network", "create", "--subnet", "10.0.0.0", "x" }, 1,
	"invalid CIDR '10.0.0.0'" }
row{ "cli_subnet_octet_300", "cli", { "network", "create", "--subnet", "300.1.0.0/16", "x" }, 1,
	"invalid CIDR '300.1.0.0/16'" }
row{ "cli_subnet_overlaps", "cli", { "network", "create", "--subnet", "10.77.0.128/25", "x" }, 1,
	"networks have overlapping IPv4 (10.77.0.0/24 and 10.77.0.128/25)" }
-- IPv6 prefixes the kernel keeps for itself: the gateway address failed
-- half way (and plan said the create would work)
for _, c in ipairs{ { "::/0", "ff00::/8 (multicast)" }, { "ff02::/64", "ff00::/8 (multicast)" },
	{ "fe80::/64", "fe80::/64 (link-local" }, { "fe80::/10", "fe80::/64 (link-local" },
	{ "::/64", "::1/128 (loopback)" } } do
	for _, verb in ipairs{ "create", "plan" } do
		row{ "cli_subnet_v6_reserved_" .. verb .. "_" .. c[1], "cli",
			{ "network", verb, "--ipv6", "--subnet", "10.1.0.0/24", "--subnet", c[1], "x" }, 1,
			"subnet " .. c[1] .. " overlaps " .. c[2] }
	end
end
row{ "cli_subnet_v6_without_ipv6", "cli", { "network", "create", "--subnet", "fd00:1::/64", "x" }, 1,
	"an IPv6 subnet needs --ipv6" }
row{ "cli_subnet_all", "cli", { "network", "create", "--subnet", "0.0.0.0/0", "x" }, 1,
	"ipv4 pool is empty" }
row{ "cli_subnet_slash32", "cli", { "network", "create", "--subnet", "10.1.0.0/32", "x" }, 1,
	"10.1.0.0/32" }
row{ "cli_ip_range_outside", "cli",
	{ "network", "create", "--subnet", "10.1.0.0/24", "--ip-range", "10.2.0.0/25", "x" }, 1,
	"ip range 10.2.0.0/25 is not inside subnet 10.1.0.0/24" }
row{ "cli_ip_range_v6", "cli",
	{ "network", "create", "--ipv6", "--subnet", "10.1.0.0/24", "--subnet", "fd00:1::/64", "--ip-range",
	  "fd00:1::/80", "x" }, 1, "ip range fd00:1::/80: an IPv4 range only" }
row{ "cli_ip_range_bad", "cli",
	{ "network", "create", "--subnet", "10.1.0.0/24", "--ip-range", "10.1.0.0/2x", "x" }, 1,
	"invalid CIDR '10.1.0.0/2x'" }
row{ "lua_subnet_plen_129", "lua", function(d)
	return d:create_network{ name = "x", ipv6 = true, subnet = { "10.1.0.0/24", "fd00::/129" } }
end, "EINVAL", "invalid CIDR 'fd00::/129'" }
row{ "lua_two_v4_subnets", "lua", function(d)
	return d:create_network{ name = "x", subnet = { "10.1.0.0/24", "10.2.0.0/24" } }
end, "EINVAL", "bridge driver doesn't support multiple subnets" }
row{ "lua_subnet_not_a_string", "raise", function(d)
	return d:create_network{ name = "x", subnet = 42 }
end, nil, "field 'subnet'" }

-- IPs
row{ "cli_gateway_outside", "cli",
	{ "network", "create", "--subnet", "10.1.0.0/24", "--gateway", "10.2.0.1", "x" }, 1,
	"gateway 10.2.0.1 is not inside subnet 10.1.0.0/24" }
row{ "cli_gateway_is_network", "cli",
	{ "network", "create", "--subnet", "10.1.0.0/24", "--gateway", "10.1.0.0", "x" }, 1,
	"cannot be the network or broadcast address" }
row{ "cli_gateway_five_octets", "cli",
	{ "network", "create", "--subnet", "10.1.0.0/24", "--gateway", "10.1.0.1.5", "x" }, 1,
	"invalid IP address '10.1.0.1.5'" }
row{ "cli_aux_outside", "cli",
	{ "network", "create", "--subnet", "10.1.0.0/24", "--aux-address", "a=10.9.9.9", "x" }, 1,
	"aux address a=10.9.9.9 is not inside the network's subnets" }
row{ "cli_endpoint_ip_octet_300", "cli", { "endpoint", "create", "--ip", "10.77.0.300", "base" }, 1,
	"invalid IP address '10.77.0.300'" }
row{ "cli_endpoint_ip_outside", "cli", { "endpoint", "create", "--ip", "10.78.0.5", "base" }, 1,
	"address 10.78.0.5 is outside the subnet 10.77.0.0/24 of network base" }
row{ "cli_endpoint_ip_gateway", "cli", { "endpoint", "create", "--ip", "10.77.0.1", "base" }, 1,
	"address 10.77.0.1 is already in use on network base" }
row{ "cli_endpoint_ip_taken", "cli", { "endpoint", "create", "--ip", "10.77.0.10", "base" }, 1,
	"address 10.77.0.10 is already in use on network base" }
row{ "cli_endpoint_ip_broadcast", "cli", { "endpoint", "create", "--ip", "10.77.0.255", "base" }, 1,
	"address 10.77.0.255 is the network or broadcast address of 10.77.0.0/24" }
row{ "cli_endpoint_ip6_on_v4_network", "cli", { "endpoint", "create", "--ip6", "fd00::5", "base" }, 1,
	"network base has no IPv6" }
row{ "lua_endpoint_ip_with_plen", "lua", function(d)
	return d:create_endpoint("base", { ip = "10.77.0.5/24" })
end, "EINVAL", "invalid IP address '10.77.0.5/24'" }
row{ "lua_endpoint_ip_is_v6", "lua", function(d)
	return d:create_endpoint("base", { ip = "fd00::1" })
end, "EINVAL", "not an IPv4 address: fd00::1" }
row{ "lua_two_gateways", "lua", function(d)
	return d:create_network{ name = "x", subnet = "10.1.0.0/24", gateway = { "10.1.0.1", "10.1.0.2" } }
end, "EINVAL", "more than one gateway for IPv4" }
row{ "lua_v6_gateway_without_v6_subnet", "lua", function(d)
	return d:create_network{ name = "x", subnet = "10.1.0.0/24", gateway = "fd00::1" }
end, "EINVAL", "an IPv6 gateway needs an IPv6 subnet" }
row{ "lua_aux_bad_ip", "lua", function(d)
	return d:create_network{ name = "x", subnet = "10.1.0.0/24", aux_addresses = { a = "10.1.0" } }
end, "EINVAL", "invalid IP address '10.1.0'" }
row{ "lua_aux_default_gateway_v6", "lua", function(d)
	return d:create_network{ name = "x", subnet = "10.1.0.0/24",
		aux_addresses = { DefaultGatewayIPv4 = "fd00::1" } }
end, "EINVAL", "DefaultGatewayIPv4 must be an IPv4 address" }
row{ "lua_aux_without_names", "lua", function(d)
	return d:create_network{ name = "x", subnet = "10.1.0.0/24", aux_addresses = { "10.1.0.5" } }
end, "EINVAL", "aux" }
row{ "lua_endpoint_ip_not_a_string", "raise", function(d)
	return d:create_endpoint("base", { ip = 5 })
end, nil, "field 'ip'" }

-- MACs
row{ "cli_mac_bad_digits", "cli", { "endpoint", "create", "--mac", "02:42:zz:00:00:01", "base" }, 1,
	"invalid MAC address '02:42:zz:00:00:01'" }
row{ "cli_mac_five_bytes", "cli", { "endpoint", "create", "--mac", "02:42:ac:11:00", "base" }, 1,
	"invalid MAC address '02:42:ac:11:00'" }
row{ "cli_mac_option_bad", "cli", { "endpoint", "create", "-o", "mac=nonsense", "base" }, 1,
	"invalid MAC address 'nonsense'" }
-- the kernel refuses a group or all-zero MAC at the veth's create: refused
-- before (the namespace fresh1 is not made)
row{ "cli_mac_multicast", "cli",
	{ "endpoint", "create", "--netns", "fresh1", "--mac", "01:00:5e:00:00:01", "base" }, 1,
	"invalid MAC address '01:00:5e:00:00:01' (a multicast address: the first byte is odd)" }
row{ "cli_mac_broadcast", "cli", { "endpoint", "create", "--mac", "ff:ff:ff:ff:ff:ff", "base" }, 1,
	"invalid MAC address 'ff:ff:ff:ff:ff:ff' (a multicast address" }
row{ "cli_mac_zero", "cli", { "endpoint", "create", "--mac", "00:00:00:00:00:00", "base" }, 1,
	"invalid MAC address '00:00:00:00:00:00' (all zeros)" }
row{ "cli_mac_option_multicast", "cli", { "endpoint", "create", "-o", "mac=03:00:00:00:00:01", "base" }, 1,
	"invalid MAC address '03:00:00:00:00:01' (a multicast address" }
row{ "cli_mac_given_twice", "cli",
	{ "endpoint", "create", "--mac", "02:42:ac:11:00:02", "-o", "mac=02:42:ac:11:00:03", "base" }, 1,
	"MAC address given twice: 02:42:ac:11:00:02 (mac) and 02:42:ac:11:00:03 (option mac)" }
row{ "lua_mac_seven_bytes", "lua", function(d)
	return d:create_endpoint("base", { mac = "02:42:ac:11:00:02:03" })
end, "EINVAL", "invalid MAC address '02:42:ac:11:00:02:03'" }

-- MTUs
row{ "cli_mtu_not_a_number", "cli", { "network", "create", "-o", "mtu=abc", "x" }, 1,
	"failed to parse mtu value: abc" }
row{ "cli_mtu_67", "cli", { "network", "create", "-o", "mtu=67", "x" }, 1,
	"invalid MTU number: 67 (must be 68..65535, or 0 for the default)" }
row{ "cli_mtu_negative", "cli", { "network", "create", "-o", "mtu=-1", "x" }, 1, "invalid MTU number: -1" }
-- below 1280 the kernel takes IPv6 off the bridge: the network would be
-- made without its IPv6 addresses, and every endpoint create would fail
row{ "cli_mtu_below_ipv6_minimum", "cli", { "network", "create", "--ipv6", "--subnet", "10.1.0.0/24",
	"--subnet", "fd00:9::/64", "-o", "mtu=1000", "x" }, 1,
	"invalid MTU number: 1000 (an IPv6 network needs at least 1280)" }
row{ "cli_mtu_label_too_big", "cli",
	{ "network", "create", "-o", "com.docker.network.driver.mtu=99999", "x" }, 1, "invalid MTU number: 99999" }
row{ "lua_mtu_float", "lua", function(d)
	return d:create_network{ name = "x", subnet = "10.1.0.0/24", options = { mtu = 1500.5 } }
end, "EINVAL", "failed to parse mtu value: 1500.5 (not an integer)" }
row{ "lua_mtu_table", "lua", function(d)
	return d:create_network{ name = "x", subnet = "10.1.0.0/24", options = { mtu = {} } }
end, "EINVAL", "option 'mtu' must be an integer (got table)" }

-- names
row{ "cli_network_name_bang", "cli", { "network", "create", "bad name!" }, 1,
	"invalid network name 'bad name!'" }
row{ "cli_network_name_65", "cli", { "network", "create", string.rep("n", 65) }, 1, "invalid network name" }
row{ "cli_network_name_taken", "cli", { "network", "create", "--subnet", "10.1.0.0/24", "base" }, 1,
	"a network named base exists" }
row{ "cli_bridge_name_slash", "cli", { "network", "create", "-o", "com.docker.network.bridge.name=br/0", "x" },
	1, "interface name contains '/', ':' or whitespace" }
row{ "cli_bridge_name_16", "cli", { "network", "create", "-o", "bridge=bridgename012345", "x" }, 1,
	"interface name longer than 15 bytes" }
row{ "cli_bridge_is_loopback", "cli",
	{ "network", "create", "--subnet", "10.1.0.0/24", "-o", "bridge=lo", "x" }, 1,
	"existing interface lo is not a bridge" }
row{ "cli_iface_prefix_empty", "cli", { "network", "create", "-o", "container_iface_prefix=", "x" }, 1,
	"invalid container_iface_prefix ''" }
-- '%d' is a kernel name template: a bridge "br%d" was made as br0 and left
-- behind by the rollback, which looked for "br%d"
row{ "cli_bridge_name_template", "cli", { "network", "create", "--subnet", "10.1.0.0/24", "-o", "bridge=br%d", "x" },
	1, "interface name contains '%' (a kernel name template)" }
row{ "cli_iface_prefix_template", "cli",
	{ "network", "create", "--subnet", "10.1.0.0/24", "-o", "container_iface_prefix=c%d", "x" }, 1,
	"invalid container_iface_prefix 'c%d'" }
-- names brisk makes go into the firewall's rules (nft and iptables read
-- '*' and '+' as wildcards) and JSON: A-Z a-z 0-9 _ . - only; the kernel
-- takes more, and the firewall step refused them half way
row{ "cli_bridge_name_wildcard", "cli", { "network", "create", "--subnet", "10.1.0.0/24", "-o", "bridge=br+1", "x" },
	1, "invalid bridge name 'br+1' (A-Z a-z 0-9 _ . - only)" }
row{ "cli_bridge_name_not_utf8", "cli", { "network", "create", "--subnet", "10.1.0.0/24", "-o", "bridge=br\xff", "x" },
	1, "invalid bridge name 'br\\xff'" }
row{ "cli_iface_prefix_control_byte", "cli",
	{ "network", "create", "--subnet", "10.1.0.0/24", "-o", "container_iface_prefix=e\1", "x" }, 1,
	"invalid container_iface_prefix 'e\\x01' (1..13 of A-Z a-z 0-9 _ . -)" }
row{ "cli_ifname_template", "cli", { "endpoint", "create", "--netns", "fresh3", "--ifname", "e%d", "base" }, 1,
	"invalid interface name 'e%d'" }
row{ "cli_endpoint_name_space", "cli", { "endpoint", "create", "--name", "a b", "base" }, 1,
	"invalid endpoint name 'a b'" }
row{ "cli_endpoint_name_taken", "cli", { "endpoint", "create", "--name", "e1", "base" }, 1,
	"endpoint e1 exists" }
row{ "cli_ifname_space", "cli", { "endpoint", "create", "--netns", "fresh2", "--ifname", "eth 0", "base" }, 1,
	"invalid interface name 'eth 0'" }
row{ "cli_ifname_16", "cli",
	{ "endpoint", "create", "--netns", "ns1", "--ifname", "abcdefghijklmnop", "base" }, 1,
	"invalid interface name 'abcdefghijklmnop'" }
row{ "cli_ifname_taken_rolls_back", "cli", { "endpoint", "create", "--netns", "ns1", "--ifname", "eth0", "base" },
	1, "File exists" }
row{ "lua_ifname_16", "lua", function(d)
	return d:create_endpoint("base", { netns = "ns1", ifname = "abcdefghijklmnop" })
end, "ENAMETOOLONG", "invalid interface name 'abcdefghijklmnop'" }
row{ "lua_network_name_number", "lua", function(d) return d:create_network{ name = 1 } end,
	"EINVAL", "invalid network name '1'" }

-- option keys and types
row{ "cli_option_unknown", "cli", { "network", "create", "-o", "bogus=1", "x" }, 1, "unknown option 'bogus'" }
row{ "cli_option_typo", "cli", { "network", "create", "-o", "mut=1500", "x" }, 1,
	"unknown option 'mut' (did you mean 'mtu'?)" }
row{ "cli_option_bool", "cli", { "network", "create", "-o", "icc=maybe", "x" }, 1,
	"failed to parse icc value: maybe (strconv.ParseBool: parsing \"maybe\": invalid syntax)" }
row{ "cli_option_given_twice", "cli",
	{ "network", "create", "-o", "mtu=1500", "-o", "com.docker.network.driver.mtu=1400", "x" }, 1,
	"option 'mtu' given twice" }
row{ "cli_option_not_key_value", "cli", { "network", "create", "-o", "mtu", "x" }, 2,
	"flag --opt: 'mtu' is not KEY=VALUE" }
row{ "cli_option_same_key_twice", "cli", { "network", "create", "-o", "mtu=1500", "-o", "mtu=1400", "x" }, 2,
	"flag --opt: mtu given more than once" }
row{ "cli_host_binding_loopback", "cli",
	{ "network", "create", "--subnet", "10.1.0.0/24", "-o", "host_binding_ipv4=127.0.0.1", "x" }, 1,
	"cannot publish on loopback address 127.0.0.1" }
row{ "cli_publish_loopback", "cli", { "endpoint", "create", "-p", "127.0.0.1:8080:80", "base" }, 1,
	"cannot publish on loopback address 127.0.0.1" }
row{ "cli_host_binding_v6", "cli", { "network", "create", "-o", "host_binding_ipv4=::1", "x" }, 1,
	"not an IPv4 address: '::1'" }
row{ "cli_endpoint_option_unknown", "cli", { "endpoint", "create", "-o", "colour=red", "base" }, 1,
	"unknown option 'colour'" }
row{ "lua_option_key_number", "lua", function(d)
	return d:create_network{ name = "x", subnet = "10.1.0.0/24", options = { [1] = "a" } }
end, "EINVAL", "option names must be strings (got number 1)" }
row{ "lua_option_value_function", "lua", function(d)
	return d:create_network{ name = "x", subnet = "10.1.0.0/24", options = { icc = print } }
end, "EINVAL", "option 'icc' must be a boolean (got function)" }
row{ "lua_network_field_typo", "lua", function(d)
	return d:create_network{ name = "x", sbunet = "10.1.0.0/24" }
end, "EINVAL", "unknown network field 'sbunet' (did you mean 'subnet'?)" }
row{ "lua_ipv6_not_boolean", "lua", function(d)
	return d:create_network{ name = "x", ipv6 = "yes" }
end, "EINVAL", "field 'ipv6' must be a boolean" }
row{ "lua_endpoint_field_unknown", "lua", function(d)
	return d:create_endpoint("base", { frob = 1 })
end, "EINVAL", "unknown endpoint field 'frob'" }
row{ "lua_hairpin_not_bool", "lua", function(d)
	return d:create_endpoint("base", { options = { hairpin = "perhaps" } })
end, "EINVAL", "failed to parse hairpin value: perhaps" }
row{ "lua_options_not_a_table", "raise", function(d)
	return d:create_network{ name = "x", subnet = "10.1.0.0/24", options = "mtu=1500" }
end, nil, "field 'options'" }
row{ "lua_definition_not_a_table", "raise", function(d) return d:create_network("x") end, nil,
	"network definition must be a table" }
row{ "lua_endpoint_spec_not_a_table", "raise", function(d) return d:create_endpoint("base", "x") end, nil,
	"bad argument #2 to 'create_endpoint' (table expected)" }
row{ "lua_open_option_typo", "raise", function() return driver.open{ statedir = "/tmp" } end, nil,
	"unknown option 'statedir' (did you mean 'state_dir'?)" }
row{ "lua_open_state_dir_number", "raise", function() return driver.open{ state_dir = 42 } end, nil,
	"option 'state_dir' must be a string" }
row{ "lua_delete_options_not_a_table", "raise", function(d) return d:delete_network("spare", "force") end,
	nil, "bad argument #2" }

-- ids
row{ "cli_network_rm_missing", "cli", { "network", "rm", "nosuch" }, 1, "network nosuch not found" }
row{ "cli_network_rm_busy", "cli", { "network", "rm", "base" }, 1, "network base has 1 active endpoint" }
row{ "cli_network_inspect_empty", "cli", { "network", "inspect", "" }, 1, "invalid network id" }
row{ "cli_network_inspect_short_prefix", "cli", { "network", "inspect", "ab" }, 1, "network ab not found" }
row{ "cli_endpoint_rm_missing", "cli", { "endpoint", "rm", "nosuch" }, 1, "endpoint not found: nosuch" }
row{ "cli_endpoint_on_missing_network", "cli", { "endpoint", "create", "nosuchnet" }, 1,
	"network nosuchnet not found" }
row{ "lua_network_id_not_hex", "lua", function(d)
	return d:create_network{ name = "x", id = string.rep("g", 64) }
end, "EINVAL", "invalid network id" }
row{ "lua_endpoint_id_short", "lua", function(d)
	return d:create_endpoint("base", { id = "abc" })
end, "EINVAL", "invalid endpoint id: abc" }
row{ "lua_network_key_number", "lua", function(d) return d:create_endpoint(42, {}) end,
	"EINVAL", "invalid network id 42" }
row{ "lua_delete_network_missing", "lua", function(d) return d:delete_network("nosuch") end,
	"ENOENT", "network nosuch not found" }
row{ "lua_delete_network_busy", "lua", function(d) return d:delete_network("base") end,
	"EBUSY", "network base has 1 active endpoint" }
row{ "lua_delete_endpoint_missing", "lua", function(d) return d:delete_endpoint("nosuch") end,
	"ENOENT", "endpoint not found: nosuch" }

-- namespaces
row{ "cli_netns_missing_path", "cli", { "endpoint", "create", "--netns", "/nonexistent/ns", "base" }, 1,
	"open netns /nonexistent/ns: No such file or directory" }
row{ "cli_netns_not_a_namespace", "cli", { "endpoint", "create", "--netns", "/etc/hostname", "base" }, 1,
	"Invalid argument" }
row{ "cli_netns_name_65", "cli", { "endpoint", "create", "--netns", string.rep("n", 65), "base" }, 1,
	"namespace name longer than 64 bytes" }
row{ "cli_netns_pid_zero", "cli", { "endpoint", "create", "--netns", "0", "base" }, 1,
	"invalid netns pid 0" }
row{ "cli_netns_pid_missing", "cli", { "endpoint", "create", "--netns", "99999999", "base" }, 1,
	"open netns 99999999: No such file or directory" }
-- the driver's own namespace is no sandbox: eth0 landed next to the bridge,
-- with a second route to the subnet
row{ "cli_netns_own", "cli", { "endpoint", "create", "--netns", "/proc/self/ns/net", "base" }, 1,
	"netns /proc/self/ns/net is the namespace the driver manages, not a sandbox" }
row{ "lua_netns_own_pid", "lua", function(d)
	local f = assert(io.open("/proc/self/stat"))
	local pid = f:read("n")
	f:close()
	return d:create_endpoint("base", { netns = math.tointeger(pid) })
end, "EINVAL", "is the namespace the driver manages, not a sandbox" }
row{ "lua_join_ifname_template", "lua", function(d)
	assert(d:create_endpoint("spare", { name = "unjoined" }))
	local ok, msg, err = d:join("unjoined", "ns1", { ifname = "e%d" })
	assert(d:delete_endpoint("unjoined"))
	return ok, msg, err
end, "EINVAL", "invalid interface name 'e%d'" }
row{ "lua_join_own_namespace", "lua", function(d)
	assert(d:create_endpoint("spare", { name = "unjoined" }))
	local ok, msg, err = d:join("unjoined", "/proc/thread-self/ns/net")
	assert(d:delete_endpoint("unjoined"))
	return ok, msg, err
end, "EINVAL", "netns /proc/thread-self/ns/net is the namespace the driver manages, not a sandbox" }
row{ "lua_netns_negative_pid", "lua", function(d)
	return d:create_endpoint("base", { netns = -5 })
end, "EINVAL", "invalid netns pid -5" }
row{ "lua_netns_float", "lua", function(d)
	return d:create_endpoint("base", { netns = 1.5 })
end, "EINVAL", "invalid netns pid 1.5" }
row{ "lua_netns_empty", "lua", function(d)
	return d:create_endpoint("base", { netns = "" })
end, "EINVAL", "invalid netns" }
row{ "lua_open_netns_missing", "lua", function(d, dir)
	return driver.open{ state_dir = dir, netns = "nosuchns" }
end, "ENOENT", "open netns nosuchns: No such file or directory" }
row{ "lua_open_state_dir_missing_parent", "lua", function()
	return driver.open{ state_dir = "/proc/nonexistent/x" }
end, "ENOENT", "No such file or directory" }

-- ports
row{ "cli_publish_host_port_70000", "cli", { "endpoint", "create", "-p", "70000:80", "base" }, 1,
	"invalid hostPort: 70000" }
row{ "cli_publish_container_port_0", "cli", { "endpoint", "create", "-p", "8080:0", "base" }, 1,
	"invalid containerPort: 0" }
row{ "cli_publish_proto", "cli", { "endpoint", "create", "-p", "80/icmp", "base" }, 1, "invalid proto: icmp" }
row{ "lua_publish_ranges_differ", "lua", function(d)
	return d:create_endpoint("base", { publish = { "1-2:3-5" } })
end, "EINVAL", "invalid ranges specified for container and host Ports: 3-5 and 1-2" }
row{ "lua_publish_number", "lua", function(d)
	return d:create_endpoint("base", { publish = 80 })
end, "EINVAL", "publish must be a port spec or a list of them (got number)" }
row{ "lua_publish_table_key_typo", "lua", function(d)
	return d:create_endpoint("base", { publish = { { container_port = 80, hostport = 1 } } })
end, "EINVAL", "unknown port field 'hostport' (did you mean 'host_port'?)" }
row{ "lua_publish_host_ip_bad", "lua", function(d)
	return d:create_endpoint("base", { publish = { "1.2.3:80:80" } })
end, "EINVAL", "invalid IP address: 1.2.3" }

-- usage errors
row{ "cli_create_without_name", "cli", { "network", "create" }, 2, "'network create' needs 1 argument" }
row{ "cli_create_two_names", "cli", { "network", "create", "a", "b" }, 2,
	"'network create' takes at most 1 argument, got 'b'" }
row{ "cli_unknown_flag", "cli", { "network", "create", "--frobnicate", "x" }, 2,
	"unknown flag --frobnicate for 'network create'" }
row{ "cli_flag_without_value", "cli", { "network", "create", "--subnet" }, 2,
	"flag --subnet needs a value (CIDR)" }
row{ "cli_driver_not_bridge", "cli", { "network", "create", "-d", "macvlan", "x" }, 2,
	"flag -d: 'macvlan' is not one of bridge" }
row{ "cli_ifname_without_netns", "cli", { "endpoint", "create", "--ifname", "eth1", "base" }, 2,
	"--ifname needs --netns" }
row{ "cli_unknown_command", "cli", { "network", "frob" }, 2, "unknown command" }

local function slug(i, name)
	return string.format("test_%03d_%s", i, name)
end

for i, r in ipairs(ROWS) do
	local name, kind, what, want, msg = r[1], r[2], r[3], r[4], r[5]
	TestBadInput[slug(i, name)] = function(self)
		if r.bug and os.getenv("BRISK_KNOWN_BUGS") ~= "1" then lu.skip(r.bug) end
		local before = world(self.dir)
		if kind == "cli" then
			local code, out, err = cli(self.dir, what)
			lu.assertEquals(code, want, "exit code; stderr: " .. err)
			lu.assertEquals(out, "", "nothing on stdout")
			lu.assertTrue(err:match("^brisk: ") ~= nil, "stderr: " .. err)
			lu.assertStrContains(err:match("^[^\n]*"), msg)
			lu.assertNotStrContains(err, "traceback")
			lu.assertNotStrContains(err, ".lua:", false, "a Lua source location in: " .. err)
		elseif kind == "lua" then
			local r1, r2, r3 = what(self.d, self.dir)
			if r1 ~= nil and type(r1) == "table" and r1.close then r1:close() end
			lu.assertNil(r1, "the request must fail")
			lu.assertEquals(type(r2), "string")
			lu.assertStrContains(r2, msg)
			lu.assertEquals(r3, E[want], "errno " .. want .. "; message: " .. tostring(r2))
		else
			local ok, err = pcall(what, self.d, self.dir)
			lu.assertFalse(ok, "misuse must raise")
			lu.assertStrContains(tostring(err), msg)
		end
		H.assert_same_text(world(self.dir), before, "kernel or store changed")
	end
end

---------------------------------------------------------------------------
TestBadInputTable = {}

function TestBadInputTable:test_covers_every_area_with_40_rows()
	local areas = { subnet = 0, ip = 0, mac = 0, mtu = 0, name = 0, option = 0, id = 0, netns = 0, publish = 0 }
	local cli_rows, lua_rows = 0, 0
	for _, r in ipairs(ROWS) do
		if r[2] == "cli" then cli_rows = cli_rows + 1 else lua_rows = lua_rows + 1 end
		for a in pairs(areas) do
			if r[1]:find(a, 1, true) then areas[a] = areas[a] + 1 end
		end
	end
	lu.assertTrue(#ROWS >= 40, #ROWS .. " rows")
	lu.assertTrue(cli_rows >= 20 and lua_rows >= 20, cli_rows .. " CLI rows, " .. lua_rows .. " Lua rows")
	for a, n in pairs(areas) do lu.assertTrue(n > 0, "no row about " .. a) end
end

---------------------------------------------------------------------------
-- The Lua parsers' fuzz corpus (fuzz/corpus/lua), replayed through the
-- fuzz targets' own checks (fuzz/lua_targets.lua) without the fuzzer: each
-- input must parse or be refused with nil, msg, and round-trip.
TestFuzzCorpus = {}

function TestFuzzCorpus:test_lua_parsers_keep_their_promises()
	local saved = package.path
	package.path = ROOT .. "/fuzz/?.lua;" .. package.path
	local targets = require "lua_targets"
	package.path = saved
	local files = core.listdir(ROOT .. "/fuzz/corpus/lua") or {}
	table.sort(files)
	lu.assertTrue(#files >= 40, #files .. " corpus files")
	local runs = {}
	for _, f in ipairs(files) do
		local data = slurp(ROOT .. "/fuzz/corpus/lua/" .. f)
		if data and #data > 0 then
			local t = targets[data:byte(1) % #targets + 1]
			local ok, err = pcall(t[2], data:sub(2))
			lu.assertTrue(ok, f .. " (" .. t[1] .. "): " .. tostring(err))
			runs[t[1]] = (runs[t[1]] or 0) + 1
		end
	end
	for _, t in ipairs(targets) do lu.assertNotNil(runs[t[1]], "no corpus input for " .. t[1]) end
end
