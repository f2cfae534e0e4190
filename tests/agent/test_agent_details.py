"""``NodeAgent.details()``: files stay listed after an interface stops, as in Calico's status."""

from __future__ import annotations

from pathlib import Path

import packetcapture as pc
from packetcapture.agent import NodeAgent
from packetcapture.backends import get_backend
from packetcapture.model import CaptureState, WorkloadEndpoint
from packetcapture.testing import FakeClock, MemoryBackend
from tests.conftest import REPO

EXAMPLES = REPO / "examples"
IFACE = "cali1a2b3c4d5e6"
PCAP = f"sample-app-7d4b9c-x2k8p_{IFACE}.pcap"


def _node1_endpoints() -> list[WorkloadEndpoint]:
    return [
        r
        for r in pc.load_all(EXAMPLES / "endpoints.yaml")
        if isinstance(r, WorkloadEndpoint) and r.spec.node == "node-1"
    ]


def test_files_listed_after_finished(tmp_path: Path) -> None:
    capture = pc.loads((EXAMPLES / "sample-capture.yaml").read_text())
    assert isinstance(capture, pc.PacketCapture)
    backend = get_backend("replay", directory=EXAMPLES / "traffic")
    agent = NodeAgent("node-1", backend, tmp_path, clock=FakeClock())
    agent.apply(capture)
    for wep in _node1_endpoints():
        agent.upsert_endpoint(wep)
    while not agent.idle():
        agent.step(timeout=0)
    # The replayed file has ended: the interface stopped, its file stays.
    (iface,) = agent.details(*capture.key).interfaces
    assert iface.interface == IFACE and iface.files == (PCAP,)
    agent.close()
    details = agent.details(*capture.key)
    assert details.state is CaptureState.FINISHED
    assert [i.files for i in details.interfaces] == [(PCAP,)]
    # The same files as the status, which Calico keeps listing after Finished.
    assert agent.status(*capture.key).files[0].file_names == (PCAP,)
    # Once the files are gone, they are no longer listed.
    (tmp_path / "sample-namespace" / "sample-capture" / PCAP).unlink()
    assert [i.files for i in agent.details(*capture.key).interfaces] == [()]


def test_stopped_interface_lists_its_rotated_files_in_writer_order(tmp_path: Path) -> None:
    capture = pc.loads((EXAMPLES / "sample-capture.yaml").read_text())
    assert isinstance(capture, pc.PacketCapture)
    clock, backend = FakeClock(), MemoryBackend()
    agent = NodeAgent("node-1", backend, tmp_path, clock=clock)
    agent.apply(capture)
    for wep in _node1_endpoints():
        agent.upsert_endpoint(wep)
    agent.step(timeout=0)
    directory = tmp_path / "sample-namespace" / "sample-capture"
    # Rotated files (as rotation leaves them) plus another interface's file.
    stem = PCAP.removesuffix(".pcap")
    for name in (f"{stem}-2000.pcap", f"{stem}-1000.pcap", "other-pod_cali9.pcap"):
        (directory / name).write_bytes(b"")
    (running,) = agent.details(*capture.key).interfaces
    agent.set_interface_up(IFACE, False)
    agent.step(timeout=0)
    (stopped,) = agent.details(*capture.key).interfaces
    assert stopped.files == running.files
    assert stopped.files[:2] == (f"{stem}-1000.pcap", f"{stem}-2000.pcap")
    agent.close()
