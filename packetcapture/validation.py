"""Calico's validation rules for PacketCapture resources, on the typed models.

Each ``*_problems`` function returns every ``(path, message)`` problem it finds; paths are
relative to the object checked and use wire names (``filters[1].ports[0]``). The serde layer
runs the same functions while loading, so direct construction and loading agree.
"""

from __future__ import annotations

import re
from typing import Any

from packetcapture.errors import Problem, SelectorSyntaxError, ValidationError
from packetcapture.model import (
    NAMESPACE_LABEL,
    ObjectMeta,
    PacketCapture,
    PacketCaptureRule,
    PacketCaptureSpec,
    PortRange,
    WorkloadEndpoint,
)

__all__ = [
    "PORT_PROTOCOLS",
    "PROTOCOL_NAMES",
    "meta_problems",
    "rule_problems",
    "selector_problems",
    "spec_problems",
    "validate",
]

#: Protocol names Calico accepts, exactly (case-sensitive on the JSON path).
PROTOCOL_NAMES = ("TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite")
#: Protocols that accept ports: names and numbers.
PORT_PROTOCOLS: frozenset[int | str] = frozenset({"TCP", "UDP", "SCTP", 6, 17, 132})

_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ANNOTATIONS_MAX = 256 * 1024  # Kubernetes' TotalAnnotationSizeLimitB


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def name_problems(name: Any, path: str = "name") -> list[Problem]:
    """Check a resource name: a DNS-1123 subdomain of at most 253 characters."""
    if not isinstance(name, str) or not name:
        return [(path, "name is required")]
    if len(name) > 253:
        return [(path, f"name must be no more than 253 characters (got {len(name)})")]
    if not _DNS1123_SUBDOMAIN.match(name):
        return [
            (
                path,
                f"name {name!r} must consist of lower case alphanumeric characters, '-' or '.', "
                "and must start and end with an alphanumeric character",
            )
        ]
    return []


def _label_key_problems(key: str, path: str) -> list[Problem]:
    if key == NAMESPACE_LABEL:
        return [(path, f"label key {key!r} is reserved for Calico's use")]
    prefix, _, name = key.rpartition("/")
    problems: list[Problem] = []
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        problems.append((path, f"label key {key!r} has an invalid prefix: must be a DNS subdomain"))
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        problems.append(
            (
                path,
                f"label key {key!r} is not a qualified name: at most 63 alphanumeric "
                "characters, '-', '_' or '.', starting and ending with an alphanumeric",
            )
        )
    return problems


def meta_problems(meta: ObjectMeta) -> list[Problem]:
    """Check metadata: name, namespace, label keys and values, annotation size."""
    problems = name_problems(meta.name)
    ns = meta.namespace
    if ns is not None and ns != "" and (len(ns) > 63 or not _DNS1123_LABEL.match(ns)):
        problems.append(
            ("namespace", f"namespace {ns!r} must be a DNS-1123 label (lower case, '-', <= 63)")
        )
    for key, value in meta.labels.items():
        path = f"labels[{key!r}]" if "." in key or "/" in key else f"labels.{key}"
        problems += _label_key_problems(key, path)
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            problems.append(
                (
                    path,
                    f"label value {value!r} is invalid: at most 63 alphanumeric characters, "
                    "'-', '_' or '.', starting and ending with an alphanumeric",
                )
            )
    size = sum(len(k) + len(v) for k, v in meta.annotations.items())
    if size > _ANNOTATIONS_MAX:
        problems.append(("annotations", f"annotations total {size} bytes, over the 256 KiB limit"))
    return problems


def protocol_problems(protocol: Any, path: str = "protocol") -> list[Problem]:
    """Check a rule's protocol: one of :data:`PROTOCOL_NAMES` or a number 1-255."""
    if protocol is None:
        return []
    if isinstance(protocol, bool):
        return [(path, "protocol must be a name or a number, not a boolean")]
    if isinstance(protocol, int):
        if protocol == 0:
            return [(path, "protocol number invalid: 0 (must be 1-255)")]
        if not 1 <= protocol <= 255:
            return [(path, f"protocol number invalid: {protocol} (must be 1-255)")]
        return []
    if isinstance(protocol, str):
        if protocol in PROTOCOL_NAMES:
            return []
        hint = ""
        folded = {n.lower(): n for n in PROTOCOL_NAMES}
        if protocol.lower() in folded:
            hint = f" (names are case-sensitive: did you mean {folded[protocol.lower()]!r}?)"
        return [
            (
                path,
                f"protocol {protocol!r} is not supported: use one of "
                f"{', '.join(PROTOCOL_NAMES)} or a number 1-255{hint}",
            )
        ]
    return [(path, "protocol must be a name or a number")]


def port_problems(port: PortRange, path: str) -> list[Problem]:
    """Check one port or range: 1-65535 and min <= max."""
    if not (1 <= port.min <= 65535 and 1 <= port.max <= 65535):
        return [(path, f"port number must be between 1 and 65535 (got {port})")]
    if port.min > port.max:
        return [
            (
                path,
                f"minimum port number ({port.min}) is greater than maximum port number "
                f"({port.max}) in port range",
            )
        ]
    return []


def rule_problems(rule: PacketCaptureRule) -> list[Problem]:
    """Check one filter rule: protocol, ports, and that the protocol accepts ports."""
    problems = protocol_problems(rule.protocol)
    for i, port in enumerate(rule.ports):
        problems += port_problems(port, f"ports[{i}]")
    if (
        rule.ports
        and rule.protocol is not None
        and not problems
        and (rule.protocol not in PORT_PROTOCOLS)
    ):
        problems.append(
            ("ports", f"protocol {rule.protocol!r} does not accept ports (only TCP, UDP, SCTP)")
        )
    return problems


def selector_problems(selector: Any, path: str = "selector") -> list[Problem]:
    """Check that a selector parses with Calico's selector language."""
    if not isinstance(selector, str):
        return [(path, "selector must be a string")]
    from packetcapture.selector import parse

    try:
        parse(selector)
    except SelectorSyntaxError as exc:
        return [(path, f"invalid selector {selector!r}: {exc.reason} at column {exc.column}")]
    return []


def spec_problems(spec: PacketCaptureSpec, *, deep: bool = True) -> list[Problem]:
    """Check a spec: selector, every rule (when ``deep``), and endTime after startTime."""
    problems = selector_problems(spec.selector)
    if deep:
        for i, rule in enumerate(spec.filters):
            problems += [(_join(f"filters[{i}]", p), m) for p, m in rule_problems(rule)]
    problems += time_problems(spec)
    return problems


def time_problems(spec: PacketCaptureSpec) -> list[Problem]:
    """Check that times are timezone-aware and endTime is strictly after startTime."""
    problems: list[Problem] = []
    for field, value in (("startTime", spec.start_time), ("endTime", spec.end_time)):
        if value is not None and value.utcoffset() is None:
            problems.append((field, "time must have a timezone offset (RFC 3339)"))
    if problems or spec.start_time is None or spec.end_time is None:
        return problems
    if spec.end_time == spec.start_time:
        problems.append(("endTime", "must have a different value than startTime"))
    elif spec.end_time < spec.start_time:
        problems.append(("endTime", "must be set after startTime"))
    return problems


def capture_problems(capture: PacketCapture) -> list[Problem]:
    """Every problem in a PacketCapture, paths from the document root."""
    problems = [(_join("metadata", p), m) for p, m in meta_problems(capture.metadata)]
    problems += [(_join("spec", p), m) for p, m in spec_problems(capture.spec)]
    return problems


def validate(obj: PacketCapture | WorkloadEndpoint | PacketCaptureSpec) -> None:
    """Raise :class:`ValidationError` listing every problem in ``obj``; return if valid."""
    if isinstance(obj, PacketCapture):
        problems = capture_problems(obj)
    elif isinstance(obj, PacketCaptureSpec):
        problems = spec_problems(obj)
    elif isinstance(obj, WorkloadEndpoint):
        problems = [(_join("metadata", p), m) for p, m in name_problems(obj.metadata.name)]
    else:
        raise TypeError(f"cannot validate {type(obj).__name__}")
    if problems:
        raise ValidationError(problems)
