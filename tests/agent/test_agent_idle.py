"""NodeAgent.idle() (issue 15): when no packet can be captured any more without new input.

A pending endTime alone does not keep the agent busy; a pending startTime or retry does.
Also the replay backend on a ReplayClock, which makes the files' timestamps the time.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import packetcapture as pc
from packetcapture.agent import NodeAgent
from packetcapture.backends.replay import ReplayBackend, ReplayClock
from packetcapture.pcap import PcapReader, PcapWriter
from packetcapture.schedule import RetryPolicy
from packetcapture.testing import FakeClock, MemoryBackend
from tests.agent.test_agent_lifecycle import NODE, T0, capture, endpoint, frame

HOUR = dt.timedelta(hours=1)


def test_ended_sources_make_idle_though_end_time_is_ahead(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    backend = MemoryBackend()
    with NodeAgent(NODE, backend, tmp_path, clock=clock, retry=None) as agent:
        agent.apply(capture(end=T0 + HOUR))
        agent.upsert_endpoint(endpoint("web-1", "cali1", {"app": "web"}))
        agent.step(timeout=0)
        assert not agent.idle()  # a source is open
        backend.inject("cali1", frame(80))
        backend.end("cali1")
        agent.step(timeout=0)
        details = agent.details("ns", "cap")
        assert details.next_deadline == T0 + HOUR  # endTime still pending...
        assert agent.idle()  # ...but nothing can be captured any more
        assert details.interfaces[0].packets == 1


def test_pending_start_or_retry_keeps_it_busy(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    with NodeAgent(NODE, MemoryBackend(), tmp_path, clock=clock, retry=None) as agent:
        agent.apply(capture(start=T0 + HOUR, end=T0 + 2 * HOUR))
        agent.upsert_endpoint(endpoint("web-1", "cali1", {"app": "web"}))
        agent.step(timeout=0)
        assert agent.status("ns", "cap").files[0].state is pc.CaptureState.SCHEDULED
        assert not agent.idle()  # the start will open a source by itself
    retry = RetryPolicy(initial=dt.timedelta(seconds=5))
    backend = MemoryBackend(interfaces=["other"])  # cali1 cannot be opened
    with NodeAgent(NODE, backend, tmp_path / "r", clock=clock, retry=retry) as agent:
        agent.apply(capture(end=T0 + HOUR))
        agent.upsert_endpoint(endpoint("web-1", "cali1", {"app": "web"}))
        agent.step(timeout=0)
        assert agent.status("ns", "cap").files[0].state is pc.CaptureState.ERROR
        assert not agent.idle()  # a retry is due


def _pcap(path: Path, stamps: list[dt.datetime]) -> Path:
    with path.open("wb") as f:
        writer = PcapWriter(f)
        for i, when in enumerate(stamps):
            writer.write(int(when.timestamp()) * 10**9 + i * 1000, frame(80))
    return path


def _drive(agent: NodeAgent, clock: ReplayClock) -> None:
    """Run's loop on the files' clock (see docs/backends.md)."""
    horizon = min(
        (d for c in agent.captures() if (d := agent.details(*c.key).next_deadline)), default=None
    )
    for _ in range(1000):
        clock.set_horizon(horizon)
        due = agent.step(timeout=0)
        if agent.idle():
            return
        if due is not None and due == horizon and clock.stalled():
            clock.advance_to(due)
        horizon = due
    pytest.fail("the replay did not end")


def test_replay_clock_window_selects_packets_by_timestamp(tmp_path: Path) -> None:
    stamps = [T0 + dt.timedelta(seconds=s) for s in range(10)]
    path = _pcap(tmp_path / "cali1.pcap", stamps)
    first = ReplayClock.first_packet([path])
    assert first == T0
    clock = ReplayClock(first)
    backend = ReplayBackend({"cali1": path}, replay_clock=clock)
    start, end = T0 + dt.timedelta(seconds=3), T0 + dt.timedelta(seconds=7)
    seen: list[pc.CaptureState] = []
    with NodeAgent(
        NODE,
        backend,
        tmp_path / "c",
        clock=clock,
        retry=None,
        on_status_change=lambda ns, name, st: seen.append(st.files[0].state),
    ) as agent:
        agent.apply(capture(start=start, end=end))
        agent.upsert_endpoint(endpoint("web-1", "cali1", {"app": "web"}))
        _drive(agent, clock)
        assert clock.now() == end  # the replay's time, not the wall's
    assert seen[0] is pc.CaptureState.SCHEDULED and seen[-1] is pc.CaptureState.FINISHED
    with PcapReader(tmp_path / "c" / "ns" / "cap" / "web-1_cali1.pcap") as reader:
        kept = [ts // 10**9 for ts, _, _ in reader]
    # Seconds 3, 4, 5 and 6: [startTime, endTime) on the files' own timestamps.
    assert kept == [int(s.timestamp()) for s in stamps[3:7]]
