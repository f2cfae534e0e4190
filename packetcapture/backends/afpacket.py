"""Live capture from a Linux interface through an AF_PACKET raw socket.

The open sequence makes sure no unfiltered packet is ever read (Antrea bug #6815):

1. ``socket(AF_PACKET, SOCK_RAW, 0)``: protocol 0 receives nothing yet;
2. bind to the interface with protocol 0, read its hardware type (the link type) and check
   it against the program's;
3. attach the filter (``SO_ATTACH_FILTER`` plus the drain sequence of
   :func:`packetcapture.bpf.attach`);
4. fast path: ``PACKET_VERSION`` = TPACKET_V3, ``PACKET_RX_RING`` with a ``tpacket_req3``,
   ``mmap``; fallback (``ring=False``): ``PACKET_AUXDATA`` and ``SO_TIMESTAMPNS`` for
   ``recvmsg_into``;
5. optionally ``PACKET_ADD_MEMBERSHIP`` / ``PACKET_MR_PROMISC``;
6. bind again with ``ETH_P_ALL``: capture (both directions) starts, already filtered.

Timestamps are nanoseconds (TPACKET_V3 headers carry ``tp_sec``/``tp_nsec``;
``SO_TIMESTAMPNS`` for the fallback). The wire length survives snap-length truncation
(``tp_len``, or ``tpacket_auxdata.tp_len``). Kernel drops come from ``PACKET_STATISTICS``.
VLAN tags the kernel moved out of the packet are put back, as libpcap does.

When the interface goes down or is removed the kernel reports ``ENETDOWN`` (or ``ENXIO``)
on the socket: the source delivers what it already has, then ends cleanly with an
:attr:`~packetcapture.backends.base.PacketSource.end_reason` saying so.
"""

from __future__ import annotations

import fcntl
import functools
import mmap
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from itertools import chain
from typing import TYPE_CHECKING, TypeVar

from packetcapture._lazylog import get_logger
from packetcapture.backends._errors import interface_gone, map_os_error, map_os_errors
from packetcapture.backends.base import (
    DEFAULT_SNAPLEN,
    CaptureBackend,
    Packet,
    PacketSource,
    RawBatch,
    SourceStats,
    check_linktype,
)
from packetcapture.errors import BackendUnavailableError

if TYPE_CHECKING:
    from packetcapture.bpf import BpfProgram

__all__ = ["AfPacketBackend", "AfPacketSource", "link_up", "linktype_for_hatype"]

logger = get_logger(__name__)

# <linux/if_packet.h>, <linux/if_ether.h>, <asm-generic/socket.h>
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_AUXDATA = 8
PACKET_VERSION = 10
TPACKET_V3 = 2
PACKET_OUTGOING = 4
ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
SIOCGIFINDEX = 0x8933
SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
ETH_P_8021Q = 0x8100
CLONE_NEWNET = 0x40000000

# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1:
# block_status (8), num_pkts (12), offset_to_first_pkt (16), blk_len (20), seq_num (24) ...
_BLOCK_STATUS = struct.Struct("<I")
_BLOCK_PKTS = struct.Struct("<II")
_BLOCK_SEQ = struct.Struct("<Q")
# struct tpacket3_hdr: tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len, tp_status,
# tp_mac, tp_net, hv1.tp_rxhash, hv1.tp_vlan_tci, hv1.tp_vlan_tpid
_TP3_HDR = struct.Struct("<IIIIIIHHIIH")
# Its first seven fields: all the fast read loop needs (unpacking fewer fields is cheaper).
_TP3_HEAD = struct.Struct("<IIIIIIH")
# A little-endian classic pcap record header: seconds, sub-second, captured and wire length.
_PCAP_RECORD = struct.Struct("<IIII")
# tp_next_offset, tp_snaplen, tp_status, tp_mac: what decides whether frames are alike.
_TP3_RUN = struct.Struct("<I8xI4xIH")
# Runs of at least this many alike frames are copied block-wise (_take_run); after a failed
# look for one, _take_each copies _SKIP_MIN frames, then twice as many after each failure.
_MIN_RUN = 16
_SKIP_MIN = 32
_SKIP_MAX = 1024
# Maps a byte of tp_status to its TP_STATUS_VLAN_VALID bit.
_VLAN_BIT = bytes(b & TP_STATUS_VLAN_VALID for b in range(256))
# The ring's headers are in host order; the run copy keeps their bytes as record headers.
_LITTLE = sys.byteorder == "little"
# See _to_microseconds.
_USEC_MUL = -(-(1 << 40) // 1000)
# See _alike: the header bytes alike frames share (tp_next_offset, tp_snaplen, tp_mac, tp_net).
_ALIKE_BYTES = (0, 1, 2, 3, 12, 13, 14, 15, 24, 25, 26, 27)
_ALIKE_SPAN = 28
# sockaddr_ll follows the 48-byte tpacket3_hdr; sll_pkttype is its byte 10.
_TP3_PKTTYPE_OFFSET = 48 + 10
# struct tpacket_auxdata: tp_status, tp_len, tp_snaplen, tp_mac, tp_net, tp_vlan_tci,
# tp_vlan_tpid
_AUXDATA = struct.Struct("=IIIHHHH")
_TIMESPEC = struct.Struct("=qq")
_REQ3 = struct.Struct("=7I")
_MREQ = struct.Struct("=iHH8s")
_STATS3 = struct.Struct("=III")

#: ARPHRD_* hardware type -> LINKTYPE_* (interfaces that deliver raw IP map to 101).
_HATYPE_LINKTYPE = {
    1: 1,  # ARPHRD_ETHER
    772: 1,  # ARPHRD_LOOPBACK: Linux loopback frames carry an Ethernet header
    768: 101,  # ARPHRD_TUNNEL (ipip, Calico's tunl0)
    776: 101,  # ARPHRD_SIT
    65534: 101,  # ARPHRD_NONE (tun, WireGuard)
}
_ARPHRD_LOOPBACK = 772

_T = TypeVar("_T")


def linktype_for_hatype(hatype: int) -> int | None:
    """LINKTYPE_* value of an interface with ARPHRD_* type ``hatype`` (None: unsupported)."""
    return _HATYPE_LINKTYPE.get(hatype)


def _netns_path(netns: str) -> str:
    return netns if "/" in netns else os.path.join("/var/run/netns", netns)


def _in_netns(netns: str | None, fn: Callable[[], _T]) -> _T:
    """Run ``fn`` in a thread that joined network namespace ``netns`` (a name or a path).

    Sockets keep the namespace they were created in, so a socket made in that thread
    captures there while the rest of the process stays where it is.
    """
    if netns is None:
        return fn()
    path = _netns_path(netns)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    result: list[_T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            import ctypes.util  # here: it imports a lot (shutil, subprocess) and few need it

            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({path}): {os.strerror(err)}")
            result.append(fn())
        except BaseException as exc:
            failure.append(exc)

    try:
        thread = threading.Thread(target=run, name=f"netns-{netns}")
        thread.start()
        thread.join()
    finally:
        os.close(fd)
    if failure:
        raise failure[0]
    return result[0]


def _ring_geometry(snaplen: int, buffer_size: int, block_size: int | None) -> tuple[int, int]:
    """Return (block size, block count): blocks hold a whole snaplen frame, page aligned."""
    page = mmap.PAGESIZE
    need = snaplen + 256  # block header, tpacket3_hdr, sockaddr_ll and alignment
    size = block_size or max(1 << 18, 1 << (need - 1).bit_length())
    if size % page or size < need:
        raise ValueError(f"block_size {size} must be a multiple of {page} and >= {need}")
    return size, max(buffer_size // size, 2)


class AfPacketSource(PacketSource):
    """A live capture socket (TPACKET_V3 ring, or ``recvmsg_into`` when ``ring=False``)."""

    def __init__(
        self,
        sock: socket.socket,
        interface: str,
        program: BpfProgram,
        *,
        linktype: int,
        snaplen: int,
        packet_limit: int | None,
        ring: bool,
        buffer_size: int,
        block_size: int | None,
        block_timeout_ms: int,
        promiscuous: bool,
        loopback: bool,
    ) -> None:
        super().__init__(interface, linktype=linktype, snaplen=snaplen, packet_limit=packet_limit)
        self._sock = sock
        self._ring = ring
        self._skip_outgoing = loopback  # lo shows each packet twice: as sent and received
        self._received = self._dropped = self._filtered = 0
        self._refilter_blocks = 0
        self._verdict: Callable[[bytes], int] | None = None
        self._mm: mmap.mmap | None = None
        self._block_index = 0
        self._block_pos = 0  # packets of the current block already delivered
        # Sequence number of the last block handed back: a block at _block_index with no
        # newer one is not open yet and still holds the packets of its last round.
        self._last_seq = 0
        self._gone: str | None = None  # why the interface went away, once it has
        self._deaf = False  # after stop_receiving: nothing new comes into the ring
        self._block_off = 0  # offset of the next packet in the current block
        self._block_size = 0
        self._block_nr = 0
        if ring:
            self._setup_ring(buffer_size, block_size, block_timeout_ms)
        else:
            with map_os_errors(interface, "enable auxdata and timestamps", "open"):
                sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                if buffer_size:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_size)
            self._buf = bytearray(snaplen)
            self._view = memoryview(self._buf)
            self._ancsize = socket.CMSG_SPACE(_AUXDATA.size) + socket.CMSG_SPACE(_TIMESPEC.size)
        if promiscuous:
            ifindex = self._ifindex()
            with map_os_errors(interface, "enable promiscuous mode", "open"):
                sock.setsockopt(
                    SOL_PACKET,
                    PACKET_ADD_MEMBERSHIP,
                    _MREQ.pack(ifindex, PACKET_MR_PROMISC, 0, b""),
                )
        with map_os_errors(interface, "bind", "open"):
            sock.bind((interface, ETH_P_ALL))
        logger.debug("%s: capturing (ring=%s, snaplen=%d)", interface, ring, snaplen)

    def _ifindex(self) -> int:
        # SIOCGIFINDEX through the socket, so it is looked up in the socket's namespace
        req = struct.pack("16si", self.interface.encode(), 0)
        index: int = struct.unpack("16si", fcntl.ioctl(self._sock, SIOCGIFINDEX, req))[1]
        return index

    def _setup_ring(self, buffer_size: int, block_size: int | None, timeout_ms: int) -> None:
        size, count = _ring_geometry(self.snaplen, buffer_size, block_size)
        frame = 2048 if size >= 2048 else size
        req = _REQ3.pack(size, count, frame, (size // frame) * count, timeout_ms, 0, 0)
        with map_os_errors(self.interface, "set up the TPACKET_V3 ring", "open"):
            self._sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            self._sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            self._mm = mmap.mmap(
                self._sock.fileno(), size * count, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
            )
        self._block_size, self._block_nr = size, count

    # -- reading -----------------------------------------------------------------------
    def _read(self, max_packets: int) -> list[Packet]:
        packets = (
            self._read_ring(max_packets) if self._mm is not None else self._read_recv(max_packets)
        )
        if not packets:
            self._check_error()
            if self._gone is not None or self._deaf:
                packets = self._read_open_block(max_packets)
                if not packets and self._gone is not None:
                    self._finish(self._gone)
        return packets

    def _check_error(self) -> None:
        """Pick up a pending socket error: the interface went away, or a real failure."""
        if self._gone is not None:
            return
        code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._on_error(OSError(code, os.strerror(code)))

    def _on_error(self, exc: OSError) -> None:
        if interface_gone(exc):
            # Not ended yet: the ring may still hold packets (see _read_open_block).
            self._gone = f"interface {self.interface} {self._gone_how()}"
            if self._mm is None:
                self._finish(self._gone)
            return
        raise map_os_error(exc, interface=self.interface, action="read", phase="capture")

    def _read_open_block(self, max_packets: int) -> list[Packet]:
        """Return packets of the block the kernel still holds, once no packet can come.

        The kernel hands a block over when it is full or its timeout expires; an interface
        that goes away, or a reject-all filter (:meth:`stop_receiving`), leaves the last one
        open with packets in it. No packet can arrive any more (the socket is unhooked from
        the device, or takes nothing), so they are read in place; the
        position is kept, so if the timeout hands the block over later nothing repeats.
        """
        mm = self._mm
        if mm is None:
            return []
        base = self._block_index * self._block_size
        if _BLOCK_STATUS.unpack_from(mm, base + 8)[0] & TP_STATUS_USER:
            return []  # handed over meanwhile: the normal read takes it
        if _BLOCK_SEQ.unpack_from(mm, base + 24)[0] <= self._last_seq:
            # Not opened since we handed it back (the kernel opens a block, numbering it,
            # only when a packet comes): its header still counts the packets of its last
            # round, already delivered. Seen when the ring was full as capture stopped.
            return []
        num, first = _BLOCK_PKTS.unpack_from(mm, base + 12)
        pos = self._block_pos
        take = min(num - pos, max_packets)
        if take <= 0:
            return []
        off = self._block_off if pos else base + first
        out: list[Packet] = []
        off = self._take_careful(mm, off, take, out)
        self._block_pos, self._block_off = pos + take, off
        return out

    def _gone_how(self) -> str:
        # Python names the bound interface through SIOCGIFNAME: empty once it is unregistered
        try:
            name = self._sock.getsockname()[0]
        except OSError:
            name = ""
        return "went down" if name else "was removed"

    def _read_ring(self, max_packets: int) -> list[Packet]:
        mm = self._mm
        assert mm is not None
        out: list[Packet] = []
        size = self._block_size
        while len(out) < max_packets:
            base = self._block_index * size
            if not _BLOCK_STATUS.unpack_from(mm, base + 8)[0] & TP_STATUS_USER:
                break
            num, first = _BLOCK_PKTS.unpack_from(mm, base + 12)
            pos = self._block_pos
            off = self._block_off if pos else base + first
            take = min(num - pos, max_packets - len(out))
            if self._skip_outgoing or self._refilter_blocks:
                off = self._take_careful(mm, off, take, out)
            else:
                off = self._take(mm, off, take, out)
            pos += take
            if pos >= num:
                self._last_seq = _BLOCK_SEQ.unpack_from(mm, base + 24)[0]
                _BLOCK_STATUS.pack_into(mm, base + 8, 0)  # give the block back to the kernel
                self._block_index = (self._block_index + 1) % self._block_nr
                self._block_pos = 0
                if self._refilter_blocks:
                    self._refilter_blocks -= 1
            else:
                self._block_pos, self._block_off = pos, off
        return out

    def read_raw(self, max_packets: int, *, nanosecond: bool, snaplen: int) -> RawBatch | None:
        """Read like :meth:`read`, but as the classic pcap records a writer would store.

        The ring's packets become little-endian records (timestamps in nanoseconds if
        ``nanosecond``, else microseconds) without building a tuple per packet (runs of
        frames laid out alike are copied block-wise, see :func:`_take_raw`); a packet the
        records cannot hold as they are (a VLAN tag to put back, longer than ``snaplen`` or
        the source's snap length) ends the raw part of the batch: ``rest`` packets are then
        read with :meth:`read`. ``None`` (nothing consumed) without the ring, on loopback
        (its outgoing copies are skipped one by one), after a program swap, or when the
        first packet needs the normal path. See :meth:`PacketSource.read_raw`.
        """
        self._check_open()
        if self._end_reason is not None or max_packets <= 0:
            return b"", 0, 0
        if self._mm is None or self._skip_outgoing or self._refilter_blocks:
            return None
        max_packets = self._budget(max_packets)
        if max_packets <= 0:
            return b"", 0, 0
        parts: list[bytes] = []
        count, odd = self._read_ring_raw(max_packets, parts, nanosecond, min(snaplen, self.snaplen))
        if odd and not count:
            return None
        if not count:
            self._check_error()
            if self._gone is not None or self._deaf:
                return None  # read() takes what the open block holds (and ends if gone)
        self._count_delivered(count)
        return b"".join(parts), count, (max_packets - count if odd else 0)

    def _read_ring_raw(
        self, max_packets: int, parts: list[bytes], nanosecond: bool, cut: int
    ) -> tuple[int, bool]:
        """:meth:`_read_ring` writing records into ``parts``; return (count, stopped odd)."""
        mm = self._mm
        assert mm is not None
        size = self._block_size
        count = 0
        while count < max_packets:
            base = self._block_index * size
            if not _BLOCK_STATUS.unpack_from(mm, base + 8)[0] & TP_STATUS_USER:
                break
            num, first = _BLOCK_PKTS.unpack_from(mm, base + 12)
            pos = self._block_pos
            off = self._block_off if pos else base + first
            take = min(num - pos, max_packets - count)
            off, took = _take_raw(
                mm, off, take, parts, nanosecond=nanosecond, cut=cut, end=base + size
            )
            count += took
            pos += took
            if pos >= num:
                self._last_seq = _BLOCK_SEQ.unpack_from(mm, base + 24)[0]
                _BLOCK_STATUS.pack_into(mm, base + 8, 0)  # give the block back to the kernel
                self._block_index = (self._block_index + 1) % self._block_nr
                self._block_pos = 0
            else:
                self._block_pos, self._block_off = pos, off
            if took < take:
                return count, True
        return count, False

    def _take(self, mm: mmap.mmap, off: int, take: int, out: list[Packet]) -> int:
        """Append ``take`` packets of a block from ``off`` on; return the next offset.

        The hot loop of live capture (a Python-level cost per packet): it unpacks only the
        header fields it needs and leaves the rare cases (a VLAN tag to put back, a packet
        longer than the snap length) to :meth:`_take_careful`.
        """
        append = out.append
        head = _TP3_HEAD.unpack_from
        snaplen = self.snaplen
        for _ in range(take):
            nxt, sec, nsec, snap, wire, status, mac = head(mm, off)
            if status & TP_STATUS_VLAN_VALID or snap > snaplen:
                self._take_careful(mm, off, 1, out)
            else:
                start = off + mac
                append((sec * 1_000_000_000 + nsec, mm[start : start + snap], wire))
            off += nxt
        return off

    def _take_careful(self, mm: mmap.mmap, off: int, take: int, out: list[Packet]) -> int:
        """Like :meth:`_take`, with every case handled.

        Loopback's outgoing copies skipped, VLAN tags put back, the snap length cut, and
        packets filtered again after a program swap.
        """
        append = out.append
        unpack = _TP3_HDR.unpack_from
        snaplen = self.snaplen
        skip_outgoing = self._skip_outgoing
        verdict = self._verdict if self._refilter_blocks else None
        for _ in range(take):
            nxt, sec, nsec, snap, wire, status, mac, _net, _hash, tci, tpid = unpack(mm, off)
            start = off + mac
            if skip_outgoing and mm[off + _TP3_PKTTYPE_OFFSET] == PACKET_OUTGOING:
                self._received -= 1  # the kernel counted this copy: received = delivered
                off += nxt
                continue
            snap = min(snap, snaplen)
            data = mm[start : start + snap]
            if status & TP_STATUS_VLAN_VALID:
                data, wire = _add_vlan(data, wire, tci, tpid, status)
                data = data[:snaplen]
            if verdict is not None:
                keep = verdict(data)
                if not keep:
                    self._filtered += 1
                    self._received -= 1
                    off += nxt
                    continue
                data = data[:keep]
            append((sec * 1_000_000_000 + nsec, data, wire))
            off += nxt
        return off

    def _read_recv(self, max_packets: int) -> list[Packet]:
        out: list[Packet] = []
        sock, view, ancsize, snaplen = self._sock, self._view, self._ancsize, self.snaplen
        flags = socket.MSG_DONTWAIT | socket.MSG_TRUNC
        while len(out) < max_packets:
            try:
                nbytes, ancdata, _flags, addr = sock.recvmsg_into([view], ancsize, flags)
            except BlockingIOError:
                break
            except OSError as exc:
                if out and interface_gone(exc):
                    break  # deliver what we have; the error is seen again on the next read
                self._on_error(exc)
                break
            if self._skip_outgoing and addr[2] == PACKET_OUTGOING:
                self._received -= 1  # the kernel counted this copy: received = delivered
                continue
            ts = 0
            wire = nbytes
            status = tci = tpid = 0
            for level, kind, value in ancdata:
                if level == SOL_PACKET and kind == PACKET_AUXDATA:
                    status, wire, _snap, _mac, _net, tci, tpid = _AUXDATA.unpack_from(value)
                elif level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack_from(value)
                    ts = sec * 1_000_000_000 + nsec
            data = bytes(view[: min(nbytes, snaplen)])
            if status & TP_STATUS_VLAN_VALID:
                data, wire = _add_vlan(data, wire, tci, tpid, status)
                data = data[:snaplen]
            out.append((ts, data, wire))
        return out

    # -- the rest ----------------------------------------------------------------------
    def _fileno(self) -> int:
        return self._sock.fileno()

    def _set_program(self, program: BpfProgram) -> None:
        from packetcapture.bpf import attach

        with map_os_errors(self.interface, "attach the filter", "capture"):
            attach(self._sock, program)
        if self._mm is not None:
            # Blocks already in the ring (ready or being filled) may hold packets the old
            # program accepted: filter them again in user space (as libpcap does).
            self._verdict = program.executor()
            self._refilter_blocks = self._block_nr + 1

    @property
    def link_lost(self) -> bool:
        """True once the interface went down or was removed (see the module docstring)."""
        return self._gone is not None

    def _stop_receiving(self) -> None:
        from packetcapture.bpf import BpfProgram
        from packetcapture.bpf._attach import _set

        with map_os_errors(self.interface, "attach the filter", "capture"):
            _set(self._sock, BpfProgram.reject_all(self.linktype, self.snaplen))
        # A packet the old filter passed an instant ago may still be being copied in.
        time.sleep(0.002)
        self._deaf = True

    def _poll_kernel_stats(self) -> None:
        if self._sock.fileno() < 0:
            return
        try:
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS3.size)
        except OSError:
            return
        packets, drops = struct.unpack_from("=II", raw)
        self._received += packets  # the kernel resets its counters on every read
        self._dropped += drops

    def _stats(self) -> SourceStats:
        if not self.closed:
            self._poll_kernel_stats()
        return SourceStats(self._received, self._dropped, self._filtered)

    def _close(self) -> None:
        self._poll_kernel_stats()
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        self._sock.close()


def link_up(interface: str) -> bool:
    """Return whether ``interface`` exists in this network namespace and is up (IFF_UP)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            req = struct.pack("16sH", interface.encode()[:15], 0)
            flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, req)[:18])[1]
    except (OSError, UnicodeEncodeError):
        return False
    return bool(flags & IFF_UP)


def _take_raw(
    mm: mmap.mmap,
    off: int,
    take: int,
    parts: list[bytes],
    *,
    nanosecond: bool,
    cut: int,
    end: int,
) -> tuple[int, int]:
    """Append up to ``take`` packets of a block (ending at ``end``) as pcap records to ``parts``.

    Stops before a packet with a VLAN tag to put back or longer than ``cut``. Returns the
    next offset and the packets taken. The raw lane's hot loop: runs of frames laid out
    alike (the common case: a flow of equal-sized packets) are copied block-wise by
    :func:`_take_run`; the others one by one by :func:`_take_each`. After a failed look
    for a run, the next look waits longer (mixed traffic pays little for looking).
    """
    taken = 0
    skip = _SKIP_MIN
    with memoryview(mm) as mv:
        while taken < take:
            off, n = _take_run(mm, mv, off, take - taken, parts, end=end, nano=nanosecond, cut=cut)
            if n:
                taken += n
                skip = _SKIP_MIN
                continue
            k = min(skip, take - taken)
            off, n = _take_each(mm, off, k, parts, nano=nanosecond, cut=cut)
            taken += n
            if n < k:
                break  # an odd packet: the caller reads it with read()
            skip = min(2 * skip, _SKIP_MAX)
    return off, taken


def _take_each(
    mm: mmap.mmap, off: int, take: int, parts: list[bytes], *, nano: bool, cut: int
) -> tuple[int, int]:
    """:func:`_take_raw` one packet at a time (the general case)."""
    append = parts.append
    head = _TP3_HEAD.unpack_from
    record = _PCAP_RECORD.pack
    for i in range(take):
        nxt, sec, nsec, snap, wire, status, mac = head(mm, off)
        if status & TP_STATUS_VLAN_VALID or snap > cut:
            return off, i
        start = off + mac
        # tpacket3_hdr bytes 4-20 (tp_sec, tp_nsec, tp_snaplen, tp_len) are a nanosecond
        # record header as they are.
        append(mm[off + 4 : off + 20] if nano else record(sec, nsec // 1000, snap, wire))
        append(mm[start : start + snap])
        off += nxt
    return off, take


def _take_run(
    mm: mmap.mmap,
    mv: memoryview,
    off: int,
    most: int,
    parts: list[bytes],
    *,
    end: int,
    nano: bool,
    cut: int,
) -> tuple[int, int]:
    """Copy the run of frames laid out like the one at ``off``; return (next offset, frames).

    Frames alike: the same ``tp_next_offset``, ``tp_snaplen`` and ``tp_mac`` (so one
    ``struct`` walks them at a fixed stride), none with a VLAN tag, at most ``cut`` bytes.
    Each condition is checked on a column of the ring's bytes (C-level passes). A run
    shorter than ``_MIN_RUN`` frames is left to :func:`_take_each` (0 frames taken).
    Microsecond timestamps are written over ``tp_nsec`` in the ring (the block is ours
    until it is handed back, and these frames are delivered now), which turns bytes 4-20
    of each frame into its record header. ``mv`` is a view of ``mm``.
    """
    stride, snap, status, mac = _TP3_RUN.unpack_from(mm, off)
    if (
        not _LITTLE
        or stride < mac + snap
        or stride % 4
        or mac < 48  # never: the data follows the 48-byte tpacket3_hdr
        or status & TP_STATUS_VLAN_VALID
        or snap > cut
    ):
        return off, 0
    k = min(most, (end - off) // stride)
    if k < _MIN_RUN:
        return off, 0
    # Mixed traffic fails here, cheaply: the next frame, or the last one a shortest run
    # would have (if an earlier one differs, whatever is there is unlikely to match).
    head = stride, snap, mac
    unpack = _TP3_RUN.unpack_from
    for i in (1, _MIN_RUN - 1):
        nxt_i, snap_i, status_i, mac_i = unpack(mm, off + i * stride)
        if (nxt_i, snap_i, mac_i) != head or status_i & TP_STATUS_VLAN_VALID:
            return off, 0
    n = _alike(mm, off, min(k, _MIN_RUN * 4), stride)
    if n == min(k, _MIN_RUN * 4) < k:
        n = _alike(mm, off, k, stride)
    if n < _MIN_RUN:
        return off, 0
    if not nano:
        _to_microseconds(mm, off + 8, n, stride)
    with mv[off : off + n * stride] as region:
        # _MIN_RUN frames per struct pass (fewer tuples), then the rest one by one
        whole = n - n % _MIN_RUN
        rows = chain(
            _run_struct(mac, snap, stride, _MIN_RUN).iter_unpack(region[: whole * stride]),
            _run_struct(mac, snap, stride, 1).iter_unpack(region[whole * stride :]),
        )
        parts.append(b"".join(chain.from_iterable(rows)))
    return off + n * stride, n


def _alike(mm: mmap.mmap, off: int, k: int, stride: int) -> int:
    """Count the frames from ``off`` (at most ``k``, ``stride`` bytes apart) laid out alike.

    Alike: each byte of ``tp_next_offset``, ``tp_snaplen``, ``tp_mac`` and ``tp_net`` as in
    the first frame, and no VLAN bit in ``tp_status``. Each byte is a column of the ring
    (``mm[start:stop:stride]``, a C loop, far cheaper than a strided memoryview), and the
    frames before the first that differs are those ``lstrip`` strips.
    """
    n = k
    first = mm[off : off + _ALIKE_SPAN]
    for pos in _ALIKE_BYTES:
        column = mm[off + pos : off + n * stride : stride]
        byte = first[pos : pos + 1]
        if column != byte * n:  # memcmp; lstrip (slower) only to find where
            n -= len(column.lstrip(byte))
            if not n:
                return 0
    # the low byte of tp_status, reduced to its VLAN bit
    vlan = mm[off + 20 : off + n * stride : stride].translate(_VLAN_BIT)
    return n - len(vlan.lstrip(b"\0")) if vlan != bytes(n) else n


def _to_microseconds(buf: mmap.mmap | bytearray, start: int, count: int, step: int) -> None:
    """Divide ``count`` 32-bit little-endian nanosecond counts by 1000 (truncating), in place.

    They are at ``start``, ``start + step``, ... of ``buf``. No Python step per value: their
    bytes go into 64-bit lanes of one big integer (byte columns, C loops), which is
    multiplied by ceil(2**40 / 1000) and shifted right by 40 bits. A product stays below
    2**60 (values are under 10**9), so lanes do not overlap, and for such values
    ``v * _USEC_MUL >> 40 == v // 1000`` exactly. The quotients need 20 bits: a lane's low
    three bytes after the shift are its quotient (what the shift brought down from the
    next lane lands at bit 24 and up), and the fourth byte is 0.
    """
    stop = start + count * step
    lanes = bytearray(8 * count)
    for j in range(4):
        lanes[j::8] = buf[start + j : stop : step]
    wide = (int.from_bytes(lanes, "little") * _USEC_MUL >> 40).to_bytes(8 * count, "little")
    for j in range(3):
        buf[start + j : stop : step] = wide[j::8]
    buf[start + 3 : stop : step] = bytes(count)


@functools.lru_cache(maxsize=64)
def _run_struct(mac: int, snap: int, stride: int, frames: int) -> struct.Struct:
    """``frames`` frames of a run: each one's record header (bytes 4-20) and data."""
    return struct.Struct(f"4x16s{mac - 20}x{snap}s{stride - mac - snap}x" * frames)


def _add_vlan(data: bytes, wire: int, tci: int, tpid: int, status: int) -> tuple[bytes, int]:
    """Put back the 802.1Q tag the kernel moved into the packet's metadata."""
    if len(data) < 12:
        return data, wire
    proto = tpid if status & TP_STATUS_VLAN_TPID_VALID else ETH_P_8021Q
    return data[:12] + struct.pack("!HH", proto, tci) + data[12:], wire + 4


class AfPacketBackend(CaptureBackend):
    """Live capture with AF_PACKET sockets (Linux; needs root or CAP_NET_RAW).

    Options: ``ring`` (default True: TPACKET_V3 mmap ring; False: ``recvmsg_into``),
    ``buffer_size`` (ring or socket buffer bytes, default 8 MiB), ``block_size`` (ring
    block bytes, default the smallest power of two >= 256 KiB that holds a whole
    ``snaplen`` packet: 512 KiB for the default snaplen, so 16 blocks),
    ``block_timeout_ms`` (how long the kernel waits before handing over a partly filled
    block: the longest a packet waits before the descriptor becomes readable, default
    100; every block handed over takes a ring slot however few packets it holds),
    ``promiscuous`` (default False), ``netns`` (name under ``/var/run/netns`` or a path:
    capture in that network namespace).
    """

    name = "afpacket"

    def __init__(
        self,
        *,
        ring: bool = True,
        buffer_size: int = 8 << 20,
        block_size: int | None = None,
        block_timeout_ms: int = 100,
        promiscuous: bool = False,
        netns: str | None = None,
    ) -> None:
        self.ring = ring
        self.buffer_size = buffer_size
        self.block_size = block_size
        self.block_timeout_ms = block_timeout_ms
        self.promiscuous = promiscuous
        self.netns = netns

    @classmethod
    def unusable_reason(cls) -> str | None:
        """Why live capture is impossible here (not Linux, no privilege), or None."""
        if not sys.platform.startswith("linux") or not hasattr(socket, "AF_PACKET"):
            return "AF_PACKET sockets need Linux"
        try:
            socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
        except PermissionError:
            return "permission denied: needs root or CAP_NET_RAW"
        except OSError as exc:
            return f"cannot create an AF_PACKET socket: {exc.strerror or exc}"
        return None

    def open(
        self,
        interface: str,
        program: BpfProgram,
        *,
        snaplen: int = DEFAULT_SNAPLEN,
        packet_limit: int | None = None,
    ) -> AfPacketSource:
        """Start capturing on ``interface`` (see :meth:`CaptureBackend.open`)."""
        if not interface or len(interface.encode()) > 15 or "/" in interface:
            raise BackendUnavailableError(f"{interface!r}: not a valid interface name")
        if self.netns is not None and not os.path.exists(_netns_path(self.netns)):
            raise BackendUnavailableError(f"{interface}: no network namespace {self.netns!r}")
        with map_os_errors(interface, "create an AF_PACKET socket", "open"):
            sock = _in_netns(
                self.netns, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            )
        try:
            with map_os_errors(interface, "look up the interface", "open"):
                sock.bind((interface, 0))  # protocol 0: nothing is received yet
                hatype = sock.getsockname()[3]
            linktype = linktype_for_hatype(hatype)
            if linktype is None:
                raise BackendUnavailableError(
                    f"{interface}: unsupported hardware type {hatype} (ARPHRD_*)"
                )
            check_linktype(interface, linktype, program)
            from packetcapture.bpf import attach

            with map_os_errors(interface, "attach the filter", "open"):
                attach(sock, program)
            return AfPacketSource(
                sock,
                interface,
                program,
                linktype=linktype,
                snaplen=snaplen,
                packet_limit=packet_limit,
                ring=self.ring,
                buffer_size=self.buffer_size,
                block_size=self.block_size,
                block_timeout_ms=self.block_timeout_ms,
                promiscuous=self.promiscuous,
                loopback=hatype == _ARPHRD_LOOPBACK,
            )
        except BaseException:
            sock.close()
            raise
