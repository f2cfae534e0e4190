"""Calico's selector tokenizer, byte for byte.

Calico tokenizes the whole selector before parsing, so a lexical error anywhere wins over a
grammar error earlier in the text; :func:`tokenize` does the same. The rules that a regular
lexer cannot express, and the reason this is hand-written rather than a lark lexer:

* the word operators (``contains``, ``starts with``, ``ends with``, ``not in``, ``in``) are
  recognised only directly after a label and need a word boundary after them; anywhere else the
  same words are plain labels;
* ``has(``, ``all(`` and ``global(`` are keywords only when ``(`` follows with no space, and the
  ``has(label)`` form is a single token;
* only space and tab are whitespace; anything else that is not a token is an error.

Each :class:`Token` carries its terminal name in ``selector.lark`` (what the LALR tables in
``_tables.py`` are indexed by), its text and ``start_pos``, the 0-based offset of the token in
the source.
"""

from __future__ import annotations

from packetcapture.errors import SelectorSyntaxError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    from typing import Final

__all__ = ["CALICO_KIND", "MAX_LABEL_LENGTH", "Token", "tokenize", "valid_label"]

#: Calico's limit on the length of a label key, in bytes (keys are ASCII).
MAX_LABEL_LENGTH: Final = 512

_WHITESPACE: Final = " \t"
_IDENT_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-"
)

# Terminal names of selector.lark; a leading underscore means the token is dropped from the
# children a grammar rule's callback gets.
LABEL: Final = "LABEL"
STRING: Final = "STRING"
HAS: Final = "HAS"
ALL: Final = "ALL"
GLOBAL: Final = "GLOBAL"
NOT: Final = "NOT"
EQ: Final = "EQ"
NE: Final = "NE"
IN: Final = "IN"
NOTIN: Final = "NOTIN"
CONTAINS: Final = "CONTAINS"
STARTSWITH: Final = "STARTSWITH"
ENDSWITH: Final = "ENDSWITH"
LPAREN: Final = "_LPAREN"
RPAREN: Final = "_RPAREN"
LBRACE: Final = "_LBRACE"
RBRACE: Final = "_RBRACE"
COMMA: Final = "_COMMA"
AND: Final = "_AND"
OR: Final = "_OR"
END: Final = "$END"

#: Terminal name -> Calico's ``tokenizer.Kind`` name (used in error messages).
CALICO_KIND: Final[dict[str, str]] = {
    LABEL: "TokLabel",
    STRING: "TokStringLiteral",
    LBRACE: "TokLBrace",
    RBRACE: "TokRBrace",
    COMMA: "TokComma",
    EQ: "TokEq",
    NE: "TokNe",
    IN: "TokIn",
    NOT: "TokNot",
    NOTIN: "TokNotIn",
    CONTAINS: "TokContains",
    STARTSWITH: "TokStartsWith",
    ENDSWITH: "TokEndsWith",
    ALL: "TokAll",
    HAS: "TokHas",
    LPAREN: "TokLParen",
    RPAREN: "TokRParen",
    AND: "TokAnd",
    OR: "TokOr",
    GLOBAL: "TokGlobal",
    END: "TokEOF",
}


class Token:
    """One token: its terminal name (``type``), its text and its 0-based offset."""

    __slots__ = ("start_pos", "type", "value")

    def __init__(self, type: str, value: str, start_pos: int = 0) -> None:
        self.type = type
        self.value = value
        self.start_pos = start_pos

    def __repr__(self) -> str:
        return f"Token({self.type!r}, {self.value!r}, start_pos={self.start_pos})"


_SINGLE: Final = {"(": LPAREN, ")": RPAREN, "{": LBRACE, "}": RBRACE, ",": COMMA}
_DOUBLE: Final = {"=": ("==", EQ, "expected =="), "&": ("&&", AND, "expected &&"),
                  "|": ("||", OR, "expected ||")}  # fmt: skip
# Operators allowed after a label, in the order Calico tries them.
_WORD_OPS: Final = (
    (("contains",), CONTAINS),
    (("starts", "with"), STARTSWITH),
    (("ends", "with"), ENDSWITH),
    (("not", "in"), NOTIN),
    (("in",), IN),
)


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _WHITESPACE:
        i += 1
    return i


def _ident_end(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _IDENT_CHARS:
        i += 1
    return i


def _cut_identifier(text: str, i: int) -> tuple[str, int]:
    """Return the label starting at ``i`` and the offset after it, or raise as Calico does."""
    end = _ident_end(text, i)
    ident = text[i:end]
    if len(ident) > MAX_LABEL_LENGTH:
        raise SelectorSyntaxError(f"label too long: {ident}", text, i + 1)
    if not ident:
        raise SelectorSyntaxError("expected identifier", text, i + 1)
    return ident, end


def _cut_words(text: str, i: int, words: tuple[str, ...]) -> int:
    """Match ``words`` (whitespace allowed between and after them) ending on a word boundary.

    Returns the offset after the match, or -1. Like Calico, whitespace after the last word is
    consumed before the boundary check, so ``starts with x`` does not match (``x`` is not a
    boundary) while ``contains x`` does.
    """
    j = i
    for word in words:
        if not text.startswith(word, j):
            return -1
        j += len(word)
        if len(words) > 1:
            j = _skip_ws(text, j)
    if j < len(text) and text[j] in _IDENT_CHARS:
        return -1
    return j


def _keyword_call(text: str, i: int, name: str, kind: str) -> tuple[Token, int]:
    """Tokenize ``all(`` / ``global(`` followed by optional whitespace and ``)``."""
    j = _skip_ws(text, i + len(name) + 1)
    if not text.startswith(")", j):
        raise SelectorSyntaxError(f"no closing ')' after {name}(", text, j + 1)
    return Token(kind, "", start_pos=i), j + 1


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into Calico selector tokens (no end-of-input token is appended).

    Raises :class:`~packetcapture.errors.SelectorSyntaxError` with Calico's tokenizer message
    and the 1-based column of the problem.
    """
    tokens: list[Token] = []
    n = len(text)
    i = 0
    while True:
        i = _skip_ws(text, i)
        if i >= n:
            return tokens
        c = text[i]
        single = _SINGLE.get(c)
        if single is not None:
            tokens.append(Token(single, "", start_pos=i))
            i += 1
        elif c in "\"'":
            close = text.find(c, i + 1)
            if close == -1:
                raise SelectorSyntaxError("unterminated string", text, i + 1)
            tokens.append(Token(STRING, text[i + 1 : close], start_pos=i))
            i = close + 1
        elif c == "!":
            if text.startswith("!=", i):
                tokens.append(Token(NE, "", start_pos=i))
                i += 2
            else:
                tokens.append(Token(NOT, "", start_pos=i))
                i += 1
        elif c in _DOUBLE:
            pair, kind, message = _DOUBLE[c]
            if not text.startswith(pair, i):
                raise SelectorSyntaxError(message, text, i + 1)
            tokens.append(Token(kind, "", start_pos=i))
            i += 2
        elif tokens and tokens[-1].type == LABEL:
            # Directly after a label only an operator may follow.
            for words, kind in _WORD_OPS:
                end = _cut_words(text, i, words)
                if end != -1:
                    tokens.append(Token(kind, "", start_pos=i))
                    i = end
                    break
            else:
                label = tokens[-1].value
                raise SelectorSyntaxError(f'expected operator after label "{label}"', text, i + 1)
        elif text.startswith("has(", i):
            j = _skip_ws(text, i + 4)
            ident, j = _cut_identifier(text, j)
            j = _skip_ws(text, j)
            if not text.startswith(")", j):
                raise SelectorSyntaxError("no closing ')' after has(", text, j + 1)
            tokens.append(Token(HAS, ident, start_pos=i))
            i = j + 1
        elif text.startswith("all(", i):
            token, i = _keyword_call(text, i, "all", ALL)
            tokens.append(token)
        elif text.startswith("global(", i):
            token, i = _keyword_call(text, i, "global", GLOBAL)
            tokens.append(token)
        else:
            ident, end = _cut_identifier(text, i)
            tokens.append(Token(LABEL, ident, start_pos=i))
            i = end


def valid_label(label: str) -> bool:
    """Return whether ``label`` is a label key a selector can name (Calico's ``ValidLabel``)."""
    return 0 < len(label) <= MAX_LABEL_LENGTH and _ident_end(label, 0) == len(label)
