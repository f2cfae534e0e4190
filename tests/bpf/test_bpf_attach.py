"""Root only: a compiled program attached to an AF_PACKET socket on a veth inside test
network namespaces passes exactly the expected packets."""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import uuid

import pytest
from bpf_reference import ether, ipv4, ipv6, l4

from packetcapture.bpf import attach, compile_filters, detach
from packetcapture.model import PacketCaptureRule

pytestmark = pytest.mark.root


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture
def netns():
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces and raw sockets")
    tag = uuid.uuid4().hex[:6]
    ns, a, b = f"pcbpf-{tag}", f"pcba{tag}", f"pcbb{tag}"
    sh("ip", "netns", "add", ns)
    try:
        # No kernel IPv6 chatter (router solicitations, MLD) on the test link.
        for conf in ("all", "default"):
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{conf}.disable_ipv6=1")
        sh("ip", "-n", ns, "link", "add", a, "type", "veth", "peer", "name", b)
        sh("ip", "-n", ns, "link", "set", a, "up")
        sh("ip", "-n", ns, "link", "set", b, "up")
        yield ns, a, b
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def in_netns(ns: str):
    """File descriptors of this thread's network namespace and of ``ns``."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    return own, target


_LIBC = ctypes.CDLL(None, use_errno=True)


def setns(fd: int) -> None:
    if _LIBC.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "setns failed")


def test_attach_passes_exactly_expected(netns):
    ns, a, b = netns
    own, target = in_netns(ns)
    try:
        setns(target)
        rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        rx.bind((b, 0))
        tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        tx.bind((a, 0))
    finally:
        setns(own)
        os.close(own)
        os.close(target)
    rules = [PacketCaptureRule("TCP", [80, "8000:8080"]), PacketCaptureRule("ICMPv6")]
    prog = compile_filters(rules)
    frames = {
        "tcp80": (ether(0x800, ipv4(6, l4(1234, 80))), True),
        "tcp8050": (ether(0x86DD, ipv6(6, l4(8050, 9))), True),
        "tcp81": (ether(0x800, ipv4(6, l4(1234, 81))), False),
        "udp80": (ether(0x800, ipv4(17, l4(1234, 80))), False),
        "icmp6": (ether(0x86DD, ipv6(58, b"\x80\x00" + b"\x00" * 10)), True),
        "frag": (ether(0x800, ipv4(6, l4(1234, 80), frag=10)), False),
    }
    with rx, tx:
        tx.send(b"\xff" * 60)  # queued before the filter: drained by attach()
        attach(rx, prog)
        for frame, _ in frames.values():
            tx.send(frame)
        rx.settimeout(0.5)
        got = []
        try:
            while True:
                got.append(rx.recv(65536))
        except TimeoutError:
            pass
        assert all(prog.matches(g) for g in got)
        got = [g for g in got if g[6:12] == b"\x04" * 6]  # ours only
        expected = [f for f, ok in frames.values() if ok]
        assert [g[: len(f)] for g, f in zip(got, expected, strict=False)] == expected
        assert len(got) == len(expected)
        assert all(prog.matches(g) for g in got)
        detach(rx)
        tx.send(frames["udp80"][0])
        assert rx.recv(65536)[:60] == frames["udp80"][0][:60]
