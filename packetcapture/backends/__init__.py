"""Capture backends: live AF_PACKET, pcap replay and in-memory, behind one interface.

See :mod:`packetcapture.backends.base` for the interface and how a source ends, and
``docs/backends.md`` for a guide (including writing your own backend).
"""

from packetcapture.backends.afpacket import AfPacketBackend, AfPacketSource
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
