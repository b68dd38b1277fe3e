--- brisk.pretty: how brisk shows Lua values to a person.
--
-- `pretty.format(v)` turns any value into text: links (tables with `ifindex`
-- and `ifname`, as `ip -j link` gives them) as one compact row like
-- `ip -br link`, addresses (tables with `local` and `prefixlen`) like
-- `ip -br addr`, arrays of those as aligned rows; arrays of brisk's network
-- and endpoint records (what `driver:networks()` and `driver:endpoints()`
-- return) as rows under a header, as `docker network ls` prints them; and
-- any other table readably (sorted keys, nested indentation, cycles marked).
-- A single network or endpoint record prints whole (as `inspect` shows it)
-- unless `{ compact = true }` asks for its row, as the REPL does.
-- `pretty.table(rows, columns)` lays rows out as a column-aligned text table
-- with a header, as `ls` commands print them.
local M = {}

--- Width that inline tables must fit in before they are broken over lines.
M.width = 78

--- Deepest nesting shown; deeper tables print as `{...}`.
M.max_depth = 12

local keywords = {}
for w in ([[and break do else elseif end false for function goto if in
	local nil not or repeat return then true until while]]):gmatch("%a+") do
	keywords[w] = true
end

local function is_ident(s)
	return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil and not keywords[s]
end

local escapes = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\r"] = "\\r",
	["\t"] = "\\t", ["\0"] = "\\0" }

--- A string as a Lua literal that reads back as the same string.
local function quote(s)
	return '"' .. s:gsub('[%c\\"]', function(c)
		return escapes[c] or string.format("\\%03d", c:byte())
	end) .. '"'
end

local function has_tostring(v)
	local mt = getmetatable(v)
	return type(mt) == "table" and rawget(mt, "__tostring") ~= nil
end

-- A cell value: integral floats (as cjson decodes numbers) without ".0".
local function num(v)
	if type(v) == "number" then return tostring(math.tointeger(v) or v) end
	return tostring(v)
end

local function scalar(v)
	if type(v) == "string" then return quote(v) end
	return tostring(v)
end

--- Whether `t` looks like a link: it has `ifindex` and `ifname`.
function M.is_link(t)
	return type(t) == "table" and math.tointeger(rawget(t, "ifindex")) ~= nil
		and type(rawget(t, "ifname")) == "string"
end

--- Whether `t` looks like an address: it has `local` and `prefixlen`.
function M.is_addr(t)
	return type(t) == "table" and rawget(t, "local") ~= nil and rawget(t, "prefixlen") ~= nil
end

local function link_name(t)
	local name = t.ifname
	if type(t.link) == "string" then
		name = name .. "@" .. t.link
	elseif math.tointeger(t.link_index) then
		name = name .. "@if" .. num(t.link_index)
	end
	return name
end

local function addr_text(a)
	local s = tostring(a["local"]) .. "/" .. num(a.prefixlen)
	if a.address ~= nil and a.address ~= a["local"] then
		s = tostring(a["local"]) .. " peer " .. tostring(a.address) .. "/" .. num(a.prefixlen)
	end
	return s
end

local function scope_text(a)
	local sc = a.scope
	if sc == nil or sc == "global" or sc == 0 then return "" end
	return "scope " .. num(sc)
end

-- The cells of one row: name, state, then the rest. Links with `addr_info`
-- (as `ip -j addr` gives them) show their addresses like `ip -br addr`.
local function link_cells(t)
	local kind = type(t.linkinfo) == "table" and t.linkinfo.info_kind or t.kind
	if type(t.addr_info) == "table" then
		local addrs = {}
		for _, a in ipairs(t.addr_info) do
			if M.is_addr(a) then addrs[#addrs + 1] = addr_text(a) end
		end
		return { link_name(t), t.operstate or "", table.concat(addrs, " ") }
	end
	return {
		link_name(t),
		t.operstate or "",
		t.address or "",
		t.mtu and ("mtu " .. num(t.mtu)) or "",
		t.master and ("master " .. tostring(t.master)) or "",
		kind and tostring(kind) or "",
	}
end

local function addr_cells(a)
	local name = a.label or a.ifname or a.dev
		or (a.ifindex and ("if" .. num(a.ifindex))) or ""
	return { tostring(name), addr_text(a), scope_text(a) }
end

-- Align rows of cells: columns that are empty in every row vanish, the last
-- cell of a row carries no padding.
local function align(rows, sep)
	local widths, used = {}, {}
	for _, r in ipairs(rows) do
		for i, c in ipairs(r) do
			if #c > (widths[i] or 0) then widths[i] = #c end
			if c ~= "" then used[i] = true end
		end
	end
	local out = {}
	for _, r in ipairs(rows) do
		local cells = {}
		for i, c in ipairs(r) do
			if used[i] then cells[#cells + 1] = { c, widths[i] } end
		end
		local line = {}
		for j, cw in ipairs(cells) do
			line[j] = j < #cells and (cw[1] .. string.rep(" ", cw[2] - #cw[1])) or cw[1]
		end
		out[#out + 1] = (table.concat(line, sep):gsub("%s+$", ""))
	end
	return table.concat(out, "\n")
end

--- Whether `t` looks like a brisk network record: string `id`, `name` and
-- `bridge`, and an IPv4 subnet or the bridge driver (and no `network`: that
-- is an endpoint's).
function M.is_network(t)
	return type(t) == "table" and type(rawget(t, "id")) == "string"
		and type(rawget(t, "name")) == "string" and type(rawget(t, "bridge")) == "string"
		and rawget(t, "network") == nil
		and (rawget(t, "subnet4") ~= nil or rawget(t, "driver") == "bridge")
end

--- Whether `t` looks like a brisk endpoint record: string `id`, `name` and
-- `network`, and a host-side interface or an IPv4 address.
function M.is_endpoint(t)
	return type(t) == "table" and type(rawget(t, "id")) == "string"
		and type(rawget(t, "name")) == "string" and type(rawget(t, "network")) == "string"
		and (rawget(t, "host_ifname") ~= nil or rawget(t, "ipv4") ~= nil)
end

local function short_id(v) return type(v) == "string" and v:sub(1, 12) or "" end

local function flags_text(_, n)
	local f = {}
	if n.internal then f[#f + 1] = "internal" end
	if n.enable_ipv6 then f[#f + 1] = "ipv6" end
	if n.icc == false then f[#f + 1] = "no-icc" end
	if n.masquerade == false then f[#f + 1] = "no-masquerade" end
	if n.creator == "user" then f[#f + 1] = "adopted" end
	return table.concat(f, ",")
end

--- A published port as `docker ps` shows it: `0.0.0.0:8080->80/tcp`.
-- @tparam table p a binding `{proto=, host_ip=, host_port=, container_port=}`
-- @treturn string
function M.port_text(p)
	local hip = p.host_ip
	if hip == nil then hip = "" elseif tostring(hip):find(":", 1, true) then hip = "[" .. hip .. "]:"
	else hip = tostring(hip) .. ":" end
	local hp = num(p.host_port)
	if p.host_port_end then hp = hp .. "-" .. num(p.host_port_end) end
	local cp = num(p.container_port)
	if p.container_port_end then cp = cp .. "-" .. num(p.container_port_end) end
	return hip .. hp .. "->" .. cp .. "/" .. tostring(p.proto or "tcp")
end

local function ports_text(ports)
	if type(ports) ~= "table" then return "" end
	local t = {}
	for _, p in ipairs(ports) do
		if type(p) == "table" then t[#t + 1] = M.port_text(p) end
	end
	return table.concat(t, ",")
end

--- Columns of network rows (as `brisk network ls`, without the endpoint
-- count) and endpoint rows (as `brisk endpoint ls`, with the ports).
M.network_columns = {
	{ "id", title = "NETWORK ID", format = short_id },
	"name", "bridge",
	{ "subnet4", title = "SUBNET" },
	{ "gateway4", title = "GATEWAY" },
	{ "subnet6", title = "IPV6" },
	{ "flags", title = "FLAGS", format = flags_text },
}

M.endpoint_columns = {
	{ "id", title = "ENDPOINT ID", format = short_id },
	"name",
	{ "network_name", title = "NETWORK" },
	{ "host_ifname", title = "HOST IFNAME" },
	"netns", "ifname", "mac", "ipv4", "ipv6",
	{ "ports", title = "PORTS", format = ports_text },
}

local function record_rows(list, columns)
	-- columns that are empty in every row are left out
	local keep = {}
	for _, c in ipairs(columns) do
		local key = type(c) == "string" and c or c.key or c[1]
		local format = type(c) == "table" and c.format or nil
		for _, r in ipairs(list) do
			local v = r[key]
			local text = format and format(v, r) or (v ~= nil and tostring(v) or "")
			if text ~= "" then keep[#keep + 1] = c; break end
		end
	end
	return M.table(list, keep)
end

local function row_cells(v)
	if M.is_link(v) then return link_cells(v) end
	if M.is_addr(v) then return addr_cells(v) end
	return nil
end

-- Keys in display order: numbers (ascending) before strings, then others.
local function sorted_keys(t, skip)
	local keys = {}
	for k in pairs(t) do
		if not skip[k] then keys[#keys + 1] = k end
	end
	local rank = { number = 1, string = 2 }
	table.sort(keys, function(a, b)
		local ta, tb = rank[type(a)] or 3, rank[type(b)] or 3
		if ta ~= tb then return ta < tb end
		if ta == 3 then return tostring(a) < tostring(b) end
		return a < b
	end)
	return keys
end

local function fmt(v, indent, stack, depth)
	if type(v) ~= "table" then return scalar(v) end
	if has_tostring(v) then return tostring(v) end
	if stack[v] then return "<cycle>" end
	if next(v) == nil then return "{}" end
	if depth > M.max_depth then return "{...}" end
	stack[v] = true
	local items, in_array = {}, {}
	local n = 0
	while rawget(v, n + 1) ~= nil do
		n = n + 1
		in_array[n] = true
		items[#items + 1] = fmt(v[n], indent .. "  ", stack, depth + 1)
	end
	for _, k in ipairs(sorted_keys(v, in_array)) do
		local ks = is_ident(k) and k or ("[" .. scalar(k) .. "]")
		items[#items + 1] = ks .. " = " .. fmt(v[k], indent .. "  ", stack, depth + 1)
	end
	stack[v] = nil
	local inline = "{ " .. table.concat(items, ", ") .. " }"
	if not inline:find("\n", 1, true) and #indent + #inline <= M.width then
		return inline
	end
	return "{\n" .. indent .. "  " .. table.concat(items, ",\n" .. indent .. "  ")
		.. ",\n" .. indent .. "}"
end

-- Whether every element of the pure array `v` satisfies `pred`.
local function all(v, pred)
	for i = 1, #v do
		if not pred(v[i]) then return false end
	end
	return true
end

--- Format any value as text.
-- A string at the top level is returned as it is; nested strings are quoted.
-- Links and addresses print as `ip -br` rows; arrays of network or of
-- endpoint records as rows under a header (columns empty in every row
-- left out).
-- @param v any value
-- @tparam[opt] table opts `compact = true`: a single network or endpoint
--   record prints as its row (under the header) instead of whole;
--   `rows = false`: no rows at all, every table printed as a table
-- @treturn string (never nil; no trailing newline)
function M.format(v, opts)
	if type(v) == "string" then return v end
	if type(v) ~= "table" or has_tostring(v) then return tostring(v) end
	if opts and opts.rows == false then return fmt(v, "", {}, 1) end
	local cells = row_cells(v)
	if cells then return align({ cells }, "  ") end
	if opts and opts.compact then
		if M.is_network(v) then return record_rows({ v }, M.network_columns) end
		if M.is_endpoint(v) then return record_rows({ v }, M.endpoint_columns) end
	end
	if #v > 0 then
		-- only a pure array (no other keys) of links/addresses/records prints as rows
		local count = 0
		for _ in pairs(v) do count = count + 1 end
		if count == #v then
			if all(v, M.is_network) then return record_rows(v, M.network_columns) end
			if all(v, M.is_endpoint) then return record_rows(v, M.endpoint_columns) end
			local rows = {}
			for i = 1, #v do
				rows[i] = row_cells(v[i])
				if not rows[i] then rows = nil; break end
			end
			if rows then return align(rows, "  ") end
		end
	end
	return fmt(v, "", {}, 1)
end

local function cell_text(v)
	if v == nil then return "" end
	if type(v) == "table" and not has_tostring(v) then
		local parts = {}
		for i = 1, #v do parts[i] = cell_text(v[i]) end
		if #parts > 0 or next(v) == nil then return table.concat(parts, ",") end
		return fmt(v, "", {}, 1)
	end
	return tostring(v)
end

--- Lay rows out as a column-aligned text table with a header line.
-- @tparam table rows array of tables
-- @tparam table columns array of column specs: a key string, or a table
--   `{ key, title = "TITLE", format = function(value, row) -> string }`
--   (`key` may also be given as `key = ...`). The title defaults to the key
--   in upper case with `_` as a space. Missing values show as empty cells,
--   arrays of scalars as comma-separated lists.
-- @tparam[opt] table opts `{ header = false }` leaves the header out
-- @treturn string the lines, without a trailing newline (the header alone
--   when there are no rows)
function M.table(rows, columns, opts)
	assert(type(rows) == "table", "bad argument #1 to 'table' (table expected)")
	assert(type(columns) == "table", "bad argument #2 to 'table' (table expected)")
	local cols = {}
	for i, c in ipairs(columns) do
		if type(c) == "string" then c = { c } end
		local key = c.key or c[1]
		assert(key ~= nil, "bad argument #2 to 'table' (column " .. i .. " has no key)")
		cols[i] = {
			key = key,
			title = c.title or tostring(key):upper():gsub("_", " "),
			format = c.format,
		}
	end
	local lines = {}
	if not (opts and opts.header == false) then
		local h = {}
		for i, c in ipairs(cols) do h[i] = c.title end
		lines[1] = h
	end
	for _, row in ipairs(rows) do
		local r = {}
		for i, c in ipairs(cols) do
			local v = row[c.key]
			if c.format then
				r[i] = tostring(c.format(v, row) or "")
			elseif type(v) == "string" then
				r[i] = v
			else
				r[i] = cell_text(v)
			end
		end
		lines[#lines + 1] = r
	end
	local widths = {}
	for _, r in ipairs(lines) do
		for i, c in ipairs(r) do
			if #c > (widths[i] or 0) then widths[i] = #c end
		end
	end
	-- each line without trailing white space: up to its last cell with
	-- something else in it, the cells before it padded to their column's
	-- width (one padding string per width), that cell's own trailing white
	-- space dropped
	local pads, find, rep = {}, string.find, string.rep
	local out = {}
	for n, r in ipairs(lines) do
		local last = #r
		while last > 0 and not find(r[last], "%S") do last = last - 1 end
		local line = {}
		for i = 1, last - 1 do
			local c = r[i]
			local w = (widths[i] or 0) - #c
			if w > 0 then
				local pad = pads[w]
				if not pad then pad = rep(" ", w); pads[w] = pad end
				c = c .. pad
			end
			line[i] = c
		end
		if last > 0 then
			local c = r[last]
			line[last] = find(c, "%s$") and c:match("^(.-)%s*$") or c
		end
		out[n] = table.concat(line, "   ")
	end
	return table.concat(out, "\n")
end

M.quote = quote

return M
