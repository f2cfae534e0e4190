"""Capture file settings: Calico's rotation/retention knobs plus the writer's own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from packetcapture._defaults import DEFAULT_CAPTURE_DIR
from packetcapture._frozen import FieldsEq, FieldsRepr
from packetcapture.errors import Problem, ValidationError
from packetcapture.validation import unknown_field_message

__all__ = ["DEFAULT_CAPTURE_DIR", "CaptureSettings"]

_POSITIVE = (
    "max_size_bytes",
    "rotation_seconds",
    "max_files",
    "flush_packets",
    "flush_interval_ms",
    "snaplen",
)
# FelixConfiguration spec keys -> our field names.
_FELIX_KEYS = {
    "captureMaxSizeBytes": "max_size_bytes",
    "captureRotationSeconds": "rotation_seconds",
    "captureMaxFiles": "max_files",
}
# Every FelixConfiguration key about captures: a key starting "capture" that is not one of
# these is a typo (captureDir is Felix's, read by the agent, not by these settings).
_FELIX_CAPTURE_KEYS = ("captureDir", *_FELIX_KEYS)


@attrs.frozen(repr=False, eq=False)
class CaptureSettings(FieldsRepr, FieldsEq):
    """How capture files are written, rotated and kept.

    The first three are Felix's settings with Felix's defaults (``captureMaxSizeBytes``,
    ``captureRotationSeconds``, ``captureMaxFiles``). The writer flushes its buffer every
    ``flush_packets`` packets or ``flush_interval_ms`` milliseconds, whichever comes first,
    which bounds what a crash can lose. ``format`` picks classic ``"pcap"`` (microsecond
    timestamps unless ``nanosecond``) or ``"pcapng"``. ``retention`` says which rotated
    files count against ``max_files``: those of the same endpoint interface
    (``"interface"``, the default) or every rotated file in the capture directory
    (``"directory"``, Calico's behaviour).

    Every number must be >= 1; otherwise :class:`ValidationError` names the field.
    """

    max_size_bytes: int = 10_000_000
    rotation_seconds: int = 3600
    max_files: int = 2
    flush_packets: int = 1000
    flush_interval_ms: int = 1000
    format: Literal["pcap", "pcapng"] = "pcap"
    nanosecond: bool = False
    snaplen: int = 262144
    retention: Literal["interface", "directory"] = "interface"

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []
        for name in _POSITIVE:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append((name, f"must be an integer, not {value!r}"))
            elif value < 1:
                problems.append((name, f"must be at least 1, not {value}"))
        if self.format not in ("pcap", "pcapng"):
            problems.append(("format", f"must be 'pcap' or 'pcapng', not {self.format!r}"))
        if not isinstance(self.nanosecond, bool):
            problems.append(("nanosecond", "must be true or false"))
        if self.retention not in ("interface", "directory"):
            problems.append(
                ("retention", f"must be 'interface' or 'directory', not {self.retention!r}")
            )
        if problems:
            raise ValidationError(problems)

    @classmethod
    def from_felix(cls, spec: Mapping[str, Any], **overrides: Any) -> CaptureSettings:
        """Build settings from a FelixConfiguration ``spec`` mapping.

        Reads ``captureMaxSizeBytes``, ``captureRotationSeconds`` and ``captureMaxFiles``
        (numbers or numeric strings, as in Calico's docs); missing keys keep the defaults.
        ``overrides`` set any other field. ``spec`` may be a whole FelixConfiguration spec:
        other keys are ignored, except an unknown key starting with ``capture`` (any case),
        which is refused as a typo with a suggestion (``captureMaxFile``: did you mean
        ``captureMaxFiles``?).
        """
        kwargs: dict[str, Any] = {}
        problems: list[Problem] = [
            (key, unknown_field_message(key, _FELIX_CAPTURE_KEYS))
            for key in spec
            if isinstance(key, str)
            and key.lower().startswith("capture")
            and key not in _FELIX_CAPTURE_KEYS
        ]
        for key, field in _FELIX_KEYS.items():
            if key not in spec:
                continue
            value = spec[key]
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append((key, f"must be an integer, not {value!r}"))
                continue
            kwargs[field] = value
        if problems:
            raise ValidationError(problems)
        kwargs.update(overrides)
        try:
            return cls(**kwargs)
        except ValidationError as exc:
            back = {v: k for k, v in _FELIX_KEYS.items()}
            raise ValidationError((back.get(p, p), m) for p, m in exc.problems) from None

    @property
    def free_space_needed(self) -> int:
        """Bytes of free disk a capture needs to start: ``(max_files + 1) * max_size_bytes``."""
        return (self.max_files + 1) * self.max_size_bytes
