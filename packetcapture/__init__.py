"""packetcapture: Calico's PacketCapture resource end to end.

The typed resource and its strict loader, Calico's label-selector language, a compiler from
capture filters to classic BPF, the start/end-time state machine, capture backends and
rotated pcap files. See ``docs/`` for a guide to each piece.
"""

from packetcapture._version import __version__
from packetcapture.agent import NodeAgent, merge_status
from packetcapture.backends import (
    CaptureBackend,
    LinktypeMismatchError,
    PacketSource,
    SourceStats,
    available_backends,
    get_backend,
    register_backend,
)
from packetcapture.backends.replay import ReplayFileError
from packetcapture.bpf import BpfProgram, compile_filters, pcap_expression
from packetcapture.clock import Clock, SystemClock
from packetcapture.errors import (
    BackendBrokenError,
    BackendClosedError,
    BackendError,
    BackendUnavailableError,
    FilterCompileError,
    InvalidTransitionError,
    PacketCaptureError,
    PcapError,
    SelectorSyntaxError,
    ValidationError,
)
from packetcapture.model import (
    CaptureState,
    ObjectMeta,
    PacketCapture,
    PacketCaptureFile,
    PacketCaptureRule,
    PacketCaptureSpec,
    PacketCaptureStatus,
    PortRange,
    WorkloadEndpoint,
    WorkloadEndpointSpec,
)
from packetcapture.pcap import (
    CaptureSettings,
    PcapReader,
    PcapTruncatedError,
    PcapWriter,
    RotatingWriter,
    list_capture_files,
    merge_captures,
    remove_capture_files,
)
from packetcapture.schedule import (
    CaptureSchedule,
    InvalidTimeError,
    RetryPolicy,
    ScheduleResult,
    StartCapture,
    StopCapture,
)
from packetcapture.selector import Selector, SelectorIndex
from packetcapture.serde import dumps, from_dict, load_all, loads, make_converter, to_dict
from packetcapture.validation import validate

__all__ = [
    "BackendBrokenError",
    "BackendClosedError",
    "BackendError",
    "BackendUnavailableError",
    "BpfProgram",
    "CaptureBackend",
    "CaptureSchedule",
    "CaptureSettings",
    "CaptureState",
    "Clock",
    "FilterCompileError",
    "InvalidTimeError",
    "InvalidTransitionError",
    "LinktypeMismatchError",
    "NodeAgent",
    "ObjectMeta",
    "PacketCapture",
    "PacketCaptureError",
    "PacketCaptureFile",
    "PacketCaptureRule",
    "PacketCaptureSpec",
    "PacketCaptureStatus",
    "PacketSource",
    "PcapError",
    "PcapReader",
    "PcapTruncatedError",
    "PcapWriter",
    "PortRange",
    "ReplayFileError",
    "RetryPolicy",
    "RotatingWriter",
    "ScheduleResult",
    "Selector",
    "SelectorIndex",
    "SelectorSyntaxError",
    "SourceStats",
    "StartCapture",
    "StopCapture",
    "SystemClock",
    "ValidationError",
    "WorkloadEndpoint",
    "WorkloadEndpointSpec",
    "__version__",
    "available_backends",
    "compile_filters",
    "dumps",
    "from_dict",
    "get_backend",
    "list_capture_files",
    "load_all",
    "loads",
    "make_converter",
    "merge_captures",
    "merge_status",
    "pcap_expression",
    "register_backend",
    "remove_capture_files",
    "to_dict",
    "validate",
]
