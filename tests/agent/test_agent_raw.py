"""The agent's raw replay lane writes exactly the files and counters of the normal path."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

import packetcapture as pc
from packetcapture.agent import NodeAgent
from packetcapture.backends.replay import ReplayBackend, ReplaySource
from packetcapture.model import PacketCaptureRule
from packetcapture.pcap import CaptureSettings


def make_file(path: Path, n: int) -> None:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    for i in range(n):
        size = (i * 37) % 200
        udp = struct.pack("!HHHH", 40000, 53 if i % 3 else 123, 8 + size, 0) + bytes(size)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                         b"\x0a\0\0\x02", b"\x0a\0\0\x01")  # fmt: skip
        frame = b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02\x08\x00" + ip + udp
        wire = len(frame) - (3 if i % 501 == 9 else 0)  # a few need the normal path
        out.append(struct.pack("<IIII", 1_700_000_000 + i, i % 1_000_000, len(frame), wire))
        out.append(frame)
    path.write_bytes(b"".join(out))


def run_agent(src: Path, out: Path) -> tuple[dict[str, bytes], list[tuple[int, int]]]:
    endpoint = pc.WorkloadEndpoint(
        metadata=pc.ObjectMeta(name="node-k8s-web-eth0", namespace="ns", labels={"app": "web"}),
        spec=pc.WorkloadEndpointSpec(
            node="node", orchestrator="k8s", pod="web", endpoint="eth0", interface_name="in"
        ),
    )
    capture = pc.PacketCapture(
        metadata=pc.ObjectMeta(name="cap", namespace="ns"),
        spec=pc.PacketCaptureSpec(
            selector='app == "web"', filters=(PacketCaptureRule(protocol="UDP", ports=["53"]),)
        ),
    )
    settings = CaptureSettings(max_size_bytes=50_000, max_files=100)
    agent = NodeAgent("node", ReplayBackend({"in": src}), out, settings)
    try:
        agent.upsert_endpoint(endpoint)
        agent.apply(capture)
        while not agent.idle():
            agent.step(timeout=0)
        counts = [(i.packets, i.bytes) for i in agent.details("ns", "cap").interfaces]
    finally:
        agent.close()
    directory = out / "ns" / "cap"
    files = {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}
    return files, counts


def test_agent_raw_lane_matches_normal_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "in.pcap"
    make_file(src, 6000)
    calls = []
    real = ReplaySource.read_raw

    def counted(self: ReplaySource, *args: object, **kwargs: object) -> object:
        got = real(self, *args, **kwargs)  # type: ignore[arg-type]
        calls.append(got is not None and got[1] > 0)
        return got

    monkeypatch.setattr(ReplaySource, "read_raw", counted)
    raw_files, raw_counts = run_agent(src, tmp_path / "raw")
    assert any(calls)
    monkeypatch.setattr(ReplaySource, "read_raw", lambda self, *a, **k: None)
    files, counts = run_agent(src, tmp_path / "normal")
    assert raw_counts == counts and counts[0][0] == 4000
    # Rotated names hold the wall-clock time of the rotation: compare them in order.
    assert list(raw_files.values()) == list(files.values())
    assert len(files) > 5
