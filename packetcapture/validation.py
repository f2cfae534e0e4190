"""Calico's validation rules for PacketCapture resources, on the typed models.

Each ``*_problems`` function returns every ``(path, message)`` problem it finds; paths are
relative to the object checked and use wire names (``filters[1].ports[0]``). The serde layer
runs the same functions while loading, so direct construction and loading agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    "MAX_BASE_NAME_BYTES",
    "MAX_NAME_PART_BYTES",
    "PORT_PROTOCOLS",
    "PROTOCOL_NAMES",
    "close_match",
    "endpoint_name_problems",
    "endpoint_problems",
    "file_base_problems",
    "kind_name",
    "label_problems",
    "reserved_label_problems",
    "label_path",
    "meta_problems",
    "path_part_problem",
    "rule_problems",
    "selector_problems",
    "spec_problems",
    "unknown_field_message",
    "validate",
]

#: Protocol names Calico accepts, exactly (case-sensitive on the JSON path).
PROTOCOL_NAMES = ("TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite")
#: Protocols that accept ports: names and numbers.
PORT_PROTOCOLS: frozenset[int | str] = frozenset({"TCP", "UDP", "SCTP", 6, 17, 132})

# The name rules are string methods, not regular expressions: compiling those was ~1% of
# every `validate` and `run`. A test checks each against the expression it replaced (kept
# there), quirks included: re's `$` also matches before a newline that ends the string.
_LOWER_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyz"
_ALNUM = _LOWER_ALNUM + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _spelt(value: str, ends: str, inner: str) -> bool:
    """Whether ``value`` starts and ends with a character of ``ends``, all of ``inner``."""
    return bool(value) and value[0] in ends and value[-1] in ends and not value.strip(inner)


def _before_end(value: str) -> str:
    """``value`` without the one newline that re's ``$`` would let it end in."""
    return value[:-1] if value.endswith("\n") else value


def _is_dns1123_label(value: str) -> bool:
    """``^[a-z0-9]([-a-z0-9]*[a-z0-9])?$``: lower-case alphanumerics and ``-`` inside."""
    return _spelt(_before_end(value), _LOWER_ALNUM, _LOWER_ALNUM + "-")


def _is_dns1123_subdomain(value: str) -> bool:
    r"""DNS-1123 labels joined by ``.`` (``^L(\.L)*$``)."""
    return all(
        _spelt(part, _LOWER_ALNUM, _LOWER_ALNUM + "-") for part in _before_end(value).split(".")
    )


def _is_qualified_name(value: str) -> bool:
    """``^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$``: a label key's name part."""
    return _spelt(_before_end(value), _ALNUM, _ALNUM + "-_.")


def _is_label_value(value: str) -> bool:
    """``^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$``: a qualified name, or empty."""
    value = _before_end(value)
    return not value or _spelt(value, _ALNUM, _ALNUM + "-_.")


def _ends_in_dash_digits(value: str) -> bool:
    r"""Whether ``-\d+$`` is found in ``value`` (``\d``: any Unicode decimal digit)."""
    _, dash, digits = _before_end(value).rpartition("-")
    return bool(dash) and digits.isdecimal()


_ANNOTATIONS_MAX = 256 * 1024  # Kubernetes' TotalAnnotationSizeLimitB


#: WorkloadEndpoint spec fields a capture relies on: when one is missing and an unknown field
#: is spelt close to it, the unknown field is reported as a typo (other unknown fields are kept).
ENDPOINT_KEY_FIELDS = ("interfaceName", "node", "pod", "orchestrator", "endpoint")


def close_match(key: str, known: Sequence[str]) -> str | None:
    """Return the name in ``known`` that ``key`` is most likely a typo of, or ``None``.

    Letter case is ignored, so ``InterfaceName`` matches ``interfaceName``.
    """
    if not known:
        return None
    folded = {k.lower(): k for k in known}
    import difflib  # only for a misspelt key's hint

    hit = difflib.get_close_matches(key.lower(), list(folded), n=1)
    return folded[hit[0]] if hit else None


def unknown_field_message(key: str, known: Sequence[str]) -> str:
    """Word an unknown field: ``unknown field 'x': did you mean 'y'?`` or list the known ones."""
    hint = close_match(key, known)
    msg = f"unknown field {key!r}"
    return msg + (f": did you mean {hint!r}?" if hint else f" (known: {', '.join(known)})")


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
    if not _is_dns1123_subdomain(name):
        return [
            (
                path,
                f"name {name!r} must consist of lower case alphanumeric characters, '-' or '.', "
                "and must start and end with an alphanumeric character",
            )
        ]
    return []


#: Longest file-name part (namespace, capture, pod, interface or node name), in UTF-8 bytes.
MAX_NAME_PART_BYTES = 253
#: Longest ``{pod}_{interface}`` stem: room for ``-{20 digits}.pcap`` in a 255-byte file name.
MAX_BASE_NAME_BYTES = 255 - len("-") - 20 - len(".pcap")


def path_part_problem(value: object, what: str) -> str | None:
    r"""Return why ``value`` cannot be one part of a capture's file path (None if it can).

    The one rule for every name that becomes a path component (namespace, capture, pod,
    interface, node): a non-empty string, not ``.`` or ``..``, without ``/``, ``\``, NUL
    or another control character, UTF-8 encodable, at most :data:`MAX_NAME_PART_BYTES`
    bytes. ``packetcapture.pcap`` raises it as ``PcapError``; loading and ``validate``
    report it as a problem.
    """
    if not isinstance(value, str) or not value:
        return f"{what} name must be a non-empty string, not {value!r}"
    if value in (".", ".."):
        return f"{what} name {value!r} is not allowed"
    if "/" in value or "\\" in value:
        return f"{what} name {value!r} must not contain a path separator"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return f"{what} name {value!r} must not contain NUL or control characters"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return f"{what} name {value!r} is not valid UTF-8"
    if size > MAX_NAME_PART_BYTES:
        return f"{what} name is too long ({size} bytes, at most {MAX_NAME_PART_BYTES})"
    return None


def file_base_problems(
    pod: object, interface: object, pod_path: str = "pod", interface_path: str = "interfaceName"
) -> list[Problem]:
    """Every reason ``{pod}_{interface}`` cannot name an endpoint interface's capture files.

    Besides :func:`path_part_problem` for each: the pod name must not contain ``_`` (a
    file name must split back unambiguously; Kubernetes pod names never do), the interface
    name must not end in ``-<digits>`` (it would read as a rotated file), and the stem must
    fit in :data:`MAX_BASE_NAME_BYTES` bytes.
    """
    problems: list[Problem] = []
    for value, what, path in ((pod, "pod", pod_path), (interface, "interface", interface_path)):
        message = path_part_problem(value, what)
        if message is not None:
            problems.append((path, message))
    if problems:
        return problems
    assert isinstance(pod, str) and isinstance(interface, str)
    if "_" in pod:
        problems.append((pod_path, f"pod name {pod!r} must not contain '_'"))
    if _ends_in_dash_digits(interface):
        problems.append(
            (
                interface_path,
                f"interface name {interface!r} must not end in '-<digits>' "
                "(it would look like a rotated file)",
            )
        )
    if not problems and len(f"{pod}_{interface}".encode()) > MAX_BASE_NAME_BYTES:
        problems.append(
            (
                interface_path,
                "pod and interface names are too long together "
                f"(at most {MAX_BASE_NAME_BYTES} bytes)",
            )
        )
    return problems


def endpoint_name_problems(endpoint: WorkloadEndpoint) -> list[Problem]:
    """Check the file-name rules ``run`` applies to an endpoint it captures on.

    Paths are from the document root.

    Only an endpoint with ``spec.interfaceName`` is captured on; its files are named after
    its pod (``spec.pod``, else ``spec.workload``, else ``metadata.name``) and interface.
    """
    spec = endpoint.spec
    if not spec.interface_name:
        return []
    pod_path = "spec.pod" if spec.pod else "spec.workload" if spec.workload else "metadata.name"
    return file_base_problems(
        endpoint.pod_name, spec.interface_name, pod_path, "spec.interfaceName"
    )


def reserved_label_problems(labels: Mapping[Any, Any], field: str = "labels") -> list[Problem]:
    """Refuse :data:`NAMESPACE_LABEL` in a capture's labels (Calico sets it itself).

    Only for PacketCaptures: WorkloadEndpoints are written by Calico and carry it.
    """
    if NAMESPACE_LABEL in labels:
        return [
            (
                label_path(NAMESPACE_LABEL, field),
                f"label key {NAMESPACE_LABEL!r} is reserved for Calico's use",
            )
        ]
    return []


def _label_key_problems(key: str, path: str) -> list[Problem]:
    prefix, _, name = key.rpartition("/")
    problems: list[Problem] = []
    if "/" in key and (not prefix or len(prefix) > 253 or not _is_dns1123_subdomain(prefix)):
        problems.append((path, f"label key {key!r} has an invalid prefix: must be a DNS subdomain"))
    if not name or len(name) > 63 or not _is_qualified_name(name):
        problems.append(
            (
                path,
                f"label key {key!r} is not a qualified name: at most 63 alphanumeric "
                "characters, '-', '_' or '.', starting and ending with an alphanumeric",
            )
        )
    return problems


# A key shown bare in a path (``labels.app``); any other is quoted in brackets.
_PLAIN_KEY = _ALNUM + "_-"


def label_path(key: object, field: str = "labels") -> str:
    """Return the path of one map entry: ``labels.app``, or ``labels['example.com/tier']``.

    With an empty ``field`` the entry's own part is returned (``app``, ``['a.b/c']``).
    """
    if isinstance(key, str) and key and not key.strip(_PLAIN_KEY):
        return f"{field}.{key}" if field else key
    return f"{field}[{key!r}]"


def namespace_problems(ns: str | None, path: str = "namespace") -> list[Problem]:
    """Check a namespace: a DNS-1123 label of at most 63 characters (unset or empty is fine)."""
    if ns is not None and ns != "" and (len(ns) > 63 or not _is_dns1123_label(ns)):
        return [(path, f"namespace {ns!r} must be a DNS-1123 label (lower case, '-', <= 63)")]
    return []


def label_problems(labels: Mapping[Any, Any], field: str = "labels") -> list[Problem]:
    """Every problem in a labels map, one per entry and rule, each with the entry's path.

    Keys and values must be strings (a YAML ``5`` or ``true`` must be quoted); string keys
    must be qualified names and string values valid label values.
    """
    problems: list[Problem] = []
    for key, value in labels.items():
        path = label_path(key, field)
        if not isinstance(key, str):
            problems.append((path, f"label key must be a string, not {kind_name(key)}"))
        else:
            problems += _label_key_problems(key, path)
        if not isinstance(value, str):
            problems.append(
                (
                    path,
                    f"label value must be a string, not {kind_name(value)} "
                    "(quote values like 'true' or '123' in YAML)",
                )
            )
        elif len(value) > 63 or not _is_label_value(value):
            problems.append(
                (
                    path,
                    f"label value {value!r} is invalid: at most 63 alphanumeric characters, "
                    "'-', '_' or '.', starting and ending with an alphanumeric",
                )
            )
    return problems


def kind_name(value: object) -> str:
    """Name a value's YAML kind for messages: ``null``, ``a number``, ``a mapping``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def annotation_problems(annotations: Mapping[str, str]) -> list[Problem]:
    """Check that annotations total at most 256 KiB."""
    size = sum(len(k) + len(v) for k, v in annotations.items())
    if size > _ANNOTATIONS_MAX:
        return [("annotations", f"annotations total {size} bytes, over the 256 KiB limit")]
    return []


def meta_problems(meta: ObjectMeta) -> list[Problem]:
    """Check metadata: name, namespace, label keys and values, annotation size.

    The reserved namespace label is checked apart (:func:`reserved_label_problems`): it is
    refused on captures but normal on endpoints.
    """
    problems = name_problems(meta.name)
    problems += namespace_problems(meta.namespace)
    problems += label_problems(meta.labels)
    problems += annotation_problems(meta.annotations)
    return problems


def endpoint_typo_problems(spec: Mapping[str, Any], path: str = "") -> list[Problem]:
    """Unknown WorkloadEndpoint spec fields that look like a misspelt key field.

    Unknown fields are normally kept (Calico's endpoints have many fields packetcapture does
    not model); one is reported only when a field of :data:`ENDPOINT_KEY_FIELDS` is absent
    and the unknown field is spelt close to it (``interfaceNme``), since the endpoint could
    then never be captured on.
    """
    missing = [f for f in ENDPOINT_KEY_FIELDS if not spec.get(f)]
    problems: list[Problem] = []
    for key in sorted(k for k in spec if isinstance(k, str) and k not in ENDPOINT_KEY_FIELDS):
        hint = close_match(key, missing)
        if hint is not None:
            problems.append((_join(path, key), f"unknown field {key!r}: did you mean {hint!r}?"))
    return problems


def endpoint_problems(endpoint: WorkloadEndpoint) -> list[Problem]:
    """Every problem in a WorkloadEndpoint, paths from the document root.

    Its metadata is checked as a capture's is, a misspelt key spec field is reported
    (see :func:`endpoint_typo_problems`), and the names its capture files would get must be
    safe (see :func:`endpoint_name_problems`).
    """
    problems = [(_join("metadata", p), m) for p, m in meta_problems(endpoint.metadata)]
    spec = endpoint.spec
    present = {
        "interfaceName": spec.interface_name,
        "node": spec.node,
        "pod": spec.pod,
        "orchestrator": spec.orchestrator,
        "endpoint": spec.endpoint,
    }
    problems += endpoint_typo_problems({**spec.extra, **present}, "spec")
    problems += endpoint_name_problems(endpoint)
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
    problems += [
        (_join("metadata", p), m) for p, m in reserved_label_problems(capture.metadata.labels)
    ]
    problems += [(_join("spec", p), m) for p, m in spec_problems(capture.spec)]
    return problems


def validate(obj: PacketCapture | WorkloadEndpoint | PacketCaptureSpec) -> None:
    """Raise :class:`ValidationError` listing every problem in ``obj``; return if valid."""
    if isinstance(obj, PacketCapture):
        problems = capture_problems(obj)
    elif isinstance(obj, PacketCaptureSpec):
        problems = spec_problems(obj)
    elif isinstance(obj, WorkloadEndpoint):
        problems = endpoint_problems(obj)
    else:
        raise TypeError(f"cannot validate {type(obj).__name__}")
    if problems:
        raise ValidationError(problems)
