"""YAML/JSON and plain dicts to and from the typed models, exactly as Calico's API spells them.

One cattrs converter, built by :func:`make_converter`, maps between wire dicts (camelCase,
ports as ``80`` or ``"8000:8080"``, RFC 3339 times) and the attrs models. Loading is strict:
unknown fields are errors that name the field, every problem in a document is reported at
once as a :class:`~packetcapture.errors.ValidationError`, and hostile input (alias bombs, deep
nesting, huge or binary documents) fails fast with a clear message.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import gc
import re
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

import attrs
import yaml

from packetcapture import validation as _v
from packetcapture.errors import Problem, ValidationError

if TYPE_CHECKING:
    import cattrs

from packetcapture.model import (
    API_VERSION,
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

__all__ = [
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_NODES",
    "Resource",
    "dumps",
    "format_time",
    "from_dict",
    "load_all",
    "loads",
    "make_converter",
    "parse_data",
    "parse_time",
    "to_dict",
]

Resource: TypeAlias = PacketCapture | WorkloadEndpoint
T = TypeVar("T")

#: Inputs larger than this are refused before parsing (Kubernetes objects are far smaller).
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024
#: Deepest nesting accepted in a document.
MAX_DEPTH = 64
#: Most YAML nodes aliases may add to a document once followed (alias bombs). Nodes written
#: out do not count: a long endpoint list without aliases is bounded by its size alone.
MAX_NODES = 2_000_000

_API_VERSIONS = (API_VERSION, "crd.projectcalico.org/v1")
_LIST_KINDS: dict[str, type[Resource]] = {
    "PacketCaptureList": PacketCapture,
    "WorkloadEndpointList": WorkloadEndpoint,
}
_KINDS: dict[str, type[Resource]] = {
    "PacketCapture": PacketCapture,
    "WorkloadEndpoint": WorkloadEndpoint,
}
_SPECIAL_NAMES = {"container_id": "containerID", "uid": "uid"}
#: A one-line string that is surely a file name, not YAML (it loads as a bare string). Like
#: _RFC3339, a string: re compiles (and caches) it when first used, not at every start.
_FILE_NAME = r"(?i)^[^:\n]*\.(?:ya?ml|json)$"


def _camel(name: str) -> str:
    if name in _SPECIAL_NAMES:
        return _SPECIAL_NAMES[name]
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# --- times -------------------------------------------------------------------------------

_RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"


def parse_time(value: object) -> _dt.datetime:
    """Parse an RFC 3339 time to a timezone-aware UTC datetime.

    A time without an offset (``2021-08-26T12:00:00``) is refused: it would mean different
    instants on different nodes.
    """
    if isinstance(value, _dt.datetime):
        if value.utcoffset() is None:
            raise ValueError(
                "time must have a timezone offset (RFC 3339), e.g. 2021-08-26T12:00:00Z"
            )
        return value.astimezone(_dt.UTC)
    if not isinstance(value, str):
        raise ValueError(f"time must be an RFC 3339 string, not {_kind(value)}")
    if not re.match(_RFC3339, value):
        if re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?$", value):
            raise ValueError(
                f"time {value!r} has no timezone offset: add 'Z' or an offset like '+02:00'"
            )
        raise ValueError(f"time {value!r} is not RFC 3339 (like 2021-08-26T12:00:00Z)")
    # Imported here: dateutil takes milliseconds to import and most documents have no times.
    from dateutil.parser import isoparse

    try:
        parsed = isoparse(value.replace("t", "T").replace("z", "Z").replace(" ", "T"))
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"time {value!r} is not a valid date and time: {exc}") from None
    return parsed.astimezone(_dt.UTC)


def format_time(value: _dt.datetime) -> str:
    """Format a datetime as Calico does: UTC, ``Z``, seconds (fraction only when present)."""
    utc = value.astimezone(_dt.UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


# --- the converter ----------------------------------------------------------------------


_kind = _v.kind_name


def _structure_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {_kind(value)}")
    return value


def _structure_int(value: object, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an integer, not {_kind(value)}")
    return value


def _structure_str_map(value: object, _: type) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a mapping of strings, not {_kind(value)}")
    # Every bad entry is reported, each under its own path (labels.k, labels['a.b/c']).
    problems: list[Problem] = []
    for k, v in value.items():
        where = _v.label_path(k, "")
        if not isinstance(k, str):
            problems.append((where, f"key must be a string, not {_kind(k)}"))
        if not isinstance(v, str):
            problems.append(
                (
                    where,
                    f"value must be a string, not {_kind(v)} "
                    "(quote values like 'true' or '123' in YAML)",
                )
            )
    if problems:
        raise _ProblemsError(problems)
    return dict(value)


def _structure_any_map(value: object, _: type) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a mapping, not {_kind(value)}")
    return dict(value)


def _structure_list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"must be a list, not {_kind(value)}")
    return value


def _structure_protocol(value: object, _: type) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"protocol must be a name or a number, not {_kind(value)}")
    if isinstance(value, str) and value.isdecimal() and value.isascii():
        value = int(value)
    # Checked here too (not only after the rule is built) so that a bad protocol is reported
    # together with the rule's other problems.
    for _path, message in _v.protocol_problems(value):
        raise ValueError(message)
    return value


def _structure_port(value: object, _: type) -> PortRange:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"port must be a number or a 'min:max' string, not {_kind(value)}")
    port = PortRange.parse(value)
    for _path, message in _v.port_problems(port, ""):
        raise ValueError(message)
    return port


def _unstructure_port(port: PortRange) -> int | str:
    return port.min if port.is_single else f"{port.min}:{port.max}"


def _structure_time(value: object, _: type) -> _dt.datetime:
    return parse_time(value)


def _structure_state(value: object, _: type) -> CaptureState:
    try:
        return CaptureState(value)
    except ValueError:
        names = ", ".join(s.value for s in CaptureState)
        raise ValueError(f"state {value!r} is not one of {names}") from None


class _ProblemsError(Exception):
    """Semantic problems found by a structure hook, paths relative to the object."""

    def __init__(self, problems: list[Problem]):
        super().__init__(problems)
        self.problems = problems


def _made_on_first_call(make: Callable[[], Callable[..., Any]]) -> Callable[..., Any]:
    """Return a hook that calls ``make()``'s hook, made when the hook is first called.

    Generating one compiles its code (about a millisecond): a process that never loads a
    class (a status, say) does not pay for its hook. The field hooks it binds are looked up
    then, when every hook is registered.
    """
    made: list[Callable[..., Any]] = []

    def hook(*args: Any) -> Any:
        if not made:
            made.append(make())
        return made[0](*args)

    return hook


# --- two families of hooks, one registration -----------------------------------------------
#
# Documents are loaded (and resources dumped) first by the fast lane: plain hooks that take a
# valid document to the same object as the converter does and raise on anything else, when
# the cattrs converter loads it again to say exactly what is wrong (its detailed error tree,
# every problem with its path). Importing cattrs takes ~16 ms, a sixth of the CLI's start-up
# goal, and a command given valid input never needs it. Both families are registered by the
# one function below; a test holds them to the same results on valid and invalid documents.


class _NeverRaisedError(Exception):
    """Stands for cattrs' error type in the fast lane, whose hooks never raise it."""


class _CattrsKit:
    """The converter's family: cattrs' generated hooks and its detailed validation."""

    def __init__(self) -> None:
        import cattrs
        from cattrs.errors import ClassValidationError

        self.conv = cattrs.Converter(
            forbid_extra_keys=True, omit_if_default=True, detailed_validation=True
        )
        self.class_error: type[Exception] = ClassValidationError

    @staticmethod
    def _overrides(model: type, extra: bool) -> dict[str, Any]:
        from cattrs.gen import override

        names = {a.name: override(rename=_camel(a.name)) for a in attrs.fields(model)}
        if extra:
            names["extra"] = override(omit=True)
        return names

    def structure_fn(self, cls: type[T], extra: bool) -> Callable[[Any, type], T]:
        """Return cattrs' generated structure hook for ``cls``, generated when first called."""
        from cattrs.gen import make_dict_structure_fn

        kwargs = self._overrides(cls, extra)
        return _made_on_first_call(
            lambda: make_dict_structure_fn(cls, self.conv, _cattrs_forbid_extra_keys=True, **kwargs)
        )

    def unstructure_fn(self, cls: type[T], extra: bool) -> Callable[[T], dict[str, Any]]:
        """Return cattrs' generated unstructure hook for ``cls``, generated when first called."""
        from cattrs.gen import make_dict_unstructure_fn

        kwargs = self._overrides(cls, extra)
        return _made_on_first_call(
            lambda: make_dict_unstructure_fn(cls, self.conv, _cattrs_omit_if_default=True, **kwargs)
        )

    def seq_hook(self, t: Any) -> Callable[[Any, type], tuple[Any, ...]]:
        """``tuple[X, ...]`` from a list, each bad item reported under its index."""
        from cattrs.errors import IterableValidationError, IterableValidationNote

        (item,) = [a for a in t.__args__ if a is not Ellipsis]
        conv = self.conv

        def structure(value: Any, _: type) -> tuple[Any, ...]:
            items = _structure_list(value)
            out: list[Any] = []
            errors: list[Exception] = []
            for i, elem in enumerate(items):
                try:
                    out.append(conv.structure(elem, item))
                except Exception as exc:
                    exc.__notes__ = [
                        *getattr(exc, "__notes__", []),
                        IterableValidationNote(f"item {i}", i, item),
                    ]
                    errors.append(exc)
            if errors:
                raise IterableValidationError("invalid items", errors, t)
            return tuple(out)

        return structure


def _optional_member(t: Any) -> Any:
    """``X`` for ``X | None``, else ``None``."""
    args: tuple[Any, ...] = getattr(t, "__args__", ())
    if isinstance(t, types.UnionType) and len(args) == 2 and type(None) in args:
        return args[0] if args[1] is type(None) else args[1]
    return None


def _plain(value: Any) -> Any:
    """Return a copy of plain YAML data (a ``dict[str, Any]`` field's), as cattrs gives it."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if type(value) is dict:
        return {k: _plain(v) for k, v in value.items()}
    if type(value) is list:
        return [_plain(v) for v in value]
    raise TypeError(f"not plain data: {type(value).__name__}")  # the converter decides


_Hook: TypeAlias = Callable[..., Any]


class _Lane:
    """The fast lane's converter: exactly the calls :func:`_register` makes of cattrs'.

    Hooks by exact type, by predicate or by factory (the latest registered wins, as in
    cattrs), ``X | None`` and the plain types; a type it does not know raises (a bug the
    equivalence tests catch, not a wrong result).
    """

    def __init__(self) -> None:
        self._exact: tuple[dict[Any, _Hook], dict[Any, _Hook]] = ({}, {})
        self._factories: tuple[list[tuple[_Hook, _Hook]], list[tuple[_Hook, _Hook]]] = ([], [])
        self._made: tuple[dict[Any, _Hook], dict[Any, _Hook]] = ({}, {})

    def register_structure_hook(self, t: Any, hook: _Hook) -> None:
        self._exact[0][t] = hook
        self._made[0].clear()

    def register_structure_hook_func(self, pred: _Hook, hook: _Hook) -> None:
        self.register_structure_hook_factory(pred, lambda _: hook)

    def register_structure_hook_factory(self, pred: _Hook, factory: _Hook) -> None:
        self._factories[0].insert(0, (pred, factory))
        self._made[0].clear()

    def register_unstructure_hook(self, t: Any, hook: _Hook) -> None:
        self._exact[1][t] = hook
        self._made[1].clear()

    def register_unstructure_hook_func(self, pred: _Hook, hook: _Hook) -> None:
        self._factories[1].insert(0, (pred, lambda _: hook))
        self._made[1].clear()

    def get_structure_hook(self, t: Any) -> _Hook:
        hook = self._made[0].get(t)
        if hook is None:
            hook = self._made[0][t] = self._find(0, t)
        return hook

    def get_unstructure_hook(self, t: Any) -> _Hook:
        hook = self._made[1].get(t)
        if hook is None:
            hook = self._made[1][t] = self._find(1, t)
        return hook

    def structure(self, value: Any, t: Any) -> Any:
        return self.get_structure_hook(t)(value, t)

    def unstructure(self, obj: Any) -> Any:
        return self.get_unstructure_hook(type(obj))(obj)

    def _find(self, way: int, t: Any) -> _Hook:
        if t in self._exact[way]:
            return self._exact[way][t]
        for pred, factory in self._factories[way]:
            if pred(t):
                return factory(t)  # type: ignore[no-any-return]
        member = _optional_member(t)
        if way == 0:
            if member is not None:
                inner = self.get_structure_hook(member)
                return lambda value, _: None if value is None else inner(value, member)
        elif t in (str, int, float, bool):
            return _identity
        elif member is not None:
            inner_u = self.get_unstructure_hook(member)
            return lambda value: None if value is None else inner_u(value)
        elif getattr(t, "__origin__", None) is tuple and t.__args__[-1] is Ellipsis:
            item = self.get_unstructure_hook(t.__args__[0])
            return lambda value: [item(v) for v in value]
        elif t == dict[str, str]:
            return dict
        elif t == dict[str, Any]:
            return _plain
        raise TypeError(f"no {('structure', 'unstructure')[way]} hook for {t!r}")


def _identity(value: Any) -> Any:
    return value


class _LaneKit:
    """The fast lane's family: plain hooks over ``attrs.fields``, made when first called."""

    class_error: type[Exception] = _NeverRaisedError

    def __init__(self) -> None:
        self.conv = _Lane()

    def structure_fn(self, cls: type[T], extra: bool) -> Callable[[Any, type], T]:
        """Like cattrs' with ``forbid_extra_keys``: camelCase keys, unknown keys refused."""
        conv = self.conv

        def make() -> Callable[[Any, type], T]:
            plan = tuple(
                (a.alias, _camel(a.name), a.type, conv.get_structure_hook(a.type), a.default)
                for a in attrs.fields(cls)  # type: ignore[arg-type]
                if not (extra and a.name == "extra")
            )
            known = frozenset(key for _, key, _, _, _ in plan)
            nothing = attrs.NOTHING

            def structure(value: Any, _: type) -> T:
                if not known.issuperset(value):
                    raise ValueError("unknown field")  # the converter names it
                kwargs = {}
                for alias, key, t, hook, default in plan:
                    if key in value:
                        kwargs[alias] = hook(value[key], t)
                    elif default is nothing:
                        raise KeyError(key)
                return cls(**kwargs)

            return structure

        return _made_on_first_call(make)

    def unstructure_fn(self, cls: type[T], extra: bool) -> Callable[[T], dict[str, Any]]:
        """Like cattrs' with ``omit_if_default``: a field equal to its default is left out."""
        conv = self.conv

        def make() -> Callable[[T], dict[str, Any]]:
            plan = tuple(
                (
                    a.name,
                    _camel(a.name),
                    conv.get_unstructure_hook(a.type),
                    a.default,
                    a.default.factory if isinstance(a.default, attrs.Factory) else None,  # type: ignore[arg-type]
                )
                for a in attrs.fields(cls)  # type: ignore[arg-type]
                if not (extra and a.name == "extra")
            )
            nothing = attrs.NOTHING

            def unstructure(obj: T) -> dict[str, Any]:
                out = {}
                for name, key, hook, default, factory in plan:
                    value = getattr(obj, name)
                    if factory is not None:
                        if not value != factory():  # noqa: SIM202 - cattrs' test, as it spells it
                            continue
                    elif default is not nothing and not value != default:  # noqa: SIM202
                        continue
                    out[key] = hook(value)
                return out

            return unstructure

        return _made_on_first_call(make)

    def seq_hook(self, t: Any) -> Callable[[Any, type], tuple[Any, ...]]:
        """``tuple[X, ...]`` from a list."""
        item = t.__args__[0]
        conv = self.conv

        def structure(value: Any, _: type) -> tuple[Any, ...]:
            hook = conv.get_structure_hook(item)
            return tuple([hook(v, item) for v in _structure_list(value)])

        return structure


_Kit: TypeAlias = _CattrsKit | _LaneKit


def _with_extra(
    kit: _Kit, cls: type[T]
) -> tuple[Callable[[Any, type], T], Callable[[T], dict[str, Any]]]:
    """Hooks for a class whose unknown wire fields are kept in its ``extra`` dict."""
    known = {_camel(a.name) for a in attrs.fields(cls) if a.name != "extra"}  # type: ignore[arg-type]
    gen_s = kit.structure_fn(cls, extra=True)
    gen_u = kit.unstructure_fn(cls, extra=True)

    def structure(value: Any, _: type) -> T:
        if not isinstance(value, Mapping):
            raise ValueError(f"must be a mapping, not {_kind(value)}")
        obj = gen_s({k: v for k, v in value.items() if k in known}, cls)
        extra = {k: v for k, v in value.items() if k not in known}
        return attrs.evolve(obj, extra=extra) if extra else obj  # type: ignore[misc]

    def unstructure(obj: T) -> dict[str, Any]:
        out = gen_u(obj)
        out.update(obj.extra)  # type: ignore[attr-defined]
        return out

    return structure, unstructure


def make_converter() -> cattrs.Converter:
    """Build the converter between wire dicts and the models (never cattrs' global one)."""
    kit = _CattrsKit()
    _register(kit)
    return kit.conv


def _register(kit: _Kit) -> None:
    """Register every hook of the models on ``kit``'s converter."""
    conv = kit.conv
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook_func(lambda t: t == dict[str, str], _structure_str_map)
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], _structure_any_map)
    conv.register_structure_hook(_dt.datetime, _structure_time)
    conv.register_unstructure_hook(_dt.datetime, format_time)
    conv.register_structure_hook(PortRange, _structure_port)
    conv.register_unstructure_hook(PortRange, _unstructure_port)
    conv.register_structure_hook(CaptureState, _structure_state)
    conv.register_unstructure_hook(CaptureState, lambda s: s.value)
    conv.register_structure_hook_func(lambda t: t == (int | str | None), _structure_protocol)
    conv.register_unstructure_hook_func(lambda t: t == (int | str | None), lambda v: v)
    conv.register_structure_hook_factory(
        lambda t: (
            getattr(t, "__origin__", None) is tuple
            and len(getattr(t, "__args__", ())) == 2
            and t.__args__[1] is Ellipsis
        ),
        kit.seq_hook,
    )

    # Inner classes first: a generated hook binds the hooks of its fields when it is made.
    for cls in (PacketCaptureFile, PacketCaptureStatus):
        conv.register_structure_hook(cls, _mapping_only(kit.structure_fn(cls, extra=False)))
        conv.register_unstructure_hook(cls, kit.unstructure_fn(cls, extra=False))

    _checked(kit, PacketCaptureRule, _v.rule_problems)
    _checked(
        kit,
        PacketCaptureSpec,
        lambda s: _v.spec_problems(s, deep=False),
        precheck=_spec_precheck,
        always=("selector",),
    )

    meta_s, meta_u = _with_extra(kit, ObjectMeta)

    def structure_meta(value: Any, t: type) -> ObjectMeta:
        try:
            meta = meta_s(value, t)
        except kit.class_error as exc:
            # The fields that did load are still checked, so all problems show at once.
            pre = _meta_precheck(value)
            if pre:
                raise _grown(exc, pre, ObjectMeta) from None
            raise
        problems = _v.meta_problems(meta)
        if problems:
            raise _ProblemsError(problems)
        return meta

    def unstructure_meta(meta: ObjectMeta) -> dict[str, Any]:
        out = meta_u(meta)
        if meta.namespace is not None:
            out["namespace"] = meta.namespace  # always shown, as kubectl does
        return out

    conv.register_structure_hook(ObjectMeta, structure_meta)
    conv.register_unstructure_hook(ObjectMeta, unstructure_meta)
    wep_s, wep_u = _with_extra(kit, WorkloadEndpointSpec)

    def wep_typos(value: Any) -> list[Problem]:
        # Unknown fields are kept, but one spelt like a missing key field is a typo.
        return _v.endpoint_typo_problems(value) if isinstance(value, Mapping) else []

    conv.register_structure_hook(
        WorkloadEndpointSpec, _adding(kit, wep_s, WorkloadEndpointSpec, wep_typos)
    )
    conv.register_unstructure_hook(WorkloadEndpointSpec, wep_u)

    for top in (PacketCapture, WorkloadEndpoint):
        conv.register_structure_hook(top, _mapping_only(kit.structure_fn(top, extra=False)))
        conv.register_unstructure_hook(top, kit.unstructure_fn(top, extra=False))
    wep_top = conv.get_structure_hook(WorkloadEndpoint)

    def structure_wep(value: Any, t: type) -> WorkloadEndpoint:
        # The file-name rules `run` applies, so `validate` says what `run` will say.
        wep: WorkloadEndpoint = wep_top(value, t)
        problems = _v.endpoint_name_problems(wep)
        if problems:
            raise _ProblemsError(problems)
        return wep

    def reserved_labels(value: Any) -> list[Problem]:
        # Calico sets the namespace label on endpoints; a capture must not.
        meta = value.get("metadata") if isinstance(value, Mapping) else None
        labels = meta.get("labels") if isinstance(meta, Mapping) else None
        if not isinstance(labels, Mapping):
            return []
        return [(_join("metadata", p), m) for p, m in _v.reserved_label_problems(labels)]

    conv.register_structure_hook(WorkloadEndpoint, structure_wep)
    capture_s = conv.get_structure_hook(PacketCapture)
    conv.register_structure_hook(
        PacketCapture, _adding(kit, capture_s, PacketCapture, reserved_labels)
    )


def _grown(exc: Exception, problems: list[Problem], cls: type) -> Exception:
    """Return cattrs' class error ``exc`` with ``problems`` found beside it added."""
    from cattrs.errors import ClassValidationError

    assert isinstance(exc, ClassValidationError)
    return ClassValidationError(exc.message, [*exc.exceptions, _ProblemsError(problems)], cls)


def _adding(
    kit: _Kit, hook: Callable[[Any, type], T], cls: type, found: Callable[[Any], list[Problem]]
) -> Callable[[Any, type], T]:
    """Wrap a structure hook: problems ``found`` in the raw value show with its own."""

    def structure(value: Any, t: type) -> T:
        extra = found(value)
        try:
            obj = hook(value, t)
        except kit.class_error as exc:
            if extra:
                raise _grown(exc, extra, cls) from None
            raise
        if extra:
            raise _ProblemsError(extra)
        return obj

    return structure


def _mapping_only(gen: Callable[[Any, type], T]) -> Callable[[Any, type], T]:
    """Wrap a generated hook so that a non-mapping gives a clear error, not AttributeError."""

    def structure(value: Any, t: type) -> T:
        if not isinstance(value, Mapping):
            raise ValueError(f"must be a mapping, not {_kind(value)}")
        return gen(value, t)

    return structure


def _meta_precheck(value: Mapping[str, Any]) -> list[Problem]:
    """Calico's metadata rules on the raw fields of the right type (the rest failed already)."""
    problems: list[Problem] = []
    name = value.get("name", "")
    if isinstance(name, str):
        problems += _v.name_problems(name)
    namespace = value.get("namespace")
    if isinstance(namespace, str):
        problems += _v.namespace_problems(namespace)
    labels = value.get("labels")
    if isinstance(labels, Mapping):
        # Non-string values failed already (that error is shown); their keys still count.
        checked = {
            k: v if isinstance(v, str) else "" for k, v in labels.items() if isinstance(k, str)
        }
        problems += _v.label_problems(checked)
    return problems


def _spec_precheck(value: Mapping[str, Any]) -> list[Problem]:
    # The selector is checked even when another field fails, so all problems show at once.
    if isinstance(value.get("selector"), str):
        return _v.selector_problems(value["selector"])
    return []


def _checked(
    kit: _Kit,
    cls: type[T],
    check: Callable[[T], list[Problem]],
    *,
    precheck: Callable[[Mapping[str, Any]], list[Problem]] | None = None,
    always: tuple[str, ...] = (),
) -> None:
    """Register hooks for ``cls`` that also run Calico's semantic checks after structuring."""
    gen_s = kit.structure_fn(cls, extra=False)
    gen_u = kit.unstructure_fn(cls, extra=False)

    def structure(value: Any, t: type) -> T:
        if not isinstance(value, Mapping):
            raise ValueError(f"must be a mapping, not {_kind(value)}")
        pre = precheck(value) if precheck else []
        try:
            obj = gen_s(value, t)
        except kit.class_error as exc:
            if pre:
                raise _grown(exc, pre, cls) from None
            raise
        problems = check(obj)
        if problems:
            raise _ProblemsError(problems)
        return obj

    def unstructure(obj: T) -> dict[str, Any]:
        out = gen_u(obj)
        for name in always:
            out.setdefault(name, getattr(obj, name))
        return out

    kit.conv.register_structure_hook(cls, structure)
    kit.conv.register_unstructure_hook(cls, unstructure)


@functools.cache
def _converter() -> cattrs.Converter:
    # Built on first use: importing cattrs and generating its hooks takes milliseconds.
    return make_converter()


@functools.cache
def _lane() -> _Lane:
    kit = _LaneKit()
    _register(kit)
    return kit.conv


_FIELD_NAMES: dict[str, list[str]] = {
    cls.__name__: [_camel(a.name) for a in attrs.fields(cls) if a.name != "extra"]
    for cls in (
        PacketCapture,
        PacketCaptureSpec,
        PacketCaptureRule,
        PacketCaptureStatus,
        PacketCaptureFile,
        WorkloadEndpoint,
    )
}


def _join(path: str, part: str) -> str:
    if not path:
        return part
    if not part:
        return path
    return path + part if part.startswith("[") else f"{path}.{part}"


def _problems(exc: BaseException, path: str) -> list[Problem]:
    """Flatten a cattrs error tree into ``(path, message)`` problems."""
    from cattrs.errors import (
        AttributeValidationNote,
        ClassValidationError,
        ForbiddenExtraKeysError,
        IterableValidationError,
        IterableValidationNote,
    )

    if isinstance(exc, _ProblemsError):
        return [(_join(path, p), m) for p, m in exc.problems]
    if isinstance(exc, ForbiddenExtraKeysError):
        known = _FIELD_NAMES.get(exc.cl.__name__, [])
        return [
            (_join(path, key), _v.unknown_field_message(key, known))
            for key in sorted(map(str, exc.extra_fields))
        ]
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        out = []
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            if isinstance(note, AttributeValidationNote):
                out += _problems(sub, _join(path, _camel(note.name)))
            elif isinstance(note, IterableValidationNote):
                out += _problems(sub, f"{path}[{note.index}]")
        for sub in without:
            out += _problems(sub, path)
        return out
    if isinstance(exc, KeyError):
        return [(_join(path, str(exc.args[0]) if exc.args else ""), "required field is missing")]
    if isinstance(exc, (ValueError, TypeError)):
        return [(path, str(exc) or type(exc).__name__)]
    # A hook that failed in an unforeseen way still yields a located problem, not a traceback.
    return [(path, f"invalid value ({type(exc).__name__}: {exc})")]


def from_dict(data: object) -> Resource:
    """Build a validated ``PacketCapture`` or ``WorkloadEndpoint`` from a wire dict."""
    if not isinstance(data, Mapping):
        raise ValidationError([("", f"a resource must be a mapping, not {_kind(data)}")])
    problems: list[Problem] = []
    kind = data.get("kind")
    api_version = data.get("apiVersion")
    # Hashable values only from here on: a list as `kind` must not raise TypeError.
    kind = kind if isinstance(kind, str) else repr(kind) if kind is not None else None
    api_version = api_version if isinstance(api_version, str) else repr(api_version)
    if kind not in _KINDS:
        # A resource of another kind: its apiVersion is beside the point.
        if kind is None:
            raise ValidationError(
                [("kind", "missing (expected PacketCapture or WorkloadEndpoint)")]
            )
        what = repr(data.get("kind"))
        raise ValidationError([("kind", f"kind {what} is not PacketCapture or WorkloadEndpoint")])
    if "apiVersion" not in data or data.get("apiVersion") is None:
        problems.append(("apiVersion", f"missing (expected {API_VERSION})"))
    elif api_version not in _API_VERSIONS:
        what = repr(data.get("apiVersion"))
        problems.append(("apiVersion", f"apiVersion {what} is not {API_VERSION}"))
    cls = _KINDS[str(kind)]
    body = {k: v for k, v in data.items() if k not in ("kind", "apiVersion")}
    if "metadata" not in body:
        problems.append(("metadata", "required field is missing"))
    try:
        obj: Resource = _lane().structure(body, cls)
    except Exception:  # not valid, or not for the fast lane: the converter says which
        try:
            obj = _converter().structure(body, cls)
        except Exception as exc:  # cattrs raises several kinds; all are flattened below
            problems += _problems(exc, "")
            raise ValidationError(problems) from None
    if problems:
        raise ValidationError(problems)
    return obj


def to_dict(obj: Resource) -> dict[str, Any]:
    """Return the wire dict of a resource, omitting unset fields."""
    try:
        body: dict[str, Any] = _lane().unstructure(obj)
    except Exception:  # a value the fast lane does not know (in ``extra``, say)
        body = _converter().unstructure(obj)
    return {"apiVersion": API_VERSION, "kind": obj.KIND, **body}


# --- text ------------------------------------------------------------------------------


class _UniqueKeys:
    """Constructor mix-in refusing a mapping that repeats a key (YAML says keys are unique).

    PyYAML keeps the last value silently; Kubernetes' own decoder refuses. Keys brought in
    by a merge (``<<: *base``) may be overridden, as YAML's merge rule allows.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                    key_node, yaml.ScalarNode
                ):
                    continue
                key = self.construct_object(key_node)  # type: ignore[attr-defined]
                try:
                    seen = first.get((type(key), key))  # 1 and true are different keys
                except TypeError:
                    continue  # unhashable: the constructor reports it
                if seen is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first at line {seen})",
                        key_node.start_mark,
                    )
                first[type(key), key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)  # type: ignore[misc,no-any-return]


class _SafeLoader(_UniqueKeys, yaml.SafeLoader):
    """PyYAML's safe loader without implicit timestamps (times stay strings, checked by us)."""


# YAML 1.1 reads `10:20` as the base-60 integer 620: a port range must stay a string, so the
# sexagesimal forms are dropped, as are implicit timestamps (times are checked by us).
_INT = re.compile(
    r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"
)
_FLOAT = re.compile(
    r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_SafeLoader.yaml_implicit_resolvers = {}
for _first, _resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items():
    for _tag, _rx in _resolvers:
        if _tag == "tag:yaml.org,2002:timestamp":
            continue
        if _tag == "tag:yaml.org,2002:int":
            _rx = _INT
        elif _tag == "tag:yaml.org,2002:float":
            _rx = _FLOAT
        _SafeLoader.yaml_implicit_resolvers.setdefault(_first, []).append((_tag, _rx))


# libyaml's parser (when PyYAML was built with it) is ~10x faster on large endpoint lists; it
# shares the resolvers above, so both read documents identically.
_Loader: Callable[[str], Any] = _SafeLoader
if getattr(yaml, "__with_libyaml__", False):

    class _CSafeLoader(_UniqueKeys, yaml.CSafeLoader):
        """libyaml's safe loader with the same resolvers as :class:`_SafeLoader`."""

    _CSafeLoader.yaml_implicit_resolvers = _SafeLoader.yaml_implicit_resolvers
    _Loader = _CSafeLoader


def _check_node(node: yaml.Node) -> None:
    """Refuse documents that nest too deeply or that aliases expand too far.

    Linear in the distinct nodes: one breadth-first pass checks the depth and notices a
    collection reached twice (through an alias); only then are expanded sizes counted.
    Aliases may add at most :data:`MAX_NODES` nodes, so a long document without aliases
    is bounded by its size alone.
    """
    seen = {id(node)}
    level = [node] if not isinstance(node, yaml.ScalarNode) else []
    depth = 1
    shared = False
    scalars = 0
    while level:
        below: list[yaml.Node] = []
        for current in level:
            if isinstance(current, yaml.MappingNode):
                for pair in current.value:
                    below.extend(pair)
            else:
                below.extend(current.value)
        if below and depth >= MAX_DEPTH:  # the nodes below are one level deeper
            mark = below[0].start_mark
            raise ValidationError(
                [("", f"nesting deeper than {MAX_DEPTH} levels at line {mark.line + 1}")]
            )
        level = []
        for child in below:
            if isinstance(child, yaml.ScalarNode):
                scalars += 1  # an alias to a scalar adds one node, bounded by the size
                continue
            if id(child) in seen:
                shared = True
            else:
                seen.add(id(child))
                level.append(child)
        depth += 1
    if shared:
        _check_expansion(node, len(seen) + scalars)


def _check_expansion(node: yaml.Node, distinct: int) -> None:
    """Refuse a document whose aliases add more than :data:`MAX_NODES` nodes."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        current, done = stack.pop()
        if done:
            total = 1 + sum(sizes.get(id(c), 1) for c in _children(current))
            sizes[id(current)] = total
            if total - distinct > MAX_NODES:
                raise ValidationError(
                    [
                        (
                            "",
                            f"aliases expand the document by more than {MAX_NODES} nodes "
                            "(alias bomb?)",
                        )
                    ]
                )
            continue
        if id(current) in sizes:
            continue
        stack.append((current, True))
        stack.extend(
            (c, False)
            for c in _children(current)
            if not isinstance(c, yaml.ScalarNode) and id(c) not in sizes
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    """Return the nodes right below ``node``."""
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _decode(text: str | bytes) -> str:
    if isinstance(text, bytes):
        if len(text) > MAX_DOCUMENT_BYTES:
            raise ValidationError([("", f"input is larger than {MAX_DOCUMENT_BYTES} bytes")])
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                [("", f"input is not UTF-8 text (byte {exc.start} is {text[exc.start]:#04x})")]
            ) from None
    if len(text) > MAX_DOCUMENT_BYTES:
        raise ValidationError([("", f"input is larger than {MAX_DOCUMENT_BYTES} bytes")])
    if "\x00" in text:
        raise ValidationError([("", f"input holds a NUL byte at offset {text.index(chr(0))}")])
    return text


class _DuplicateJsonKeyError(Exception):
    """A JSON object repeats a key: the YAML parser, which knows lines, reports it."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _DuplicateJsonKeyError
    return out


def _parse_documents(text: str) -> list[Any]:
    """Parse YAML (or JSON, a subset) into plain Python documents, refusing hostile input."""
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        import json  # here: YAML documents, the usual input, never need it

        try:
            return [json.loads(text, object_pairs_hook=_unique_pairs)]
        except RecursionError:
            raise ValidationError([("", "JSON nests too deeply")]) from None
        except (json.JSONDecodeError, _DuplicateJsonKeyError):
            pass  # not strict JSON (YAML flow style may parse it), or a key to locate
    docs: list[Any] = []
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters up front
        raise ValidationError([("", f"invalid YAML: {exc}")]) from None
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            _check_node(node)
            docs.append(loader.construct_document(node))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ValidationError([("", f"invalid YAML{where}: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise ValidationError([("", f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise ValidationError([("", "document nests too deeply")]) from None
    finally:
        loader.dispose()
    return docs


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large input is loaded.

    Loading allocates millions of small objects and frees none, so the collector ran again
    and again over a growing heap, and loading was quadratic (a 50k-endpoint list took
    19 s). Nothing built here holds a cycle worth collecting before the load ends.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def parse_data(text: str | bytes) -> list[Any]:
    """Parse YAML or JSON text into plain Python documents, with every limit of :func:`load_all`.

    For YAML inputs that are not resources (a node's saved status): the same size, NUL,
    UTF-8, nesting, alias and duplicate-key rules apply. Raises :class:`ValidationError`.
    """
    with _no_gc():
        return [d for d in _parse_documents(_decode(text)) if d is not None]


def loads(text: str | bytes) -> Resource:
    """Load one ``PacketCapture`` or ``WorkloadEndpoint`` from a YAML or JSON document.

    Raises :class:`ValidationError` listing every problem (with paths) when the text is not
    exactly one valid resource. Use :func:`load_all` for several documents or lists. ``text``
    is never a file name: a one-line string like ``x.yaml`` is refused with a hint.
    """
    docs = parse_data(text)
    if len(docs) != 1:
        raise ValidationError(
            [("", f"expected one document, found {len(docs)} (use load_all for several)")]
        )
    doc = docs[0]
    if isinstance(doc, Mapping) and _is_list(doc):
        raise ValidationError(
            [("kind", f"{doc.get('kind')} holds several resources: use load_all")]
        )
    if isinstance(text, str) and doc == text.strip() and re.match(_FILE_NAME, doc):
        # loads() takes text only: a file name here is a mistake, whether or not it exists.
        where = "" if _is_file(doc) else f" (no such file: {doc!r})"
        raise ValidationError(
            [
                (
                    "",
                    "a resource must be a mapping, not a string; loads() takes YAML or JSON "
                    f"text, to read a file pass pathlib.Path(...).read_text(){where}",
                )
            ]
        )
    return from_dict(doc)


def _is_list(doc: Mapping[str, Any]) -> bool:
    kind = doc.get("kind")
    if not isinstance(kind, str):
        return False
    return kind in _LIST_KINDS or (kind == "List" and doc.get("apiVersion") == "v1")


def load_all(source: str | bytes | PathLike[str]) -> list[Resource]:
    """Load every resource from multi-document YAML, JSON, or Kubernetes ``List`` kinds.

    ``source`` is the text itself, or a path (a ``Path``, or a one-line string naming an
    existing file). Problems from every document are reported together, each path prefixed
    with the document (``documents[1].``, when there are several) and list item (``items[3].``).
    A one-line string that looks like a file name (``x.yaml``) but names no file is an error
    that says so.
    """
    if isinstance(source, PathLike) or (
        isinstance(source, str) and "\n" not in source and len(source) < 4096 and _is_file(source)
    ):
        path = Path(source)
        size = path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise ValidationError([("", f"{path} is larger than {MAX_DOCUMENT_BYTES} bytes")])
        source = path.read_bytes()
    docs = parse_data(source)
    if (
        isinstance(source, str)
        and len(docs) == 1
        and docs[0] == source.strip()
        and re.match(_FILE_NAME, source.strip())
    ):
        raise ValidationError(
            [
                (
                    "",
                    "a resource must be a mapping, not a string; to read a file pass a "
                    f"pathlib.Path (no such file: {docs[0]!r})",
                )
            ]
        )
    results: list[Resource] = []
    problems: list[Problem] = []
    with _no_gc():
        for i, doc in enumerate(docs):
            prefix = f"documents[{i}]" if len(docs) > 1 else ""
            try:
                results += _load_doc(doc)
            except ValidationError as exc:
                problems += exc.prefixed(prefix).problems if prefix else exc.problems
    if problems:
        raise ValidationError(problems)
    return results


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def _load_doc(doc: Any) -> list[Resource]:
    if not (isinstance(doc, Mapping) and _is_list(doc)):
        return [from_dict(doc)]
    items = doc.get("items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValidationError([("items", f"must be a list, not {_kind(items)}")])
    want = _LIST_KINDS.get(str(doc.get("kind")))
    out: list[Resource] = []
    problems: list[Problem] = []
    for i, item in enumerate(items):
        try:
            obj = from_dict(item)
            if want is not None and not isinstance(obj, want):
                raise ValidationError([("kind", f"a {doc.get('kind')} holds only {want.KIND}")])
            out.append(obj)
        except ValidationError as exc:
            problems += exc.prefixed(f"items[{i}]").problems
    if problems:
        raise ValidationError(problems)
    return out


def dumps(obj: Resource | Iterable[Resource], format: Literal["yaml", "json"] = "yaml") -> str:
    """Serialise a resource (or several, as a ``v1`` ``List``) to YAML or JSON."""
    if isinstance(obj, (PacketCapture, WorkloadEndpoint)):
        data: dict[str, Any] = to_dict(obj)
    else:
        data = {"apiVersion": "v1", "kind": "List", "items": [to_dict(o) for o in obj]}
    if format == "json":
        import json

        return json.dumps(data, indent=2) + "\n"
    if format == "yaml":
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    raise ValueError(f"format must be 'yaml' or 'json', not {format!r}")
