"""As root: the node agent capturing live on a veth named like Calico's ``cali…`` interface.

Two network namespaces made for the test: the "host" one holds the pod's host-side interface
``cali`` + sha1(ns.pod)[:11], the "pod" one its ``eth0``. Pings go from the pod to the host
side only, over that veth; both namespaces are deleted afterwards, whatever happens.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dpkt
import pytest

from packetcapture.pcap import PcapReader
from tests.kube.kube_helpers import capture, entries, pod, running_agent, wait_for

pytest.importorskip("kubernetes")

from packetcapture.backends import AfPacketBackend
from packetcapture.kube import interface_name

pytestmark = pytest.mark.root
_counter = itertools.count()


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


@contextmanager
def pod_veth(namespace: str, pod_name: str) -> Iterator[tuple[str, str, str]]:
    """Yield (host netns, pod netns, host-side interface) joined by a veth."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces and AF_PACKET sockets")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (ip)")
    tag = f"{os.getpid() % 100000}k{next(_counter)}"
    host, inside = f"pckh{tag}", f"pckp{tag}"
    iface = interface_name(namespace, pod_name)
    sh("ip", "netns", "add", host)
    try:
        sh("ip", "netns", "add", inside)
        sh("ip", "link", "add", iface, "netns", host, "type", "veth",
           "peer", "name", "eth0", "netns", inside)  # fmt: skip
        for ns, dev, ip in ((host, iface, "10.98.0.1"), (inside, "eth0", "10.98.0.2")):
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        yield host, inside, iface
    finally:
        sh("ip", "netns", "del", host, check=False)
        sh("ip", "netns", "del", inside, check=False)


# Three ICMP echo requests from the pod, each waiting for its reply (there is no ping here).
PING = r"""
import socket, struct, sys
def checksum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.settimeout(2)
for seq in range(3):
    body = struct.pack("!BBHHH", 8, 0, 0, 0x4B38, seq) + b"packetcapture"
    body = body[:2] + struct.pack("!H", checksum(body + b"\0")) + body[4:]
    sock.sendto(body, (sys.argv[1], 0))
    while True:
        data = sock.recv(2048)
        if data[20] == 0 and struct.unpack("!H", data[26:28])[0] == seq:
            break
"""


def test_live_capture_of_a_pods_cali_interface(
    emulator: Any, api_client: Any, tmp_path: Path
) -> None:
    pod_name = f"live-{os.getpid()}-{next(_counter)}"
    with pod_veth("ns", pod_name) as (host, inside, iface):
        emulator.create(pod("ns", pod_name, "n1", {"app": "live"}, ip="10.98.0.2"))
        root = tmp_path / "pcap"
        backend = AfPacketBackend(netns=host, block_timeout_ms=50)
        with running_agent(api_client, "n1", root, None, backend=backend):
            emulator.create(capture("ns", "cap", 'app == "live"', filters=[{"protocol": "ICMP"}]))
            wait_for(
                lambda: (
                    entries(emulator, "ns", "cap").get("n1", {}).get("state") == "WaitingForTraffic"
                ),
                what="capture open",
            )
            sh("ip", "netns", "exec", inside, sys.executable, "-c", PING, "10.98.0.1")
            name = f"{pod_name}_{iface}.pcap"
            wait_for(
                lambda: (
                    entries(emulator, "ns", "cap")["n1"].get("fileNames") == [name]
                    and entries(emulator, "ns", "cap")["n1"]["state"] == "Capturing"
                ),
                what="Capturing with the file",
            )
        # Shut down: files flushed, final status written.
        assert entries(emulator, "ns", "cap")["n1"]["state"] == "Finished"
        with PcapReader(root / "ns" / "cap" / name) as reader:
            frames = [data for _, data, _ in reader]
    kinds = []
    for frame in frames:
        ip = dpkt.ethernet.Ethernet(frame).data
        assert isinstance(ip, dpkt.ip.IP) and ip.p == dpkt.ip.IP_PROTO_ICMP
        kinds.append(ip.data.type)
    # The filter kept ICMP only (no ARP): three requests and three replies.
    assert sorted(kinds) == [0, 0, 0, 8, 8, 8]
