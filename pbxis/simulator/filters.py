"""Server-side event selection as Asterisk 20.11+ does it: class masks and filters.

Pure functions over event text; the session applies them to asynchronous events only
(never to responses, list items or the FullyBooted written at login), as
``manager.c`` does.

* Masks: ``Events: on|off|<number>|<class list>`` (``reference.md`` 2.2). A class list
  with no known class is silently ``off``; an empty mask is an error.
* Filters: the legacy form (``Filter: <regex>``, ``!`` = exclude; the regex runs over
  the whole event text, ``.`` matching CR/LF) and the ``MatchCriteria`` form with the
  spellings the 20.20 parser accepts (``starts_with``, not ``startsWith``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .codes import CLASSES

__all__ = [
    "FILTER_BAD_FORMAT",
    "FILTER_NO_COMPILE",
    "EventFilter",
    "FilterError",
    "filters_allow",
    "parse_filter",
    "parse_mask",
]

ALL_CLASSES = frozenset(CLASSES)
FILTER_NO_COMPILE = "Filter did not compile.  Check the syntax of the filter given."
FILTER_BAD_FORMAT = "Filter was formatted incorrectly.  Check the syntax of the filter given."

_TRUE = {"on", "yes", "true", "y", "t", "1"}
_FALSE = {"off", "no", "false", "n", "f", "0"}
_METHODS = frozenset({"regex", "exact", "starts_with", "ends_with", "contains", "none"})
_CRITERION = re.compile(r"^\s*(action|name|header|method)\((.*)\)\s*$")


class FilterError(ValueError):
    """A Filter action Asterisk would refuse; ``str()`` is Asterisk's own message."""


def parse_mask(value: str) -> frozenset[str] | None:
    """The set of classes an ``Events``/``EventMask`` value enables; ``None`` if invalid."""
    text = value.strip()
    if not text:
        return None
    low = text.lower()
    if low in _TRUE:
        return ALL_CLASSES
    if low in _FALSE:
        return frozenset()
    if text.isdigit():
        bits = int(text)
        return frozenset(c for i, c in enumerate(CLASSES) if bits & (1 << i))
    out: set[str] = set()
    for token in text.split(","):
        if token == "":
            return ALL_CLASSES  # Asterisk compares over the token's length: "" matches all
        if token == "all":
            return ALL_CLASSES
        if token in ALL_CLASSES:
            out.add(token)
    return frozenset(out)


@dataclass(frozen=True)
class EventFilter:
    include: bool
    name: str | None = None
    header: str | None = None
    method: str = "regex"
    pattern: str = ""
    regex: re.Pattern[str] | None = None

    def matches(self, event: str, text: str, pairs: Sequence[tuple[str, str]]) -> bool:
        if self.name is not None and self.name != event:
            return False
        if self.method == "none":
            return True
        if self.header is None:
            return self._match(text)
        return any(k == self.header and self._match(v) for k, v in pairs)

    def _match(self, value: str) -> bool:
        method = self.method
        if method == "regex":
            assert self.regex is not None
            return self.regex.search(value) is not None
        if method == "exact":
            return value == self.pattern
        if method == "starts_with":
            return value.startswith(self.pattern)
        if method == "ends_with":
            return value.endswith(self.pattern)
        return self.pattern in value  # contains


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error as exc:
        raise FilterError(FILTER_NO_COMPILE) from exc


def parse_filter(filter_text: str | None, match_criteria: str | None) -> EventFilter:
    """Build a filter from the ``Filter``/``MatchCriteria`` headers or raise FilterError."""
    text = filter_text or ""
    include = True
    if text.startswith("!"):
        include, text = False, text[1:]
    if match_criteria is None or not match_criteria.strip():
        if not text:
            raise FilterError(FILTER_BAD_FORMAT)
        return EventFilter(include=include, pattern=text, regex=_compile(text))
    name: str | None = None
    header: str | None = None
    method: str | None = None
    seen: set[str] = set()
    for part in match_criteria.split(","):
        match = _CRITERION.match(part)
        if match is None:
            raise FilterError(FILTER_BAD_FORMAT)
        kind, arg = match.group(1), match.group(2).strip()
        if kind in seen or not arg:
            raise FilterError(FILTER_BAD_FORMAT)
        seen.add(kind)
        if kind == "action":
            if arg not in ("include", "exclude"):
                raise FilterError(FILTER_BAD_FORMAT)
            include = arg == "include"
        elif kind == "name":
            name = arg
        elif kind == "header":
            header = arg if arg.endswith(":") is False else arg[:-1]
        else:
            if arg not in _METHODS:
                raise FilterError(FILTER_BAD_FORMAT)
            method = arg
    if method is None:
        method = "none"
    if (method == "none") != (not text):
        raise FilterError(FILTER_BAD_FORMAT)
    regex = _compile(text) if method == "regex" else None
    return EventFilter(include, name, header, method, text, regex)


def filters_allow(
    filters: Iterable[EventFilter], event: str, text: str, pairs: Sequence[tuple[str, str]]
) -> bool:
    """Asterisk's rule: no filters -> all; includes must match one; excludes drop."""
    includes = [f for f in filters if f.include]
    excludes = [f for f in filters if not f.include]
    if includes and not any(f.matches(event, text, pairs) for f in includes):
        return False
    return not any(f.matches(event, text, pairs) for f in excludes)
