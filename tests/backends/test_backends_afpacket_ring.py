"""The TPACKET_V3 block walker of the raw lane, on blocks laid out as the kernel lays them out.

No socket: a block is built in an anonymous mmap (block header, then frames of a 48-byte
tpacket3_hdr, sockaddr_ll space and the packet at ``tp_mac``, each frame 16-byte aligned and
``tp_next_offset`` naming the next, 0 on the last) and ``_take_raw`` must return exactly the
classic pcap records ``encode_pcap_record`` (packetcapture.pcap._format) makes of the same packets,
whether it copies a run of alike frames block-wise or frames one by one.
"""

from __future__ import annotations

import mmap
import struct
from array import array
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packetcapture.backends import afpacket
from packetcapture.pcap._format import encode_pcap_record

BLOCK = 1 << 16
FIRST = 48  # offset_to_first_pkt: after the block descriptor
TP3 = struct.Struct("<IIIIIIHHIIH")
VLAN = 1 << 4
T0 = 1_700_000_000 * 10**9

# (payload, wire extra bytes, VLAN tag to put back, tp_mac, nanoseconds after T0)
Frame = tuple[bytes, int, bool, int, int]


def build(frames: list[Frame]) -> tuple[mmap.mmap, int]:
    """Lay ``frames`` out in a block; return it and how many fitted."""
    mm = mmap.mmap(-1, BLOCK)
    off, last, count = FIRST, None, 0
    for i, (data, extra, vlan, mac, after) in enumerate(frames):
        nxt = (mac + len(data) + 15) // 16 * 16
        if off + nxt > BLOCK:
            break
        ts = T0 + after
        # TP_STATUS_USER, some frames with CSUMNOTREADY: status differs between alike frames
        status = 1 | (8 if i % 3 else 0) | (VLAN if vlan else 0)
        sec, nsec = divmod(ts, 10**9)
        wire = len(data) + extra
        TP3.pack_into(mm, off, nxt, sec, nsec, len(data), wire, status, mac, mac + 14, 0, 7, 0)
        mm[off + mac : off + mac + len(data)] = data
        last, off, count = off, off + nxt, count + 1
    if last is not None:
        struct.pack_into("<I", mm, last, 0)  # the kernel zeroes the last frame's next offset
    struct.pack_into("<II", mm, 12, count, FIRST)
    return mm, count


def expected(frames: list[Frame], nanosecond: bool, cut: int) -> tuple[bytes, int]:
    """The records up to the first odd frame (VLAN tag, longer than ``cut``)."""
    out = []
    for data, extra, vlan, _mac, ts in frames:
        if vlan or len(data) > cut:
            break
        out.append(encode_pcap_record(T0 + ts, data, len(data) + extra, nanosecond=nanosecond))
    return b"".join(out), len(out)


def walk(
    mm: mmap.mmap, take: int, nanosecond: bool, cut: int, chunk: int
) -> tuple[bytes, int, int]:
    """Take ``take`` frames in calls of at most ``chunk`` frames, as reads of a block do."""
    parts: list[bytes] = []
    off, taken = FIRST, 0
    while taken < take:
        want = min(chunk, take - taken)
        off, n = afpacket._take_raw(mm, off, want, parts, nanosecond=nanosecond, cut=cut, end=BLOCK)
        taken += n
        if n < want:
            break
    return b"".join(parts), taken, off


def offset_of(frames: list[Frame], n: int) -> int:
    return FIRST + sum((mac + len(d) + 15) // 16 * 16 for d, _e, _v, mac, _t in frames[:n])


def check(frames: list[Frame], nanosecond: bool, cut: int, chunk: int) -> None:
    mm, count = build(frames)
    frames = frames[:count]
    records, taken, off = walk(mm, count, nanosecond, cut, chunk)
    want, n = expected(frames, nanosecond, cut)
    assert taken == n
    assert records == want
    if n < count:
        assert off == offset_of(frames, n)  # an odd frame is left where read() finds it


def uniform(n: int, size: int, step_ns: int = 10_123) -> list[Frame]:
    return [(bytes([i % 251]) * size, i % 3, False, 82, i * step_ns + i % 7) for i in range(n)]


def test_a_long_run_of_alike_frames_is_copied_block_wise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one_by_one: list[int] = []
    each = afpacket._take_each

    def counting(mm: mmap.mmap, off: int, take: int, *rest: Any, **kw: Any) -> tuple[int, int]:
        off, n = each(mm, off, take, *rest, **kw)
        one_by_one.append(n)
        return off, n

    monkeypatch.setattr(afpacket, "_take_each", counting)
    for nanosecond in (False, True):
        check(uniform(300, 60), nanosecond, 262144, 4096)
    # only the last frame (next offset 0, so not alike) is copied by itself, once per walk
    assert one_by_one == [1, 1]


def test_timestamps_on_second_and_microsecond_borders() -> None:
    stamps = [0, 999, 1000, 999_999, 999_999_999, 1_000_000_000, 1_999_999_999, 2_000_000_001]
    frames = [(b"x" * 40, 0, False, 82, ts) for ts in sorted(stamps * 4)]
    for nanosecond in (False, True):
        check(frames, nanosecond, 262144, 4096)


def test_odd_frames_end_the_walk_where_they_are() -> None:
    frames = uniform(100, 60)
    tagged = [*frames[:50], (b"v" * 60, 0, True, 82, 999_000), *frames[51:]]
    check(tagged, False, 262144, 4096)
    long_one = [*frames[:70], (b"L" * 120, 0, False, 82, 999_000), *frames[71:]]
    check(long_one, True, 100, 4096)


def test_a_frame_with_another_mac_offset_breaks_the_run() -> None:
    # 58 bytes at tp_mac 82 or 86 both take 144 bytes: only tp_mac tells them apart
    frames = [(bytes([i]) * 58, 0, False, 86 if i in (20, 21) else 82, i * 1000) for i in range(60)]
    for nanosecond in (False, True):
        check(frames, nanosecond, 262144, 4096)


@st.composite
def traffic(draw: st.DrawFn) -> list[Frame]:
    """Runs of equal-sized frames and single frames, some with a VLAN tag or another MAC."""
    frames: list[Frame] = []
    for _ in range(draw(st.integers(1, 12))):
        size = draw(st.integers(0, 160))
        mac = draw(st.sampled_from([82, 82, 86, 98]))  # 82 and 86: often the same stride
        for _ in range(draw(st.sampled_from([1, 2, 15, 16, 17, 40, 70]))):
            vlan = draw(st.integers(0, 60)) == 0
            frames.append((bytes([size % 256]) * size, draw(st.integers(0, 3)), vlan, mac, 0))
    # time goes forward
    n = len(frames)
    stamps = sorted(draw(st.lists(st.integers(0, 3 * 10**9), min_size=n, max_size=n)))
    return [(d, e, v, m, t) for (d, e, v, m, _), t in zip(frames, stamps, strict=True)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 10**9 - 1), max_size=300),
    st.integers(1, 5),
    st.sampled_from([0, 4, 8]),
    st.booleans(),
)
def test_nanoseconds_to_microseconds_in_place(
    values: list[int], every: int, start: int, in_mmap: bool
) -> None:
    # 32-bit words, a value in every `every`-th from byte `start` on; the rest are filler.
    column = array("I", [0xFFFFFFFF] * (2 + every * len(values)))
    touched = [start // 4 + every * i for i in range(len(values))]
    for i, value in zip(touched, values, strict=True):
        column[i] = value
    buf: mmap.mmap | bytearray = bytearray(column.tobytes())
    if in_mmap:  # as in the ring
        raw = bytes(buf)
        buf = mmap.mmap(-1, len(raw))
        buf[:] = raw
    afpacket._to_microseconds(buf, start, len(values), 4 * every)
    after = array("I", bytes(buf))
    assert [after[i] for i in touched] == [v // 1000 for v in values]
    # the words between are left alone
    assert all(after[i] == 0xFFFFFFFF for i in set(range(len(after))) - set(touched))


@settings(max_examples=150, deadline=None)
@given(
    frames=traffic(),
    nanosecond=st.booleans(),
    cut=st.sampled_from([262144, 100]),
    chunk=st.sampled_from([4096, 7, 33]),
)
def test_block_walk_matches_the_pcap_encoder(
    frames: list[Frame], nanosecond: bool, cut: int, chunk: int
) -> None:
    check(frames, nanosecond, cut, chunk)
