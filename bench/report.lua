-- bench/report.lua RAW: turn the lines the drivers printed (RESULT,
-- NETCREATE, RSS, and bench/run.sh's META lines) into the tables of
-- bench/results.txt. Repeated runs of one tool at one N are reduced to
-- their median.
local raw = assert(arg[1], "usage: report.lua RAW")

local function fields(line)
	local t = {}
	for k, v in line:gmatch("([%w_]+)=(%S+)") do t[k] = tonumber(v) or v end
	return t
end

local TOOLS = {
	{ "brisk_api", "brisk Lua API, 1 process" },
	{ "brisk_api_tmpfs", "  same, state dir on tmpfs" },
	{ "brisk_cli", "brisk CLI, 1 process/endpoint" },
	{ "brisk_cli_daemon", "  same, served by brisk daemon" },
	{ "ip_batch", "ip -batch (+1 ip -n per netns)" },
	{ "ip_plain", "plain ip, 1 process/command" },
	{ "pyroute2", "pyroute2, 1 process" },
	{ "pyroute2_nofork", "  pyroute2, netns without fork" },
	{ "pyroute2_netns", "  pyroute2, NetNS proxy per ns" },
	{ "cni", "CNI bridge + host-local" },
}
local LABEL = {}
for _, t in ipairs(TOOLS) do LABEL[t[1]] = t[2] end

local meta, runs, nets, rss, order_ns, counts = {}, {}, {}, {}, {}, {}
local nlbatch, nlreq = {}, {}
for line in io.lines(raw) do
	local kind, rest = line:match("^(%u+) (.*)$")
	local f = rest and fields(rest)
	if kind == "META" then
		local k, v = rest:match("^(%w+)=(.*)$")
		meta[#meta + 1] = { k, v }
	elseif kind == "RESULT" then
		runs[f.tool] = runs[f.tool] or {}
		local r = runs[f.tool]
		r[f.n] = r[f.n] or { times = {}, fail = false }
		table.insert(r[f.n].times, f.total_s)
		if f.status ~= "ok" then r[f.n].fail = true end
		if not order_ns[f.n] then order_ns[f.n] = true; counts[#counts + 1] = f.n end
	elseif kind == "NETCREATE" then
		-- one window per run: the median of the runs is reported
		nets[f.tool] = nets[f.tool] or {}
		local byk = nets[f.tool]
		byk[f.existing] = byk[f.existing] or {}
		table.insert(byk[f.existing], f.ms)
	elseif kind == "RSS" then
		rss[#rss + 1] = f
	elseif kind == "NLBATCH" then
		nlbatch[#nlbatch + 1] = f
	elseif kind == "NLREQ" then
		nlreq[#nlreq + 1] = f
	end
end
table.sort(counts)

local function median(t)
	local s = {}
	for i, v in ipairs(t) do s[i] = v end
	table.sort(s)
	local m = #s // 2
	if #s % 2 == 1 then return s[m + 1] end
	return (s[m] + s[m + 1]) / 2
end

-- network create: the median of each K's windows, and how many there were
local netruns = 0
for _, byk in pairs(nets) do
	for k, list in pairs(byk) do
		netruns = math.max(netruns, #list)
		byk[k] = median(list)
	end
end

local out = {}
local function p(fmt, ...) out[#out + 1] = string.format(fmt, ...) end

for _, m in ipairs(meta) do p("%-10s %s", m[1] .. ":", m[2]) end
p("")

-- endpoints
local per = {}          -- tool -> n -> ms/ep
local fastest = {}      -- n -> ms/ep
for tool, r in pairs(runs) do
	per[tool] = {}
	for n, x in pairs(r) do
		local ms = median(x.times) * 1000 / n
		per[tool][n] = ms
		if not x.fail and (not fastest[n] or ms < fastest[n]) then fastest[n] = ms end
	end
end
-- the marginal's slope: from N=100 (past the fixed costs of a small run)
-- to the largest N, as in the runs before N=500 was added; else between the
-- two largest
local hi, lo = counts[#counts], counts[#counts - 1]
for _, n in ipairs(counts) do
	if n == 100 and n < hi then lo = n end
end
local marginal = {}
for tool, r in pairs(runs) do
	if r[hi] and r[lo] then
		marginal[tool] = (median(r[hi].times) - median(r[lo].times)) * 1000 / (hi - lo)
	end
end

p("Endpoints: one bridge network, N endpoints, each in its own new namespace with")
p("an IPv4 address and a default route (median of the runs; marginal = slope of")
p("the total between N=%s and N=%s; x fastest = ms/endpoint over the fastest", lo or "-", hi or "-")
p("tool's at that N).")
p("")
p("spread = (slowest - fastest run) / median, when there were several runs.")
p("")
p("%-32s %5s %5s %9s %7s %8s %9s %9s", "tool", "N", "runs", "total s", "spread", "ms/ep", "marg ms", "x fastest")
for _, t in ipairs(TOOLS) do
	local r = runs[t[1]]
	if r then
		for _, n in ipairs(counts) do
			local x = r[n]
			if x then
				local mg = (n == hi and marginal[t[1]]) and string.format("%9.2f", marginal[t[1]]) or string.format("%9s", "")
				local spread = ""
				if #x.times > 1 then
					spread = string.format("%.0f%%", (math.max(table.unpack(x.times)) -
						math.min(table.unpack(x.times))) * 100 / median(x.times))
				end
				p("%-32s %5d %5d %9.3f %7s %8.2f %s %9s", t[2], n, #x.times, median(x.times), spread,
					per[t[1]][n], mg, x.fail and "FAILED" or string.format("%.2f", per[t[1]][n] / fastest[n]))
			elseif n == hi then
				p("%-32s %5d %5s %9s %7s %8s %9s %9s", t[2], n, "-", "(capped)", "", "", "", "")
			end
		end
	end
end
p("")

-- network create
local ntools = { { "brisk", "brisk Lua API (firewall on)" }, { "brisk_nofw", "brisk Lua API, firewall off" },
	{ "brisk_cli", "brisk network create (CLI)" }, { "ip_batch", "ip -batch" } }
local ks, seen = {}, {}
for _, byk in pairs(nets) do
	for k in pairs(byk) do if not seen[k] then seen[k] = true; ks[#ks + 1] = k end end
end
table.sort(ks)
if #ks > 0 then
	p("Network create: ms per create with K networks already there (a bridge, its")
	p("gateway address, up; brisk also its sysctls, its store entry and, with the")
	p("firewall, one nftables transaction). The CLI's window follows the API's,")
	p("so it starts a few networks after K. last/first = flatness (1.00 is flat).")
	p("Median of %d run(s) of each window.", netruns)
	p("")
	local head = { string.format("%-30s", "tool") }
	for _, k in ipairs(ks) do head[#head + 1] = string.format("%9s", "K=" .. k) end
	head[#head + 1] = string.format("%11s", "last/first")
	p("%s", table.concat(head, " "))
	for _, t in ipairs(ntools) do
		local byk = nets[t[1]]
		if byk then
			local row = { string.format("%-30s", t[2]) }
			local first, last
			for _, k in ipairs(ks) do
				row[#row + 1] = byk[k] and string.format("%9.2f", byk[k]) or string.format("%9s", "-")
				if byk[k] then first = first or byk[k]; last = byk[k] end
			end
			row[#row + 1] = string.format("%11.2f", last / first)
			p("%s", table.concat(row, " "))
		end
	end
	p("")
end

-- RSS
if #rss > 0 then
	p("Peak RSS (VmHWM):")
	p("")
	for _, r in ipairs(rss) do p("  %-26s %7.1f MB", r.what, r.kb / 1024) end
	p("")
end

-- netlink batching: what one request per round trip costs
local per_ep_req
if #nlreq == 2 and nlreq[2].n ~= nlreq[1].n then
	per_ep_req = (nlreq[2].calls - nlreq[1].calls) / (nlreq[2].n - nlreq[1].n)
end
if #nlbatch > 0 then
	p("Netlink batching (bench/nlbatch.c): the same requests, each acked, sent one per")
	p("round trip and then %d per sendmsg, on a bridge with no ports; us per request,", nlbatch[1].batch)
	p("median of the runs. saved = the most a batched path could save per request.")
	p("")
	p("%-12s %12s %10s %8s", "request", "one by one", "batched", "saved")
	local most = 0
	for _, b in ipairs(nlbatch) do
		local saved = b.single_us - b.batched_us
		most = math.max(most, saved)
		p("%-12s %12.2f %10.2f %8.2f", b.op, b.single_us, b.batched_us, saved)
	end
	if per_ep_req then
		p("")
		p("brisk's endpoint flow sends %.1f netlink requests per endpoint (strace, N=%d", per_ep_req, nlreq[1].n)
		p("to N=%d). Batching every one of them at the largest saving above would save", nlreq[2].n)
		local api_n
		for _, n in ipairs(counts) do
			if per.brisk_api and per.brisk_api[n] and (not api_n or math.abs(n - 100) < math.abs(api_n - 100)) then
				api_n = n
			end
		end
		if api_n then
			local ms = per_ep_req * most / 1000
			p("%.2f ms per endpoint: %.1f%% of the Lua API's %.2f ms per endpoint at N=%d.", ms,
				ms * 100 / per.brisk_api[api_n], per.brisk_api[api_n], api_n)
		else
			p("%.2f ms per endpoint.", per_ep_req * most / 1000)
		end
	end
	p("")
end

-- targets
local function have(tool, n) return per[tool] and per[tool][n] end
p("Targets (measured, not asserted):")
local api, py = marginal.brisk_api, marginal.pyroute2
if api then
	local best_other
	for tool, m in pairs(marginal) do
		if not tool:match("^brisk") and (not best_other or m < best_other[2]) then best_other = { tool, m } end
	end
	if py then
		p("  Lua API marginal %.2f ms/ep = %.2fx pyroute2's %.2f (target <= 0.70x)%s", api, api / py, py,
			api / py <= 0.7 and "  met" or "  NOT met")
	end
	if marginal.pyroute2_nofork then
		p("  Lua API marginal vs pyroute2 without fork (%.2f ms/ep): %.2fx", marginal.pyroute2_nofork,
			api / marginal.pyroute2_nofork)
	end
	if best_other then
		p("  below every peer: the fastest peer's marginal is %s's %.2f ms/ep: %s", best_other[1], best_other[2],
			api < best_other[2] and "met" or "NOT met")
	end
end
for _, cli in ipairs{ { "brisk_cli", "CLI" }, { "brisk_cli_daemon", "CLI with daemon" } } do
	for _, n in ipairs(counts) do
		if have(cli[1], n) and have("cni", n) then
			local x = per.cni[n] / per[cli[1]][n]
			p("  N=%d: CNI %.2f ms/ep, %s %.2f ms/ep: CNI/CLI = %.2f (target >= 3)%s", n, per.cni[n],
				cli[2], per[cli[1]][n], x, x >= 3 and "  met" or "  NOT met")
		end
	end
end
if nets.brisk then
	local first, last
	for _, k in ipairs(ks) do
		if nets.brisk[k] then first = first or nets.brisk[k]; last = nets.brisk[k] end
	end
	p("  network create (API) from K=%d to K=%d: %.2fx the time per create%s", ks[1], ks[#ks], last / first,
		last / first <= 1.25 and "  met" or "  NOT met")
	local ib = nets.ip_batch
	if ib and ib[ks[1]] and ib[ks[#ks]] then
		p("    (ip -batch, the kernel's part alone, in the same run: %.2fx)", ib[ks[#ks]] / ib[ks[1]])
	end
end
for _, r in ipairs(rss) do
	if r.what == "brisk_network_ls" then
		p("  RSS of the CLI (network ls) %.1f MB (target <= 5 MB)%s", r.kb / 1024, r.kb <= 5120 and "  met" or "  NOT met")
	end
end

print(table.concat(out, "\n"))
