"""A small base for immutable value classes, for modules on the start-up path.

What ``attrs.frozen`` gives (slots, equality and hashing by type and fields, a repr, no
assignment), written out: building classes with attrs costs ~0.5 ms each at every start, and
importing attrs itself ~15 ms, which the selector and the BPF instructions need not pay.
A subclass lists its fields in ``__slots__`` and ``__match_args__`` (in order) and sets them
in ``__init__`` with :func:`set_field`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    from typing import Any, ClassVar

__all__ = ["FieldsEq", "FieldsRepr", "Frozen", "set_field"]

#: Set a field in ``__init__`` (plain assignment raises, as on a frozen attrs class).
set_field = object.__setattr__


class Frozen:
    """Immutable, slotted value objects compared and hashed by type and fields."""

    __slots__ = ()
    #: The fields, in order (positional pattern matching uses them too).
    __match_args__: ClassVar[tuple[str, ...]] = ()

    def _fields(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self.__match_args__])

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Frozen)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self), self._fields()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__name__}({fields})"

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return type(self), self._fields()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")


class FieldsRepr:
    """attrs' ``__repr__`` written once, for attrs classes made with ``repr=False``.

    ``Name(field=value, ...)`` over the fields attrs would show, exactly as attrs prints them.
    attrs generates and compiles a repr for every class it makes; the classes every command
    loads (the model, the schedule's records...) share this one instead, which saves a
    fifth of what making each class costs at start-up.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        shown = []
        for field in type(self).__attrs_attrs__:  # type: ignore[attr-defined]
            if field.repr is False:
                continue
            value = getattr(self, field.name)
            text = field.repr(value) if callable(field.repr) else repr(value)
            shown.append(f"{field.name}={text}")
        return f"{type(self).__qualname__.rsplit('>.', 1)[-1]}({', '.join(shown)})"


class FieldsEq:
    """attrs' ``__eq__`` and ``__hash__`` written once, for attrs classes made with ``eq=False``.

    Equal when of the same class and the compared fields are equal, as attrs' generated
    method (the fields, read with one ``attrgetter``, compare as a tuple: the same verdicts
    for fields that equal themselves, which the model's always do); the hash covers the
    class and the same fields. Saves generating and compiling both for each class at
    start-up.
    """

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        get = _compared(self.__class__)[0]
        return bool(get(self) == get(other))

    def __hash__(self) -> int:
        cls = self.__class__
        return hash((cls.__qualname__, _compared(cls)[1](self)))


_Getter = Callable[[object], object]
_COMPARED: dict[type, tuple[_Getter, _Getter]] = {}


def _compared(cls: type) -> tuple[_Getter, _Getter]:
    """Return getters of the fields ``cls``'s equality compares and its hash covers."""
    found = _COMPARED.get(cls)
    if found is None:
        fields = cls.__attrs_attrs__  # type: ignore[attr-defined]
        eq = [f.name for f in fields if f.eq]
        hashed = [f.name for f in fields if (f.eq if f.hash is None else f.hash)]
        found = _COMPARED[cls] = (_getter(eq), _getter(hashed))
    return found


def _getter(names: list[str]) -> _Getter:
    # A tuple of the fields' values whatever their number (attrgetter of one is the value).
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        name = names[0]
        return lambda obj: (getattr(obj, name),)
    return operator.attrgetter(*names)
