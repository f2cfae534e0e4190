"""The in-memory backend, and the conformance suite run against it."""

from __future__ import annotations

import selectors
from collections.abc import Sequence

import pytest

from packetcapture.backends import LinktypeMismatchError, MemoryBackend, SourceStats
from packetcapture.errors import BackendBrokenError, BackendUnavailableError
from packetcapture.testing import BackendHarness, check_backend, conformance_frames

bpf = pytest.importorskip("packetcapture.bpf")
BpfProgram = bpf.BpfProgram


def memory_factory(frames: Sequence[bytes]) -> BackendHarness:
    backend = MemoryBackend(interfaces=["eth0"])

    def send() -> None:
        for i, frame in enumerate(frames):
            backend.inject("eth0", frame, timestamp_ns=1_700_000_000_000_000_000 + i)

    return BackendHarness(backend, "eth0", send=send, end=lambda: backend.remove_interface("eth0"))


def test_memory_backend_conformance() -> None:
    check_backend(memory_factory)


def test_conformance_detects_a_broken_backend() -> None:
    """The suite is not vacuous: a backend that loses the last frame fails it."""

    def lossy(frames: Sequence[bytes]) -> BackendHarness:
        return memory_factory(frames[:-1])

    with pytest.raises(AssertionError, match="all_frames"):
        check_backend(lossy, timeout=0.2)


def test_inject_reaches_every_open_source_through_its_filter() -> None:
    backend = MemoryBackend()
    frames = conformance_frames()
    udp = bpf.compile_filters(
        [__import__("packetcapture.model").model.PacketCaptureRule(protocol="UDP")]
    )
    with backend.open("eth0", BpfProgram.accept_all()) as a, backend.open("eth0", udp) as b:
        counts = [backend.inject("eth0", f, timestamp_ns=10) for f in frames]
        assert counts == [2, 1, 1, 2, 1, 1, 2]
        assert len(a.read()) == 7
        assert len(b.read()) == 3
        assert b.stats() == SourceStats(received=3, dropped=0, filtered=4)
    assert backend.inject("eth0", frames[0]) == 0  # nobody listening: lost, as on a wire


def test_defaults_and_wire_len() -> None:
    backend = MemoryBackend(clock=lambda: 42)
    with backend.open("eth0", BpfProgram.accept_all()) as source:
        backend.inject("eth0", b"abc")
        backend.inject("eth0", b"abc", wire_len=1500)
        assert source.read() == [(42, b"abc", 3), (42, b"abc", 1500)]
        with pytest.raises(ValueError, match="wire_len"):
            backend.inject("eth0", b"abc", wire_len=2)


def test_queue_limit_counts_drops() -> None:
    backend = MemoryBackend(queue_limit=2)
    with backend.open("eth0", BpfProgram.accept_all()) as source:
        for _ in range(5):
            backend.inject("eth0", b"x")
        assert len(source.read()) == 2
        assert source.stats() == SourceStats(received=5, dropped=3, filtered=0)


def test_read_in_batches_and_fd_readiness() -> None:
    backend = MemoryBackend()
    with (
        backend.open("eth0", BpfProgram.accept_all()) as source,
        selectors.DefaultSelector() as sel,
    ):
        sel.register(source, selectors.EVENT_READ)
        assert sel.select(0) == []
        for i in range(5):
            backend.inject("eth0", b"x", timestamp_ns=i)
        assert len(sel.select(0)) == 1
        assert [p[0] for p in source.read(3)] == [0, 1, 2]
        assert len(sel.select(0)) == 1
        assert [p[0] for p in source.read(3)] == [3, 4]
        assert sel.select(0) == []


def test_fail_raises_broken_after_queued_packets() -> None:
    backend = MemoryBackend()
    with backend.open("eth0", BpfProgram.accept_all()) as source:
        backend.inject("eth0", b"x", timestamp_ns=1)
        backend.fail("eth0", "cable cut")
        assert source.read() == [(1, b"x", 1)]
        with pytest.raises(BackendBrokenError, match="eth0: cable cut"):
            source.read()
        assert not source.exhausted


def test_unknown_interface_and_linktype() -> None:
    backend = MemoryBackend(interfaces=["eth0"], linktype=101)
    with pytest.raises(BackendUnavailableError, match="eth1: no such interface"):
        backend.open("eth1", BpfProgram.accept_all(linktype=101))
    with pytest.raises(LinktypeMismatchError) as info:
        backend.open("eth0", BpfProgram.accept_all())
    assert (info.value.expected, info.value.actual) == (101, 1)
    backend.add_interface("eth1")
    backend.open("eth1", BpfProgram.accept_all(linktype=101)).close()
