"""Attach a program to a socket (``SO_ATTACH_FILTER``); the I/O edge of ``bpf``."""

from __future__ import annotations

from packetcapture.bpf._program import BpfProgram

# Imported by the functions: socket costs start-up to every command that compiles a filter,
# and only a live capture attaches one. Type checkers see the real import.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

__all__ = ["SO_ATTACH_FILTER", "SO_DETACH_FILTER", "attach", "detach"]

SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27


def _set(sock: socket.socket, program: BpfProgram) -> None:
    import array
    import socket
    import struct

    # The instructions in a buffer whose address array tells (ctypes would do the same and
    # cost a live capture's start-up 3 ms to import; socket imports array anyway).
    buf = array.array("B", program.pack())
    address = buf.buffer_info()[0]
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }, native alignment.
    fprog = struct.pack("@HP", len(program), address)
    # The kernel copies the program during the call; buf only needs to outlive it.
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def attach(sock: socket.socket, program: BpfProgram) -> None:
    """Attach ``program`` to ``sock`` so that only packets it accepts are queued.

    Packets queued before the call were not filtered, so first a reject-all program is
    attached, the queue is drained with non-blocking reads, and then ``program`` replaces
    it. Raises ``OSError`` if the kernel refuses the program.
    """
    _set(sock, BpfProgram.reject_all(program.linktype, program.snaplen))
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        while True:
            try:
                sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
    finally:
        sock.settimeout(timeout)
    _set(sock, program)


def detach(sock: socket.socket) -> None:
    """Remove the filter attached to ``sock`` (``SO_DETACH_FILTER``)."""
    import socket

    sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
