"""packetcapture: Calico's PacketCapture resource end to end.

The typed resource and its strict loader, Calico's label-selector language, a compiler from
capture filters to classic BPF, the start/end-time state machine, capture backends and
rotated pcap files. See ``docs/`` for a guide to each piece.
"""

from packetcapture._version import __version__
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
from packetcapture.serde import dumps, from_dict, load_all, loads, make_converter, to_dict
from packetcapture.validation import validate

__all__ = [
    "BackendBrokenError",
    "BackendClosedError",
    "BackendError",
    "BackendUnavailableError",
    "CaptureState",
    "FilterCompileError",
    "InvalidTransitionError",
    "ObjectMeta",
    "PacketCapture",
    "PacketCaptureError",
    "PacketCaptureFile",
    "PacketCaptureRule",
    "PacketCaptureSpec",
    "PacketCaptureStatus",
    "PcapError",
    "PortRange",
    "SelectorSyntaxError",
    "ValidationError",
    "WorkloadEndpoint",
    "WorkloadEndpointSpec",
    "__version__",
    "dumps",
    "from_dict",
    "load_all",
    "loads",
    "make_converter",
    "to_dict",
    "validate",
]
