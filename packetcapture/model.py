"""Typed resources: ``PacketCapture``, its spec, rules and status, and ``WorkloadEndpoint``.

These classes hold data only: frozen, slotted attrs classes with no wire-format code (see
:mod:`packetcapture.serde` for YAML/JSON and :mod:`packetcapture.validation` for Calico's
rules). Constructors normalise friendly inputs (a port may be given as ``80``, ``"80"`` or
``"8000:8080"``; lists become tuples) but do not check Calico's rules: call
:func:`packetcapture.validate` or load through :func:`packetcapture.loads`, which always do.
"""

# No `from __future__ import annotations` here: the fields' types are evaluated once, as the
# classes are made, so cattrs need not resolve each string annotation (a compile() per field)
# when it generates a converter.
import datetime as _dt
import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import attrs

from packetcapture import _defaults
from packetcapture._frozen import FieldsEq, FieldsRepr

__all__ = [
    "API_VERSION",
    "NAMESPACE_LABEL",
    "ORCHESTRATOR_LABEL",
    "SERVICE_ACCOUNT_LABEL",
    "CaptureState",
    "ObjectMeta",
    "PacketCapture",
    "PacketCaptureFile",
    "PacketCaptureRule",
    "PacketCaptureSpec",
    "PacketCaptureStatus",
    "PortRange",
    "WorkloadEndpoint",
    "WorkloadEndpointSpec",
]

API_VERSION = "projectcalico.org/v3"
#: Implicit labels Calico adds to every workload endpoint before selectors see it.
NAMESPACE_LABEL = _defaults.NAMESPACE_LABEL
ORCHESTRATOR_LABEL = "projectcalico.org/orchestrator"
SERVICE_ACCOUNT_LABEL = "projectcalico.org/serviceaccount"

_RANGE = re.compile(r"^(\d+):(\d+)$")
_DIGITS = re.compile(r"^\d+$")


class CaptureState(enum.Enum):
    """State of a capture on a node (the exact strings of Calico's API)."""

    CAPTURING = "Capturing"
    FINISHED = "Finished"
    SCHEDULED = "Scheduled"
    ERROR = "Error"
    WAITING_FOR_TRAFFIC = "WaitingForTraffic"

    def __str__(self) -> str:
        return self.value


@attrs.frozen(order=True, repr=False)
class PortRange(FieldsRepr):
    """An inclusive port range; a single port has ``min == max``.

    Marshalled as Calico does: a single port as an integer, a range as ``"min:max"``.
    """

    min: int
    max: int

    @classmethod
    def single(cls, port: int) -> "PortRange":
        """Return the range holding just ``port``."""
        return cls(port, port)

    @classmethod
    def parse(cls, value: "int | str | PortRange") -> "PortRange":
        """Parse ``80``, ``"80"`` or ``"8000:8080"``.

        Raises ``ValueError`` for anything else, with Calico's wording for named ports and
        inverted ranges. Bounds (1-65535) are checked by validation, not here.
        """
        if isinstance(value, PortRange):
            return value
        if isinstance(value, bool):
            raise ValueError("must be a port number or a 'min:max' range")
        if isinstance(value, int):
            return cls(value, value)
        if isinstance(value, str):
            if _DIGITS.match(value):
                return cls(int(value), int(value))
            m = _RANGE.match(value)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                if lo > hi:
                    raise ValueError(
                        f"minimum port number ({lo}) is greater than maximum port number "
                        f"({hi}) in port range"
                    )
                return cls(lo, hi)
            raise ValueError(
                f"named port {value!r} is not supported: PacketCapture accepts only "
                "numerical values (a port like 80 or a range like '8000:8080')"
            )
        raise ValueError("must be a port number or a 'min:max' range")

    @property
    def is_single(self) -> bool:
        """True when the range holds one port."""
        return self.min == self.max

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.min <= port <= self.max

    def __str__(self) -> str:
        return str(self.min) if self.is_single else f"{self.min}:{self.max}"


def _to_ports(value: Iterable[int | str | PortRange]) -> tuple[PortRange, ...]:
    return tuple(PortRange.parse(v) for v in value)


def _to_protocol(value: int | str | None) -> int | str | None:
    # Calico stores an all-digit string ("6") as the number.
    if isinstance(value, str) and _DIGITS.match(value):
        return int(value)
    return value


@attrs.frozen(repr=False, eq=False)
class PacketCaptureRule(FieldsRepr, FieldsEq):
    """One filter rule: a protocol (name or number) AND any of the ports.

    Rules in a spec are OR'ed. A rule with neither protocol nor ports matches everything.
    """

    protocol: int | str | None = attrs.field(default=None, converter=_to_protocol)
    ports: tuple[PortRange, ...] = attrs.field(default=(), converter=_to_ports)


def _to_rules(value: Iterable[PacketCaptureRule]) -> tuple[PacketCaptureRule, ...]:
    return tuple(value)


@attrs.frozen(repr=False, eq=False)
class PacketCaptureSpec(FieldsRepr, FieldsEq):
    """What to capture (``selector``, ``filters``) and when (``start_time``, ``end_time``)."""

    selector: str = "all()"
    filters: tuple[PacketCaptureRule, ...] = attrs.field(default=(), converter=_to_rules)
    start_time: _dt.datetime | None = None
    end_time: _dt.datetime | None = None


def _to_names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(repr=False, eq=False)
class PacketCaptureFile(FieldsRepr, FieldsEq):
    """Where one node keeps a capture's files, and that node's capture state.

    ``directory`` is the capture directory as Calico reports it (without the
    ``{namespace}/{name}`` suffix the files really live under).
    """

    directory: str | None = None
    file_names: tuple[str, ...] = attrs.field(default=(), converter=_to_names)
    node: str | None = None
    state: CaptureState | None = None


def _to_files(value: Iterable[PacketCaptureFile]) -> tuple[PacketCaptureFile, ...]:
    return tuple(value)


@attrs.frozen(repr=False, eq=False)
class PacketCaptureStatus(FieldsRepr, FieldsEq):
    """The status subresource: one ``PacketCaptureFile`` entry per node."""

    files: tuple[PacketCaptureFile, ...] = attrs.field(default=(), converter=_to_files)


def _to_refs(value: Iterable[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    # A Python function, not the builtin `tuple`: attrs reads a converter's signature, and
    # a builtin's is parsed from text with tokenize's large regex (~3 ms at every start).
    return tuple(value)


@attrs.frozen(repr=False, eq=False)
class ObjectMeta(FieldsRepr, FieldsEq):
    """Kubernetes object metadata.

    Unknown metadata fields are kept in ``extra`` (wire names, raw values) and round-trip.
    """

    name: str = ""
    namespace: str | None = "default"
    labels: dict[str, str] = attrs.field(factory=dict)
    annotations: dict[str, str] = attrs.field(factory=dict)
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: _dt.datetime | None = None
    deletion_timestamp: _dt.datetime | None = None
    generate_name: str | None = None
    finalizers: tuple[str, ...] = attrs.field(default=(), converter=_to_names)
    owner_references: tuple[dict[str, Any], ...] = attrs.field(default=(), converter=_to_refs)
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(repr=False, eq=False)
class PacketCapture(FieldsRepr, FieldsEq):
    """Calico's namespaced ``projectcalico.org/v3`` ``PacketCapture`` resource."""

    KIND: ClassVar[str] = "PacketCapture"

    metadata: ObjectMeta = attrs.field(factory=ObjectMeta)
    spec: PacketCaptureSpec = attrs.field(factory=PacketCaptureSpec)
    status: PacketCaptureStatus | None = None

    @property
    def name(self) -> str:
        """Shortcut for ``metadata.name``."""
        return self.metadata.name

    @property
    def namespace(self) -> str:
        """Shortcut for ``metadata.namespace`` (``"default"`` when unset)."""
        return self.metadata.namespace or "default"

    @property
    def key(self) -> tuple[str, str]:
        """``(namespace, name)``, the identity of the capture."""
        return (self.namespace, self.name)


@attrs.frozen(repr=False, eq=False)
class WorkloadEndpointSpec(FieldsRepr, FieldsEq):
    """The parts of Calico's v3 ``WorkloadEndpointSpec`` a capture needs.

    Fields this class does not model are kept in ``extra`` and round-trip.
    """

    node: str = ""
    orchestrator: str = ""
    workload: str = ""
    pod: str = ""
    endpoint: str = ""
    interface_name: str = ""
    ip_networks: tuple[str, ...] = attrs.field(default=(), converter=_to_names)
    profiles: tuple[str, ...] = attrs.field(default=(), converter=_to_names)
    service_account_name: str = ""
    mac: str = ""
    container_id: str = ""
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(repr=False, eq=False)
class WorkloadEndpoint(FieldsRepr, FieldsEq):
    """Calico's v3 ``WorkloadEndpoint``: one pod interface on one node."""

    KIND: ClassVar[str] = "WorkloadEndpoint"

    metadata: ObjectMeta = attrs.field(factory=ObjectMeta)
    spec: WorkloadEndpointSpec = attrs.field(factory=WorkloadEndpointSpec)

    @property
    def namespace(self) -> str:
        """Shortcut for ``metadata.namespace`` (``"default"`` when unset)."""
        return self.metadata.namespace or "default"

    @property
    def key(self) -> tuple[str, str]:
        """``(namespace, name)``, the identity of the endpoint."""
        return (self.namespace, self.metadata.name)

    @property
    def pod_name(self) -> str:
        """The pod name capture files are named after (``spec.pod``, else the workload)."""
        return self.spec.pod or self.spec.workload or self.metadata.name

    def selector_labels(
        self, profile_labels: Mapping[str, Mapping[str, str]] | None = None
    ) -> dict[str, str]:
        """Return the labels a Calico selector sees for this endpoint.

        That is the labels of its profiles (when ``profile_labels`` maps profile names to
        labels; later profiles win), overridden by the endpoint's own labels, plus Calico's
        implicit ``projectcalico.org/namespace``, ``projectcalico.org/orchestrator`` and
        ``projectcalico.org/serviceaccount`` labels.
        """
        labels: dict[str, str] = {}
        if profile_labels:
            for profile in self.spec.profiles:
                labels.update(profile_labels.get(profile, {}))
        labels.update(self.metadata.labels)
        labels[NAMESPACE_LABEL] = self.namespace
        if self.spec.orchestrator:
            labels[ORCHESTRATOR_LABEL] = self.spec.orchestrator
        if self.spec.service_account_name:
            labels[SERVICE_ACCOUNT_LABEL] = self.spec.service_account_name
        return labels
