-- brisk-0.1.0-1.rockspec: build brisk with LuaRocks.
--
--   luarocks --lua-version 5.4 make brisk-0.1.0-1.rockspec          (from a checkout)
--   luarocks --lua-version 5.4 make --tree ~/.luarocks brisk-0.1.0-1.rockspec
--
-- The build runs premake4 and make as the Makefile does (build/lib/brisk/core.so
-- and build/bin/brisk); LuaRocks installs the Lua modules, brisk.core and the
-- brisk program into its tree. The program finds its modules from where it is
-- installed: <tree>/bin/brisk reads <tree>/share/lua/5.4 and <tree>/lib/lua/5.4,
-- which is LuaRocks' own layout. Needs Debian's premake4, pkg-config,
-- libmnl-dev, libnftables-dev and libedit-dev; lua-cjson at run time.
rockspec_format = "3.0"
package = "brisk"
version = "0.1.0-1"

source = {
   -- a release tarball or tag goes here; `luarocks make` builds the
   -- checkout it is run in and does not fetch this
   url = "git+https://example.invalid/brisk.git",
   tag = "v0.1.0",
}

description = {
   summary = "Lua-scriptable Linux bridge networks, the way Docker's bridge driver makes them",
   detailed = [[
brisk (bridge scripting kit) re-implements the bridge driver of Docker's
libnetwork: bridge networks, veth endpoints in network namespaces, IPAM,
published ports and the nftables firewall, as Lua flows over a small C module
(netlink through libmnl). Every step can be planned, replaced or wrapped from
Lua; a command line (`brisk network create ...`), a REPL and `brisk graph`
come with it.
]],
   license = "MIT",
   labels = { "networking", "linux", "netlink", "docker" },
}

supported_platforms = { "linux" }

dependencies = {
   "lua == 5.4",
   "lua-cjson",
}

external_dependencies = {
   LIBMNL = { header = "libmnl/libmnl.h" },
   LIBNFTABLES = { header = "nftables/libnftables.h" },
   LIBEDIT = { header = "editline/readline.h" },
}

build = {
   type = "command",
   build_command = "premake4 --file=premake5.lua gmake && $(MAKE) -C build config=release",
   install = {
      lua = {
         ["brisk"] = "lua/brisk/init.lua",
         ["brisk.cli"] = "lua/brisk/cli.lua",
         ["brisk.cli.daemon"] = "lua/brisk/cli/daemon.lua",
         ["brisk.cli.down"] = "lua/brisk/cli/down.lua",
         ["brisk.cli.endpoint"] = "lua/brisk/cli/endpoint.lua",
         ["brisk.cli.graph"] = "lua/brisk/cli/graph.lua",
         ["brisk.cli.network"] = "lua/brisk/cli/network.lua",
         ["brisk.cliutil"] = "lua/brisk/cliutil.lua",
         ["brisk.driver"] = "lua/brisk/driver.lua",
         ["brisk.endpoint"] = "lua/brisk/endpoint.lua",
         ["brisk.firewall"] = "lua/brisk/firewall.lua",
         ["brisk.handle"] = "lua/brisk/handle.lua",
         ["brisk.helptopics"] = "lua/brisk/helptopics.lua",
         ["brisk.ipnet"] = "lua/brisk/ipnet.lua",
         ["brisk.netopts"] = "lua/brisk/netopts.lua",
         ["brisk.ports"] = "lua/brisk/ports.lua",
         ["brisk.pretty"] = "lua/brisk/pretty.lua",
         ["brisk.repl"] = "lua/brisk/repl.lua",
         ["brisk.schema"] = "lua/brisk/schema.lua",
         ["brisk.store"] = "lua/brisk/store.lua",
         ["brisk.topo"] = "lua/brisk/topo.lua",
      },
      lib = {
         ["brisk.core"] = "build/lib/brisk/core.so",
      },
      bin = {
         brisk = "build/bin/brisk",
      },
   },
   copy_directories = { "doc", "examples" },
}
