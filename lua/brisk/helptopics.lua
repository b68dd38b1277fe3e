--- brisk.helptopics: the topics of `brisk help TOPIC` (and of the man page).
--
-- Each topic is `{ name =, summary =, text = function() -> string }`. The
-- texts that describe data brisk declares elsewhere are built from it: the
-- option labels from the schemas (brisk.netopts, the driver's endpoint
-- options), the step names from the driver's default step lists, so a new
-- option or step shows up here without an edit (a step without a
-- description below shows as such, and a test catches it).
local M = {}

-- What each step does, by its libnetwork name in snake_case.
M.step_docs = {
	-- network steps (libnetwork's bridge setup queue)
	setup_device = "create the bridge (down, a random 02:42 MAC, txqueuelen 0); only for a bridge brisk makes",
	setup_default_sysctl = "accept_ra=0 on the bridge (it never takes router advertisements)",
	setup_bridge_ipv4 = "give the bridge the gateway address with the subnet's mask (gateway/prefix)",
	setup_bridge_ipv6 = "IPv6 on the bridge: disable_ipv6=0, fe80::1/64 and the IPv6 gateway address",
	setup_verify_and_reconcile = "an existing bridge must carry the network's addresses; stray global IPv6 ones go",
	setup_ipv6_forwarding = "net.ipv6.conf.{default,all}.forwarding=1 (networks with an IPv6 subnet)",
	setup_loopback_addresses_routing = "route_localnet=1 on the bridge (only without the userland proxy)",
	setup_ip_forwarding = "net.ipv4.ip_forward=1 (and IPv6 forwarding on an IPv6 network)",
	setup_ip_tables = "the network's nftables rules, ICC set elements and isolation, in one transaction",
	setup_gateway_ipv4 = "check that the aux address DefaultGatewayIPv4 lies inside the IPv4 subnet",
	setup_gateway_ipv6 = "the same for DefaultGatewayIPv6 and the IPv6 subnet",
	setup_bridge_netfiltering = "bridge-nf-call-ip{,6}tables=1 when br_netfilter is loaded (ICC off)",
	setup_mtu = "give the bridge the network's MTU (com.docker.network.driver.mtu)",
	setup_device_up = "bring the bridge up and read it back",
	-- endpoint steps (CreateEndpoint and Join)
	publish_ports = "pick the host ports and add the DNAT/accept rules (refused before anything else changes)",
	create_veth = "create the veth pair: host side on the bridge, the other end created inside the namespace (a generated name that is taken: new names, recorded, then again)",
	add_to_bridge = "attach the host side to the bridge, unless it already is",
	set_hairpin = "hairpin mode on the host side's bridge port (endpoint option hairpin; on by default "
		.. "for an endpoint that publishes ports)",
	host_up = "bring the host side up",
	join_move = "move the other end into the namespace (endpoint join, after create without --netns)",
	sandbox_rename = "inside the namespace: rename the interface to ethN and give it its MAC and MTU",
	sandbox_addresses = "inside the namespace: the endpoint's IPv4 (and IPv6) addresses",
	sandbox_up = "inside the namespace: the interface and lo up",
	sandbox_routes = "inside the namespace: default routes through the gateways (none when internal)",
}

-- The top-level fields of a network definition (Lua; the CLI's flags).
M.definition_docs = {
	name = "the network's name (the NAME argument)",
	id = "its id, 12..64 hex digits (default: random, 64)",
	subnet = "CIDR or a list of them, one per family (--subnet)",
	gateway = "IP or a list, one per family (--gateway; default: the subnet's first address)",
	ip_range = "CIDR inside the IPv4 subnet that endpoint addresses come from (--ip-range)",
	aux_addresses = "{ NAME = IP } never handed out; DefaultGatewayIPv4/IPv6 set a default gateway (--aux-address)",
	ipv6 = "boolean: IPv6 on the network (--ipv6)",
	internal = "boolean: no NAT, no traffic leaving the network (--internal)",
	options = "{ LABEL or KEY = VALUE }: the network options above (-o)",
}

local function lines_of(t) return table.concat(t, "\n") end

--- Word-wrap `text` into lines of at most `width` columns appended to
-- `out`, the first prefixed with `first`, the others with `indent`.
function M.wrap(out, text, width, first, indent)
	local line = first
	local empty = true
	for w in text:gmatch("%S+") do
		if not empty and #line + 1 + #w > width then
			out[#out + 1] = line
			line, empty = indent, true
		end
		line = line .. (empty and "" or " ") .. w
		empty = false
	end
	out[#out + 1] = line
	return out
end

local function driver_module()
	local ok, d = pcall(require, "brisk.driver")
	if ok and type(d) == "table" then return d end
	return nil
end

local function option_rows(keys, out)
	for _, o in ipairs(keys) do
		out[#out + 1] = "  " .. (o.label and (o.label .. ", " .. o.key) or o.key)
		local doc = (o.doc or "") .. " [" .. tostring(o.type)
		if o.default ~= nil then doc = doc .. ", default " .. tostring(o.default) end
		if o.aliases and #o.aliases > 0 then doc = doc .. "; also " .. table.concat(o.aliases, ", ") end
		M.wrap(out, doc .. "]", 79, "      ", "      ")
	end
end

local function options_text()
	local netopts = require "brisk.netopts"
	local out = {
		"Network options: -o KEY=VALUE on 'network create' and 'network plan', or",
		"options = { KEY = VALUE } in a Lua definition. KEY is the Docker label or the",
		"short name after it; values are strings as Docker's labels are (true/false/1/0",
		"for booleans). An unknown key is an error with a 'did you mean' hint.",
		"",
	}
	option_rows(netopts.network:keys(), out)
	local d = driver_module()
	if d and d.endpoint_options then
		out[#out + 1] = ""
		out[#out + 1] = "Endpoint options: -o KEY=VALUE on 'endpoint create' and 'endpoint plan':"
		out[#out + 1] = ""
		option_rows(d.endpoint_options:keys(), out)
	end
	out[#out + 1] = ""
	out[#out + 1] = "Fields of a network definition (driver:create_network{...}, :plan {...}):"
	for _, k in ipairs(netopts.spec_keys) do
		M.wrap(out, M.definition_docs[k] or "", 79, string.format("  %-15s", k), string.rep(" ", 17))
	end
	out[#out + 1] = ""
	out[#out + 1] = "Example: brisk network create -o com.docker.network.bridge.name=br-web -o mtu=1400 web"
	return lines_of(out)
end

--- The step names of the driver's default lists, in order.
-- @treturn table { network = {names}, endpoint = {names} } (empty lists
--   when brisk.driver cannot be loaded)
function M.step_names()
	local r = { network = {}, endpoint = {} }
	local d = driver_module()
	if not d then return r end
	for _, s in ipairs(d.default_network_steps and d.default_network_steps() or {}) do
		r.network[#r.network + 1] = s.name
	end
	for _, s in ipairs(d.default_endpoint_steps and d.default_endpoint_steps() or {}) do
		r.endpoint[#r.endpoint + 1] = s.name
	end
	return r
end

local function steps_text()
	local names = M.step_names()
	local out = {
		"A network is made by libnetwork's bridge setup steps, in this order; each is",
		"re-runnable and does only what is still missing, and a step that does not apply",
		"(IPv6 on an IPv4 network, say) is not queued. 'brisk network plan' lists them",
		"with the kernel operations each would perform.",
		"",
		"network steps:",
	}
	local function add(list)
		for _, n in ipairs(list) do
			out[#out + 1] = "  " .. n
			M.wrap(out, M.step_docs[n] or "(not described)", 79, "      ", "      ")
		end
	end
	add(names.network)
	out[#out + 1] = ""
	out[#out + 1] = "endpoint steps (endpoint create; join runs the namespace ones):"
	add(names.endpoint)
	out[#out + 1] = ""
	out[#out + 1] = "Steps can be replaced, wrapped, added and removed per driver: see 'brisk help hooks'."
	return lines_of(out)
end

local HOOKS = [[
Every step of a driver can be changed from Lua, on that driver object only:

  d:replace_step(NAME, fn)  fn(h, obj, ctx) runs instead (ctx.original: the old)
  d:before(NAME, fn)        fn(h, obj, ctx) runs first, when the step is queued
  d:after(NAME, fn)         fn(h, obj, ctx) runs after the step succeeded
  d:insert_step{ name = NEW, run = fn, before = NAME (or after = NAME),
                 when = fn(obj, ctx) (default: always) }
  d:remove_step(NAME)
  d:step_names("network" or "endpoint")

h is the handle the flow uses (a journal when applying, a recorder when
planning), so what a hook does through h is planned, journaled and undone like
the built-in steps. obj is the network (or endpoint) record. A hook fails the
step by returning nil, message; the flow then rolls back everything done so far.
See 'brisk help steps' for the names.

Example (save as hook.lua, run with 'brisk run hook.lua'):

  local brisk = require "brisk"
  local d <close> = assert(brisk.driver())
  d:after("setup_device_up", function(h, net)
      local conf = "net/ipv4/conf/" .. net.bridge
      return h:sysctl_set(conf .. "/arp_announce", "2")
  end)
  assert(d:create_network{ name = "web", subnet = "10.10.0.0/24" })]]

local STORE = [[
brisk keeps what it made in a state directory: --state-dir DIR, else
$BRISK_STATE_DIR, else /var/lib/brisk. Layout (created 0700, files 0600):

  DIR/network/ID.json    one network record: name, bridge, subnets, options,
                         and the journal of the kernel operations that made it
  DIR/endpoint/ID.json   one endpoint record: network, veth names, namespace,
                         addresses, MAC, published ports
  DIR/.lock              writers take this flock, so brisk processes serialize
  DIR/.gen               bumped by every write (readers' caches check it)
  DIR/.index             what commands need of every record (names, subnets,
                         addresses, ports), so they read one file, not all;
                         rebuilt from the records whenever it is stale
  DIR/*/.spare, DIR/.spare  the file a write replaced, kept for the next write
                         to reuse (no new inode per write)

Each document is replaced atomically and carries dbIndex, bumped on each write,
for compare-and-swap (as libnetwork's datastore does). Deleting a network undoes
its journal newest first. After a reboot 'brisk network restore' re-creates the
stored networks; 'brisk network check' compares the store with the kernel.
'brisk network inspect --json NAME' prints a record exactly as stored. A record
that does not parse stops every command that reads its kind, until 'brisk
network rm ID' (or 'endpoint rm ID') with its full id deletes it; what it made
in the kernel stays.]]

local FIREWALL = [[
brisk expresses libnetwork's bridge firewall in nftables and owns two tables,
nothing else: 'table inet brisk' (filter and nat, IPv4 and IPv6) and
'table bridge brisk' (ICC between ports of one bridge).

  set brisk_bridges      every brisk bridge; isolation between networks is
                         membership in it, so the 500th network costs the same
  sets icc_accept/drop   per network: traffic between its endpoints (icc option)
  chain forward          constant rules: ICC, isolation, established, published
                         ports, outbound; nothing else reaches a bridge
  chain internal         internal networks: drops leaving the subnet
  chain postrouting      masquerade (or SNAT to host_ipv4)
  sets nat4_24, masq4_24 the subnets those two chains match, by family and
    ..., int4_24         prefix length (one group of sets and rules per /N in
                         use), so a network adds set elements, never a rule
  chains port_dnat,      published ports (-p): DNAT and the accept rule
    port_accept

Every rule carries a comment ("brisk group nat4_24 ...", "brisk port ..."),
every network's element one ("brisk net BRIDGE ..."), and 'brisk network
check' reports firewall drift. Look at it with:

  nft list table inet brisk

Drivers opened with { firewall = false } leave nftables alone.]]

local EXAMPLES = [[
  # a network, two namespaces on it, a published port
  brisk network create --subnet 10.10.0.0/24 -o com.docker.network.bridge.name=br-web web
  brisk endpoint create --name web1 --netns h1 -p 8080:80 web
  brisk endpoint create --name web2 --netns h2 web
  ip netns exec h1 ping -c1 10.10.0.3

  # what would happen, changing nothing
  brisk network plan --subnet 10.20.0.0/24 --internal db
  brisk endpoint plan --netns h3 web

  # look at it
  brisk network ls; brisk endpoint ls --json
  brisk graph --format svg -o web.svg

  # after a reboot, and to find drift
  brisk network restore; brisk network check

  # take it down
  brisk endpoint rm web1 web2; brisk network rm web

  # a topology script (brisk.topo): up (a second run: nothing to do), then
  # remove every topology it recorded, without running it (or one, by name)
  brisk run examples/router.lua
  brisk down examples/router.lua        # or: brisk down router

  # the same from Lua (brisk run setup.lua, or in the REPL: brisk)
  local brisk = require "brisk"
  local d <close> = assert(brisk.driver{ state_dir = "/tmp/brisk" })
  local net = assert(d:create_network{ name = "web", subnet = "10.10.0.0/24" })
  assert(d:create_endpoint("web", { name = "web1", netns = "h1" }))

  # in the REPL
  > :plan { name = "db", subnet = "10.20.0.0/24" }
  > :apply
  > driver:networks()]]

--- The topics, in the order `brisk help` lists them.
M.list = {
	{ name = "options", summary = "network and endpoint options (-o labels) and definition fields",
	  text = options_text },
	{ name = "steps", summary = "the steps that make a network and an endpoint, in order",
	  text = steps_text },
	{ name = "hooks", summary = "replacing, wrapping and adding steps from Lua",
	  text = function() return HOOKS end },
	{ name = "store", summary = "the state directory and its records",
	  text = function() return STORE end },
	{ name = "firewall", summary = "the nftables tables, sets and chains brisk owns",
	  text = function() return FIREWALL end },
	{ name = "examples", summary = "command lines and Lua to start from",
	  text = function() return EXAMPLES end },
}

--- A topic by name, or nil.
function M.get(name)
	for _, t in ipairs(M.list) do
		if t.name == name then return t end
	end
	return nil
end

--- The names of the topics, in order.
function M.names()
	local t = {}
	for i, x in ipairs(M.list) do t[i] = x.name end
	return t
end

return M
