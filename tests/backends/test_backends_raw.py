"""ReplaySource.read_raw (+ RotatingWriter.write_raw) gives exactly what read + write_many give."""

from __future__ import annotations

import datetime as _dt
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packetcapture.backends.replay import ReplayBackend, ReplayClock, ReplaySource
from packetcapture.errors import BackendError, PcapError
from packetcapture.model import PacketCaptureRule
from packetcapture.pcap import CaptureSettings, RotatingWriter

bpf = pytest.importorskip("packetcapture.bpf")
PROGRAM = bpf.compile_filters([PacketCaptureRule(protocol="UDP", ports=["53"])])
T0 = 1_700_000_000.0

# A record: UDP destination port, payload length, wire kind, odd sub-second field.
record_st = st.tuples(
    st.sampled_from([53, 53, 123]),
    st.integers(0, 150),
    st.sampled_from(["same"] * 6 + ["more", "less"]),
    st.sampled_from([False] * 30 + [True]),
)
file_st = st.fixed_dictionaries(
    {
        "records": st.lists(record_st, min_size=1, max_size=40),
        "nanosecond": st.sampled_from([False, False, True]),
        "order": st.sampled_from(["<", "<", "<", ">"]),
        "tail": st.sampled_from(["", "", "", "data", "huge"]),
    }
)


def udp_frame(port: int, size: int, i: int) -> bytes:
    payload = bytes((i + j) & 0xFF for j in range(size))
    udp = struct.pack("!HHHH", 40000, port, 8 + size, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                     b"\x0a\0\0\x02", b"\x0a\0\0\x01")  # fmt: skip
    return b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02\x08\x00" + ip + udp


def make_file(path: Path, spec: dict[str, Any]) -> None:
    order, nano = spec["order"], spec["nanosecond"]
    lim = 1_000_000_000 if nano else 1_000_000
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, 1)]
    for i, (port, size, wire_kind, odd) in enumerate(spec["records"]):
        data = udp_frame(port, size, i)
        n = len(data)
        wire = {"same": n, "more": n + 9, "less": n - 3}[wire_kind]
        frac = lim + i if odd else (i * 12345) % lim
        sec = 1_700_000_000 + i * spec.get("step", 1)  # step 0 or -1: not in time order
        out.append(struct.pack(order + "IIII", sec, frac, n, wire) + data)
    if spec["tail"] == "data":
        out.append(struct.pack(order + "IIII", 1, 2, 80, 80) + bytes(20))
    elif spec["tail"] == "huge":
        out.append(struct.pack(order + "IIII", 1, 2, 1 << 30, 1 << 30) + bytes(40))
    path.write_bytes(b"".join(out))


def _at(ns: int) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ns // 1000 / 1e6, _dt.UTC)


def snapshot(w: RotatingWriter, source: ReplaySource) -> Any:
    files = {}
    for name in sorted(os.listdir(w.directory)):
        files[name] = (w.directory / name).read_bytes()
        if name == w.active_name:
            files[name] += bytes(w._buf)
    stats = source.stats()
    return (
        (w.packets_written, w.bytes_written, w.files_rotated, w.files_deleted, w.packets_deleted),
        (stats.received, stats.dropped, stats.filtered, source.exhausted, source.end_reason),
        files,
    )


def pump(
    paths: list[Path],
    wkw: dict[str, Any],
    okw: dict[str, Any],
    raw: bool,
    batch: int = 7,
    clock: tuple[int, list[int]] | None = None,
) -> list[Any]:
    """Copy the source into a writer as the agent does; trace counts, states and errors.

    ``clock``: on a replay clock starting at that time (ns), with those horizons in turn
    (each passed when the source waits at it, as the CLI's run loop does).
    """
    trace: list[Any] = []
    replay_clock = horizons = None
    if clock is not None:
        replay_clock = ReplayClock(_dt.datetime.fromtimestamp(clock[0] / 1e9, _dt.UTC))
        horizons = list(clock[1])
    with tempfile.TemporaryDirectory() as base:
        w = RotatingWriter(base, "ns", "cap", "pod", "eth0", settings=CaptureSettings(**wkw))
        backend = ReplayBackend({"eth0": paths}, replay_clock=replay_clock)
        with backend.open("eth0", PROGRAM, **okw) as source:
            nano = w.settings.nanosecond
            for step in range(60):
                now = T0 + step * 0.7
                if replay_clock is not None and horizons is not None:
                    if horizons and replay_clock.stalled():
                        replay_clock.advance_to(_at(horizons.pop(0)))
                    replay_clock.set_horizon(_at(horizons[0]) if horizons else None)
                    trace.append(("clock", replay_clock.now_ns(), replay_clock.stalled()))
                try:
                    got = None
                    if raw and w.accepts_raw(nanosecond=nano):
                        got = source.read_raw(batch, nanosecond=nano, snaplen=w.snaplen)
                    if got is None:
                        packets = source.read(batch)
                        count = 0
                    else:
                        records, count, rest = got
                        w.write_raw(records, count, now)
                        trace.append(("bytes", len(records) - 16 * count))
                        packets = source.read(rest) if rest else []
                    w.write_many(packets, now)
                    trace.append(("bytes", sum(len(p[1]) for p in packets)))
                    trace.append(("got", count + len(packets)))
                except (BackendError, PcapError, ValueError) as exc:
                    trace.append((type(exc).__name__, str(exc), getattr(exc, "offset", None)))
                trace.append(snapshot(w, source))
            w.close()
            trace.append(snapshot(w, source))
    if replay_clock is not None:
        # Unpaced reads on a replay clock count passing packets per call, the raw lane
        # records (as without one): the steps differ, where they end may not.
        return [trace[-1], replay_clock.now_ns()]
    merged: list[Any] = []
    for item in trace:  # the raw lane may split the bytes of a batch in two
        last = merged[-1] if merged else None
        if isinstance(item, tuple) and item[0] == "bytes" and last and last[0] == "bytes":
            merged[-1] = ("bytes", last[1] + item[1])
            continue
        merged.append(item)
    return merged


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=st.lists(file_st, min_size=1, max_size=3),
    wkw=st.fixed_dictionaries(
        {
            "max_size_bytes": st.integers(1, 2500),
            "max_files": st.integers(1, 3),
            "flush_packets": st.integers(1, 20),
            "nanosecond": st.sampled_from([None, None, None, False, True]),  # None: as file 0
            "snaplen": st.sampled_from([60, 262144, 262144, 262144]),
        }
    ),
    okw=st.fixed_dictionaries(
        {
            "snaplen": st.sampled_from([262144, 262144, 262144, 80]),
            "packet_limit": st.sampled_from([None, None, 0, 1, 5, 13]),
        }
    ),
)
def test_read_raw_is_read(
    files: list[dict[str, Any]], wkw: dict[str, Any], okw: dict[str, Any]
) -> None:
    if wkw["nanosecond"] is None:
        wkw = {**wkw, "nanosecond": files[0]["nanosecond"]}
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i, spec in enumerate(files):
            paths.append(Path(d) / f"in{i}.pcap")
            make_file(paths[-1], spec)
        assert pump(paths, wkw, okw, raw=True) == pump(paths, wkw, okw, raw=False)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=st.lists(
        file_st.map(lambda f: {**f, "tail": ""}).flatmap(
            lambda f: st.sampled_from([1, 1, 1, 0, -1]).map(lambda step: {**f, "step": step})
        ),
        min_size=1,
        max_size=2,
    ),
    nanosecond=st.booleans(),
    start=st.integers(-2 * 10**9, 30 * 10**9),
    horizons=st.lists(st.integers(-(10**9), 45 * 10**9), max_size=4).map(sorted),
    batch=st.sampled_from([3, 7, 64]),
)
def test_read_raw_on_the_files_clock_is_read(
    files: list[dict[str, Any]], nanosecond: bool, start: int, horizons: list[int], batch: int
) -> None:
    """On a replay clock the raw lane gives what read gives: windows that cut the files."""
    wkw = {"max_size_bytes": 10**6, "max_files": 2, "nanosecond": nanosecond}
    base = 1_700_000_000 * 10**9
    clock = (base + start, [base + h for h in horizons])
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i, spec in enumerate(files):
            paths.append(Path(d) / f"in{i}.pcap")
            make_file(paths[-1], spec)
        got = pump(paths, wkw, {}, raw=True, batch=batch, clock=clock)
        assert got == pump(paths, wkw, {}, raw=False, batch=batch, clock=clock)


@pytest.mark.parametrize("start", [0, 10**9 + 12345 * 1000 - 1, 17 * 10**9])
@pytest.mark.parametrize("horizon", [None, 5 * 10**9, 5 * 10**9 + 5 * 12345 * 1000 + 1])
def test_read_raw_on_the_files_clock_chosen_windows(
    tmp_path: Path, start: int, horizon: int | None
) -> None:
    """A window covering the whole file, one cut at a second, one cut inside a second."""
    records = [(53 if j % 3 else 123, j % 90, "same", False) for j in range(40)]
    path = tmp_path / "in.pcap"
    make_file(path, {"records": records, "nanosecond": False, "order": "<", "tail": ""})
    base = 1_700_000_000 * 10**9
    clock = (base + start, [] if horizon is None else [base + horizon])
    wkw = {"max_size_bytes": 10**6, "max_files": 2}
    got = pump([path], wkw, {}, raw=True, batch=64, clock=clock)
    assert got == pump([path], wkw, {}, raw=False, batch=64, clock=clock)
    assert got[0][0][0]  # packets went out


def test_read_raw_paced_or_pcapng_says_none(tmp_path: Path) -> None:
    path = tmp_path / "in.pcap"
    make_file(path, {"records": [(53, 10, "same", False)], "nanosecond": False, "order": "<",
                     "tail": ""})  # fmt: skip
    with ReplayBackend({"eth0": path}, speed=1.0).open("eth0", PROGRAM) as source:
        assert source.read_raw(10, nanosecond=False, snaplen=262144) is None
    with ReplayBackend({"eth0": path}).open("eth0", PROGRAM) as source:
        assert source.read_raw(10, nanosecond=True, snaplen=262144) is None
        got = source.read_raw(10, nanosecond=False, snaplen=262144)
        assert got is not None and got[1:] == (1, 0)
        assert got[0] == path.read_bytes()[24:]


@pytest.mark.parametrize("limit", [None, 777])
def test_read_raw_many_files_rotations_and_odd_records(tmp_path: Path, limit: int | None) -> None:
    """Thousands of packets, a few needing the normal path, over many size rotations."""
    paths = []
    for i in range(3):
        records = [
            (53 if (j * 7 + i) % 3 else 123, (j * 31) % 140, "less" if j % 97 == 5 else "same",
             j % 211 == 7)
            for j in range(900)
        ]  # fmt: skip
        paths.append(tmp_path / f"in{i}.pcap")
        make_file(paths[-1], {"records": records, "nanosecond": False, "order": "<",
                              "tail": "data" if i == 2 else ""})  # fmt: skip
    wkw = {"max_size_bytes": 9000, "max_files": 50, "flush_packets": 64}
    okw = {"packet_limit": limit}
    raw = pump(paths, wkw, okw, raw=True, batch=100)
    assert raw == pump(paths, wkw, okw, raw=False, batch=100)
    assert len(raw[-1][2]) > 10  # many files
