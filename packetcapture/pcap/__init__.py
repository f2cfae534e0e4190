"""Capture files: pcap/pcapng reading and writing, Calico's layout, rotation and retention.

The public API, re-exported from private modules:

- :class:`PcapReader` reads classic pcap (µs/ns, both byte orders) and pcapng.
- :class:`PcapWriter` writes one file; :class:`RotatingWriter` writes Calico's rotating
  per-interface files with a flush policy, retention and crash recovery.
- :class:`CaptureSettings` holds Felix's ``captureMaxSizeBytes``, ``captureRotationSeconds``,
  ``captureMaxFiles`` and the writer's own settings.
- Layout: :func:`capture_directory`, :func:`base_name`, :func:`parse_file_name`,
  :func:`check_free_space`.
- Status and housekeeping: :func:`list_capture_files`, :func:`copy_capture_files`,
  :func:`remove_capture_files`, :func:`find_capture_namespaces`, :func:`merge_captures`.
"""

from packetcapture._lazy import lazy_names
from packetcapture.pcap._format import LINKTYPE_ETHERNET
from packetcapture.pcap._layout import (
    CaptureFileName,
    active_name,
    base_name,
    capture_directory,
    check_free_space,
    parse_file_name,
    rotated_name,
)
from packetcapture.pcap._listing import (
    capture_file_names,
    copy_capture_files,
    find_capture_namespaces,
    list_capture_files,
    remove_capture_files,
)
from packetcapture.pcap._reader import (
    InterfaceInfo,
    PcapReader,
    PcapRecord,
    PcapTruncatedError,
    count_packets,
)
from packetcapture.pcap._rotation import RotationReason, should_rotate
from packetcapture.pcap._settings import DEFAULT_CAPTURE_DIR, CaptureSettings
from packetcapture.pcap._writer import PcapWriter, RotatingWriter, repair_capture_file

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from packetcapture.pcap._merge import (
        MergeResult,
        MergeSource,
        find_merge_sources,
        merge_captures,
    )

# Merging is loaded on first use: capturing never needs it (nor its attrs classes).
__getattr__, __dir__ = lazy_names(
    globals(),
    dict.fromkeys(
        ("MergeResult", "MergeSource", "find_merge_sources", "merge_captures"),
        "packetcapture.pcap._merge",
    ),
)

__all__ = [
    "DEFAULT_CAPTURE_DIR",
    "LINKTYPE_ETHERNET",
    "CaptureFileName",
    "CaptureSettings",
    "InterfaceInfo",
    "MergeResult",
    "MergeSource",
    "PcapReader",
    "PcapRecord",
    "PcapTruncatedError",
    "PcapWriter",
    "RotatingWriter",
    "RotationReason",
    "active_name",
    "base_name",
    "capture_directory",
    "capture_file_names",
    "check_free_space",
    "copy_capture_files",
    "count_packets",
    "find_capture_namespaces",
    "find_merge_sources",
    "list_capture_files",
    "merge_captures",
    "parse_file_name",
    "remove_capture_files",
    "repair_capture_file",
    "rotated_name",
    "should_rotate",
]
