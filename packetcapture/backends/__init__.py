"""Capture backends: live AF_PACKET, pcap replay and in-memory, behind one interface.

See :mod:`packetcapture.backends.base` for the interface and how a source ends, and
``docs/backends.md`` for a guide (including writing your own backend).
"""

from packetcapture.backends.base import (
    DEFAULT_READ_BATCH,
    DEFAULT_SNAPLEN,
    ENTRY_POINT_GROUP,
    BackendInfo,
    CaptureBackend,
    LinktypeMismatchError,
    Packet,
    PacketSource,
    RawBatch,
    SourceStats,
    available_backends,
    get_backend,
    register_backend,
    unregister_backend,
)

# The live and memory backends are imported on first use (PEP 562): `packetcapture run
# --replay` needs neither socket nor ctypes. Type checkers see the real imports.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from packetcapture.backends.afpacket import AfPacketBackend, AfPacketSource
    from packetcapture.backends.memory import MemoryBackend, MemorySource

__all__ = [
    "DEFAULT_READ_BATCH",
    "DEFAULT_SNAPLEN",
    "ENTRY_POINT_GROUP",
    "AfPacketBackend",
    "AfPacketSource",
    "BackendInfo",
    "CaptureBackend",
    "LinktypeMismatchError",
    "MemoryBackend",
    "MemorySource",
    "Packet",
    "PacketSource",
    "RawBatch",
    "SourceStats",
    "available_backends",
    "get_backend",
    "register_backend",
    "unregister_backend",
]

_LAZY = {
    "AfPacketBackend": "packetcapture.backends.afpacket",
    "AfPacketSource": "packetcapture.backends.afpacket",
    "MemoryBackend": "packetcapture.backends.memory",
    "MemorySource": "packetcapture.backends.memory",
}

if not TYPE_CHECKING:  # hidden from type checkers: unknown names stay type errors

    def __getattr__(name: str) -> object:
        """Import the live or memory backend's classes on first access and keep them."""
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups no longer reach __getattr__
        return value

    def __dir__() -> list[str]:
        """List the lazily imported names too."""
        return sorted(set(globals()) | set(__all__))


del TYPE_CHECKING
