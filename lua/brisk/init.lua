--- brisk: bridge scripting kit.
--
-- `require "brisk"` gives the netlink primitives of brisk.core (handles,
-- namespaces, sysctls) and the bridge driver:
--
--     local brisk = require "brisk"
--     local h <close> = assert(brisk.open())          -- a netlink handle
--     print(h:link_get("lo").mtu)
--     local d <close> = assert(brisk.driver{ state_dir = "/tmp/brisk" })
--     local net = assert(d:create_network{ name = "web", subnet = "10.1.0.0/24" })
--     local ep = assert(d:create_endpoint("web", { netns = "h1" }))
--
-- Every function follows one failure convention: misuse raises; a failed
-- operation returns nil, "<op> <object>: <reason>", errno (compare the
-- errno with brisk.errno.EEXIST and friends).
local core = require "brisk.core"

local M = {}

M.VERSION = "0.1.0"

--- errno names -> numbers.
M.errno = core.errno

--- Open a netlink handle (see brisk.core): nil, a netns name, path or pid.
M.open = core.open

M.kernel_version = core.kernel_version
M.strerror = core.strerror

for _, k in ipairs{ "netns_add", "netns_del", "netns_list", "netns_exists", "netns_run", "netns_id",
	"sysctl_get", "sysctl_set" } do
	M[k] = core[k]
end

--- Open a bridge driver over a state directory (see brisk.driver.open).
function M.driver(o)
	return require("brisk.driver").open(o)
end

return M
