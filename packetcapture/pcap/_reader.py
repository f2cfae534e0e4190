"""A fast streaming reader for classic pcap and pcapng files.

The reader pulls the file in large chunks and decodes records with
``struct.Struct.unpack_from`` straight from the buffer, so iterating costs well under a
microsecond per packet. Corrupt or truncated input raises :class:`PcapError` with the byte
offset of the bad record, but only after every good record before it has been yielded.
"""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import IO, Any, NamedTuple

from packetcapture.errors import PcapError
from packetcapture.pcap._format import (
    BT_EPB,
    BT_IDB,
    BT_ISB,
    BT_PB,
    BT_SHB,
    BT_SPB,
    BYTE_ORDER_MAGIC,
    LINKTYPE_ETHERNET,
    MAGIC_MICRO,
    MAGIC_NANO,
    PCAP_HEADER_LEN,
)

__all__ = [
    "InterfaceInfo",
    "PcapReader",
    "PcapRecord",
    "PcapTruncatedError",
    "count_packets",
]

_CHUNK = 1 << 20
# libpcap's largest snap length (MAXIMUM_SNAPLEN): a classic pcap record longer than this
# is refused by libpcap, tcpdump and tshark ("invalid packet capture length"), so by us too.
_MAX_SNAPLEN = 262144
# A pcapng block larger than this is treated as corrupt rather than read into memory.
_MAX_BLOCK = 1 << 28
_NS = 1_000_000_000


class PcapTruncatedError(PcapError):
    """The file ends in the middle of a header, record or block (a torn tail).

    ``offset`` is where the incomplete part starts: truncating the file there leaves a
    valid file holding every complete record.
    """


class PcapRecord(NamedTuple):
    """One packet: timestamp (ns since the epoch), captured bytes, original length.

    ``interface_id`` indexes :attr:`PcapReader.interfaces` (always 0 for classic pcap) and
    ``linktype`` is that interface's link type.
    """

    timestamp_ns: int
    data: bytes
    wire_len: int
    interface_id: int
    linktype: int


class InterfaceInfo(NamedTuple):
    """An interface of a capture file (a pcapng IDB, or the classic pcap header)."""

    linktype: int
    snaplen: int
    name: str | None = None
    description: str | None = None
    #: Timestamp ticks per second (1e6 for microseconds, 1e9 for nanoseconds).
    ticks_per_second: int = 1_000_000
    #: ``if_tsoffset`` in seconds, added to every timestamp.
    offset_seconds: int = 0


def _ts_converter(info: InterfaceInfo) -> tuple[int, int, int]:
    # ns = ticks * mult // div + offset; exact for the power-of-ten resolutions.
    tps = info.ticks_per_second
    if _NS % tps == 0:
        return _NS // tps, 1, info.offset_seconds * _NS
    return _NS, tps, info.offset_seconds * _NS


_END = object()


class _NgState:
    """Per-section decoding state of a pcapng file (byte order, interfaces)."""

    def __init__(self) -> None:
        self.set_order("<")

    def set_order(self, order: str) -> None:
        self.order = order
        self.head = struct.Struct(order + "II")
        self.epb = struct.Struct(order + "IIIII")
        self.u32 = struct.Struct(order + "I")
        # A new section starts with no interfaces.
        self.convs: list[tuple[int, int, int]] = []
        self.links: list[int] = []


class PcapReader:
    """Read packets from a classic pcap or pcapng file.

    ``source`` is a path or a binary file object opened for reading (a path is opened and
    closed by the reader; a file object is left open). Classic pcap with microsecond or
    nanosecond magic in either byte order and pcapng (Section Header, Interface
    Description, Enhanced / Simple / obsolete Packet blocks; other blocks skipped) are read.

    Iterating yields ``(timestamp_ns, data, wire_len)`` tuples; :meth:`records` yields
    :class:`PcapRecord` with the interface as well. A reader is a single pass: iterating
    again continues where the last iteration stopped.

    Raises :class:`PcapError` (``path`` and ``offset`` set) for a bad header at
    construction and for corrupt records while iterating, and :class:`PcapTruncatedError`
    when the file ends mid-record.
    """

    def __init__(self, source: str | os.PathLike[str] | IO[bytes]) -> None:
        if isinstance(source, str | os.PathLike):
            self.path: str | None = os.fspath(source)
            try:
                self._file: IO[bytes] = open(self.path, "rb")  # noqa: SIM115
            except OSError as exc:
                raise PcapError(f"cannot open: {exc.strerror}", path=self.path) from exc
            self._owns = True
        else:
            name = getattr(source, "name", None)
            self.path = name if isinstance(name, str) else None
            self._file = source
            self._owns = False
        self._origin = 0  # where the file object stood: offsets count from there
        try:
            self._seekable = self._file.seekable()
            if self._seekable:
                self._origin = self._file.tell()
        except (AttributeError, OSError, ValueError):
            self._seekable = False
        self._buf = b""
        self._pos = 0
        self._base = 0  # file offset of _buf[0]
        self._eof = False
        #: Interfaces seen so far (pcapng grows this while reading).
        self.interfaces: list[InterfaceInfo] = []
        #: pcapng: packets the capture dropped, the sum of the last Interface Statistics
        #: Block's ``isb_ifdrop`` of each interface of each section read so far; None when
        #: no block said (classic pcap never says).
        self.drops: int | None = None
        self._isb_drops: dict[tuple[int, int], int] = {}  # (section, interface) -> drops
        self._section = 0
        #: ``"pcap"`` or ``"pcapng"``.
        self.format: str
        #: True when classic pcap timestamps are nanoseconds.
        self.nanosecond = False
        #: ``"<"`` or ``">"``: the byte order of the (first) section.
        self.byte_order = "<"
        try:
            self._read_header()
        except BaseException:
            self.close()
            raise
        first = self.interfaces[0] if self.interfaces else None
        #: Link type of the first interface (Ethernet for a pcapng file with none).
        self.linktype: int = first.linktype if first else LINKTYPE_ETHERNET
        #: Snap length of the first interface (262144 for a pcapng file with none).
        self.snaplen: int = first.snaplen if first else _MAX_SNAPLEN
        self._gen: Iterator[PcapRecord] | None = None
        self._tuples: Iterator[tuple[int, bytes, int]] | None = None
        self._pending: PcapError | None = None  # raised by the next batch call
        self._unpack = struct.Struct(self.byte_order + "IIII").unpack_from
        self._unpack_caplen = struct.Struct(self.byte_order + "8xI").unpack_from
        self._unpack_kept = struct.Struct(self.byte_order + "II4xI").unpack_from

    # -- buffer handling -------------------------------------------------------------

    def _fill(self, need: int) -> bool:
        """Make ``need`` bytes available at ``_pos``; False at end of file."""
        while len(self._buf) - self._pos < need:
            if self._eof:
                return False
            left = len(self._buf) - self._pos
            start = self._base + self._pos
            try:
                if left and self._seekable:
                    # Read the unconsumed tail again with the next chunk: one copy by the
                    # kernel instead of joining the tail and the chunk in Python.
                    self._file.seek(self._origin + start)
                    more = self._file.read(max(_CHUNK, need))
                    if len(more) <= left:
                        self._eof = True
                        return False
                    self._buf = more
                else:
                    more = self._file.read(max(_CHUNK, need))
                    if not more:
                        self._eof = True
                        return False
                    self._buf = self._buf[self._pos :] + more if left else more
            except OSError as exc:
                raise PcapError(
                    f"read failed: {exc.strerror}", path=self.path, offset=start
                ) from exc
            self._base = start
            self._pos = 0
        return True

    def _error(self, message: str, at: int) -> PcapError:
        offset = self._base + at
        if self.path is None:  # PcapError shows the offset only next to a path
            message = f"{message} (at byte {offset})"
        return PcapError(message, path=self.path, offset=offset)

    def _truncated(self, what: str, at: int) -> PcapError:
        offset = self._base + at
        message = f"truncated {what}"
        if self.path is None:
            message += f" (at byte {offset})"
        return PcapTruncatedError(message, path=self.path, offset=offset)

    # -- headers ----------------------------------------------------------------------

    def _read_header(self) -> None:
        if not self._fill(4):
            if len(self._buf) == self._pos:
                raise PcapError("empty file: no pcap header", path=self.path, offset=0)
            raise self._truncated("file header", self._pos)
        head = self._buf[self._pos : self._pos + 4]
        if head == b"\x0a\x0d\x0d\x0a":
            self.format = "pcapng"
            self._peek_pcapng()
            return
        for order in ("<", ">"):
            (magic,) = struct.unpack(order + "I", head)
            if magic in (MAGIC_MICRO, MAGIC_NANO):
                self.format = "pcap"
                self.byte_order = order
                self.nanosecond = magic == MAGIC_NANO
                break
        else:
            raise PcapError(
                f"not a pcap or pcapng file (magic {head.hex()})", path=self.path, offset=0
            )
        if not self._fill(PCAP_HEADER_LEN):
            raise self._truncated("pcap file header", self._pos)
        _m, major, _minor, _zone, _sig, snaplen, network = struct.unpack_from(
            self.byte_order + "IHHiIII", self._buf, self._pos
        )
        if major != 2:
            raise PcapError(f"unsupported pcap version {major}", path=self.path, offset=4)
        # As libpcap (tcpdump says "snapshot length 262144"): a snap length of 0 or above
        # the maximum means the maximum. Records longer than that are corrupt, whatever the
        # header says (docs/files.md, "Torn and impossible records").
        if snaplen == 0 or snaplen > _MAX_SNAPLEN:
            snaplen = _MAX_SNAPLEN
        # The upper bits of the link-type field carry FCS information.
        self.interfaces.append(
            InterfaceInfo(
                network & 0xFFFF,
                snaplen,
                ticks_per_second=_NS if self.nanosecond else 1_000_000,
            )
        )
        self._pos += PCAP_HEADER_LEN

    def _peek_pcapng(self) -> None:
        """Find the first interface without consuming anything (iteration re-reads it)."""
        start = self._pos
        pos = start
        order = "<"
        while True:
            if not self._fill(pos - self._pos + 12):
                break
            btype_raw = self._buf[pos : pos + 4]
            if btype_raw == b"\x0a\x0d\x0d\x0a":
                order = self._shb_order(pos)
                if pos == start:
                    self.byte_order = order
            btype, blen = struct.unpack_from(order + "II", self._buf, pos)
            if blen < 12 or blen % 4 or blen > _MAX_BLOCK:
                raise self._error(f"bad pcapng block length {blen}", pos)
            if btype == BT_IDB:
                if not self._fill(pos - self._pos + blen):
                    break
                self.interfaces.append(self._parse_idb(order, pos, blen))
                break
            if btype in (BT_EPB, BT_SPB, BT_PB):
                break
            if not self._fill(pos - self._pos + blen):
                break
            pos += blen

    def _shb_order(self, pos: int) -> str:
        (le,) = struct.unpack_from("<I", self._buf, pos + 8)
        if le == BYTE_ORDER_MAGIC:
            return "<"
        (be,) = struct.unpack_from(">I", self._buf, pos + 8)
        if be == BYTE_ORDER_MAGIC:
            return ">"
        raise self._error("bad pcapng byte-order magic", pos + 8)

    def _parse_idb(self, order: str, pos: int, blen: int) -> InterfaceInfo:
        if blen < 20:
            raise self._error("interface description block too short", pos)
        linktype, _res, snaplen = struct.unpack_from(order + "HHI", self._buf, pos + 8)
        name = desc = None
        tps = 1_000_000
        offset = 0
        opt = pos + 16
        end = pos + blen - 4
        while opt + 4 <= end:
            code, length = struct.unpack_from(order + "HH", self._buf, opt)
            if code == 0:
                break
            value = self._buf[opt + 4 : opt + 4 + length]
            if opt + 4 + length > end:
                raise self._error("interface option runs past its block", opt)
            if code == 2:
                name = value.decode("utf-8", "replace")
            elif code == 3:
                desc = value.decode("utf-8", "replace")
            elif code == 9 and length >= 1:
                res = value[0]
                tps = 2 ** (res & 0x7F) if res & 0x80 else 10**res
            elif code == 14 and length >= 8:
                (offset,) = struct.unpack(order + "q", value[:8])
            opt += 4 + length + (-length % 4)
        return InterfaceInfo(linktype, snaplen, name, desc, tps, offset)

    # -- iteration --------------------------------------------------------------------

    def records(self) -> Iterator[PcapRecord]:
        """Yield every packet as a :class:`PcapRecord` (with its interface)."""
        if self._gen is None:
            self._gen = self._iter_pcap() if self.format == "pcap" else self._iter_pcapng()
        return self._gen

    def __iter__(self) -> Iterator[tuple[int, bytes, int]]:
        """Yield ``(timestamp_ns, data, wire_len)`` for every packet."""
        if self._tuples is None:
            if self._gen is None:
                self._tuples = (
                    self._iter_pcap_tuples() if self.format == "pcap" else self._iter_pcapng(True)
                )
            else:
                self._tuples = (r[:3] for r in self.records())
        return self._tuples

    def read_batch(self, max_records: int) -> list[tuple[int, bytes, int]]:
        """Return up to ``max_records`` packets as ``(timestamp_ns, data, wire_len)``.

        The fast way to read many packets: classic pcap is decoded in one tight loop, with
        no per-record generator step. Returns ``[]`` at the end of the file. A bad or
        truncated record is reported like iteration does, but only once every good record
        before it has been returned: this call returns them and the next one raises.
        Iterating and :meth:`read_batch` continue from the same place, but after an
        iteration has started, batches are drawn from that iterator.
        """
        if self.format == "pcap" and self._tuples is None and self._gen is None:
            return self._pcap_batch(max_records, None, 0)[0]
        return self._drain(iter(self), max_records)

    def read_filtered(
        self, max_records: int, keep: Callable[[bytes], int], snaplen: int | None = None
    ) -> tuple[list[tuple[int, bytes, int]], int]:
        """Read up to ``max_records`` records and return the packets ``keep`` accepts.

        ``keep(data)`` says how many bytes of a packet to keep (``0`` drops it), as a BPF
        program's verdict does; kept data is also cut to ``snaplen`` when given, while
        ``wire_len`` stays the original length. Returns ``(packets, records_read)``:
        ``records_read`` counts dropped records too, and is ``0`` only at the end of the
        file. Errors as :meth:`read_batch`.
        """
        cut = 0 if snaplen is None or snaplen >= max(self.snaplen, _MAX_SNAPLEN) else snaplen
        if self.format == "pcap" and self._tuples is None and self._gen is None:
            return self._pcap_batch(max_records, keep, cut)
        batch = self._drain(iter(self), max_records)
        out = []
        for ts, data, wire in batch:
            k = keep(data)
            if k:
                if cut and k > cut:
                    k = cut
                out.append((ts, data, wire) if k >= len(data) else (ts, data[:k], wire))
        return out, len(batch)

    @property
    def raw_capable(self) -> bool:
        """Whether :meth:`read_filtered_raw` works: little-endian classic pcap, not iterated."""
        return (
            self.format == "pcap"
            and self.byte_order == "<"
            and self._tuples is None
            and self._gen is None
        )

    def _refill(self, pos: int, end: int, caplen: int, maxcap: int, done: int) -> bool:
        """Say whether a batch loop that stopped at ``pos`` short of its goal reads on.

        A record longer than ``maxcap`` is corrupt: raised at once if no record was read in
        this call, else the good records go out first and the next call raises. At the end
        of the file a cut record raises the same way; True means more bytes are buffered.
        """
        if caplen > maxcap and pos + 16 <= end:
            if done:
                return False
            raise self._error(f"record captured length {caplen} exceeds the maximum {maxcap}", pos)
        if self._fill(end - pos + 1):
            return True
        if self._pos < len(self._buf) and not done:
            left = len(self._buf) - self._pos
            raise self._truncated("record header" if left < 16 else "record data", self._pos)
        return False

    def read_filtered_raw(
        self,
        max_records: int,
        keep: Callable[[bytes], int],
        snaplen: int | None = None,
        *,
        limit: int | None = None,
        scanner: Callable[..., tuple[int, int, int, int, bool]] | None = None,
        window: list[int] | None = None,
    ) -> tuple[bytes, int, int] | None:
        """Like :meth:`read_filtered`, but hand the kept records over as they are in the file.

        Returns ``(records, kept, records_read)``: ``records`` is the kept records' bytes
        (16-byte header and data each, exactly as stored) joined, ``kept`` how many there
        are. That is only a faithful copy of what :meth:`read_filtered` would give when a
        kept record needs no change, so reading stops before the first kept record that
        ``keep`` or ``snaplen`` (as for :meth:`read_filtered`) would cut, whose captured
        length exceeds ``limit`` (a writer's snap length), whose wire length is below its
        captured length or whose sub-second field is out of range; when that is the first
        record, None is returned (read it with :meth:`read_filtered`).
        ``records_read`` is ``0`` only at the end of the file. Errors as
        :meth:`read_batch`. Only for a reader where :attr:`raw_capable` holds.

        ``scanner`` (from :meth:`BpfProgram.pcap_scanner` of the program ``keep`` runs)
        does the same work with the filter inlined in the record loop: much faster, and
        ``keep`` is then not called. ``window``, ``[lo, hi, top]`` in nanoseconds, needs a
        timed scanner (``pcap_scanner(timed=True)``): reading also stops before a record
        earlier than ``lo`` and before a kept record at or after ``hi``, and ``window[2]``
        becomes the latest kept timestamp if that is above it.
        """
        if window is not None and scanner is None:
            raise ValueError("a time window needs a timed scanner")
        if not self.raw_capable:
            raise ValueError("raw reading needs a little-endian classic pcap file not iterated")
        if self._pending is not None:
            error, self._pending = self._pending, None
            raise error
        lim = _NS if self.nanosecond else 1_000_000
        maxcap = max(self.snaplen, _MAX_SNAPLEN)
        if snaplen is not None and snaplen < maxcap:
            limit = snaplen if limit is None else min(limit, snaplen)
        if limit is None:
            limit = maxcap
        runs: list[bytes] = []
        kept = done = 0
        odd = False  # stopped before a record that needs the normal path
        while done < max_records:
            buf = self._buf
            pos = self._pos
            end = len(buf)
            todo = max_records - done
            if window is not None:
                got = scanner(buf, pos, end, todo, limit, lim, maxcap, runs, window)  # type: ignore[misc]
            elif scanner is not None:
                got = scanner(buf, pos, end, todo, limit, lim, maxcap, runs)
            else:
                got = self._scan_raw(
                    buf, pos, end, todo, keep=keep, limit=limit, lim=lim, maxcap=maxcap, out=runs
                )
            pos, i, n, caplen, odd = got
            kept += n
            self._pos = pos
            done += i
            if i == todo or odd:
                break
            if not self._refill(pos, end, caplen, maxcap, done):
                break
        if odd and not done:
            return None
        return b"".join(runs), kept, done

    def _scan_raw(
        self,
        buf: bytes,
        pos: int,
        end: int,
        todo: int,
        *,
        keep: Callable[[bytes], int],
        limit: int,
        lim: int,
        maxcap: int,
        out: list[bytes],
    ) -> tuple[int, int, int, int, bool]:
        """Run the record loop of :meth:`read_filtered_raw` calling ``keep`` (a scanner)."""
        run = out.append
        unpack = self._unpack
        caplen = i = kept = 0
        odd = False  # stopped before a record that needs the normal path
        start_run = -1  # where the current stretch of kept records starts
        try:
            for i in range(todo):  # noqa: B007 - i is read after the loop
                _sec, frac, caplen, wire = unpack(buf, pos)
                nxt = pos + 16 + caplen
                if nxt > end or caplen > maxcap:
                    break
                if k := keep(buf[pos + 16 : nxt]):
                    if k < caplen or caplen > limit or wire < caplen or frac >= lim:
                        odd = True
                        break
                    if start_run < 0:
                        start_run = pos
                    kept += 1
                elif start_run >= 0:
                    run(buf[start_run:pos])
                    start_run = -1
                pos = nxt
            else:
                i = todo
        except struct.error:
            pass
        if start_run >= 0:
            run(buf[start_run:pos])
        return pos, i, kept, caplen, odd

    def _drain(
        self, it: Iterator[tuple[int, bytes, int]], max_records: int
    ) -> list[tuple[int, bytes, int]]:
        """Take a batch from an iterator, holding an error back until the batch is out."""
        if self._pending is not None:
            error, self._pending = self._pending, None
            raise error
        out: list[tuple[int, bytes, int]] = []
        try:
            # extend() keeps what it pulled when the iterator raises.
            out.extend(itertools.islice(it, max_records))
        except PcapError as exc:
            if not out:
                raise
            self._pending = exc
        return out

    def _pcap_batch(
        self, limit: int, keep: Callable[[bytes], int] | None, cut: int
    ) -> tuple[list[tuple[int, bytes, int]], int]:
        """Decode up to ``limit`` classic records (filtered by ``keep`` when given).

        Returns the packets and how many records were consumed. The hot path of replay:
        locals only, one ``unpack_from`` and one slice per record, the timestamp decoded
        only for packets kept.
        """
        unpack = self._unpack
        unpack_caplen = self._unpack_caplen
        unpack_kept = self._unpack_kept
        mult = 1 if self.nanosecond else 1000
        ns = _NS
        maxcap = max(self.snaplen, _MAX_SNAPLEN)
        out: list[tuple[int, bytes, int]] = []
        append = out.append
        done = 0
        while done < limit:
            buf = self._buf
            pos = self._pos
            end = len(buf)
            todo = limit - done
            caplen = 0
            i = 0
            # A header cut by the end of the buffer makes unpack_from raise struct.error:
            # that ends the loop without a bounds test per record.
            try:
                if keep is None:
                    for i in range(todo):  # noqa: B007 - i is read after the loop
                        sec, frac, caplen, wire = unpack(buf, pos)
                        start = pos + 16
                        nxt = start + caplen
                        if nxt > end or caplen > maxcap:
                            break
                        append((sec * ns + frac * mult, buf[start:nxt], wire))
                        pos = nxt
                    else:
                        i = todo
                else:
                    # Only the captured length is decoded for every record, the rest only
                    # for the packets kept (often a small share).
                    for i in range(todo):  # noqa: B007 - i is read after the loop
                        (caplen,) = unpack_caplen(buf, pos)
                        start = pos + 16
                        nxt = start + caplen
                        if nxt > end or caplen > maxcap:
                            break
                        data = buf[start:nxt]
                        if k := keep(data):
                            sec, frac, wire = unpack_kept(buf, pos)
                            if cut and k > cut:
                                k = cut
                            if k < caplen:
                                data = data[:k]
                            append((sec * ns + frac * mult, data, wire))
                        pos = nxt
                    else:
                        i = todo
            except struct.error:
                pass
            self._pos = pos
            done += i
            if i == todo:
                break
            if not self._refill(pos, end, caplen, maxcap, done):
                break
        return out, done

    def _iter_pcap_tuples(self) -> Iterator[tuple[int, bytes, int]]:
        # Kept free of attribute lookups; a generator beats batches here because each
        # record's memory is reused at once (see read_batch for batches).
        unpack = self._unpack
        ns = _NS
        mult = 1 if self.nanosecond else 1000
        maxcap = max(self.snaplen, _MAX_SNAPLEN)
        while True:
            buf = self._buf
            pos = self._pos
            end = len(buf)
            try:
                while pos + 16 <= end:
                    sec, frac, caplen, wire = unpack(buf, pos)
                    if caplen > maxcap:
                        raise self._error(
                            f"record captured length {caplen} exceeds the maximum {maxcap}", pos
                        )
                    nxt = pos + 16 + caplen
                    if nxt > end:
                        break
                    yield (sec * ns + frac * mult, buf[pos + 16 : nxt], wire)
                    pos = nxt
            finally:
                self._pos = pos
            if not self._fill(end - pos + 1):
                if self._pos < len(self._buf):
                    left = len(self._buf) - self._pos
                    what = "record header" if left < 16 else "record data"
                    raise self._truncated(what, self._pos)
                return

    def _iter_pcap(self) -> Iterator[PcapRecord]:
        linktype = self.linktype
        new = tuple.__new__
        for ts, data, wire in self._iter_pcap_tuples():
            yield new(PcapRecord, (ts, data, wire, 0, linktype))

    def _iter_pcapng(self, tuples: bool = False) -> Iterator[Any]:
        st = _NgState()
        new = tuple.__new__  # much cheaper than calling the NamedTuple class
        self.interfaces = []
        while True:
            # Fast path: whole, well-formed Enhanced Packet Blocks already in the buffer.
            buf = self._buf
            pos = self._pos
            end = len(buf)
            head = st.head.unpack_from
            epb = st.epb.unpack_from
            u32 = st.u32.unpack_from
            convs = st.convs
            links = st.links
            try:
                while pos + 8 <= end:
                    btype, blen = head(buf, pos)
                    nxt = pos + blen
                    if btype != BT_EPB or blen < 32 or nxt > end:
                        break
                    iface, hi, lo, caplen, wire = epb(buf, pos + 8)
                    if iface >= len(convs) or caplen > blen - 32 or u32(buf, nxt - 4)[0] != blen:
                        break  # the slow path reports the problem
                    mult, div, off = convs[iface]
                    ticks = (hi << 32) | lo
                    ts = (ticks * mult if div == 1 else ticks * mult // div) + off
                    data = buf[pos + 28 : pos + 28 + caplen]
                    if tuples:
                        yield (ts, data, wire)
                    else:
                        yield new(PcapRecord, (ts, data, wire, iface, links[iface]))
                    pos = nxt
            finally:
                self._pos = pos
            rec = self._ng_block(st)
            if rec is _END:
                return
            if rec is not None:
                yield rec[:3] if tuples else rec  # type: ignore[index]

    def _ng_block(self, st: _NgState) -> PcapRecord | object | None:
        """Handle one block the fast path did not: returns a record, None, or _END."""
        if not self._fill(8):
            if self._pos < len(self._buf):
                raise self._truncated("block header", self._pos)
            return _END
        pos = self._pos
        buf = self._buf
        if buf[pos : pos + 4] == b"\x0a\x0d\x0d\x0a":
            if not self._fill(12):
                raise self._truncated("section header block", self._pos)
            buf = self._buf
            pos = self._pos
            st.set_order(self._shb_order(pos))
            self.interfaces = []
        order = st.order
        btype, blen = st.head.unpack_from(buf, pos)
        if blen < 12 or blen % 4 or blen > _MAX_BLOCK:
            raise self._error(f"bad pcapng block length {blen}", pos)
        if not self._fill(blen):
            raise self._truncated(f"block (type {btype:#x})", self._pos)
        buf = self._buf
        pos = self._pos
        if st.u32.unpack_from(buf, pos + blen - 4)[0] != blen:
            raise self._error("pcapng block trailing length does not match", pos)
        rec: PcapRecord | None = None
        if btype in (BT_EPB, BT_PB):
            if blen < 32:
                raise self._error("packet block too short", pos)
            if btype == BT_EPB:
                iface, hi, lo, caplen, wire = st.epb.unpack_from(buf, pos + 8)
            else:
                (iface,) = struct.unpack_from(order + "H", buf, pos + 8)
                hi, lo, caplen, wire = struct.unpack_from(order + "IIII", buf, pos + 12)
            if iface >= len(st.convs):
                raise self._error(f"packet for unknown interface {iface}", pos)
            if caplen > blen - 32:
                raise self._error("packet data runs past its block", pos)
            mult, div, off = st.convs[iface]
            ts = ((hi << 32) | lo) * mult // div + off
            rec = PcapRecord(ts, buf[pos + 28 : pos + 28 + caplen], wire, iface, st.links[iface])
        elif btype == BT_SPB:
            if not st.convs:
                raise self._error("simple packet block before any interface", pos)
            (wire,) = st.u32.unpack_from(buf, pos + 8)
            caplen = min(wire, self.interfaces[0].snaplen or wire, blen - 16)
            # A simple packet block has no timestamp.
            rec = PcapRecord(0, buf[pos + 12 : pos + 12 + caplen], wire, 0, st.links[0])
        elif btype == BT_IDB:
            info = self._parse_idb(order, pos, blen)
            self.interfaces.append(info)
            st.convs.append(_ts_converter(info))
            st.links.append(info.linktype)
        elif btype == BT_SHB:
            major = struct.unpack_from(order + "H", buf, pos + 12)[0]
            if major != 1:
                raise self._error(f"unsupported pcapng version {major}", pos)
            self._section += 1
        elif btype == BT_ISB and blen >= 24:
            self._read_isb(order, pos, blen)
        self._pos = pos + blen
        return rec

    def _read_isb(self, order: str, pos: int, blen: int) -> None:
        """Take ``isb_ifdrop`` (option 5) from an Interface Statistics Block.

        The counters are totals since the capture started: the last block of an interface
        is the one that counts. A malformed option list is ignored, not an error.
        """
        (iface,) = struct.unpack_from(order + "I", self._buf, pos + 8)
        opt, end = pos + 20, pos + blen - 4
        while opt + 4 <= end:
            code, length = struct.unpack_from(order + "HH", self._buf, opt)
            if code == 0 or opt + 4 + length > end:
                break
            if code == 5 and length == 8:
                (dropped,) = struct.unpack_from(order + "Q", self._buf, opt + 4)
                self._isb_drops[self._section, iface] = dropped
                self.drops = sum(self._isb_drops.values())
            opt += 4 + length + (-length % 4)

    # -- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the file if the reader opened it."""
        if self._owns:
            self._file.close()

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def count_packets(source: str | os.PathLike[str] | IO[bytes]) -> int:
    """Count the complete packets in a capture file, ignoring a damaged tail.

    Returns 0 for a file that is not a capture file at all.
    """
    n = 0
    try:
        with PcapReader(source) as reader:
            for _ in reader:
                n += 1
    except PcapError:
        pass
    return n
