"""The name rules written with string methods give what the regular expressions they replaced gave.

The expressions are kept here as the reference (compiling them was ~1% of each start-up).
Strings are drawn mostly from the characters the rules are about, plus newlines (re's ``$``
matches before a final one), other Unicode decimal digits (``\\d`` takes them) and letters
outside ASCII.
"""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from packetcapture import validation
from packetcapture.pcap import CaptureFileName, parse_file_name

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
TRAILING_DIGITS = re.compile(r"-\d+$")
PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
ROTATED = re.compile(r"^(?P<base>.+)-(?P<us>\d+)\.pcap$")
ACTIVE = re.compile(r"^(?P<base>.+)\.pcap$")

_CHARS = st.sampled_from([*"az09AZ-_./\n\r \t", "\u0663", "\uff11", "é", "\u212a", "\u00b2"])
NAMES = st.text(_CHARS, max_size=12) | st.text(max_size=6)
_ENDS = ["", ".pcap", ".pcap\n", "-12.pcap", "-\u0663.pcap", "-\u00b2.pcap"]
FILE_NAMES = st.builds(lambda a, b: a + b, NAMES, st.sampled_from(_ENDS))


@settings(max_examples=500)
@given(NAMES)
@example("abc\n")
@example("\n")
@example("a.b\n\n")
@example("a..b")
@example("eth-\u00b2")  # a digit (str.isdigit) but not a decimal one (re's \\d)
def test_the_name_rules_are_the_expressions(value: str) -> None:
    assert validation._is_dns1123_subdomain(value) is bool(DNS1123_SUBDOMAIN.match(value))
    assert validation._is_dns1123_label(value) is bool(DNS1123_LABEL.match(value))
    assert validation._is_qualified_name(value) is bool(QUALIFIED_NAME.match(value))
    assert validation._is_label_value(value) is bool(LABEL_VALUE.match(value))
    assert validation._ends_in_dash_digits(value) is bool(TRAILING_DIGITS.search(value))
    plain = bool(value) and not value.strip(validation._PLAIN_KEY)
    assert plain is bool(PLAIN_KEY.fullmatch(value))


def _reference(name: str) -> CaptureFileName | None:
    rotated: int | None = None
    m = ROTATED.match(name)
    if m:
        stem, rotated = m.group("base"), int(m.group("us"))
    else:
        a = ACTIVE.match(name)
        if not a:
            return None
        stem = a.group("base")
    pod, sep, iface = stem.partition("_")
    if not sep or not pod or not iface:
        return None
    return CaptureFileName(pod, iface, rotated)


@settings(max_examples=500)
@given(FILE_NAMES)
@example("a_b-1-2.pcap")
@example("-12.pcap")
@example("a_-12.pcap")
@example("a_b\n.pcap")
@example("a_b.pcap\n")
@example(".pcap")
@example("a_b-\u00b2.pcap")
def test_parse_file_name_is_the_expressions(name: str) -> None:
    assert parse_file_name(name) == _reference(name)
