"""Writers: a plain single-file :class:`PcapWriter` and Calico's :class:`RotatingWriter`.

Crash safety of :class:`RotatingWriter`: records are encoded into a memory buffer and
written with one ``write`` per flush (every ``flush_packets`` packets or
``flush_interval_ms``, whichever first), so a crash loses at most that window. A failed
write is rolled back with ``ftruncate`` to the last flushed size, so the file never keeps a
half record. If the process dies inside a ``write`` the kernel may have stored part of it;
the next writer for the same interface repairs such a torn tail (truncating it to the last
complete record) before moving the old active file aside. Files are ``fsync``'d on
rotation and close, and the directory after each rename. Every ``_WRITEBACK_BYTES`` written
the kernel is asked to start writing them back, and to drop the step before, on disk by
then, from the page cache (one ``posix_fadvise(DONTNEED)`` over both: it starts writeback of
dirty pages and drops clean ones), so that fsync has little left to do and a long capture
does not push other data out of memory.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import itertools
import os
import struct
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import IO

from packetcapture._lazylog import get_logger
from packetcapture.errors import PcapError
from packetcapture.pcap._format import (
    LINKTYPE_ETHERNET,
    encode_pcap_header,
    encode_pcapng_epb,
    encode_pcapng_idb,
    encode_pcapng_shb,
    format_description,
)
from packetcapture.pcap._layout import (
    active_name,
    base_name,
    capture_directory,
    open_capture_dir,
    rotated_name,
)
from packetcapture.pcap._reader import PcapReader, PcapTruncatedError, count_packets
from packetcapture.pcap._retention import apply_retention, rotated_files
from packetcapture.pcap._rotation import (
    RotationReason,
    seconds_of,
    should_rotate,
    unix_microseconds,
)
from packetcapture.pcap._settings import CaptureSettings

__all__ = ["PcapWriter", "RotatingWriter", "repair_capture_file"]

log = get_logger(__name__)

_NS = 1_000_000_000
_RECORD = struct.Struct("<IIII")
_CAPLEN = struct.Struct("<8xI")
# Flush early when this much is buffered, whatever the policy says, to bound memory.
_MAX_BUFFER = 4 << 20
# Ask for writeback of each this many bytes as soon as they are written (see the docstring).
_WRITEBACK_BYTES = 8 << 20
# write_many encodes this many records at a time: big enough to amortise the per-chunk
# work, small enough for the records to stay in the CPU cache until they are copied.
_CHUNK = 1024
_USER_APPL = "packetcapture"

Now = float | _dt.datetime
_Pack = Callable[..., bytes]


class PcapWriter:
    """Write one capture file (classic pcap or pcapng) to an open binary file object.

    The header is written at once. :meth:`write` takes the timestamp in nanoseconds since
    the epoch, the captured bytes (cut to ``snaplen``) and the original length (default:
    the captured length). For pcapng one interface is described up front (``name``,
    ``description``); :meth:`add_interface` adds more. The caller owns the file object.
    """

    def __init__(
        self,
        file: IO[bytes],
        *,
        linktype: int = LINKTYPE_ETHERNET,
        snaplen: int = 262144,
        nanosecond: bool = False,
        format: str = "pcap",
        name: str | None = None,
        description: str | None = None,
    ) -> None:
        if format not in ("pcap", "pcapng"):
            raise ValueError(f"format must be 'pcap' or 'pcapng', not {format!r}")
        self._file = file
        self._nano = nanosecond
        self._ng = format == "pcapng"
        self._snaplen: list[int] = []
        if self._ng:
            file.write(encode_pcapng_shb(user_application=_USER_APPL))
            self.add_interface(linktype, snaplen, name=name, description=description)
        else:
            file.write(encode_pcap_header(linktype, snaplen, nanosecond=nanosecond))
            self._snaplen.append(snaplen)
        #: Packets written so far.
        self.packets_written = 0

    def add_interface(
        self,
        linktype: int,
        snaplen: int,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> int:
        """Describe another interface (pcapng only) and return its id."""
        if not self._ng:
            raise PcapError("a classic pcap file has a single interface")
        self._file.write(
            encode_pcapng_idb(
                linktype, snaplen, name=name, description=description, nanosecond=self._nano
            )
        )
        self._snaplen.append(snaplen)
        return len(self._snaplen) - 1

    def write(
        self, timestamp_ns: int, data: bytes, wire_len: int | None = None, interface_id: int = 0
    ) -> None:
        """Write one packet."""
        snaplen = self._snaplen[interface_id]
        wire = len(data) if wire_len is None else max(wire_len, len(data))
        if len(data) > snaplen:
            data = data[:snaplen]
        if self._ng:
            self._file.write(
                encode_pcapng_epb(interface_id, timestamp_ns, data, wire, nanosecond=self._nano)
            )
        else:
            sec, frac = divmod(timestamp_ns, _NS)
            if not self._nano:
                frac //= 1000
            try:
                head = _RECORD.pack(sec, frac, len(data), wire)
            except struct.error:
                raise ValueError(
                    f"timestamp {timestamp_ns} ns does not fit a pcap record"
                ) from None
            self._file.write(head + data)
        self.packets_written += 1

    def write_many(self, records: Iterable[tuple[int, bytes, int]], interface_id: int = 0) -> int:
        """Write ``(timestamp_ns, data, wire_len)`` records; return how many were written.

        The file gets exactly the bytes :meth:`write` would give for each record in turn
        (snap length cut, wire length raised to the captured length, ``ValueError`` for a
        timestamp that does not fit, with the records before it written), but classic
        pcap is encoded a chunk at a time, several times faster. pcapng loops over
        :meth:`write`.
        """
        write = self.write
        if self._ng:
            n = 0
            for ts, data, wire in records:
                write(ts, data, wire, interface_id)
                n += 1
            return n
        snaplen = self._snaplen[interface_id]
        pack = _RECORD.pack
        div = 1 if self._nano else 1000
        ns = _NS
        fwrite = self._file.write
        it = iter(records)
        n = 0
        while chunk := list(itertools.islice(it, _CHUNK)):
            parts = _encode(chunk, pack, ns, div, snaplen)
            if parts is None:  # something to cut or refuse: let write() do it right
                for ts, data, wire in chunk:
                    write(ts, data, wire, interface_id)
            else:
                fwrite(b"".join(parts))
                self.packets_written += len(chunk)
            n += len(chunk)
        return n


def _fit(records: bytes, pos: int, room: int, most: int) -> tuple[int, int]:
    """Count the records from ``pos`` (at most ``most``) whose total size fits ``room``."""
    unpack = _CAPLEN.unpack_from
    n = size = 0
    while n < most:
        rec = 16 + unpack(records, pos + size)[0]
        if size + rec > room:
            break
        size += rec
        n += 1
    return n, size


def _encode(
    chunk: list[tuple[int, bytes, int]],
    pack: _Pack,
    ns: int,
    div: int,
    snaplen: int,
) -> list[bytes] | None:
    """Encode classic records, or return None when one needs :meth:`write`'s care.

    That is a record longer than ``snaplen``, a timestamp outside the format, or a
    ``wire_len`` that is not an integer: the caller then writes the chunk one by one.
    """
    try:
        parts = [
            pack(ts // ns, ts % ns // div, n, w if w > n else n) + d
            for ts, d, w in chunk
            if (n := len(d)) <= snaplen
        ]
    except (struct.error, TypeError):
        return None
    return parts if len(parts) == len(chunk) else None


def repair_capture_file(path: str | os.PathLike[str] | int) -> int:
    """Cut a torn tail (a record the writer died writing) off a capture file.

    ``path`` is a path or a file descriptor open for reading and writing. Returns how many
    bytes were removed (0 when the file was whole). A file damaged elsewhere than at its
    tail is left alone and :class:`PcapError` raised.
    """
    if isinstance(path, int):
        fd = os.dup(path)
        shown = None
    else:
        shown = os.fspath(path)
        try:
            fd = os.open(shown, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            raise PcapError(f"cannot open: {exc.strerror}", path=shown) from exc
    with os.fdopen(fd, "r+b") as f:
        size = os.fstat(fd).st_size
        f.seek(0)
        try:
            with PcapReader(f) as reader:
                for _ in reader.records():
                    pass
        except PcapTruncatedError as exc:
            cut = exc.offset or 0
            os.ftruncate(fd, cut)
            return size - cut
        except PcapError as exc:
            raise PcapError(f"damaged capture file: {exc}", path=shown) from exc
    return 0


class RotatingWriter:
    """Write one endpoint interface's packets into Calico's rotating capture files.

    Files live in ``{capture_dir}/{namespace}/{capture_name}/``: the active file
    ``{pod}_{interface}.pcap`` (created on the first packet) and rotated files
    ``{pod}_{interface}-{unix microseconds}.pcap``. The directory is created (mode 0755)
    when the writer is made; files get mode 0644.

    Times: every ``now`` argument is the wall-clock time, as Unix seconds (``float``) or an
    aware ``datetime`` (naive means UTC); the writer never reads a clock. A file's rotation
    period starts when it is created (its first packet), so every file covers at most
    ``rotation_seconds`` (Felix counts from its last rotation instead; the new file there
    exists at once, here on the next packet).

    Rotation: before a write that would take the file past ``max_size_bytes``, or once
    ``rotation_seconds`` have passed, if the file holds packets. After each rotation the
    oldest rotated files beyond ``max_files`` are deleted: this interface's files
    (``settings.retention == "interface"``) or every rotated file in the capture directory
    (``"directory"``, Felix's behaviour). Deleted packets are counted in
    :attr:`packets_deleted`, so ``packets_written == packets in kept files +
    packets_deleted`` (plus :attr:`packets_adopted` when an old active file was found).

    An old active file left by an earlier run (a crash, or a restart of the capture) is
    repaired and moved aside as a rotated file on the first packet.

    Errors: unsafe names and file-system failures raise :class:`PcapError` (``OSError`` as
    ``__cause__``); after a write failure the writer refuses further writes, and the file on
    disk holds every record flushed before. Not thread-safe.
    """

    def __init__(
        self,
        capture_dir: str | os.PathLike[str],
        namespace: str,
        capture_name: str,
        pod: str,
        interface: str,
        *,
        linktype: int = LINKTYPE_ETHERNET,
        snaplen: int | None = None,
        settings: CaptureSettings | None = None,
        node: str = "",
        description: str | None = None,
    ) -> None:
        self.settings = settings or CaptureSettings()
        self.base = base_name(pod, interface)
        self.directory = capture_directory(capture_dir, namespace, capture_name)
        self.pod = pod
        self.interface = interface
        self.linktype = linktype
        self.snaplen = self.settings.snaplen if snaplen is None else snaplen
        if self.snaplen < 1:
            raise ValueError("snaplen must be at least 1")
        self.active_name = active_name(self.base)
        if description is None:
            description = format_description(
                {
                    "endpoint": f"{namespace}/{pod}",
                    "interface": interface,
                    "node": node,
                    "capture": f"{namespace}/{capture_name}",
                }
            )
        self.description = description
        s = self.settings
        self._ng = s.format == "pcapng"
        self._nano = s.nanosecond
        self._div = 1 if s.nanosecond else 1000
        self._max_size = s.max_size_bytes
        self._flush_packets = s.flush_packets
        self._flush_interval = s.flush_interval_ms / 1000.0
        if self._ng:
            self._header = encode_pcapng_shb(user_application=_USER_APPL) + encode_pcapng_idb(
                linktype,
                self.snaplen,
                name=interface,
                description=description,
                nanosecond=s.nanosecond,
            )
        else:
            self._header = encode_pcap_header(linktype, self.snaplen, nanosecond=s.nanosecond)
        self._dir_fd: int | None = open_capture_dir(
            capture_dir, namespace, capture_name, create=True
        )
        self._fd: int | None = None
        self._buf = bytearray()
        self._buf_packets = 0
        self._buf_since = 0.0
        self._size = 0  # bytes in the active file, buffered bytes included
        self._committed = 0  # bytes really written to the active file
        self._hinted = 0  # bytes of the active file whose writeback was asked for
        self._dropped = 0  # of those, the bytes (asked) dropped from the page cache
        self._file_packets = 0
        self._period_start: float | None = None
        self._known: dict[str, int] = {}  # packets in rotated files this writer made
        self._failed: PcapError | None = None
        self._closed = False
        #: Packets accepted (on disk or buffered), minus any lost to a failed write.
        self.packets_written = 0
        #: File bytes accepted (headers included).
        self.bytes_written = 0
        #: Packets in files deleted by retention.
        self.packets_deleted = 0
        #: Files deleted by retention.
        self.files_deleted = 0
        #: Rotations done.
        self.files_rotated = 0
        #: Packets in an old active file adopted (moved aside) on the first packet.
        self.packets_adopted = 0
        #: Packets buffered when a write failed, and so lost.
        self.packets_lost = 0

    # -- paths --------------------------------------------------------------------------

    @property
    def active_path(self) -> os.PathLike[str]:
        """Path of the active file (it may not exist yet)."""
        return self.directory / self.active_name

    @property
    def file_names(self) -> list[str]:
        """Return this interface's files on disk: rotated ones oldest first, then the active."""
        try:
            if self._dir_fd is not None:
                names = os.listdir(self._dir_fd)
            else:  # closed: reopened through descriptors, never following a symlink
                d = self.directory
                fd = open_capture_dir(d.parent.parent, d.parent.name, d.name)
                try:
                    names = os.listdir(fd)
                finally:
                    os.close(fd)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise PcapError(f"cannot list: {exc.strerror}", path=str(self.directory)) from exc
        out = [name for _, name in rotated_files(names, self.base)]
        if self.active_name in names:
            out.append(self.active_name)
        return out

    # -- writing ------------------------------------------------------------------------

    def write(self, timestamp_ns: int, data: bytes, wire_len: int, now: Now) -> None:
        """Write one packet captured at ``timestamp_ns`` (ns since the epoch).

        ``data`` is cut to ``snaplen``; ``wire_len`` is the original length (raised to the
        captured length if smaller). ``now`` drives rotation and the flush interval.
        """
        if self._failed is not None or self._closed:
            self._refuse()
        t = now if type(now) is float else seconds_of(now)
        caplen = len(data)
        if caplen > self.snaplen:
            data = data[: self.snaplen]
            caplen = self.snaplen
        wire_len = max(wire_len, caplen)
        if self._ng:
            record = encode_pcapng_epb(0, timestamp_ns, data, wire_len, nanosecond=self._nano)
            rec_len = len(record)
        else:
            record = b""
            rec_len = 16 + caplen
        if self._period_start is None:
            self._period_start = t
        if self._file_packets and (
            self._size + rec_len > self._max_size
            or t - self._period_start >= self.settings.rotation_seconds
        ):
            self.rotate(now)
        if self._fd is None:
            self._open_active(now)
        buf = self._buf
        if self._ng:
            buf += record
        else:
            sec, frac = divmod(timestamp_ns, _NS)
            try:
                buf += _RECORD.pack(sec, frac // self._div, caplen, wire_len)
            except struct.error:
                raise ValueError(
                    f"timestamp {timestamp_ns} ns does not fit a pcap record"
                ) from None
            buf += data
        if not self._buf_packets:
            self._buf_since = t
        self._buf_packets += 1
        self._file_packets += 1
        self._size += rec_len
        self.bytes_written += rec_len
        self.packets_written += 1
        if (
            self._buf_packets >= self._flush_packets
            or t - self._buf_since >= self._flush_interval
            or len(buf) >= _MAX_BUFFER
        ):
            self.flush()

    def write_many(self, packets: Iterable[tuple[int, bytes, int]], now: Now) -> int:
        """Write ``(timestamp_ns, data, wire_len)`` packets; return how many were written.

        Exactly like calling :meth:`write` for each packet with the same ``now`` (snap
        length, wire length, size and time rotation, flush policy, counters, errors, file
        contents and names), but classic pcap records are encoded a chunk at a time,
        several times faster. pcapng loops over :meth:`write`.
        """
        if self._failed is not None or self._closed:
            self._refuse()
        write = self.write
        it = iter(packets)
        n = 0
        if self._ng:
            for ts, data, wire in it:
                write(ts, data, wire, now)
                n += 1
            return n
        t = now if type(now) is float else seconds_of(now)
        pack = _RECORD.pack
        div, snaplen, flush_packets = self._div, self.snaplen, self._flush_packets
        # The first packet goes through write(): it opens or time-rotates the file and
        # applies the flush interval. With one ``now`` for the whole batch neither can
        # happen again (a rotation restarts the period at ``now``, a flush the interval),
        # so the rest only needs the size limit and the buffer limits checked.
        for ts, data, wire in it:
            write(ts, data, wire, now)
            n += 1
            break
        left: list[tuple[int, bytes, int]] = []  # taken from ``it``, not written yet
        while True:
            room = min(flush_packets - self._buf_packets, _CHUNK)
            if left:
                chunk, left = left[:room], left[room:]
            else:
                chunk = list(itertools.islice(it, room))
                if not chunk:
                    return n
            recs = _encode(chunk, pack, _NS, div, snaplen)
            if recs is None:
                for ts, data, wire in chunk:
                    write(ts, data, wire, now)
                n += len(chunk)
                continue
            total = sum(map(len, recs))
            if self._size + total <= self._max_size and len(self._buf) + total < _MAX_BUFFER:
                if not self._buf_packets and len(recs) >= flush_packets:
                    self._write_through(recs, t)  # commit + flush, fewer copies
                else:
                    self._commit(recs, total, t)
                    if self._buf_packets >= flush_packets:
                        self.flush()
                n += len(chunk)
                continue
            # A record in this chunk rotates the file or fills the buffer: find the first.
            cum = list(itertools.accumulate(map(len, recs)))
            rotate_at = bisect_right(cum, self._max_size - self._size)
            full_at = bisect_left(cum, _MAX_BUFFER - len(self._buf))
            if full_at < rotate_at:
                done = full_at + 1
                self._commit(recs[:done], cum[full_at], t)
                self.flush()
            else:
                if rotate_at:
                    self._commit(recs[:rotate_at], cum[rotate_at - 1], t)
                ts, data, wire = chunk[rotate_at]
                write(ts, data, wire, now)
                done = rotate_at + 1
            n += done
            left = chunk[done:] + left

    def accepts_raw(self, *, nanosecond: bool, byte_order: str = "<") -> bool:
        """Say whether :meth:`write_raw` takes classic records of this resolution and order."""
        return not self._ng and nanosecond == self._nano and byte_order == "<"

    def write_raw(self, records: bytes, count: int, now: Now) -> int:
        """Append ``count`` classic pcap records already encoded; return ``count``.

        ``records`` must hold whole little-endian records in this writer's timestamp
        resolution (see :meth:`accepts_raw`), each with a captured length at most
        :attr:`snaplen`, a wire length at least the captured length and a valid sub-second
        field: then the result (files, names, rotation points, counters) is exactly that of
        :meth:`write_many` with the decoded packets and the same ``now``, without decoding
        or encoding anything. Size rotation walks the record headers only when it falls
        inside ``records``.
        """
        if self._failed is not None or self._closed:
            self._refuse()
        if self._ng:
            raise PcapError("write_raw needs a classic pcap writer", path=str(self.active_path))
        if not count:
            return 0
        t = now if type(now) is float else seconds_of(now)
        # As the first packet of write_many: the period starts, a time rotation may happen.
        if self._period_start is None:
            self._period_start = t
        if self._file_packets and t - self._period_start >= self.settings.rotation_seconds:
            self.rotate(now)
        total = len(records)
        pos = 0
        left = count
        while left:
            if self._fd is None:
                self._open_active(now)
            size = total - pos
            n = left
            if self._size + size > self._max_size:
                # Only the records that fit before the size limit go to this file.
                n, size = _fit(records, pos, self._max_size - self._size, left)
                if not n:
                    if self._file_packets:
                        self.rotate(now)
                        continue
                    n, size = 1, 16 + _CAPLEN.unpack_from(records, pos)[0]
            part = records[pos : pos + size] if size != total else records
            if not self._buf_packets and (n >= self._flush_packets or size >= _MAX_BUFFER):
                self._write_raw_through(part, n, t)
            else:
                if not self._buf_packets:
                    self._buf_since = t
                self._buf += part
                self._buf_packets += n
                self._file_packets += n
                self._size += size
                self.bytes_written += size
                self.packets_written += n
                if (
                    self._buf_packets >= self._flush_packets
                    or t - self._buf_since >= self._flush_interval
                    or len(self._buf) >= _MAX_BUFFER
                ):
                    self.flush()
            pos += size
            left -= n
        return count

    def _write_raw_through(self, data: bytes, k: int, t: float) -> None:
        """Write records straight to the file with an empty buffer (no copy into it)."""
        assert self._fd is not None
        size = len(data)
        self._buf_since = t
        self._buf_packets = k  # what _fail() takes back if the write fails
        self._file_packets += k
        self._size += size
        self.bytes_written += size
        self.packets_written += k
        try:
            _write_all(self._fd, data)
        except OSError as exc:
            self._fail(exc, "write failed")
        self._wrote(size)
        self._buf_packets = 0

    def _write_through(self, records: list[bytes], t: float) -> None:
        """Like ``_commit`` then ``flush`` with an empty buffer, without copying into it."""
        self._write_raw_through(b"".join(records), len(records), t)

    def _commit(self, records: list[bytes], size: int, t: float) -> None:
        """Append encoded records that trigger no rotation and no flush before the last."""
        if not self._buf_packets:
            self._buf_since = t
        self._buf += b"".join(records)
        k = len(records)
        self._buf_packets += k
        self._file_packets += k
        self._size += size
        self.bytes_written += size
        self.packets_written += k

    def should_rotate(self, size: int, now: Now) -> RotationReason | None:
        """Say whether the active file must rotate before a record of ``size`` bytes.

        ``size`` is the encoded record length (``0`` asks about time alone). Pure: it only
        looks at the writer's counters.
        """
        t = seconds_of(now)
        return should_rotate(
            self._size,
            t,
            incoming=size,
            packets=self._file_packets,
            period_start=t if self._period_start is None else self._period_start,
            max_size_bytes=self._max_size,
            rotation_seconds=self.settings.rotation_seconds,
        )

    def tick(self, now: Now) -> RotationReason | None:
        """Rotate on time and flush on the interval without a packet; call it periodically.

        Returns the rotation reason when a rotation happened. Raises :class:`PcapError`
        when the active file was removed (its directory deleted) since it was opened.
        """
        if self._failed is not None or self._closed:
            return None
        if self._fd is not None and os.fstat(self._fd).st_nlink == 0:
            # Writes into a deleted file succeed and vanish: say so instead.
            self._fail(OSError(errno.ENOENT, os.strerror(errno.ENOENT)), "capture file removed")
        t = seconds_of(now)
        if self._period_start is None:
            self._period_start = t
        reason = self.should_rotate(0, t)
        if reason is not None:
            self.rotate(now)
            return reason
        if self._buf_packets and t - self._buf_since >= self._flush_interval:
            self.flush()
        return None

    def flush(self) -> None:
        """Write buffered records to the file (no fsync)."""
        if not self._buf or self._fd is None:
            return
        if self._failed is not None:
            self._refuse()
        data = bytes(self._buf)
        try:
            _write_all(self._fd, data)
        except OSError as exc:
            self._fail(exc, "write failed")
        self._wrote(len(data))
        self._buf.clear()
        self._buf_packets = 0

    def sync(self) -> None:
        """Flush and ``fsync`` the active file."""
        self.flush()
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self._fail(exc, "fsync failed")

    def rotate(self, now: Now) -> str | None:
        """Close the active file, rename it to its rotated name and apply retention.

        Returns the rotated file name, or None when there was no active file. The next
        packet creates a new active file.
        """
        if self._fd is None or self._dir_fd is None:
            return None
        self.sync()
        os.close(self._fd)
        self._fd = None
        name = self._move_aside(unix_microseconds(now))
        self._known[name] = self._file_packets
        self.files_rotated += 1
        self._period_start = seconds_of(now)
        self._file_packets = 0
        self._size = self._committed = 0
        log.debug("rotated %s/%s", self.directory, name)
        self._retain()
        return name

    def close(self) -> None:
        """Flush, ``fsync`` and close the active file and the directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._fd is not None and self._failed is None:
                self.sync()
                if os.fstat(self._fd).st_nlink == 0:  # its directory was removed meanwhile
                    gone = OSError(errno.ENOENT, os.strerror(errno.ENOENT))
                    raise PcapError(
                        f"capture file removed: {gone.strerror}", path=str(self.active_path)
                    ) from gone
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._dir_fd is not None:
                os.close(self._dir_fd)
                self._dir_fd = None

    def __enter__(self) -> RotatingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------

    def _refuse(self) -> None:
        if self._closed:
            raise PcapError("writer is closed", path=str(self.active_path))
        assert self._failed is not None
        raise PcapError(f"writer failed earlier: {self._failed}", path=str(self.active_path))

    def _fail(self, exc: OSError, what: str) -> None:
        """Roll the file back to its last good size, drop the buffer and raise."""
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, self._committed)
            except OSError:
                log.warning("cannot roll back %s after a failed write", self.active_path)
        self.packets_lost += self._buf_packets
        self.packets_written -= self._buf_packets
        self._file_packets -= self._buf_packets
        self._buf.clear()
        self._buf_packets = 0
        self._size = self._committed
        err = PcapError(f"{what}: {exc.strerror or exc}", path=str(self.active_path))
        self._failed = err
        raise err from exc

    def _wrote(self, size: int) -> None:
        """Count ``size`` bytes as written to the active file; start writeback in steps."""
        self._committed += size
        if self._committed - self._hinted >= _WRITEBACK_BYTES and self._fd is not None:
            # The step hinted last time is clean by now (usually): this call drops it and
            # starts writeback of the new one, whose dirty pages it cannot drop yet.
            _start_writeback(self._fd, self._dropped, self._committed - self._dropped)
            self._dropped, self._hinted = self._hinted, self._committed

    def _open_active(self, now: Now) -> None:
        assert self._dir_fd is not None
        self._adopt_leftover(now)
        # Each file's rotation period starts when it is created, on its first packet.
        self._period_start = seconds_of(now)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self.active_name, flags, 0o644, dir_fd=self._dir_fd)
        except OSError as exc:
            err = PcapError(
                f"cannot create capture file: {exc.strerror}", path=str(self.active_path)
            )
            self._failed = err
            raise err from exc
        self._fd = fd
        try:
            os.fchmod(fd, 0o644)
            _write_all(fd, self._header)
        except OSError as exc:
            self._committed = 0
            self._fail(exc, "cannot write header")
        self._committed = self._size = len(self._header)
        self._hinted = self._dropped = 0
        self.bytes_written += len(self._header)
        self._file_packets = 0

    def _adopt_leftover(self, now: Now) -> None:
        """Repair an old active file from an earlier run and move it aside (or drop it)."""
        assert self._dir_fd is not None
        try:
            fd = os.open(
                self.active_name, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._dir_fd
            )
        except FileNotFoundError:
            return
        except OSError as exc:
            err = PcapError(
                f"cannot open old capture file: {exc.strerror}", path=str(self.active_path)
            )
            self._failed = err
            raise err from exc
        try:
            try:
                removed = repair_capture_file(fd)
                if removed:
                    log.warning("cut a torn %d-byte tail off %s", removed, self.active_path)
            except PcapError as exc:
                # Kept for whoever wants to look at it, out of the way of listings and
                # retention (not a .pcap name), never deleted.
                aside = f"{self.base}-{unix_microseconds(now)}.damaged"
                try:
                    os.rename(
                        self.active_name, aside, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd
                    )
                except OSError as err:
                    failed = PcapError(
                        f"old capture file is damaged and cannot be moved aside: {err.strerror}",
                        path=str(self.active_path),
                    )
                    self._failed = failed
                    raise failed from err
                log.warning("old capture file is damaged, kept as %s: %s", aside, exc)
                return
            with os.fdopen(os.dup(fd), "rb") as f:
                f.seek(0)  # the descriptor's offset is shared with the repair's reads
                packets = count_packets(f)
        finally:
            os.close(fd)
        if packets == 0:
            os.unlink(self.active_name, dir_fd=self._dir_fd)
            return
        name = self._move_aside(unix_microseconds(now))
        self._known[name] = packets
        self.packets_adopted += packets
        self._retain()

    def _move_aside(self, us: int) -> str:
        assert self._dir_fd is not None
        existing = set(os.listdir(self._dir_fd))
        name = rotated_name(self.base, us)
        while name in existing:  # two rotations in one microsecond: keep both
            us += 1
            name = rotated_name(self.base, us)
        try:
            os.rename(self.active_name, name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
            os.fsync(self._dir_fd)
        except OSError as exc:
            err = PcapError(f"cannot rotate: {exc.strerror}", path=str(self.active_path))
            self._failed = err
            raise err from exc
        return name

    def _retain(self) -> None:
        assert self._dir_fd is not None
        base = self.base if self.settings.retention == "interface" else None
        deleted, packets = apply_retention(
            self._dir_fd,
            self.settings.max_files,
            base,
            self._known,
            shown_dir=str(self.directory),
        )
        for name in deleted:
            self._known.pop(name, None)
        self.files_deleted += len(deleted)
        self.packets_deleted += packets


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to write a range back now and to drop its clean pages from memory.

    Linux starts writeback of the range's dirty pages without waiting for it (so the next
    ``fsync`` is short) and drops the pages already on disk. A hint only: its failure
    changes nothing (a real write error still shows at ``fsync``).
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:  # pragma: no cover - not on macOS
        return
    with contextlib.suppress(OSError):  # e.g. a file system without it
        advise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:  # pragma: no cover - a regular file never does this
            raise OSError(errno.EIO, "short write")
        view = view[n:]
