#!/usr/bin/env python3
"""Writes an IP allow list for SCENARIO=edge (ALLOW_CIDRS_FILE): N CIDRs,
one a line, the same every run (seeded), IPv4 /16../32 and IPv6 /32../64
spread over the address space, plus 127.0.0.0/8 and ::1 so that the
benchmark's loopback clients are let in.

    python3 bench/allow-cidrs.py 100000 > /tmp/allow-100k.txt
"""
import ipaddress
import random
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
rng = random.Random(9)
out = ["127.0.0.0/8", "::1/128"]
while len(out) < n:
    if rng.random() < 0.8:
        plen = rng.randint(16, 32)
        net = ipaddress.IPv4Network((rng.getrandbits(32), plen), strict=False)
    else:
        plen = rng.randint(32, 64)
        net = ipaddress.IPv6Network((rng.getrandbits(128), plen), strict=False)
    out.append(str(net))
sys.stdout.write("\n".join(out) + "\n")
