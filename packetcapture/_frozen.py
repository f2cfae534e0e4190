"""A small base for immutable value classes, for modules on the start-up path.

What ``attrs.frozen`` gives (slots, equality and hashing by type and fields, a repr, no
assignment), written out: building classes with attrs costs ~0.5 ms each at every start, and
importing attrs itself ~15 ms, which the selector and the BPF instructions need not pay.
A subclass lists its fields in ``__slots__`` and ``__match_args__`` (in order) and sets them
in ``__init__`` with :func:`set_field`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    from typing import Any, ClassVar

__all__ = ["Frozen", "set_field"]

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
