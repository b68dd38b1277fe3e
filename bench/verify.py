#!/usr/bin/python3
"""bench/verify.py N: check the workload a driver built, so a broken peer is
not reported as fast. An independent witness (pyroute2, not brisk).

Counts the namespaces ep1..epN whose eth0 is up with one IPv4 address in
10.88.0.0/16 and whose main table has a default route via 10.88.0.1 on
eth0; counts the host-side ports (links with a bridge master, up); pings
the gateway and the last endpoint from ep1 (up to 5 one-second tries
each). Prints one line:

    ok=<namespaces that pass> ports=<up bridge ports> ping=<0|1>

and exits 0 only when ok == ports == N and ping == 1.
"""
import os
import subprocess
import sys

from pyroute2 import IPRoute
from pyroute2.netns import popns, pushns

GATEWAY = "10.88.0.1"


def check_ns(name):
    pushns(name)
    try:
        with IPRoute() as ipr:
            links = ipr.link_lookup(ifname="eth0")
            if not links:
                return False
            idx = links[0]
            link = ipr.get_links(idx)[0]
            if not link["flags"] & 1:          # IFF_UP
                return False
            addrs = [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(family=2, index=idx)]
            if len(addrs) != 1 or not addrs[0].startswith("10.88."):
                return False
            for r in ipr.get_routes(family=2, table=254):
                if r["dst_len"] == 0 and r.get_attr("RTA_GATEWAY") == GATEWAY \
                        and r.get_attr("RTA_OIF") == idx:
                    return True
            return False
    finally:
        popns()


def reaches(ns, dst, tries=5):
    """One echo answered within `tries` one-second attempts (a bridge busy
    with the IPv6 chatter of a thousand new ports may drop the first)."""
    cmd = ["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", dst]
    for _ in range(tries):
        if subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            return True
    return False


def main():
    if os.environ.get("BRISK_ISOLATED") != "1":
        sys.exit("verify.py: run me through scripts/isolate.sh")
    n = int(sys.argv[1])
    ok = sum(1 for i in range(1, n + 1) if os.path.exists("/run/netns/ep%d" % i) and check_ns("ep%d" % i))
    with IPRoute() as ipr:
        bridges = {l["index"] for l in ipr.get_links()
                   if (l.get_attr("IFLA_LINKINFO") or {}) and
                   l.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") == "bridge"}
        ports = sum(1 for l in ipr.get_links()
                    if l.get_attr("IFLA_MASTER") in bridges and l["flags"] & 1)
    ping = 0
    if ok == n:
        # the last endpoint's address, read back, then gateway and peer
        pushns("ep%d" % n)
        try:
            with IPRoute() as ipr:
                idx = ipr.link_lookup(ifname="eth0")[0]
                last = ipr.get_addr(family=2, index=idx)[0].get_attr("IFA_ADDRESS")
        finally:
            popns()
        ping = int(all(reaches("ep1", dst) for dst in (GATEWAY, last)))
    print("ok=%d ports=%d ping=%d" % (ok, ports, ping))
    sys.exit(0 if ok == n and ports == n and ping == 1 else 1)


if __name__ == "__main__":
    main()
