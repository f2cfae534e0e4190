"""Encoding and reading pcap/pcapng: round trips, dpkt, tcpdump, tshark, capinfos, damage."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pcap_peers import (
    capinfos_count,
    epoch_string_to_ns,
    random_packets,
    tcpdump_packets,
    truncate_ts,
    tshark_fields,
)

from packetcapture.errors import PcapError
from packetcapture.pcap import (
    PcapReader,
    PcapRecord,
    PcapTruncatedError,
    PcapWriter,
    count_packets,
)
from packetcapture.pcap._format import (
    encode_pcap_header,
    encode_pcap_record,
    encode_pcapng_epb,
    encode_pcapng_idb,
    encode_pcapng_shb,
    split_timestamp,
)

FORMATS = [("pcap", False), ("pcap", True), ("pcapng", False), ("pcapng", True)]


def write_file(path: Path, packets: list[tuple[int, bytes, int]], fmt: str, nano: bool) -> None:
    with path.open("wb") as f:
        w = PcapWriter(f, format=fmt, nanosecond=nano, snaplen=65535)
        for ts, data, wire in packets:
            w.write(ts, data, wire)


def test_encoder_is_pure_and_matches_the_layout() -> None:
    head = encode_pcap_header(1, 65536)
    assert head == struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65536, 1)
    nano_head = encode_pcap_header(113, 100, nanosecond=True)
    assert struct.unpack("<I", nano_head[:4])[0] == 0xA1B23C4D
    rec = encode_pcap_record(1_500_000_000_999_999_999, b"abc", 10)
    assert rec == struct.pack("<IIII", 1_500_000_000, 999_999, 3, 10) + b"abc"
    assert split_timestamp(5_000_000_123, True) == (5, 123)
    with pytest.raises(ValueError, match="does not fit"):
        split_timestamp(-1, False)
    with pytest.raises(ValueError, match="does not fit"):
        split_timestamp((1 << 32) * 10**9, False)
    # Wire length is never below the captured length.
    assert struct.unpack("<IIII", encode_pcap_record(0, b"abcd", 1)[:16])[3] == 4


@pytest.mark.parametrize(("fmt", "nano"), FORMATS)
def test_dpkt_reads_what_we_write(tmp_path: Path, fmt: str, nano: bool) -> None:
    packets = random_packets(200, seed=2)
    path = tmp_path / "x.pcap"
    write_file(path, packets, fmt, nano)
    with path.open("rb") as f:
        reader = dpkt.pcapng.Reader(f) if fmt == "pcapng" else dpkt.pcap.Reader(f)
        got = list(reader)
    assert [d for _, d in got] == [d for _, d, _ in packets]
    # dpkt gives Decimal seconds for nanosecond files (exact), float otherwise.
    for (ts, _), (want, _, _) in zip(got, packets, strict=True):
        if isinstance(ts, Decimal):
            assert ts == Decimal(want) / Decimal(10**9) or fmt == "pcapng"
        assert abs(float(ts) - want / 1e9) < 2e-6


@pytest.mark.parametrize(("fmt", "nano"), FORMATS)
def test_our_reader_reads_dpkt_files(tmp_path: Path, fmt: str, nano: bool) -> None:
    packets = random_packets(50, seed=3)
    path = tmp_path / "d.pcap"
    with path.open("wb") as f:
        if fmt == "pcap":
            w = dpkt.pcap.Writer(f, snaplen=65535, nano=nano)
            for ts, data, _ in packets:
                w.writepkt(data, ts=ts / 1e9)
        else:
            w = dpkt.pcapng.Writer(f, snaplen=65535)
            for ts, data, _ in packets:
                w.writepkt(data, ts=ts / 1e9)
    with PcapReader(path) as r:
        got = list(r)
    assert [d for _, d, _ in got] == [d for _, d, _ in packets]
    assert [w for _, _, w in got] == [len(d) for _, d, _ in packets]
    for (ts, _, _), (want, _, _) in zip(got, packets, strict=True):
        assert abs(ts - want) < 2000  # float seconds in dpkt's writer


@pytest.mark.parametrize(("fmt", "nano"), FORMATS)
def test_peers_read_back_exactly(
    tmp_path: Path, tool: Callable[[str], str], fmt: str, nano: bool
) -> None:
    tcpdump, tshark, capinfos = tool("tcpdump"), tool("tshark"), tool("capinfos")
    packets = random_packets(150, seed=4)
    path = tmp_path / "x.pcap"
    write_file(path, packets, fmt, nano)
    stored = truncate_ts(packets, nano)
    # Our own reader: exact.
    with PcapReader(path) as r:
        assert list(r) == stored
    # tcpdump: timestamps in the file's unit, bytes, wire length, no error.
    got, err, code = tcpdump_packets(tcpdump, path, nano=nano)
    assert code == 0, err
    unit = 1 if nano else 1000
    assert [(ts // unit, d, w) for ts, d, w in stored] == got
    # tshark: epoch times, wire and captured lengths.
    fields = tshark_fields(tshark, path)
    assert [(epoch_string_to_ns(t), w, c) for t, w, c in fields] == [
        (ts, w, len(d)) for ts, d, w in stored
    ]
    assert capinfos_count(capinfos, path) == len(packets)


def test_reader_attributes_and_records(tmp_path: Path) -> None:
    path = tmp_path / "ng.pcapng"
    with path.open("wb") as f:
        w = PcapWriter(f, format="pcapng", linktype=1, snaplen=1000, name="cali1", description="d1")
        second = w.add_interface(101, 2000, name="raw0")
        w.write(1_000, b"eth", 10)
        w.write(2_000, b"raw", interface_id=second)
    with PcapReader(path) as r:
        assert (r.format, r.linktype, r.snaplen) == ("pcapng", 1, 1000)
        recs = list(r.records())
        assert recs == [
            PcapRecord(1_000, b"eth", 10, 0, 1),
            PcapRecord(2_000, b"raw", 3, 1, 101),
        ]
        assert [(i.name, i.description, i.linktype) for i in r.interfaces] == [
            ("cali1", "d1", 1),
            ("raw0", None, 101),
        ]


def _be_pcap(nano: bool) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(">IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    out += struct.pack(">IIII", 100, 7, 3, 60) + b"abc"
    return out


@pytest.mark.parametrize("nano", [False, True])
def test_big_endian_classic(nano: bool) -> None:
    r = PcapReader(io.BytesIO(_be_pcap(nano)))
    assert r.byte_order == ">" and r.nanosecond is nano
    assert list(r) == [(100 * 10**9 + (7 if nano else 7000), b"abc", 60)]


def _be_block(btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack(">II", btype, total) + body + struct.pack(">I", total)


def test_big_endian_pcapng_with_tsresol_offset_spb_and_unknown_blocks() -> None:
    shb = _be_block(0x0A0D0D0A, struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1))
    # if_tsresol = 2^-10 (binary), if_tsoffset = 5 s.
    opts = struct.pack(">HH", 9, 1) + b"\x8a\x00\x00\x00"
    opts += struct.pack(">HHq", 14, 8, 5) + struct.pack(">HH", 0, 0)
    idb = _be_block(1, struct.pack(">HHI", 1, 0, 4) + opts)
    epb = _be_block(6, struct.pack(">IIIII", 0, 0, 2048, 3, 3) + b"xyz\x00")
    unknown = _be_block(0x0BAD, b"\x00" * 8)
    spb = _be_block(3, struct.pack(">I", 6) + b"abcdef\x00\x00")
    r = PcapReader(io.BytesIO(shb + idb + unknown + epb + spb))
    assert r.byte_order == ">" and r.snaplen == 4
    recs = list(r.records())
    # 2048 ticks of 1/1024 s = 2 s, plus the 5 s offset.
    assert recs[0] == PcapRecord(7 * 10**9, b"xyz", 3, 0, 1)
    # A simple packet block is cut to the interface's snaplen and has no timestamp.
    assert recs[1] == PcapRecord(0, b"abcd", 6, 0, 1)


def test_new_section_resets_interfaces() -> None:
    first = encode_pcapng_shb() + encode_pcapng_idb(1, 100) + encode_pcapng_epb(0, 1000, b"a")
    second = (
        encode_pcapng_shb()
        + encode_pcapng_idb(101, 100, nanosecond=True)
        + encode_pcapng_epb(0, 5, b"b", nanosecond=True)
    )
    recs = list(PcapReader(io.BytesIO(first + second)).records())
    assert recs == [PcapRecord(1000, b"a", 1, 0, 1), PcapRecord(5, b"b", 1, 0, 101)]


def _classic(n: int) -> bytes:
    buf = io.BytesIO()
    w = PcapWriter(buf)
    for i in range(n):
        w.write(i * 1000, bytes([i]) * 20, 20)
    return buf.getvalue()


@pytest.mark.parametrize("cut", [1, 8, 15, 16, 17, 35])
def test_truncated_classic_yields_good_packets_then_raises(cut: int) -> None:
    data = _classic(5)
    last = 24 + 4 * 36  # offset of the fifth record
    damaged = data[: last + cut] if cut < 36 else data
    got = []
    with pytest.raises(PcapTruncatedError) as info:
        for pkt in PcapReader(io.BytesIO(damaged)):
            got.append(pkt)
    assert len(got) == 4
    assert info.value.offset == last
    assert f"at byte {last}" in str(info.value)


def test_corrupt_caplen_reports_offset() -> None:
    data = bytearray(_classic(3))
    struct.pack_into("<I", data, 24 + 36 + 8, 10_000_000)
    got = []
    with pytest.raises(PcapError, match="exceeds") as info:
        got.extend(PcapReader(io.BytesIO(bytes(data))))
    assert len(got) == 1 and info.value.offset == 60
    assert not isinstance(info.value, PcapTruncatedError)


def test_corrupt_pcapng_blocks() -> None:
    good = encode_pcapng_shb() + encode_pcapng_idb(1, 100) + encode_pcapng_epb(0, 1, b"a")
    bad_iface = good + encode_pcapng_epb(7, 2, b"b")
    got = []
    with pytest.raises(PcapError, match="unknown interface 7") as info:
        got.extend(PcapReader(io.BytesIO(bad_iface)))
    assert len(got) == 1 and info.value.offset == len(good)
    bad_trailer = bytearray(good + encode_pcapng_epb(0, 2, b"b"))
    bad_trailer[-1] ^= 0xFF
    with pytest.raises(PcapError, match="trailing length"):
        list(PcapReader(io.BytesIO(bytes(bad_trailer))))
    with pytest.raises(PcapTruncatedError) as t:
        list(PcapReader(io.BytesIO(good + encode_pcapng_epb(0, 2, b"b")[:-3])))
    assert t.value.offset == len(good)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty"),
        (b"\xd4\xc3", "truncated"),
        (b"GIF89a....", "not a pcap"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated"),
    ],
)
def test_bad_headers(data: bytes, match: str) -> None:
    with pytest.raises(PcapError, match=match) as info:
        PcapReader(io.BytesIO(data))
    assert info.value.offset is not None


def test_missing_file_and_count(tmp_path: Path) -> None:
    with pytest.raises(PcapError, match="cannot open") as info:
        PcapReader(tmp_path / "nope.pcap")
    assert isinstance(info.value.__cause__, FileNotFoundError)
    p = tmp_path / "x.pcap"
    p.write_bytes(_classic(7)[:-5])
    assert count_packets(p) == 6
    p.write_bytes(b"junk")
    assert count_packets(p) == 0


def test_records_cross_the_read_buffer(tmp_path: Path) -> None:
    # Big packets make records straddle the reader's 1 MiB chunks many times.
    packets = random_packets(3000, seed=9, max_len=9000)
    for fmt in ("pcap", "pcapng"):
        path = tmp_path / f"big.{fmt}"
        write_file(path, packets, fmt, True)
        with PcapReader(path) as r:
            got = list(r)
        assert got == [(t, d[:65535], w) for t, d, w in packets]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, (1 << 32) * 10**9 - 1), st.binary(max_size=300), st.integers(0, 70000)
        ),
        max_size=20,
    ),
    st.sampled_from(FORMATS),
)
def test_round_trip_property(
    packets: list[tuple[int, bytes, int]], fmt_nano: tuple[str, bool]
) -> None:
    fmt, nano = fmt_nano
    buf = io.BytesIO()
    w = PcapWriter(buf, format=fmt, nanosecond=nano)
    for ts, data, wire in packets:
        w.write(ts, data, wire)
    got = list(PcapReader(io.BytesIO(buf.getvalue())))
    want = [(ts if nano else ts // 1000 * 1000, d, max(wl, len(d))) for ts, d, wl in packets]
    assert got == want
