"""The server side of RFC 6455 WebSockets, just what the exec endpoint needs.

Handshake (``Sec-WebSocket-Accept``), masked client frames, unmasked server frames, binary and
text data, ping/pong and the close handshake. Fragmented client messages are reassembled.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import struct
import threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value answering a client's ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


class ConnectionClosedError(Exception):
    """The peer went away or sent a close frame."""


class WebSocket:
    """One accepted server-side WebSocket over a connected socket (thread-safe sends)."""

    def __init__(self, sock: socket.socket, rfile: object) -> None:
        self._sock = sock
        self._rfile = rfile
        self._send_lock = threading.Lock()
        self.closed = False

    def _read_exact(self, n: int) -> bytes:
        data = self._rfile.read(n)  # type: ignore[attr-defined]
        if data is None or len(data) < n:
            raise ConnectionClosedError("connection closed mid-frame")
        return bytes(data)

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytearray([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header.append(n)
        elif n < 1 << 16:
            header.append(126)
            header += struct.pack("!H", n)
        else:
            header.append(127)
            header += struct.pack("!Q", n)
        with self._send_lock:
            if self.closed:
                raise ConnectionClosedError("websocket closed")
            try:
                self._sock.sendall(bytes(header) + payload)
            except OSError as exc:
                self.closed = True
                raise ConnectionClosedError(str(exc)) from exc

    def send_binary(self, payload: bytes) -> None:
        """Send one binary message."""
        self._send_frame(OP_BINARY, payload)

    def recv(self) -> tuple[int, bytes]:
        """Receive the next data message as ``(opcode, payload)``; answers pings itself.

        Raises :class:`ConnectionClosedError` on a close frame or a broken connection.
        """
        message = bytearray()
        message_op = None
        while True:
            b1, b2 = self._read_exact(2)
            fin, opcode = b1 & 0x80, b1 & 0x0F
            length = b2 & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._read_exact(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._read_exact(8))
            mask = self._read_exact(4) if b2 & 0x80 else b""
            payload = self._read_exact(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == OP_CLOSE:
                self.close()
                raise ConnectionClosedError("close frame received")
            if opcode == OP_PING:
                self._send_frame(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode != OP_CONT:
                message_op = opcode
            message += payload
            if fin:
                return (message_op or OP_BINARY), bytes(message)

    def close(self, code: int = 1000) -> None:
        """Send a close frame (once); the caller closes the socket."""
        with contextlib.suppress(ConnectionClosedError):
            self._send_frame(OP_CLOSE, struct.pack("!H", code))
        self.closed = True
