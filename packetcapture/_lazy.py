"""Names a package's ``__init__`` imports on first use (a module ``__getattr__``, PEP 562).

For names whose module most users of the package never need (merging in ``pcap``, the
index in ``selector``): importing the package stays cheap, and the name, once used, is
kept in the package so later lookups are plain ones.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["lazy_names"]


def lazy_names(
    namespace: dict[str, object], module_of: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Return a package's ``(__getattr__, __dir__)`` for names imported on first use.

    ``namespace`` is the package's ``globals()``; ``module_of`` maps each lazy name to the
    module defining it. ``dir()`` lists the names before they are loaded.
    """

    def attribute(name: str) -> object:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def names() -> list[str]:
        return sorted({*namespace, *module_of})

    return attribute, names
