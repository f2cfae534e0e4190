"""Traffic helper run inside a test namespace: ``python backends_traffic.py DST4 DST6 TAG``.

Sends, one after the other with a pause for the reply: UDP to port 5000 (v4, v6), a TCP
connect to closed port 6000 (SYN answered by RST; v4, v6), an ICMP echo and an ICMPv6 echo.
Prints ``done`` at the end. Used by the live capture tests only.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import time

PAUSE = 0.03


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def main(dst4: str, dst6: str, tag: str) -> None:
    for family, dst in ((socket.AF_INET, dst4), (socket.AF_INET6, dst6)):
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.sendto(f"udp-{tag}".encode(), (dst, 5000))
        time.sleep(PAUSE)
    for family, dst in ((socket.AF_INET, dst4), (socket.AF_INET6, dst6)):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            with contextlib.suppress(ConnectionRefusedError):
                s.connect((dst, 6000))
        time.sleep(PAUSE)
    body = tag.encode()
    echo = struct.pack("!BBHHH", 8, 0, 0, 7, 1) + body
    echo = echo[:2] + struct.pack("!H", checksum(echo)) + echo[4:]
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        s.sendto(echo, (dst4, 0))
    time.sleep(PAUSE)
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as s:
        s.sendto(struct.pack("!BBHHH", 128, 0, 0, 7, 1) + body, (dst6, 0))  # kernel sums
    time.sleep(PAUSE)
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
