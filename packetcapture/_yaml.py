"""PyYAML, imported without compiling its regular expressions until each is first used.

``import yaml`` compiles ``yaml.reader.Reader.NON_PRINTABLE``, a character class spanning
all of Unicode, which Python's regular expression compiler takes ~57M instructions (~10 ms)
to build: over a tenth of a short ``packetcapture run`` or ``validate``. Only the
pure-Python reader uses it (``Reader.check_printable``); documents read by libyaml
(``yaml.CSafeLoader``, which :mod:`packetcapture.serde` uses when PyYAML has it) never do.
Its other patterns (the resolvers' ``int``, ``bool``, ``timestamp``...; the constructor's
timestamp) are used only by some documents. :func:`import_yaml` imports PyYAML with every
pattern its own modules compile at import made when first used (the same pattern and
flags; PyYAML only calls their methods); patterns compiled by any other module, before,
during or after, are compiled as usual.
"""

from __future__ import annotations

import re
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["import_yaml"]


class _OnFirstUse:
    """Stands for ``re.compile(pattern, flags)`` and compiles it when first used."""

    __slots__ = ("_compiled", "_flags", "_pattern")

    def __init__(self, pattern: str, flags: int) -> None:
        self._pattern = pattern
        self._flags = flags
        self._compiled: re.Pattern[str] | None = None

    def __getattr__(self, name: str) -> object:
        if self._compiled is None:
            self._compiled = re.compile(self._pattern, self._flags)
        return getattr(self._compiled, name)

    def __repr__(self) -> str:
        return f"<compiled on first use: re.compile({self._pattern!r})>"


def import_yaml() -> ModuleType:
    """Import PyYAML (if not yet imported) with its patterns compiled when first used."""
    loaded = sys.modules.get("yaml")
    if loaded is not None:
        return loaded
    compile_ = re.compile

    def compile_lazily(pattern: object, flags: int = 0) -> object:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if isinstance(pattern, str) and caller.startswith("yaml."):
            return _OnFirstUse(pattern, flags)
        return compile_(pattern, flags)  # type: ignore[call-overload]

    re.compile = compile_lazily  # type: ignore[assignment]
    try:
        import yaml
    finally:
        re.compile = compile_
    return yaml
