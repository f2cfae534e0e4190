"""packetcapture: Calico's PacketCapture resource end to end.

The typed resource and its strict loader, Calico's label-selector language, a compiler from
capture filters to classic BPF, the start/end-time state machine, capture backends and
rotated pcap files. See ``docs/`` for a guide to each piece.
"""

# Names are imported on first use (PEP 562), so `import packetcapture.cli` or
# `from packetcapture.errors import X` does not load every subpackage and its dependencies
# (attrs, cattrs, yaml, ...). Type checkers see the real imports below.
import importlib as _importlib

from packetcapture._version import __version__

# typing.TYPE_CHECKING without importing typing (~3 ms at start-up); type checkers know the
# name. Deleted below: it is not public.
TYPE_CHECKING = False
if TYPE_CHECKING:
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
    from packetcapture.summary import CaptureSummary, Summarizer, format_summary, summarize
    from packetcapture.validation import validate

# Where each public name is defined.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "packetcapture.agent": ("NodeAgent", "merge_status"),
    "packetcapture.backends": (
        "CaptureBackend",
        "LinktypeMismatchError",
        "PacketSource",
        "SourceStats",
        "available_backends",
        "get_backend",
        "register_backend",
    ),
    "packetcapture.backends.replay": ("ReplayFileError",),
    "packetcapture.bpf": ("BpfProgram", "compile_filters", "pcap_expression"),
    "packetcapture.clock": ("Clock", "SystemClock"),
    "packetcapture.errors": (
        "BackendBrokenError",
        "BackendClosedError",
        "BackendError",
        "BackendUnavailableError",
        "FilterCompileError",
        "InvalidTransitionError",
        "PacketCaptureError",
        "PcapError",
        "SelectorSyntaxError",
        "ValidationError",
    ),
    "packetcapture.model": (
        "CaptureState",
        "CaptureSummary",
        "ObjectMeta",
        "PacketCapture",
        "PacketCaptureFile",
        "PacketCaptureRule",
        "PacketCaptureSpec",
        "PacketCaptureStatus",
        "PortRange",
        "WorkloadEndpoint",
        "WorkloadEndpointSpec",
    ),
    "packetcapture.pcap": (
        "CaptureSettings",
        "PcapReader",
        "PcapTruncatedError",
        "PcapWriter",
        "RotatingWriter",
        "list_capture_files",
        "merge_captures",
        "remove_capture_files",
    ),
    "packetcapture.schedule": (
        "CaptureSchedule",
        "InvalidTimeError",
        "RetryPolicy",
        "ScheduleResult",
        "StartCapture",
        "StopCapture",
        "Summarizer",
    ),
    "packetcapture.selector": ("Selector", "SelectorIndex"),
    "packetcapture.summary": ("CaptureSummary", "Summarizer", "format_summary", "summarize"),
    "packetcapture.serde": ("dumps", "from_dict", "load_all", "loads", "make_converter", "to_dict"),
    "packetcapture.validation": ("validate",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
# Submodules that `import packetcapture` used to load, so `packetcapture.model` still works.
_SUBMODULES = frozenset(
    {
        "agent",
        "backends",
        "bpf",
        "clock",
        "errors",
        "model",
        "pcap",
        "schedule",
        "selector",
        "serde",
        "summary",
        "validation",
    }
)

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
    "CaptureSummary",
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
    "Summarizer",
    "SystemClock",
    "ValidationError",
    "WorkloadEndpoint",
    "WorkloadEndpointSpec",
    "__version__",
    "available_backends",
    "compile_filters",
    "dumps",
    "format_summary",
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
    "summarize",
    "to_dict",
    "validate",
]

if not TYPE_CHECKING:  # hidden from type checkers: unknown names stay type errors

    def __getattr__(name: str) -> object:
        """Import a public name (or a submodule) on first access and keep it."""
        module = _MODULE_OF.get(name)
        if module is not None:
            value = getattr(_importlib.import_module(module), name)
            globals()[name] = value  # later lookups no longer reach __getattr__
            return value
        if name in _SUBMODULES:
            return _importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        """List the public names too, although they are imported on first use."""
        return sorted(set(globals()) | set(__all__))


del TYPE_CHECKING
