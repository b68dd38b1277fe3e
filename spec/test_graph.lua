-- spec/test_graph.lua: `brisk graph` (lua/brisk/cli/graph.lua): the model
-- read from the driver and the kernel, the dot text, rendering through
-- Graphviz, and what happens without it. Networks and endpoints are made
-- with the built program inside the runner's private namespace.
local lu = require "luaunit"
local H = require "helper"
local cjson = require "cjson"

local ROOT, BIN, q, slurp, spit = H.ROOT, H.BIN, H.q, H.slurp, H.spit

local HAS_DOT = H.sh("command -v dot")

-- Run dot on `src`; returns ok, output.
local function dot_accepts(src, fmt)
	local d = H.must("mktemp -d /tmp/brisk-dot-XXXXXX"):gsub("%s+$", "")
	spit(d .. "/g.dot", src)
	local ok, out = H.sh("dot -T" .. (fmt or "svg") .. " " .. q(d .. "/g.dot"))
	os.execute("rm -rf " .. q(d))
	return ok, out
end

local function reset()
	H.reset()
	H.sh("nft flush ruleset")
end

-- In-process: quoting and the dot text of a model --------------------------------

TestGraphDot = {}

local MODEL = {
	networks = {
		{ id = "n1id", name = "web", bridge = "br-web", address_ipv4 = "10.10.0.1/24", present = true,
		  internal = false },
		{ id = "n2id", name = 'we"ird\\net', bridge = "br-x", address_ipv4 = "10.20.0.1/24",
		  address_ipv6 = "fd00::1/64", internal = true, present = false },
	},
	endpoints = {
		{ id = "e1id", name = "web1", network = "n1id", host_ifname = "veth1", netns = "h1", ifname = "eth0",
		  ipv4 = "10.10.0.2/24", mac = "02:42:0a:0a:00:02",
		  ports = { { proto = "tcp", host_port = 8080, container_port = 80 },
			{ proto = "udp", host_ip = "::1", host_port = 53, container_port = 5353 } } },
		{ id = "e2id", name = "loose", network = "n2id", host_ifname = "veth2", peer_ifname = "veth3",
		  ipv4 = "10.20.0.2/24", ports = {} },
	},
	namespaces = { "empty", "h1" },
}

function TestGraphDot:test_quote()
	local G = require "brisk.cli.graph"
	lu.assertEquals(G.quote("plain"), '"plain"')
	lu.assertEquals(G.quote('a"b\\c'), '"a\\"b\\\\c"')
	lu.assertEquals(G.quote("two\nlines\tand\1"), '"two\\nlines and "')
end

function TestGraphDot:test_dot_text()
	local G = require "brisk.cli.graph"
	local src = G.dot(MODEL)
	lu.assertStrMatches(src, "graph brisk {\n.*}\n")
	-- clusters: the host's and one per namespace, empty ones marked
	lu.assertStrContains(src, "subgraph cluster_host {")
	lu.assertStrContains(src, 'label="netns h1"')
	lu.assertStrContains(src, 'label="netns empty"')
	lu.assertStrContains(src, '"ns:empty" [shape=plaintext, label="(no brisk endpoints)"]')
	-- bridges with their addresses; a missing one dashed red
	lu.assertStrContains(src, '"net:n1id" [fillcolor="#dce9f7", label="br-web\\nnetwork web\\n10.10.0.1/24", '
		.. 'shape=box, style="rounded,filled"];')
	lu.assertStrContains(src, 'label="br-x\\nnetwork we\\"ird\\\\net\\n10.20.0.1/24\\nfd00::1/64\\ninternal\\n(bridge missing)"')
	lu.assertStrContains(src, "color=red")
	-- endpoints: the veth pair as an edge labelled with the host side
	lu.assertStrContains(src, '"net:n1id" -- "ep:e1id" [label="veth1"];')
	lu.assertStrContains(src, 'label="eth0 (web1)\\n10.10.0.2/24\\n02:42:0a:0a:00:02"')
	lu.assertStrContains(src, 'label="veth3 (loose)\\n10.20.0.2/24"')
	-- published ports: host side node, arrow to the endpoint
	lu.assertStrContains(src, 'label="*:8080/tcp"')
	lu.assertStrContains(src, 'label="[::1]:53/udp"')
	lu.assertStrContains(src, '"port:e1id:1" -- "ep:e1id" [color=darkorange, dir=forward, label="80/tcp", style=dashed];')
	-- the endpoint without a namespace sits in the host cluster
	local host = src:match("subgraph cluster_host {(.-)\n  }")
	lu.assertStrContains(host, '"ep:e2id"')
	lu.assertNotStrContains(host, '"ep:e1id"')
end

function TestGraphDot:test_dot_accepts_it()
	lu.skipIf(not HAS_DOT, "graphviz is not installed")
	local G = require "brisk.cli.graph"
	local ok, out = dot_accepts(G.dot(MODEL))
	lu.assertTrue(ok, out)
	lu.assertStrContains(out, "<svg")
	lu.assertStrContains(out, "we&quot;ird\\net")
	ok, out = dot_accepts(G.dot({ networks = {}, endpoints = {}, namespaces = {} }))
	lu.assertTrue(ok, out)
end

function TestGraphDot:test_modules_set_no_globals()
	H.assert_no_globals({ "brisk.cli.graph", "brisk.helptopics" })
end

-- The command, over a real topology ------------------------------------------------

TestGraphCli = {}

function TestGraphCli:setUp()
	reset()
	self.dir = H.must("mktemp -d /tmp/brisk-graph-XXXXXX"):gsub("%s+$", "")
	self.env = "BRISK_STATE_DIR=" .. q(self.dir .. "/st")
end

function TestGraphCli:tearDown()
	if self.dir then
		self:brisk("network rm --force gweb gdb")
		os.execute("rm -rf " .. q(self.dir))
	end
	reset()
end

-- Run BIN with args; returns code, stdout, stderr.
function TestGraphCli:brisk(args, env)
	local cmd = string.format("cd %s && env %s %s %s %s </dev/null >%s/out 2>%s/err", q(self.dir), self.env,
		env or "", q(BIN), args, q(self.dir), q(self.dir))
	local _, _, code = os.execute(cmd)
	return code, slurp(self.dir .. "/out"), slurp(self.dir .. "/err")
end

function TestGraphCli:must(args)
	local code, out, err = self:brisk(args)
	lu.assertEquals(code, 0, args .. ": " .. tostring(err))
	return out
end

function TestGraphCli:topology()
	self:must("network create --subnet 10.71.0.0/24 -o com.docker.network.bridge.name=br-gweb gweb")
	self:must("network create --ipv6 --internal --subnet 10.72.0.0/24 --subnet fd00:72::/64 "
		.. "-o com.docker.network.bridge.name=br-gdb gdb")
	self:must("endpoint create --name gw1 --netns gh1 -p 8080:80 -p 192.0.2.1:5353:53/udp gweb")
	self:must("endpoint create --name gd1 --netns gh1 gdb")
	self:must("endpoint create --name gloose gdb")
	H.netns_add("gempty")
end

-- One namespace however its endpoints named it, one node for a host port
-- published on both families (a review found three clusters and two
-- identical nodes)
function TestGraphCli:test_one_cluster_per_namespace_one_node_per_port()
	self:must("network create --ipv6 --subnet 10.73.0.0/24 --subnet fd00:73::/64 gds")
	self:must("endpoint create --name gx1 --netns gx gds")
	self:must("endpoint create --name gx2 --netns /run/netns/gx -p 9090:90 gds")
	local code, out, err = self:brisk("graph")
	lu.assertEquals(code, 0, err)
	lu.assertEquals(select(2, out:gsub('label="netns gx"', "")), 1, out)
	lu.assertNotStrContains(out, "/run/netns/gx")
	lu.assertEquals(select(2, out:gsub('label="%*:9090/tcp"', "")), 1)
	lu.assertStrContains(out, 'label="10.73.0.3:90/tcp"')
	lu.assertStrContains(out, 'label="[fd00:73::3]:90/tcp"')
	local m = cjson.decode((select(2, self:brisk("--json graph"))))
	for _, e in ipairs(m.endpoints) do lu.assertEquals(e.netns, "gx") end
	if HAS_DOT then
		local ok, svg = dot_accepts(out)
		lu.assertTrue(ok, svg)
	end
	-- an unnamed namespace, by pid and by path: one cluster too
	local pid = H.must("unshare -n sleep 30 >/dev/null 2>&1 & echo $!"):gsub("%s+$", "")
	os.execute("sleep 0.2")
	self:must("endpoint create --name gp1 --netns " .. pid .. " gds")
	self:must("endpoint create --name gp2 --netns /proc/" .. pid .. "/ns/net gds")
	_, out = self:brisk("graph")
	os.execute("kill " .. pid)
	lu.assertEquals(select(2, out:gsub('label="netns ' .. pid .. '"', "")), 1, out)
	lu.assertNotStrContains(out, "/proc/" .. pid)
end

function TestGraphCli:test_model_json_matches_kernel()
	self:topology()
	local code, out, err = self:brisk("--json graph")
	lu.assertEquals(code, 0, err)
	local m = cjson.decode(out)
	lu.assertEquals(#m.networks, 2)
	lu.assertEquals(m.networks[1].name, "gdb")        -- sorted by name
	lu.assertEquals(m.networks[2].bridge, "br-gweb")
	lu.assertEquals(m.networks[2].address_ipv4, "10.71.0.1/24")
	lu.assertEquals(m.networks[1].address_ipv6, "fd00:72::1/64")
	lu.assertTrue(m.networks[1].internal)
	lu.assertTrue(m.networks[2].present)
	lu.assertEquals(m.namespaces, { "gempty", "gh1" })
	local by = {}
	for _, e in ipairs(m.endpoints) do by[e.name] = e end
	lu.assertEquals(by.gw1.netns, "gh1")
	lu.assertEquals(by.gw1.ifname, "eth0")
	lu.assertEquals(#by.gw1.ports, 2)
	lu.assertNil(by.gloose.netns)
	-- the witness: what ip says about the same objects
	local addrs = H.ip("-n gh1 addr show dev eth0")[1].addr_info
	local v4
	for _, a in ipairs(addrs) do if a.family == "inet" then v4 = a["local"] .. "/" .. math.tointeger(a.prefixlen) end end
	lu.assertEquals(by.gw1.ipv4, v4)
	lu.assertEquals(H.iplink(by.gw1.host_ifname).master, "br-gweb")
	lu.assertEquals(H.iplink(by.gloose.host_ifname).master, "br-gdb")
	lu.assertEquals(H.iplink("eth0", "gh1").address, by.gw1.mac)
end

function TestGraphCli:test_dot_output_is_valid_and_complete()
	self:topology()
	local code, out, err = self:brisk("graph")
	lu.assertEquals(code, 0, err)
	lu.assertEquals(err, "")
	lu.assertStrMatches(out, "graph brisk {\n.*}\n")
	for _, s in ipairs({ "br-gweb", "br-gdb", "network gweb", "10.71.0.1/24", "fd00:72::1/64", "internal",
		'label="netns gh1"', 'label="netns gempty"', "eth0 (gw1)", "eth1 (gd1)", "(gloose)",
		"10.71.0.2/24", '"*:8080/tcp"', '"192.0.2.1:5353/udp"', 'label="10.71.0.2:80/tcp"',
		'label="10.71.0.2:53/udp"' }) do
		lu.assertStrContains(out, s)
	end
	lu.assertNotStrContains(out, "bridge missing")
	if HAS_DOT then
		local ok, svg = dot_accepts(out)
		lu.assertTrue(ok, svg)
		lu.assertStrContains(svg, "br&#45;gweb")    -- svg escapes the dash
	end
	-- -o FILE: the same text in the file, nothing on stdout
	code, out, err = self:brisk("graph -o " .. q(self.dir .. "/g.dot"))
	lu.assertEquals(code, 0, err)
	lu.assertEquals(out, "")
	lu.assertStrContains(slurp(self.dir .. "/g.dot"), "br-gweb")
end

function TestGraphCli:test_missing_bridge_drawn_as_missing()
	self:topology()
	H.must("ip link del br-gweb")
	local code, out = self:brisk("graph")
	lu.assertEquals(code, 0)
	lu.assertStrContains(out, 'label="br-gweb\\nnetwork gweb\\n10.71.0.1/24\\n(bridge missing)"')
	local _, js = self:brisk("--json graph")
	lu.assertFalse(cjson.decode(js).networks[2].present)
end

function TestGraphCli:test_svg_and_png()
	lu.skipIf(not HAS_DOT, "graphviz is not installed")
	self:topology()
	local code, out, err = self:brisk("graph --format svg")
	lu.assertEquals(code, 0, err)
	lu.assertStrContains(out, "<svg")
	lu.assertStrContains(out, "br&#45;gweb")
	code, out, err = self:brisk("graph -f svg -o " .. q(self.dir .. "/g.svg"))
	lu.assertEquals(code, 0, err)
	lu.assertEquals(out, "")
	lu.assertStrContains(slurp(self.dir .. "/g.svg"), "<svg")
	code, out, err = self:brisk("graph --format png -o " .. q(self.dir .. "/g.png"))
	lu.assertEquals(code, 0, err)
	lu.assertEquals(slurp(self.dir .. "/g.png"):sub(1, 8), "\137PNG\r\n\26\n")
	-- png to a pipe is fine too
	code, out = self:brisk("graph --format png")
	lu.assertEquals(code, 0)
	lu.assertEquals(out:sub(1, 4), "\137PNG")
end

function TestGraphCli:test_without_graphviz_says_what_to_install()
	self:must("network create --subnet 10.71.0.0/24 -o com.docker.network.bridge.name=br-gweb gweb")
	H.must("mkdir -p " .. q(self.dir .. "/emptybin"))
	for _, f in ipairs({ "svg", "png" }) do
		local code, out, err = self:brisk("graph --format " .. f .. " -o " .. q(self.dir .. "/x." .. f),
			"PATH=" .. q(self.dir .. "/emptybin"))
		lu.assertEquals(code, 1)
		lu.assertEquals(out, "")
		lu.assertEquals(err, "brisk: --format " .. f
			.. " needs Graphviz's dot: install graphviz (apt-get install graphviz)\n")
		lu.assertNil(slurp(self.dir .. "/x." .. f))
	end
	-- dot text needs no graphviz
	local code, out = self:brisk("graph", "PATH=" .. q(self.dir .. "/emptybin"))
	lu.assertEquals(code, 0)
	lu.assertStrContains(out, "br-gweb")
end

function TestGraphCli:test_usage_errors_and_help()
	local code, out, err = self:brisk("graph --format gif")
	lu.assertEquals(code, 2)
	lu.assertEquals(out, "")
	lu.assertStrContains(err, "'gif' is not one of dot, svg, png")
	code, _, err = self:brisk("graph extra")
	lu.assertEquals(code, 2)
	lu.assertStrContains(err, "'graph' takes no arguments")
	code, out = self:brisk("graph --help")
	lu.assertEquals(code, 0)
	lu.assertStrContains(out, "usage: brisk graph [--format dot|svg|png] [-o FILE]")
	lu.assertStrMatches(out, ".*\nexamples:\n  brisk graph .*")
	-- an unreadable state directory is a failure, exit 1
	code, out, err = self:brisk("--state-dir /proc/no/such graph")
	lu.assertEquals(code, 1)
	lu.assertEquals(out, "")
	lu.assertStrContains(err, "brisk: ")
end

function TestGraphCli:test_empty_state()
	local code, out = self:brisk("graph")
	lu.assertEquals(code, 0)
	lu.assertStrContains(out, "subgraph cluster_host {")
	lu.assertNotStrContains(out, " -- ")
	if HAS_DOT then lu.assertTrue((dot_accepts(out))) end
	local _, js = self:brisk("--json graph")
	lu.assertEquals(js, '{"endpoints":[],"namespaces":[],"networks":[]}\n')
end
