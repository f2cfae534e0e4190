"""RotatingWriter: layout, flush policy, rotation, retention, errors and recovery."""

from __future__ import annotations

import datetime as dt
import errno
import os
import random
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pcap_peers import capinfos_count, tcpdump_packets

from packetcapture.errors import PcapError, ValidationError
from packetcapture.pcap import (
    CaptureSettings,
    PcapReader,
    RotatingWriter,
    RotationReason,
    _writer,
    parse_file_name,
    should_rotate,
)
from tests.conftest import require_tool

T0 = 1_700_000_000.0
TS0 = 1_700_000_000_000_000_000


def read_all(path: Path) -> list[tuple[int, bytes, int]]:
    with PcapReader(path) as r:
        return list(r)


def make(tmp_path: Path, pod: str = "web-0", iface: str = "cali1", **kw: object) -> RotatingWriter:
    return RotatingWriter(tmp_path, "ns", "cap", pod, iface, settings=CaptureSettings(**kw))  # type: ignore[arg-type]


# -- settings -------------------------------------------------------------------------


def test_settings_defaults_are_felix_defaults() -> None:
    s = CaptureSettings()
    assert (s.max_size_bytes, s.rotation_seconds, s.max_files) == (10_000_000, 3600, 2)
    assert (s.format, s.nanosecond, s.snaplen, s.retention) == ("pcap", False, 262144, "interface")
    assert s.free_space_needed == 30_000_000


@pytest.mark.parametrize(
    "field",
    [
        "max_size_bytes",
        "rotation_seconds",
        "max_files",
        "flush_packets",
        "flush_interval_ms",
        "snaplen",
    ],
)
@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_settings_reject_non_positive(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        CaptureSettings(**{field: value})  # type: ignore[arg-type]
    assert [p for p, _ in info.value.problems] == [field]


def test_settings_reject_bad_choices() -> None:
    with pytest.raises(ValidationError) as info:
        CaptureSettings(format="pcapx", retention="node", max_files=0)  # type: ignore[arg-type]
    assert sorted(p for p, _ in info.value.problems) == ["format", "max_files", "retention"]


def test_settings_from_felix() -> None:
    s = CaptureSettings.from_felix(
        {"captureMaxSizeBytes": 5000, "captureRotationSeconds": "86400", "captureDir": "/x"},
        format="pcapng",
    )
    assert (s.max_size_bytes, s.rotation_seconds, s.max_files, s.format) == (
        5000,
        86400,
        2,
        "pcapng",
    )
    with pytest.raises(ValidationError) as info:
        CaptureSettings.from_felix({"captureMaxFiles": 0})
    assert info.value.problems[0][0] == "captureMaxFiles"
    with pytest.raises(ValidationError, match="captureMaxSizeBytes"):
        CaptureSettings.from_felix({"captureMaxSizeBytes": "ten"})


def test_settings_from_felix_refuses_capture_typos() -> None:
    # A whole FelixConfiguration spec is fine: unrelated keys and captureDir are ignored.
    spec = {"logSeverityScreen": "Info", "captureDir": "/x", "captureMaxFiles": 3}
    assert CaptureSettings.from_felix(spec).max_files == 3
    with pytest.raises(ValidationError) as info:
        CaptureSettings.from_felix({"captureMaxFile": 3, "CAPTUREROTATIONSECOND": 5, "x": 1})
    assert info.value.problems == [
        ("captureMaxFile", "unknown field 'captureMaxFile': did you mean 'captureMaxFiles'?"),
        (
            "CAPTUREROTATIONSECOND",
            "unknown field 'CAPTUREROTATIONSECOND': did you mean 'captureRotationSeconds'?",
        ),
    ]


# -- pure rotation decision -----------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "now", "incoming", "packets", "want"),
    [
        (24, 0.0, 100, 0, None),  # no packets: never
        (24, 99999.0, 0, 0, None),
        (900, 10.0, 100, 5, None),  # exactly at the limit is fine
        (900, 10.0, 101, 5, RotationReason.SIZE),
        (900, 3600.0, 0, 5, RotationReason.TIME),
        (900, 3599.9, 0, 5, None),
        (2000, 10.0, 0, 5, None),  # an oversized file only rotates before the next write
    ],
)
def test_should_rotate_table(
    size: int, now: float, incoming: int, packets: int, want: RotationReason | None
) -> None:
    got = should_rotate(
        size,
        now,
        incoming=incoming,
        packets=packets,
        period_start=0.0,
        max_size_bytes=1000,
        rotation_seconds=3600,
    )
    assert got is want


# -- layout and flushing --------------------------------------------------------------


def test_file_created_on_first_packet_with_modes(tmp_path: Path) -> None:
    w = make(tmp_path)
    d = tmp_path / "ns" / "cap"
    assert d.is_dir() and stat.S_IMODE(d.stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "ns").stat().st_mode) == 0o755
    assert list(d.iterdir()) == [] and w.file_names == []
    w.tick(T0)
    assert list(d.iterdir()) == []
    w.write(TS0, b"x" * 60, 60, T0)
    f = d / "web-0_cali1.pcap"
    assert f.exists() and stat.S_IMODE(f.stat().st_mode) == 0o644
    assert w.file_names == ["web-0_cali1.pcap"]
    w.close()
    assert read_all(f) == [(TS0, b"x" * 60, 60)]


def test_flush_every_n_packets_or_interval(tmp_path: Path) -> None:
    w = make(tmp_path, flush_packets=3, flush_interval_ms=500)
    f = tmp_path / "ns" / "cap" / "web-0_cali1.pcap"
    w.write(TS0, b"a", 1, T0)
    w.write(TS0, b"b", 1, T0 + 0.1)
    assert read_all(f) == []  # header only so far
    w.write(TS0, b"c", 1, T0 + 0.2)
    assert len(read_all(f)) == 3
    w.write(TS0, b"d", 1, T0 + 0.3)
    w.tick(T0 + 0.7)
    assert len(read_all(f)) == 3  # interval counts from the first buffered packet
    w.tick(T0 + 0.8)
    assert len(read_all(f)) == 4
    w.write(TS0, b"e", 1, T0 + 0.9)
    w.write(TS0, b"f", 1, T0 + 1.5)  # the write itself notices the interval passed
    assert len(read_all(f)) == 6
    w.close()


def test_snaplen_cuts_data_and_keeps_wire_length(tmp_path: Path) -> None:
    w = RotatingWriter(tmp_path, "ns", "cap", "p", "eth0", snaplen=10, linktype=113)
    w.write(TS0, bytes(range(50)), 50, T0)
    w.write(TS0 + 1000, b"abc", 1, T0)  # wire length raised to the captured length
    w.close()
    with PcapReader(w.active_path) as r:
        assert (r.linktype, r.snaplen) == (113, 10)
        assert list(r) == [(TS0, bytes(range(10)), 50), (TS0 + 1000, b"abc", 3)]


# -- rotation -------------------------------------------------------------------------


def test_size_rotation_before_a_write_that_would_pass_the_limit(tmp_path: Path) -> None:
    # Header 24 + 3 records of 16+100 = 372; a fourth would pass 400.
    w = make(tmp_path, max_size_bytes=400, max_files=10)
    for i in range(7):
        w.write(TS0 + i, bytes(100), 100, T0 + i)
    assert w.files_rotated == 2
    names = w.file_names
    assert names[-1] == "web-0_cali1.pcap"
    assert [parse_file_name(n).rotated_us for n in names[:-1]] == [  # type: ignore[union-attr]
        int((T0 + 3) * 1e6),
        int((T0 + 6) * 1e6),
    ]
    w.close()
    d = tmp_path / "ns" / "cap"
    sizes = [(d / n).stat().st_size for n in names]
    assert sizes == [372, 372, 140]
    assert [len(read_all(d / n)) for n in names] == [3, 3, 1]


def test_a_single_huge_packet_still_goes_in(tmp_path: Path) -> None:
    w = make(tmp_path, max_size_bytes=100, max_files=10)
    w.write(TS0, bytes(500), 500, T0)  # empty file: written although past the limit
    w.write(TS0, bytes(500), 500, T0)  # rotates first
    w.close()
    assert w.files_rotated == 1 and w.packets_written == 2


def test_time_rotation_needs_packets_and_counts_from_file_creation(tmp_path: Path) -> None:
    w = make(tmp_path, rotation_seconds=60, max_files=10)
    assert w.tick(T0) is None
    assert w.tick(T0 + 100) is None  # nothing written: no rotation, no file
    assert w.file_names == []
    w.write(TS0, b"a", 1, T0 + 101)  # creates the file: its period starts now
    assert w.tick(T0 + 160) is None
    assert w.should_rotate(0, T0 + 161) is RotationReason.TIME  # pure: nothing happens
    assert w.files_rotated == 0
    assert w.tick(T0 + 161) is RotationReason.TIME
    assert w.file_names == [f"web-0_cali1-{int((T0 + 161) * 1e6)}.pcap"]
    assert w.tick(T0 + 500) is None  # no new packets, no active file: nothing to rotate
    w.write(TS0, b"b", 1, T0 + 510)
    w.write(TS0, b"c", 1, T0 + 569)
    assert w.files_rotated == 1
    w.write(TS0, b"d", 1, T0 + 570)  # the write itself rotates first once the period is over
    assert w.files_rotated == 2
    w.close()
    assert [len(read_all(w.directory / n)) for n in w.file_names] == [1, 2, 1]


def test_datetime_now_and_name_collision(tmp_path: Path) -> None:
    now = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
    w = make(tmp_path, max_size_bytes=60, max_files=10)
    for _ in range(3):
        w.write(TS0, bytes(30), 30, now)
    us = int(now.timestamp()) * 1_000_000 + 123456
    # Two rotations in one microsecond keep both files.
    assert w.file_names == [
        f"web-0_cali1-{us}.pcap",
        f"web-0_cali1-{us + 1}.pcap",
        "web-0_cali1.pcap",
    ]
    naive = dt.datetime(2024, 5, 1, 12, 0, 0, 123456)
    assert w.should_rotate(0, naive) is None
    w.close()


def test_retention_per_interface(tmp_path: Path) -> None:
    a = make(tmp_path, "a", "cali1", max_size_bytes=200, max_files=2)
    b = make(tmp_path, "b", "cali2", max_size_bytes=200, max_files=2)
    for i in range(30):
        a.write(TS0 + i, bytes(50), 50, T0 + i)
        b.write(TS0 + i, bytes(50), 50, T0 + i)
    for w in (a, b):
        names = w.file_names
        assert len(names) == 3  # max_files rotated + the active one
        kept = sum(len(read_all(w.directory / n)) for n in names)
        assert kept + w.packets_deleted == w.packets_written == 30
        assert w.files_deleted == w.files_rotated - 2
    a.close()
    b.close()


def test_retention_per_directory_is_felix_behaviour(tmp_path: Path) -> None:
    kw = {"max_size_bytes": 200, "max_files": 2, "retention": "directory"}
    a = make(tmp_path, "a", "cali1", **kw)
    b = make(tmp_path, "b", "cali2", **kw)
    for i in range(30):
        a.write(TS0 + i, bytes(50), 50, T0 + i)
        b.write(TS0 + i, bytes(50), 50, T0 + i)
    d = tmp_path / "ns" / "cap"
    names = sorted(os.listdir(d))
    rotated = [n for n in names if parse_file_name(n).rotated_us is not None]  # type: ignore[union-attr]
    assert len(rotated) == 2 and "a_cali1.pcap" in names and "b_cali2.pcap" in names
    kept = sum(len(read_all(d / n)) for n in names)
    assert kept + a.packets_deleted + b.packets_deleted == 60
    a.close()
    b.close()


@pytest.mark.parametrize("retention", ["interface", "directory"])
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_rotation_stress(tmp_path: Path, retention: str, fmt: str) -> None:
    rnd = random.Random(f"{retention}{fmt}")
    settings = CaptureSettings(
        max_size_bytes=5000,
        rotation_seconds=7,
        max_files=3,
        flush_packets=17,
        retention=retention,
        format=fmt,  # type: ignore[arg-type]
    )
    writers = [
        RotatingWriter(tmp_path, "ns", "cap", f"pod-{i}", f"cali{i}", settings=settings)
        for i in range(3)
    ]
    sent: dict[str, list[tuple[int, bytes, int]]] = {w.base: [] for w in writers}
    now = T0
    ts = TS0
    for _ in range(4000):
        w = rnd.choice(writers)
        data = rnd.randbytes(rnd.randint(1, 900))
        ts += rnd.randint(1, 1000) * 1000  # whole microseconds: exact in every format
        now += rnd.random() * 0.05
        w.write(ts, data, len(data) + rnd.randint(0, 3), now)
        sent[w.base].append((ts, data, max(len(data), 0)))
        if rnd.random() < 0.01:
            now += rnd.random() * 10
            rnd.choice(writers).tick(now)
    for w in writers:
        w.close()
    d = tmp_path / "ns" / "cap"
    names = sorted(os.listdir(d))
    rotated = [n for n in names if parse_file_name(n).rotated_us is not None]  # type: ignore[union-attr]
    total_written = sum(w.packets_written for w in writers)
    total_deleted = sum(w.packets_deleted for w in writers)
    kept = {n: read_all(d / n) for n in names}
    assert total_written == 4000
    assert sum(map(len, kept.values())) + total_deleted == total_written
    assert sum(w.files_rotated for w in writers) > 20
    if retention == "directory":
        assert len(rotated) <= settings.max_files
    for w in writers:
        mine = w.file_names
        assert mine[-1] == w.active_name
        if retention == "interface":
            assert len(mine) - 1 <= settings.max_files
        # Oldest first by rotation time in the name; files hold consecutive, ordered packets
        # that end with the last one sent.
        got = [p for n in mine for p in kept[n]]
        assert [(t, dd) for t, dd, _ in got] == [(t, dd) for t, dd, _ in sent[w.base][-len(got) :]]
        # No file past the limit (no single record is bigger than the limit here).
        assert all((d / n).stat().st_size <= settings.max_size_bytes for n in mine)


def test_peers_read_rotated_files(tmp_path: Path, tool: Callable[[str], str]) -> None:
    tcpdump, capinfos = tool("tcpdump"), tool("capinfos")
    w = make(tmp_path, max_size_bytes=3000, max_files=5)
    for i in range(60):
        w.write(TS0 + i * 1000, bytes(12) + b"\x88\xb5" + bytes(80), 94, T0)
    w.close()
    for name in w.file_names:
        path = w.directory / name
        got, err, code = tcpdump_packets(tcpdump, path, nano=False)
        assert code == 0, err
        assert len(got) == capinfos_count(capinfos, path) == len(read_all(path)) > 0


def test_pcapng_interface_description(tmp_path: Path, tool: Callable[[str], str]) -> None:
    tshark = tool("tshark")
    w = RotatingWriter(
        tmp_path,
        "prod",
        "cap1",
        "web-0",
        "cali9",
        settings=CaptureSettings(format="pcapng"),
        node="node-a",
    )
    w.write(TS0, bytes(60), 60, T0)
    w.close()
    with PcapReader(w.active_path) as r:
        assert r.interfaces[0].name == "cali9"
        desc = r.interfaces[0].description
    assert desc == "endpoint=prod/web-0 interface=cali9 node=node-a capture=prod/cap1"
    out = subprocess.run(
        [
            tshark,
            "-r",
            str(w.active_path),
            "-T",
            "fields",
            "-e",
            "frame.interface_name",
            "-e",
            "frame.interface_description",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"cali9\t{desc}"


# -- errors and recovery --------------------------------------------------------------


def test_write_error_rolls_back_and_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: Callable[[str], str]
) -> None:
    w = make(tmp_path, flush_packets=2)
    for i in range(4):
        w.write(TS0 + i, bytes(12) + b"\x88\xb5" + bytes(50), 64, T0)
    real = _writer._write_all

    def disk_full(fd: int, data: bytes) -> None:
        real(fd, data[: len(data) // 2 + 3])  # a partial write, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_writer, "_write_all", disk_full)
    w.write(TS0 + 10, bytes(64), 64, T0)
    with pytest.raises(PcapError, match="No space left") as info:
        w.write(TS0 + 11, bytes(64), 64, T0)
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.path == str(w.active_path)
    assert (w.packets_written, w.packets_lost) == (4, 2)
    with pytest.raises(PcapError, match="failed earlier"):
        w.write(TS0, b"x", 1, T0)
    w.close()
    # The file holds exactly the flushed packets, no half record.
    assert len(read_all(Path(w.active_path))) == 4
    got, err, code = tcpdump_packets(tool("tcpdump"), Path(w.active_path), nano=False)
    assert code == 0 and len(got) == 4, err


def test_unwritable_directory(tmp_path: Path) -> None:
    (tmp_path / "ns").mkdir()
    (tmp_path / "ns" / "cap").write_text("a file where the directory should be")
    with pytest.raises(PcapError, match="symlink or not a directory"):
        make(tmp_path)


def test_leftover_active_file_is_repaired_and_moved_aside(tmp_path: Path) -> None:
    w = make(tmp_path, max_files=5)
    for i in range(5):
        w.write(TS0 + i, bytes(40), 40, T0)
    w.close()
    f = Path(w.active_path)
    f.write_bytes(f.read_bytes()[:-10])  # a torn last record, as after a crash mid-write
    w2 = make(tmp_path, max_files=5)
    w2.write(TS0 + 100, bytes(40), 40, T0 + 50)
    w2.close()
    names = w2.file_names
    assert names == [f"web-0_cali1-{int((T0 + 50) * 1e6)}.pcap", "web-0_cali1.pcap"]
    assert len(read_all(w2.directory / names[0])) == 4 == w2.packets_adopted
    # An empty leftover (header only) is simply replaced.
    f.write_bytes(f.read_bytes()[:24])
    w3 = make(tmp_path, max_files=5)
    w3.write(TS0, bytes(40), 40, T0 + 60)
    w3.close()
    assert w3.packets_adopted == 0 and len(w3.file_names) == 2


def test_closed_writer(tmp_path: Path) -> None:
    with make(tmp_path) as w:
        w.write(TS0, b"a", 1, T0)
    w.close()  # idempotent
    with pytest.raises(PcapError, match="closed"):
        w.write(TS0, b"a", 1, T0)
    assert w.tick(T0) is None
    assert w.file_names == ["web-0_cali1.pcap"]


def test_timestamp_out_of_range(tmp_path: Path) -> None:
    w = make(tmp_path)
    with pytest.raises(ValueError, match="does not fit"):
        w.write(-5, b"a", 1, T0)
    w.close()


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise here")
def test_writeback_is_asked_for_in_steps_and_restarts_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int, int]] = []
    real = os.posix_fadvise

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        calls.append((offset, length, advice))
        real(fd, offset, length, advice)

    monkeypatch.setattr(_writer, "_WRITEBACK_BYTES", 10_000)
    monkeypatch.setattr(os, "posix_fadvise", spy)
    w = make(tmp_path, max_size_bytes=50_000, max_files=10, flush_packets=1)
    frame = bytes(range(256)) * 4  # records of 16 + 1024 bytes
    for i in range(70):
        w.write(TS0 + i, frame, len(frame), T0)
    w.close()
    assert w.files_rotated == 1
    assert {a for _o, _n, a in calls} == {os.POSIX_FADV_DONTNEED}
    # Each call reaches at least a step past the last and starts where the call before
    # the last ended (that step is on disk by now: dropped); a new file starts at 0.
    starts = [i for i, (o, _n, _a) in enumerate(calls) if o == 0]
    assert len(starts) == 4  # two calls from 0 per file
    for first in (starts[0], starts[2]):
        last = starts[2] if first == starts[0] else len(calls)
        ends = [0, 0] + [o + n for o, n, _a in calls[first:last]]
        for j, (o, _n, _a) in enumerate(calls[first:last]):
            assert o == ends[j] and ends[j + 2] - ends[j + 1] >= 10_000
    d = tmp_path / "ns" / "cap"
    got = [p for n in w.file_names for p in read_all(d / n)]
    assert [p[1] for p in got] == [frame] * 70  # the hint drops no data


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise here")
def test_writeback_drops_written_steps_from_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fincore = require_tool("fincore")
    step = 1 << 20
    monkeypatch.setattr(_writer, "_WRITEBACK_BYTES", step)
    w = make(tmp_path, max_size_bytes=1 << 30, max_files=2, flush_packets=1)
    frame = os.urandom(65_000)
    hinted = 0
    for i in range(160):  # 10 MB
        w.write(TS0 + i, frame, len(frame), T0)
        if w._hinted != hinted and w._fd is not None:
            # The step just hinted was dirty then (not droppable yet); make it clean, as
            # time would, so only the next hint can drop it.
            hinted = w._hinted
            os.fdatasync(w._fd)
    out = subprocess.run(
        [fincore, "--bytes", "--noheadings", "--output", "RES,SIZE", str(w.active_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    w.close()
    resident, size = int(out[0]), int(out[1])
    assert size > 10_000_000
    assert resident <= 4 * step  # the last steps at most; the rest was dropped
    d = tmp_path / "ns" / "cap"
    assert [p[1] for p in read_all(d / "web-0_cali1.pcap")] == [frame] * 160


def test_damaged_leftover_is_kept_renamed_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An old active file that cannot be repaired is moved aside, never deleted (issue 16)."""
    directory = tmp_path / "ns" / "cap"
    directory.mkdir(parents=True)
    junk = b"this is not a capture file" * 10
    (directory / "pod_cali1.pcap").write_bytes(junk)
    with caplog.at_level("WARNING"), RotatingWriter(tmp_path, "ns", "cap", "pod", "cali1") as w:
        w.write(1_700_000_000 * 10**9, b"\x00" * 60, 60, 1_700_000_000.0)
    (aside,) = directory.glob("*.damaged")
    assert aside.read_bytes() == junk
    assert aside.name in caplog.text and "damaged" in caplog.text
    assert w.file_names == ["pod_cali1.pcap"]  # listings and retention skip it
