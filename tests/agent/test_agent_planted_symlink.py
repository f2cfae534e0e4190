"""A symlink planted in place of the capture directory during a run (issue 16 item 12)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from packetcapture import load_all
from packetcapture.agent import NodeAgent
from packetcapture.model import CaptureState, PacketCapture, WorkloadEndpoint
from packetcapture.testing import FakeClock, MemoryBackend
from tests.conftest import REPO

NS, NAME = "sample-namespace", "sample-capture"
IFACE = "cali1a2b3c4d5e6"


@pytest.mark.parametrize("swapped", ["namespace", "capture"])
def test_a_planted_symlink_does_not_abort_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, swapped: str
) -> None:
    """Reproduces 16.12: the status listing raised PcapError out of step() and close()."""
    (capture,) = [
        r for r in load_all(REPO / "examples/sample-capture.yaml") if isinstance(r, PacketCapture)
    ]
    endpoints = [
        r for r in load_all(REPO / "examples/endpoints.yaml") if isinstance(r, WorkloadEndpoint)
    ]
    outside = tmp_path / "outside"
    (outside / NAME).mkdir(parents=True)
    (outside / NAME / "secret_eth0.pcap").write_bytes(b"")
    cap_dir = tmp_path / "cap"
    backend = MemoryBackend()
    statuses: list[object] = []
    agent = NodeAgent(
        "node-1",
        backend,
        cap_dir,
        clock=FakeClock(),
        on_status_change=lambda ns, n, s: statuses.append(s),
    )
    frame = bytes(12) + b"\x08\x00" + bytes(46)
    with caplog.at_level(logging.WARNING), agent:
        agent.apply(capture)
        for wep in endpoints:
            agent.upsert_endpoint(wep)
        agent.step(timeout=0)
        backend.inject(IFACE, frame)
        agent.step(timeout=0)
        # Swap the real directory aside and plant a symlink to the outside tree.
        real = cap_dir / NS if swapped == "namespace" else cap_dir / NS / NAME
        real.rename(real.with_name(real.name + "-aside"))
        real.symlink_to(outside if swapped == "namespace" else outside / NAME)
        agent.delete_endpoint(endpoints[0].namespace, endpoints[0].metadata.name)
        agent.step(timeout=0)
        status = agent.status(NS, NAME)
    # The run went on; its status lists nothing rather than the outside tree's files.
    assert status.files[0].file_names == ()
    assert status.files[0].state is not None and status.files[0].state != CaptureState.ERROR
    assert "secret_eth0.pcap" not in repr(statuses)
    assert any("cannot list its files" in r.getMessage() for r in caplog.records)
    assert (outside / NAME / "secret_eth0.pcap").exists()
