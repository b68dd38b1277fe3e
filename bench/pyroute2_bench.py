#!/usr/bin/python3
"""bench/pyroute2_bench.py N [--netns-proxy | --no-fork]: the workload with
pyroute2 (Debian python3-pyroute2) in one process.

The bridge and every veth pair are made through one IPRoute socket in the
host namespace; each pair's peer is created in place, directly inside its
namespace (peer={"ifname": "eth0", "net_ns_fd": "epI"}), the namespace made
first with pyroute2.netns.create (which forks a child to unshare in). The
container side is configured through an IPRoute socket opened inside the
namespace (pushns/popns: a netlink socket stays bound to the namespace it
was opened in).

--netns-proxy: configure the container side through pyroute2's NetNS class
instead, which forks a proxy process per namespace.
--no-fork: pyroute2 as fast as it goes: the namespace is made without
netns.create's fork (pushns, unshare(CLONE_NEWNET) through ctypes,
netns.attach to bind it, then the IPRoute socket inside, popns).

IPv6 is treated as brisk treats it: the host side gets no link-local
address (IFLA_INET6_ADDR_GEN_MODE none before it goes up), the container
side has disable_ipv6=1.

Run only inside a private network namespace (scripts/isolate.sh).
"""
import ctypes
import os
import sys

from pyroute2 import IPRoute, NetNS, netns
from pyroute2.netns import popns, pushns

GATEWAY = "10.88.0.1"
PLEN = 16
NO_LLADDR = {"attrs": [["AF_INET6", {"attrs": [["IFLA_INET6_ADDR_GEN_MODE", 1]]}]]}


def ep_addr(i):
    h = i + 1
    return "10.88.%d.%d" % (h >> 8, h & 255)


def configure(r, i, disable_ipv6):
    eth0 = r.link_lookup(ifname="eth0")[0]
    disable_ipv6()
    r.addr("add", index=eth0, address=ep_addr(i), prefixlen=PLEN, broadcast="10.88.255.255")
    r.link("set", index=1, state="up")
    r.link("set", index=eth0, state="up")
    r.route("add", dst="0.0.0.0/0", gateway=GATEWAY, oif=eth0)


def sysctl_here():
    with open("/proc/sys/net/ipv6/conf/eth0/disable_ipv6", "w") as f:
        f.write("1")


CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


def create_in_place(ns):
    """Enter a new namespace bound as /run/netns/NS (the caller popns()es)."""
    pushns()
    if libc.unshare(CLONE_NEWNET) < 0:
        popns()
        raise OSError(ctypes.get_errno(), "unshare", ns)
    netns.attach(ns, "self")


def main():
    if os.environ.get("BRISK_ISOLATED") != "1":
        sys.exit("pyroute2_bench.py: run me through scripts/isolate.sh")
    n = int(sys.argv[1])
    proxy = "--netns-proxy" in sys.argv[2:]
    nofork = "--no-fork" in sys.argv[2:]
    with IPRoute() as ipr:
        ipr.link("add", ifname="br0", kind="bridge")
        br = ipr.link_lookup(ifname="br0")[0]
        ipr.addr("add", index=br, address=GATEWAY, prefixlen=PLEN, broadcast="10.88.255.255")
        ipr.link("set", index=br, state="up")
        for i in range(1, n + 1):
            ns = "ep%d" % i
            if nofork:
                create_in_place(ns)
                popns()
            else:
                netns.create(ns)
            ipr.link("add", ifname="v%d" % i, kind="veth", master=br,
                     peer={"ifname": "eth0", "net_ns_fd": ns})
            host = ipr.link_lookup(ifname="v%d" % i)[0]
            ipr.link("set", index=host, IFLA_AF_SPEC=NO_LLADDR)
            ipr.link("set", index=host, state="up")
            if proxy:
                with NetNS(ns) as r:
                    # the proxy runs in the namespace; the sysctl is written
                    # from here, through a setns of this process
                    def sysctl_in_ns():
                        pushns(ns)
                        try:
                            sysctl_here()
                        finally:
                            popns()
                    configure(r, i, sysctl_in_ns)
            else:
                pushns(ns)
                try:
                    with IPRoute() as r:
                        configure(r, i, sysctl_here)
                finally:
                    popns()


if __name__ == "__main__":
    main()
