"""Two network namespaces joined by a veth pair, for the live capture tests.

Names are unique per process and call; everything is deleted on exit, even after a failure.
Traffic sent in these tests never leaves the two namespaces.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import attrs
import pytest

_counter = itertools.count()


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces and AF_PACKET sockets")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (ip)")


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True)


@attrs.frozen
class VethPair:
    ns_a: str
    ns_b: str
    dev_a: str
    dev_b: str
    ip4_a: str = "10.99.0.1"
    ip4_b: str = "10.99.0.2"
    ip6_a: str = "fd99::1"
    ip6_b: str = "fd99::2"

    def exec_b(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns_b, *args]

    def exec_a(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns_a, *args]


@contextmanager
def veth_pair(*, addresses: bool = True, ipv6: bool = True) -> Iterator[VethPair]:
    need_root()
    tag = f"{os.getpid() % 100000}x{next(_counter)}"
    pair = VethPair(f"pcxa{tag}", f"pcxb{tag}", f"pa{tag}", f"pb{tag}")
    sh("ip", "netns", "add", pair.ns_a)
    try:
        sh("ip", "netns", "add", pair.ns_b)
        sh("ip", "link", "add", pair.dev_a, "netns", pair.ns_a, "type", "veth",
           "peer", "name", pair.dev_b, "netns", pair.ns_b)  # fmt: skip
        for ns, dev, ip4, ip6 in (
            (pair.ns_a, pair.dev_a, pair.ip4_a, pair.ip6_a),
            (pair.ns_b, pair.dev_b, pair.ip4_b, pair.ip6_b),
        ):
            sh(
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                f"net.ipv6.conf.{dev}.disable_ipv6={int(not ipv6)}",
            )
            if ipv6:
                # no router solicitations, no DAD delay: only our own packets on the wire
                sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.accept_dad=0")
                sh(
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    f"net.ipv6.conf.{dev}.router_solicitations=0",
                )
                sh(
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    f"net.ipv6.conf.{dev}.mldv1_unsolicited_report_interval=0",
                )
                sh(
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    f"net.ipv6.conf.{dev}.mldv2_unsolicited_report_interval=0",
                )
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            if addresses:
                sh("ip", "-n", ns, "addr", "add", f"{ip4}/24", "dev", dev)
                if ipv6:
                    sh("ip", "-n", ns, "addr", "add", f"{ip6}/64", "dev", dev, "nodad")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        yield pair
    finally:
        sh("ip", "netns", "del", pair.ns_a, check=False)
        sh("ip", "netns", "del", pair.ns_b, check=False)
