"""Batch writing (write_many) is exactly per-packet writing, only faster; batch reading."""

from __future__ import annotations

import datetime as dt
import errno
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pcap_peers import random_packets, tcpdump_packets

from packetcapture.errors import PcapError
from packetcapture.pcap import (
    CaptureSettings,
    PcapReader,
    PcapTruncatedError,
    PcapWriter,
    RotatingWriter,
    _writer,
)

T0 = 1_700_000_000.0
TS0 = 1_700_000_000_123_456_789
Packet = tuple[int, bytes, int]

# A packet: data length (some past any snap length), wire length below / at / above it.
packet_st = st.tuples(
    st.integers(0, 300),
    st.sampled_from(["less", "same", "more"]),
    st.integers(0, 3_000_000_000),
)
batches_st = st.lists(
    st.tuples(st.lists(packet_st, max_size=40), st.floats(0, 4)), min_size=1, max_size=8
)
writer_settings_st = st.fixed_dictionaries(
    {
        "max_size_bytes": st.integers(1, 4000),
        "rotation_seconds": st.integers(1, 6),
        "max_files": st.integers(1, 4),
        "flush_packets": st.integers(1, 30),
        "flush_interval_ms": st.integers(1, 3000),
        "nanosecond": st.booleans(),
        "snaplen": st.integers(1, 320),
        "retention": st.sampled_from(["interface", "directory"]),
    }
)


def make_packets(spec: list[tuple[int, str, int]], start: int) -> list[Packet]:
    out = []
    ts = start
    for size, wire_kind, gap in spec:
        data = bytes((ts + i) & 0xFF for i in range(size))
        wire = {"less": max(size - 5, 0), "same": size, "more": size + 17}[wire_kind]
        out.append((ts, data, wire))
        ts += gap
    return out


def snapshot(w: RotatingWriter) -> dict[str, Any]:
    """What must match: counters, the buffer state and every file's name and bytes."""
    files = {}
    for name in sorted(os.listdir(w.directory)):
        files[name] = (w.directory / name).read_bytes()
    return {
        "counters": (
            w.packets_written,
            w.bytes_written,
            w.packets_deleted,
            w.files_deleted,
            w.files_rotated,
            w.packets_lost,
            w._buf_packets,
            w._file_packets,
            w._size,
        ),
        "files": files,
    }


def run_writer(
    base: str,
    kwargs: dict[str, Any],
    batches: list[tuple[list[Packet], float | dt.datetime]],
    many: bool,
) -> list[Any]:
    """Write the batches one way; record a snapshot (or the error) after each."""
    w = RotatingWriter(base, "ns", "cap", "web-0", "cali1", settings=CaptureSettings(**kwargs))
    trace: list[Any] = []
    try:
        for packets, now in batches:
            try:
                if many:
                    n = w.write_many(iter(packets), now)
                    assert n == len(packets)
                else:
                    for ts, data, wire in packets:
                        w.write(ts, data, wire, now)
            except (PcapError, ValueError) as exc:
                trace.append(f"{type(exc).__name__}: {exc}".replace(base, "BASE"))
            trace.append(snapshot(w))
            w.tick(now)
            trace.append(snapshot(w))
        w.close()
        trace.append(snapshot(w))
    finally:
        w.close()
    return trace


def compare(
    kwargs: dict[str, Any], batches: list[tuple[list[Packet], float | dt.datetime]]
) -> None:
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        assert run_writer(a, kwargs, batches, many=True) == run_writer(
            b, kwargs, batches, many=False
        )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kwargs=writer_settings_st,
    batches=batches_st,
    small_buffer=st.booleans(),
    use_datetime=st.booleans(),
)
def test_write_many_is_per_packet_write(
    kwargs: dict[str, Any],
    batches: list[tuple[list[tuple[int, str, int]], float]],
    small_buffer: bool,
    use_datetime: bool,
) -> None:
    """Same files, bytes, names and counters, with rotations, flushes and buffer limits."""
    plan: list[tuple[list[Packet], float | dt.datetime]] = []
    now = T0
    ts = TS0
    for spec, step in batches:
        now += step
        packets = make_packets(spec, ts)
        ts += 10_000_000_000
        plan.append((packets, dt.datetime.fromtimestamp(now, dt.UTC) if use_datetime else now))
    mp = pytest.MonkeyPatch()
    try:
        if small_buffer:  # make the 4 MiB early-flush limit reachable
            mp.setattr(_writer, "_MAX_BUFFER", 700)
        compare(kwargs, plan)
    finally:
        mp.undo()


def test_write_many_large_batch_rotates_like_write() -> None:
    """One batch of thousands of packets across many size rotations and flushes."""
    packets = random_packets(5000, seed=3, max_len=400)
    compare({"max_size_bytes": 50_000, "max_files": 3, "flush_packets": 700}, [(packets, T0)])
    compare({"max_size_bytes": 10**9, "flush_packets": 10**6}, [(packets, T0)])


@pytest.mark.parametrize("first", [0, 1, 3, 9])
@pytest.mark.parametrize("flush_packets", [1, 4, 10, 5000])
def test_write_many_exact_limits(first: int, flush_packets: int) -> None:
    """Records that fill the file or the buffer exactly: the limits are not off by one."""
    packets = make_packets([(84, "same", 1)] * 60, TS0)  # 100-byte records
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(_writer, "_MAX_BUFFER", 500)
        for max_size in (24 + 100 * 10, 24 + 100 * 10 - 1, 24 + 100 * 10 + 1):
            plan: list[tuple[list[Packet], float | dt.datetime]] = [
                (packets[:first], T0),
                (packets[first:], T0),
            ]
            compare({"max_size_bytes": max_size, "flush_packets": flush_packets}, plan)
    finally:
        mp.undo()


def test_write_many_bad_timestamp_stops_where_write_does() -> None:
    packets = make_packets([(60, "same", 1)] * 10, TS0)
    packets[6] = (-1, b"x" * 60, 60)
    compare({"flush_packets": 4}, [(packets, T0), (packets[:3], T0 + 1)])


def test_write_many_pcapng_and_empty_batches() -> None:
    packets = random_packets(300, seed=4, max_len=300)
    compare(
        {"format": "pcapng", "max_size_bytes": 20_000, "flush_packets": 7},
        [(packets, T0), ([], T0 + 1), (packets[:5], T0 + 4000)],
    )
    compare({"max_size_bytes": 20_000}, [([], T0), (packets, T0 + 1)])


@pytest.mark.parametrize("fail_after", [0, 1, 3])
def test_write_many_disk_full_like_write(monkeypatch: pytest.MonkeyPatch, fail_after: int) -> None:
    """A failed flush loses the same packets and leaves the same file either way."""
    real = _writer._write_all
    calls = [0]

    def flaky(fd: int, data: bytes) -> None:
        calls[0] += 1
        if calls[0] > fail_after + 1:  # the first call writes the header
            real(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(_writer, "_write_all", flaky)
    packets = random_packets(200, seed=5, max_len=200)
    traces = []
    for many in (True, False):
        calls[0] = 0
        with tempfile.TemporaryDirectory() as base:
            trace = run_writer(base, {"flush_packets": 16}, [(packets, T0)], many=many)
            traces.append(trace)
    assert traces[0] == traces[1]
    assert "No space left" in traces[0][0]


def test_write_many_refuses_after_close(tmp_path: Path) -> None:
    w = RotatingWriter(tmp_path, "ns", "cap", "web-0", "cali1")
    w.close()
    with pytest.raises(PcapError, match="closed"):
        w.write_many([], T0)


def test_write_many_file_read_by_tcpdump(tmp_path: Path, tool: Callable[[str], str]) -> None:
    packets = random_packets(500, seed=6)
    with RotatingWriter(tmp_path, "ns", "cap", "web-0", "cali1") as w:
        assert w.write_many(packets, T0) == 500
    got, err, code = tcpdump_packets(tool("tcpdump"), Path(w.active_path), nano=False)
    assert code == 0, err
    assert got == [(ts // 1000, data, wire) for ts, data, wire in packets]


# -- PcapWriter -----------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    spec=st.lists(packet_st, max_size=60),
    snaplen=st.integers(1, 320),
    nanosecond=st.booleans(),
    fmt=st.sampled_from(["pcap", "pcapng"]),
    bad_at=st.none() | st.integers(0, 59),
)
def test_pcap_writer_write_many_is_write(
    spec: list[tuple[int, str, int]],
    snaplen: int,
    nanosecond: bool,
    fmt: str,
    bad_at: int | None,
) -> None:
    packets = make_packets(spec, TS0)
    if bad_at is not None and bad_at < len(packets):
        packets[bad_at] = (2**33 * 10**9, b"late", 4)  # past the 32-bit seconds field
    outs = []
    for many in (True, False):
        f = io.BytesIO()
        w = PcapWriter(f, snaplen=snaplen, nanosecond=nanosecond, format=fmt)
        error = None
        try:
            if many:
                assert w.write_many(packets) == len(packets)
            else:
                for ts, data, wire in packets:
                    w.write(ts, data, wire)
        except ValueError as exc:
            error = str(exc)
        outs.append((f.getvalue(), w.packets_written, error))
    assert outs[0] == outs[1]


def test_pcap_writer_write_many_big_batch_reads_back(tmp_path: Path) -> None:
    packets = random_packets(3000, seed=7)
    path = tmp_path / "x.pcap"
    with path.open("wb") as f:
        w = PcapWriter(f, nanosecond=True)
        assert w.write_many(iter(packets)) == 3000
    with PcapReader(path) as r:
        assert list(r) == packets


# -- reading in batches ----------------------------------------------------------------


def write_file(path: Path, packets: list[Packet]) -> None:
    with path.open("wb") as f:
        PcapWriter(f, nanosecond=True).write_many(packets)


def batches(reader: PcapReader, n: int) -> Iterator[list[Packet]]:
    while batch := reader.read_batch(n):
        yield batch


@pytest.mark.parametrize("size", [1, 7, 1000, 100_000])
def test_read_batch_gives_what_iteration_gives(tmp_path: Path, size: int) -> None:
    packets = random_packets(2500, seed=8)
    path = tmp_path / "a.pcap"
    write_file(path, packets)
    with PcapReader(path) as r:
        got = [p for batch in batches(r, size) for p in batch]
        assert r.read_batch(size) == []
    assert got == packets


@pytest.mark.parametrize("cut", [5, 20, 30])
def test_read_batch_errors_after_good_records(tmp_path: Path, cut: int) -> None:
    """A torn tail: the good records come first, then the same error iteration raises."""
    packets = random_packets(50, seed=9, max_len=100)
    path = tmp_path / "a.pcap"
    write_file(path, packets)
    path.write_bytes(path.read_bytes()[:-cut])
    with PcapReader(path) as r, pytest.raises(PcapTruncatedError) as want:
        list(r)
    with PcapReader(path) as r:
        assert r.read_batch(1000) == packets[:-1]
        with pytest.raises(PcapTruncatedError) as got:
            r.read_batch(1000)
    assert (got.value.offset, str(got.value)) == (want.value.offset, str(want.value))


def test_read_batch_corrupt_length(tmp_path: Path) -> None:
    packets = random_packets(20, seed=10, max_len=100)
    path = tmp_path / "a.pcap"
    write_file(path, packets)
    raw = bytearray(path.read_bytes())
    at = 24 + sum(16 + len(d) for _, d, _ in packets[:12])
    raw[at + 8 : at + 12] = (10**6).to_bytes(4, "little")  # caplen past any snap length
    path.write_bytes(bytes(raw))
    with PcapReader(path) as r:
        assert r.read_batch(5) == packets[:5]
        assert r.read_filtered(100, len) == (packets[5:12], 7)
        with pytest.raises(PcapError, match="exceeds the maximum") as info:
            r.read_filtered(100, len)
    assert info.value.offset == at


def test_read_filtered_keeps_cuts_and_counts(tmp_path: Path) -> None:
    packets = random_packets(400, seed=11, max_len=300)
    path = tmp_path / "a.pcap"
    write_file(path, packets)

    def keep(data: bytes) -> int:
        return 0 if data[0] & 1 else 40 + data[1] % 400

    want = []
    for ts, data, wire in packets:
        k = keep(data)
        if k:
            want.append((ts, data[: min(k, 100)], wire))
    with PcapReader(path) as r:
        got, read = [], 0
        while True:
            batch, n = r.read_filtered(64, keep, 100)
            if not n:
                break
            got += batch
            read += n
    assert (got, read) == (want, 400)


def test_read_batch_pcapng_and_after_iteration(tmp_path: Path) -> None:
    packets = random_packets(300, seed=12)
    path = tmp_path / "a.pcapng"
    with path.open("wb") as f:
        PcapWriter(f, format="pcapng", nanosecond=True).write_many(packets)
    with PcapReader(path) as r:
        assert [p for batch in batches(r, 64) for p in batch] == packets
    path2 = tmp_path / "b.pcap"
    write_file(path2, packets)
    with PcapReader(path2) as r:
        it = iter(r)
        first = [next(it) for _ in range(10)]
        # A batch after an iteration began continues that iteration.
        assert first + r.read_batch(1000) == packets


class _Stream(io.RawIOBase):
    """A pipe-like reader: not seekable."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        chunk = self._data.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("chunk", [7, 100, 1 << 20])
def test_reading_across_chunks_seekable_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Records straddling read chunks, from a file, a pipe and a file not at offset 0."""
    from packetcapture.pcap import _reader

    monkeypatch.setattr(_reader, "_CHUNK", chunk)
    packets = random_packets(300, seed=13, max_len=400)
    path = tmp_path / "a.pcap"
    write_file(path, packets)
    raw = path.read_bytes()
    torn = raw[:-9]
    with PcapReader(path) as r:
        assert [p for batch in batches(r, 50) for p in batch] == packets
    with PcapReader(io.BufferedReader(_Stream(raw))) as r:
        assert [p for batch in batches(r, 50) for p in batch] == packets
    with PcapReader(io.BufferedReader(_Stream(torn))) as r:
        assert r.read_batch(1000) == packets[:-1]
        with pytest.raises(PcapTruncatedError) as info:
            r.read_batch(1000)
        assert info.value.offset == len(raw) - 16 - len(packets[-1][1])
    shifted = io.BytesIO(b"junk" + torn)
    shifted.seek(4)
    with PcapReader(shifted) as r:
        assert r.read_filtered(1000, len) == (packets[:-1], 299)
        with pytest.raises(PcapTruncatedError) as info:
            r.read_filtered(1000, len)
        assert info.value.offset == len(raw) - 16 - len(packets[-1][1])
