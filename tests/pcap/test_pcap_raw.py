"""The raw lane (read_filtered_raw -> write_raw) gives exactly what decode/encode gives."""

from __future__ import annotations

import io
import os
import struct
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packetcapture.errors import PcapError
from packetcapture.pcap import CaptureSettings, PcapReader, RotatingWriter

T0 = 1_700_000_000.0

# A record: data length, wire length kind, odd sub-second field, big seconds.
record_st = st.tuples(
    st.integers(0, 200),
    st.sampled_from(["same"] * 5 + ["more", "less"]),
    st.sampled_from([False] * 30 + [True]),
    st.sampled_from([False] * 30 + [True]),
)
file_st = st.fixed_dictionaries(
    {
        "records": st.lists(record_st, max_size=60),
        "nanosecond": st.booleans(),
        "order": st.sampled_from(["<", "<", "<", ">"]),
        "tail": st.sampled_from(["", "", "header", "data", "huge"]),
    }
)
writer_st = st.fixed_dictionaries(
    {
        "max_size_bytes": st.integers(1, 3000),
        "rotation_seconds": st.integers(1, 6),
        "max_files": st.integers(1, 4),
        "flush_packets": st.integers(1, 30),
        "nanosecond": st.sampled_from([None, None, True, False]),  # None: as the file
        "snaplen": st.sampled_from([40, 120, 262144, 262144, 262144]),
    }
)
# Verdict by the first byte: drop, cut to 5 or 150 bytes, keep whole.
verdicts_st = st.lists(st.sampled_from([0, 0, 5, 150] + [262144] * 5), min_size=4, max_size=4)


def make_file(spec: dict[str, Any]) -> bytes:
    order, nano = spec["order"], spec["nanosecond"]
    lim = 1_000_000_000 if nano else 1_000_000
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)]
    for i, (size, wire_kind, odd_frac, big_sec) in enumerate(spec["records"]):
        data = bytes((i * 7 + j) & 0xFF for j in range(size))
        wire = {"same": size, "more": size + 9, "less": max(size - 3, 0)}[wire_kind]
        sec = 0xFFFFFFFF if big_sec else 1_700_000_000 + i
        frac = lim + i if odd_frac else (i * 12345) % lim
        out.append(struct.pack(order + "IIII", sec, frac, size, wire) + data)
    tail = spec["tail"]
    if tail == "header":
        out.append(struct.pack(order + "II", 1, 2))
    elif tail == "data":
        out.append(struct.pack(order + "IIII", 1, 2, 50, 50) + bytes(20))
    elif tail == "huge":
        out.append(struct.pack(order + "IIII", 1, 2, 1 << 30, 1 << 30) + bytes(40))
    return b"".join(out)


def snapshot(w: RotatingWriter) -> dict[str, Any]:
    """Counters and every file's bytes (buffered bytes counted as in the active file)."""
    files = {}
    for name in sorted(os.listdir(w.directory)):
        files[name] = (w.directory / name).read_bytes()
        if name == w.active_name:
            files[name] += bytes(w._buf)
    counters = (w.packets_written, w.bytes_written, w.packets_deleted, w.files_deleted)
    return {"counters": (*counters, w.files_rotated, w._file_packets, w._size), "files": files}


def run(
    data: bytes,
    wkw: dict[str, Any],
    verdicts: list[int],
    batches: list[int],
    snaplen: int | None,
    raw: bool,
) -> list[Any]:
    """Copy the file batch by batch (each batch with its own ``now``); trace everything."""

    def keep(frame: bytes) -> int:
        return verdicts[frame[0] % 4] if frame else verdicts[0]

    trace: list[Any] = []
    with tempfile.TemporaryDirectory() as base:
        w = RotatingWriter(base, "ns", "cap", "pod", "eth0", settings=CaptureSettings(**wkw))
        reader = PcapReader(io.BytesIO(data))
        use_raw = raw and reader.raw_capable and w.accepts_raw(nanosecond=reader.nanosecond)
        now = T0
        pending: Exception | None = None  # raised by the next batch, as read_filtered does
        try:
            for size in batches * 20:
                now += 1.5
                budget = size
                try:
                    if pending is not None:
                        raise pending
                    while budget:
                        got = None
                        if use_raw:
                            try:
                                got = reader.read_filtered_raw(
                                    budget, keep, snaplen, limit=w.snaplen
                                )
                            except PcapError as exc:
                                if budget == size:
                                    raise
                                pending = exc
                                break
                        if got is None:
                            packets, n = reader.read_filtered(budget, keep, snaplen)
                            trace.append(("read", len(packets)))
                            w.write_many(packets, now)
                            break  # it reads the whole budget unless the file ends
                        else:
                            records, kept, n = got
                            trace.append(("read", kept))
                            assert w.write_raw(records, kept, now) == kept
                        budget -= n
                        if not n:
                            break
                except (PcapError, ValueError) as exc:
                    offset = getattr(exc, "offset", None)
                    trace.append((type(exc).__name__, str(exc), offset))
                    break
                trace.append(snapshot(w))
            w.close()
            trace.append(snapshot(w))
        finally:
            w.close()
    # Merge consecutive read counts (the raw lane may split a batch into pieces).
    merged: list[Any] = []
    for item in trace:
        last = merged[-1] if merged else None
        is_read = isinstance(item, tuple) and item[0] == "read"
        if is_read and isinstance(last, tuple) and last[0] == "read":
            merged[-1] = ("read", last[1] + item[1])
            continue
        merged.append(item)
    return merged


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=file_st,
    wkw=writer_st,
    verdicts=verdicts_st,
    batches=st.lists(st.integers(1, 25), min_size=1, max_size=4),
    snaplen=st.sampled_from([None, None, None, 30, 100, 262144]),
)
def test_raw_lane_is_decode_encode(
    spec: dict[str, Any],
    wkw: dict[str, Any],
    verdicts: list[int],
    batches: list[int],
    snaplen: int | None,
) -> None:
    """Same files, names, counters, read counts and errors (with offsets) either way."""
    data = make_file(spec)
    if wkw["nanosecond"] is None:
        wkw = {**wkw, "nanosecond": spec["nanosecond"]}
    assert run(data, wkw, verdicts, batches, snaplen, raw=True) == run(
        data, wkw, verdicts, batches, snaplen, raw=False
    )


def test_raw_lane_copies_records_as_stored() -> None:
    spec = {"records": [(60, "same", False, False)] * 10, "nanosecond": False}
    data = make_file({**spec, "order": "<", "tail": ""})
    reader = PcapReader(io.BytesIO(data))
    got = reader.read_filtered_raw(100, lambda f: 262144 if f[0] % 2 else 0)
    assert got is not None
    records, kept, n = got
    assert (kept, n) == (5, 10)
    stored = [data[24 + i * 76 : 24 + (i + 1) * 76] for i in range(10)]
    assert records == b"".join(r for r in stored if r[16] % 2)
    assert reader.read_filtered_raw(100, lambda f: 1) == (b"", 0, 0)


def test_raw_lane_refuses_what_needs_the_normal_path() -> None:
    base = {"order": "<", "tail": "", "nanosecond": False}
    data = make_file({**base, "records": [(60, "less", False, False)]})
    assert PcapReader(io.BytesIO(data)).read_filtered_raw(10, lambda f: 262144) is None
    data = make_file({**base, "records": [(60, "same", False, False)]})
    assert PcapReader(io.BytesIO(data)).read_filtered_raw(10, lambda f: 10) is None
    assert PcapReader(io.BytesIO(data)).read_filtered_raw(10, lambda f: 99, 30) is None
    assert PcapReader(io.BytesIO(data)).read_filtered_raw(10, lambda f: 99, limit=59) is None
    big = make_file({**base, "order": ">", "records": [(60, "same", False, False)]})
    reader = PcapReader(io.BytesIO(big))
    assert not reader.raw_capable
    with pytest.raises(ValueError):
        reader.read_filtered_raw(10, lambda f: 1)
