-- examples/published_port.lua: an echo server published on the machine's
-- port 8080, reached from a namespace outside every brisk network.
--
--   scripts/isolate.sh build/bin/brisk run examples/published_port.lua
--
-- "server" sits on network web with `publish = {"8080:80"}` (docker run -p
-- 8080:80): brisk's nftables rules forward the machine's port 8080 to the
-- server's port 80. "client" is wired straight to the machine (an uplink:
-- a veth pair, 192.0.2.1 on the machine's side) and connects to
-- 192.0.2.1:8080. The server is started with t:spawn and stopped at teardown.
local topo = require "brisk.topo"

local PYTHON = "/usr/bin/python3"

local SERVER = [[
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(8)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(b"echo: " + c.recv(1024))
    c.close()
]]

local CLIENT = [[
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
s.sendall(sys.argv[3].encode())
print(s.recv(1024).decode())
]]

local t <close> = topo.new{ name = "published" }
t:network{ name = "web", subnet = "10.80.0.0/24" }
t:host "server"
t:host "client"
t:connect("server", "web", { publish = { "8080:80" } })
t:uplink("client", { ip = "192.0.2.2/24", gateway = "192.0.2.1" })
t:up()

local server = t:spawn("server", { PYTHON, "-c", SERVER, "80" })
assert(server:read("l") == "ready", "the server did not start")

print("\n$ client: connect to 192.0.2.1:8080, send hello")
local ok, reply = t:run("client", { PYTHON, "-c", CLIENT, "192.0.2.1", "8080", "hello" })
io.write(reply)
assert(ok and reply == "echo: hello\n", "the published port did not answer")
