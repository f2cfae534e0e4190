"""Calico's label-selector language: parse, print, evaluate and index selectors.

Exactly the language of Calico's ``libcalico-go/lib/selector``: what Calico accepts parses,
what it rejects raises :class:`~packetcapture.errors.SelectorSyntaxError` with Calico's
message, ``str()`` gives Calico's canonical form and ``unique_id`` its ``UniqueID()``.

>>> sel = parse("app == 'web' && tier in {'b', 'a'} && !has(canary)")
>>> str(sel)
'(app == "web" && tier in {"a", "b"} && !has(canary))'
>>> sel.evaluate({"app": "web", "tier": "a"})
True
"""

from packetcapture._lazy import lazy_names
from packetcapture.selector._ast import (
    AllNode,
    AndNode,
    ContainsNode,
    EndsWithNode,
    EqNode,
    GlobalNode,
    HasNode,
    InNode,
    LabelRestriction,
    NeNode,
    Node,
    NotInNode,
    NotNode,
    OrNode,
    StartsWithNode,
)
from packetcapture.selector._parser import MAX_NESTING
from packetcapture.selector._selector import (
    ALL,
    NO_MATCH,
    Selector,
    in_namespace,
    normalise,
    parse,
    unique_id,
)
from packetcapture.selector._tokenizer import MAX_LABEL_LENGTH, valid_label

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    from packetcapture.selector._index import SelectorIndex


# The index is loaded on first use: parsing and evaluating never need it (nor typing,
# which its generic class needs).
__getattr__, __dir__ = lazy_names(globals(), {"SelectorIndex": "packetcapture.selector._index"})

__all__ = [
    "ALL",
    "MAX_LABEL_LENGTH",
    "MAX_NESTING",
    "NO_MATCH",
    "AllNode",
    "AndNode",
    "ContainsNode",
    "EndsWithNode",
    "EqNode",
    "GlobalNode",
    "HasNode",
    "InNode",
    "LabelRestriction",
    "NeNode",
    "Node",
    "NotInNode",
    "NotNode",
    "OrNode",
    "Selector",
    "SelectorIndex",
    "StartsWithNode",
    "in_namespace",
    "normalise",
    "parse",
    "unique_id",
    "valid_label",
]
