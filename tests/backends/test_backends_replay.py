"""The replay backend: conformance, files and directories, pacing, corrupt input, tcpdump."""

from __future__ import annotations

import selectors
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from packetcapture.backends import LinktypeMismatchError, SourceStats, get_backend
from packetcapture.backends.replay import ReplayBackend, ReplayFileError
from packetcapture.errors import BackendBrokenError, BackendUnavailableError, PcapError
from packetcapture.model import PacketCaptureRule
from packetcapture.pcap import PcapReader, PcapWriter
from packetcapture.testing import BackendHarness, FakeClock, check_backend, conformance_frames

bpf = pytest.importorskip("packetcapture.bpf")
BpfProgram = bpf.BpfProgram

T0 = 1_700_000_000_000_000_000


def write_pcap(
    path: Path,
    frames: Sequence[bytes],
    *,
    fmt: str = "pcap",
    linktype: int = 1,
    step_ns: int = 1000,
) -> Path:
    with path.open("wb") as f:
        writer = PcapWriter(f, linktype=linktype, nanosecond=True, format=fmt)
        for i, frame in enumerate(frames):
            writer.write(T0 + i * step_ns, frame)
    return path


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_replay_backend_conformance(tmp_path: Path, fmt: str) -> None:
    counter = iter(range(1000))

    def factory(frames: Sequence[bytes]) -> BackendHarness:
        path = write_pcap(tmp_path / f"f{next(counter)}.{fmt}", frames, fmt=fmt)
        return BackendHarness(ReplayBackend({"eth0": path}), "eth0")

    check_backend(factory)


def test_directory_lookup_and_missing_interface(tmp_path: Path) -> None:
    frames = conformance_frames()
    write_pcap(tmp_path / "cali1.pcap", frames[:2])
    write_pcap(tmp_path / "cali2.pcapng", frames[2:5], fmt="pcapng")
    backend = get_backend("replay", directory=tmp_path)
    for name, want in (("cali1", frames[:2]), ("cali2", frames[2:5])):
        with backend.open(name, BpfProgram.accept_all()) as source:
            assert [p[1] for p in source.read()] == want
            assert source.exhausted and source.end_reason == "end of capture files"
    for bad in ("cali3", "../cali1", ""):
        with pytest.raises(BackendUnavailableError, match="no capture file"):
            backend.open(bad, BpfProgram.accept_all())
    with pytest.raises(BackendUnavailableError, match="no such file"):
        ReplayBackend({"x": tmp_path / "missing.pcap"}).open("x", BpfProgram.accept_all())


def test_several_files_play_in_order(tmp_path: Path) -> None:
    frames = conformance_frames()
    a = write_pcap(tmp_path / "a.pcap", frames[:3])
    b = write_pcap(tmp_path / "b.pcapng", frames[3:], fmt="pcapng")
    with ReplayBackend({"eth0": [a, b]}).open("eth0", BpfProgram.accept_all()) as source:
        got = []
        while not source.exhausted:
            got += source.read(2)
    assert [p[1] for p in got] == frames


def test_link_type_from_file(tmp_path: Path) -> None:
    raw = write_pcap(tmp_path / "raw.pcap", [b"\x45" + b"\0" * 19], linktype=101)
    eth = write_pcap(tmp_path / "eth.pcap", conformance_frames()[:1])
    with pytest.raises(LinktypeMismatchError, match="link type 101 does not match"):
        ReplayBackend({"tun0": raw}).open("tun0", BpfProgram.accept_all())
    with ReplayBackend({"tun0": raw}).open("tun0", BpfProgram.accept_all(linktype=101)) as source:
        assert source.linktype == 101
        assert len(source.read()) == 1
    with pytest.raises(LinktypeMismatchError):
        ReplayBackend({"x": [eth, raw]}).open("x", BpfProgram.accept_all())


def test_corrupt_file_raises_after_good_packets(tmp_path: Path) -> None:
    frames = conformance_frames()
    path = write_pcap(tmp_path / "corrupt.pcap", frames)
    data = bytearray(path.read_bytes())
    last_record = len(data) - 16 - len(frames[-1])
    # A captured length no capture can hold (libpcap's maximum is 262144): corrupt.
    data[last_record + 8 : last_record + 12] = (300_000).to_bytes(4, "little")
    path.write_bytes(data)
    with ReplayBackend({"eth0": path}).open("eth0", BpfProgram.accept_all()) as source:
        assert [p[1] for p in source.read()] == frames[:-1]
        with pytest.raises(ReplayFileError) as info:
            source.read()
        assert isinstance(info.value, PcapError) and isinstance(info.value, BackendBrokenError)
        assert info.value.path == str(path) and info.value.offset == last_record
        assert f"at byte {last_record}" in str(info.value)
        assert isinstance(info.value.__cause__, PcapError)
        with pytest.raises(ReplayFileError):  # stays broken
            source.read()
        assert not source.exhausted


@pytest.mark.parametrize("speed", [None, 1e9])
def test_a_torn_tail_plays_its_whole_packets_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, speed: float | None
) -> None:
    """The one torn-tail rule (docs/files.md): whole packets count, a warning, on to the next."""
    frames = conformance_frames()
    torn = write_pcap(tmp_path / "torn.pcap", frames)
    data = torn.read_bytes()
    torn.write_bytes(data[:-10])  # the last record is torn
    last_record = len(data) - 16 - len(frames[-1])
    after = write_pcap(tmp_path / "next.pcap", frames[:2])
    backend = ReplayBackend({"eth0": [torn, after]}, speed=speed)
    with backend.open("eth0", BpfProgram.accept_all()) as source:
        got: list[bytes] = []
        deadline = time.monotonic() + 20
        while not source.exhausted and time.monotonic() < deadline:
            got += [p[1] for p in source.read()]
    assert got == frames[:-1] + frames[:2]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning == (
        f"{torn} ends in a torn record at byte {last_record}; its whole packets were replayed"
    )


def test_bad_header_is_a_pcap_error_at_open(tmp_path: Path) -> None:
    path = tmp_path / "junk.pcap"
    path.write_bytes(b"not a capture file at all")
    with pytest.raises(PcapError):
        ReplayBackend({"eth0": path}).open("eth0", BpfProgram.accept_all())


def test_paced_replay_with_fake_clock(tmp_path: Path) -> None:
    frames = conformance_frames()[:4]
    path = write_pcap(tmp_path / "p.pcap", frames, step_ns=1_000_000_000)  # one per second
    clock = FakeClock()
    backend = ReplayBackend({"eth0": path}, speed=2.0, clock=clock)
    with backend.open("eth0", BpfProgram.accept_all()) as source:
        assert [p[0] for p in source.read()] == [T0]
        assert source.read() == []
        assert source.next_due() == pytest.approx(0.5)
        clock.advance(0.5)
        assert [p[0] for p in source.read()] == [T0 + 10**9]
        clock.advance(10)
        assert len(source.read()) == 2
        assert source.read() == [] and source.exhausted


def test_paced_replay_wakes_a_selector_on_time(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "p.pcap", conformance_frames()[:3], step_ns=100_000_000)
    backend = ReplayBackend({"eth0": path}, speed=2.0)  # 50 ms apart
    with (
        backend.open("eth0", BpfProgram.accept_all()) as source,
        selectors.DefaultSelector() as sel,
    ):
        sel.register(source, selectors.EVENT_READ)
        start = time.monotonic()
        arrivals = []
        while not source.exhausted and time.monotonic() - start < 5:
            assert sel.select(5), "the timer must wake the selector"
            if source.read():
                arrivals.append(time.monotonic() - start)
    assert len(arrivals) == 3
    assert arrivals[1] == pytest.approx(0.05, abs=0.03)
    assert arrivals[2] == pytest.approx(0.10, abs=0.03)


def test_filter_matches_tcpdump(tmp_path: Path) -> None:
    """Replaying through a compiled filter keeps exactly what `tcpdump -r ... udp` keeps."""
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump not installed")
    frames = conformance_frames() * 3
    path = write_pcap(tmp_path / "in.pcap", frames)
    out = tmp_path / "out.pcap"
    subprocess.run(
        ["tcpdump", "-r", str(path), "-w", str(out), "udp"], check=True, capture_output=True
    )
    with PcapReader(out) as reader:
        expected = [(ts, data, wire) for ts, data, wire in reader]
    program = bpf.compile_filters([PacketCaptureRule(protocol="UDP")])
    with ReplayBackend({"eth0": path}).open("eth0", program) as source:
        got = source.read()
        assert source.stats() == SourceStats(
            received=len(expected), dropped=0, filtered=len(frames) - len(expected)
        )
    assert got == expected


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="speed"):
        ReplayBackend(speed=-1)
