"""A conformance suite every capture backend must pass: :func:`check_backend`.

The suite needs a way to make known frames appear on an interface, which differs per
backend (inject them, write them to a file before opening, send them on a veth). A
*factory* does that: given the frames, it returns a :class:`BackendHarness` holding the
backend, the interface name, a ``send`` callable (called after the source is opened) and
an ``end`` callable that makes the interface go away (``None`` when the source ends by
itself after the frames, as replay does). The suite calls the factory once per check.

Example (the memory backend)::

    def factory(frames):
        backend = MemoryBackend()
        return BackendHarness(
            backend, "eth0",
            send=lambda: [backend.inject("eth0", f) for f in frames],
            end=lambda: backend.end("eth0"),
        )

    check_backend(factory)
"""

from __future__ import annotations

import selectors
import struct
import time
from collections.abc import Callable, Sequence

import attrs

from packetcapture.backends.base import CaptureBackend, LinktypeMismatchError, Packet, PacketSource
from packetcapture.errors import BackendClosedError

__all__ = ["BackendFactory", "BackendHarness", "check_backend", "conformance_frames"]


def _nothing() -> None:
    return None


@attrs.frozen
class BackendHarness:
    """One backend ready to capture ``interface``, and the means to drive it.

    ``send`` makes the frames appear (called after ``open``); ``end`` ends the interface
    (``None``: the source ends by itself once the frames were read); ``cleanup`` releases
    whatever the factory made (called after each check, even when it failed).
    """

    backend: CaptureBackend
    interface: str
    send: Callable[[], object] = _nothing
    end: Callable[[], object] | None = None
    cleanup: Callable[[], object] = _nothing


#: Builds a harness for the given frames.
BackendFactory = Callable[[Sequence[bytes]], BackendHarness]

_SRC_MAC = bytes.fromhex("020000000002")
_DST_MAC = bytes.fromhex("020000000001")


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _ipv4(proto: int, payload: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
        bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1]),
    )  # fmt: skip
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return b"\x08\x00" + header + payload


def _ipv6(proto: int, payload: bytes) -> bytes:
    src = bytes.fromhex("fd000000000000000000000000000002")
    dst = bytes.fromhex("fd000000000000000000000000000001")
    return (
        b"\x86\xdd" + struct.pack("!IHBB", 6 << 28, len(payload), proto, 64) + src + dst + payload
    )


def _udp(sport: int, dport: int, body: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(body), 0) + body


def _tcp(sport: int, dport: int) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0)


def conformance_frames() -> list[bytes]:
    """Return the frames the suite sends: UDP, TCP, ICMP over IPv4 and IPv6, ARP, a big one."""
    eth = _DST_MAC + _SRC_MAC
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + _SRC_MAC + bytes([10, 0, 0, 2])
    arp += b"\0" * 6 + bytes([10, 0, 0, 1])
    frames = [
        eth + _ipv4(17, _udp(40000, 53, b"conformance-udp4")),
        eth + _ipv4(6, _tcp(40001, 80)),
        eth + _ipv4(1, struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping"),
        eth + _ipv6(17, _udp(40002, 5353, b"conformance-udp6")),
        eth + _ipv6(6, _tcp(40003, 443)),
        b"\xff" * 6 + _SRC_MAC + b"\x08\x06" + arp + b"\0" * 18,
        eth + _ipv4(17, _udp(40004, 9999, bytes(range(256)) * 5)),
    ]
    return frames


def _is_udp(frame: bytes) -> bool:
    ethertype = frame[12:14]
    if ethertype == b"\x08\x00":
        return frame[23] == 17
    return ethertype == b"\x86\xdd" and frame[20] == 17


def _collect(source: PacketSource, want: int, timeout: float) -> list[Packet]:
    """Read through a selector until ``want`` packets came, the source ended, or timeout."""
    got: list[Packet] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(source, selectors.EVENT_READ)
        while len(got) < want and not source.exhausted:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sel.select(min(left, 0.05))
            got.extend(source.read())
    return got


class _Check:
    def __init__(self, factory: BackendFactory, timeout: float, settle: float) -> None:
        self.factory = factory
        self.timeout = timeout
        self.settle = settle
        self.frames = conformance_frames()
        from packetcapture.bpf import BpfProgram, compile_filters
        from packetcapture.model import PacketCaptureRule

        self.accept = BpfProgram.accept_all()
        self.reject = BpfProgram.reject_all()
        self.udp_only = compile_filters([PacketCaptureRule(protocol="UDP")])

    def run(self, check: Callable[[BackendHarness], None]) -> None:
        harness = self.factory(self.frames)
        try:
            check(harness)
        except AssertionError as exc:
            raise AssertionError(f"{check.__name__}: {exc}") from exc
        finally:
            harness.cleanup()

    def _expect(self, got: list[Packet], frames: list[bytes], snaplen: int | None = None) -> None:
        cut = [f[:snaplen] if snaplen else f for f in frames]
        data = [p[1] for p in got]
        sizes = [len(d) for d in data]
        assert data == cut, f"expected frames of {[len(f) for f in cut]} bytes, got {sizes}"

        assert [p[2] for p in got] == [len(f) for f in frames], "wire lengths differ"
        stamps = [p[0] for p in got]
        assert all(isinstance(t, int) and t > 0 for t in stamps), "timestamps must be int ns"
        assert stamps == sorted(stamps), "timestamps must not go backwards"

    def all_frames(self, h: BackendHarness) -> None:
        with h.backend.open(h.interface, self.accept) as source:
            assert source.interface == h.interface
            assert source.linktype == 1
            assert source.snaplen == 262144
            assert source.packet_limit is None
            assert not source.exhausted and not source.closed
            if h.end is not None:
                assert source.read() == [], "read before send must return []"
            h.send()
            got = _collect(source, len(self.frames), self.timeout)
            self._expect(got, self.frames)
            stats = source.stats()
            assert stats.received == len(self.frames), f"stats {stats}"
            assert stats.dropped == 0, f"stats {stats}"

    def filtered(self, h: BackendHarness) -> None:
        with h.backend.open(h.interface, self.udp_only) as source:
            h.send()
            want = [f for f in self.frames if _is_udp(f)]
            got = _collect(source, len(want), self.timeout)
            if h.end is not None:
                time.sleep(self.settle)
                got.extend(source.read())
            self._expect(got, want)
            stats = source.stats()
            assert stats.received == len(want), f"stats {stats}"
            assert stats.filtered in (0, len(self.frames) - len(want)), f"stats {stats}"

    def snaplen(self, h: BackendHarness) -> None:
        with h.backend.open(h.interface, self.accept, snaplen=64) as source:
            assert source.snaplen == 64
            h.send()
            got = _collect(source, len(self.frames), self.timeout)
            self._expect(got, self.frames, snaplen=64)

    def packet_limit(self, h: BackendHarness) -> None:
        with h.backend.open(h.interface, self.accept, packet_limit=2) as source:
            assert source.packet_limit == 2
            h.send()
            got = _collect(source, 3, self.timeout)
            self._expect(got, self.frames[:2])
            assert source.exhausted, "source must end at the packet limit"
            assert source.end_reason and "limit" in source.end_reason, source.end_reason
            assert source.read() == []

    def set_program(self, h: BackendHarness) -> None:
        from packetcapture.bpf import BpfProgram

        with h.backend.open(h.interface, self.reject) as source:
            try:
                source.set_program(BpfProgram.accept_all(linktype=101))
            except LinktypeMismatchError:
                pass
            else:
                raise AssertionError("set_program with another link type must raise")
            source.set_program(self.udp_only)
            source.set_program(self.accept)
            h.send()
            got = _collect(source, len(self.frames), self.timeout)
            self._expect(got, self.frames)

    def end(self, h: BackendHarness) -> None:
        with h.backend.open(h.interface, self.accept) as source:
            h.send()
            got = _collect(source, len(self.frames), self.timeout)
            self._expect(got, self.frames)
            if h.end is not None:
                assert not source.exhausted
                h.end()
            with selectors.DefaultSelector() as sel:
                sel.register(source.fileno(), selectors.EVENT_READ)
                deadline = time.monotonic() + self.timeout
                while not source.exhausted and time.monotonic() < deadline:
                    assert sel.select(self.timeout), "descriptor must wake up at the end"
                    assert source.read() == [], "no packet after the end"
            assert source.exhausted, "source must end cleanly"
            assert source.end_reason, "an ended source says why"
            assert source.read() == []
            assert not source.closed

    def close(self, h: BackendHarness) -> None:
        source = h.backend.open(h.interface, self.accept)
        with source:
            pass
        assert source.closed
        source.close()  # idempotent
        for call in (source.read, source.fileno, lambda: source.set_program(self.accept)):
            try:
                call()
            except BackendClosedError:
                pass
            else:
                raise AssertionError("use after close must raise BackendClosedError")
        source.stats()  # still allowed

    def linktype_mismatch(self, h: BackendHarness) -> None:
        from packetcapture.bpf import BpfProgram

        try:
            source = h.backend.open(h.interface, BpfProgram.accept_all(linktype=101))
        except LinktypeMismatchError:
            return
        source.close()
        raise AssertionError("a program for another link type must be refused")


def check_backend(
    backend_factory: BackendFactory, *, timeout: float = 5.0, settle: float = 0.2
) -> None:
    """Run every conformance check against the backend the factory builds.

    ``timeout`` bounds each wait for packets; ``settle`` is how long to wait for packets
    that must *not* arrive (live backends). Raises ``AssertionError`` naming the failed
    check.
    """
    c = _Check(backend_factory, timeout, settle)
    for check in (
        c.all_frames,
        c.filtered,
        c.snaplen,
        c.packet_limit,
        c.set_program,
        c.end,
        c.close,
        c.linktype_mismatch,
    ):
        c.run(check)
