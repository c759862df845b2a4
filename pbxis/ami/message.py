"""The AMI message: an ordered, immutable list of ``Key: Value`` headers.

AMI messages are not dictionaries. Keys repeat (``ChanVariable``, ``Variable``,
``Output``), their spelling varies between versions (``Uniqueid`` / ``UniqueID``),
and the order of lines matters to anyone who compares us with a real Asterisk.
So a :class:`Message` keeps every header pair in order, and answers lookups
case-insensitively through an index built on first use (most messages that pass
the server-side filter are looked at; many in a benchmark are not).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import repeat
from typing import Final, overload

HeaderPairs = Iterable[tuple[str, str]]
HeaderInput = Mapping[str, object] | HeaderPairs

__all__ = ["SEARCH_LIMIT", "Banner", "HeaderInput", "Message", "normalise_headers"]

_partition = str.partition
_SEPARATOR: Final = repeat(": ")
SEARCH_LIMIT: Final = 4096
"""Longer texts (a rare long event) take the dict index: a search per look-up would cost
their length each time."""
_NEEDLES: dict[str, str] = {}
"""Key as asked -> ``"\\n" + lowered key + ": "``: keys come from a small vocabulary."""
_MAX_NEEDLES: Final = 1024


_SEARCHES: dict[tuple[str, ...], tuple[tuple[str, int], ...]] = {}
"""Keys asked together (:meth:`Message.values`) -> each one's needle and the length of
the needle but its LF: the handlers' few tuples, resolved once."""


def _searches(keys: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    found = tuple((needle, len(needle) - 1) for needle in map(_needle, keys))
    if len(_SEARCHES) < _MAX_NEEDLES:
        _SEARCHES[keys] = found
    return found


def _needle(key: str) -> str:
    """What a text look-up searches for: ``"\\n" + key + ": "``, lowered."""
    folded = key.lower()
    # A line's key holds neither (the line is cut at its first ": ", lines at CRLF), so
    # such a key is absent; "\n\n" is never in the text (no LF without its CR).
    needle = "\n\n" if ": " in folded or "\n" in folded else "\n" + folded + ": "
    if len(_NEEDLES) < _MAX_NEEDLES:
        _NEEDLES[key] = needle
    return needle


class Banner:
    """The one line Asterisk writes on accept: ``Asterisk Call Manager/9.0.0``.

    It is not followed by a blank line, so the parser hands it up on its own.
    """

    __slots__ = ("line",)

    def __init__(self, line: str) -> None:
        self.line = line

    @property
    def version(self) -> str:
        """The AMI version after the slash (``9.0.0`` on Asterisk 20), or ``""``."""
        _, _, version = self.line.partition("/")
        return version.strip()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Banner) and other.line == self.line

    def __hash__(self) -> int:
        return hash(self.line)

    def __repr__(self) -> str:
        return f"Banner({self.line!r})"


def normalise_headers(headers: HeaderInput | None) -> list[tuple[str, str]]:
    """Turn a mapping or pair list into ``[(key, str(value))]``.

    A list value in a mapping becomes repeated headers (``{"Variable": ["a=1", "b=2"]}``);
    booleans become Asterisk's ``true``/``false``; ``None`` values are dropped.
    """
    if headers is None:
        return []
    items: Iterable[tuple[str, object]]
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: list[tuple[str, str]] = []
    for key, value in items:
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            out.extend((key, _text(v)) for v in value)
        else:
            out.append((key, _text(value)))
    return out


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Message:
    """One AMI message (event, response or action).

    ``headers`` is the tuple of ``(key, value)`` pairs as they arrived. Look-ups by
    key are case-insensitive and return the first occurrence, which is what Asterisk
    itself does with the headers it reads. ``event`` is the ``Event`` name (``None``
    for a response or an action), read once when the message is made: every layer of
    the daemon's path (the link, the factory's counts, the sync, the tracker's
    dispatch) asks for it, and an attribute costs no call. OriginateResponse carries
    ``Response:`` too; it is an event.

    Data layout. A message the parser's fast path framed (every line ``Key: value``,
    CRLF between lines: what Asterisk writes) keeps its text as it came, one string,
    and nothing else. A look-up searches that text, lowered once, for
    ``"\\n" + key + ": "``: a few C-level calls, where a dict of every header (built,
    then freed, for the 6 or so keys the tracker asks of an event) cost four times as
    much. ``headers`` is split out of the text only when something iterates the pairs.
    Messages built from pairs, long ones and non-ASCII ones use a dict index built on
    the first look-up (for them a search would not be cheaper, or lowering the whole
    text could move characters).
    """

    __slots__ = ("_folded", "_headers", "_index", "_text", "event")

    def __init__(
        self, headers: HeaderInput = (), *, _text: str | None = None, _folded: str | None = None
    ) -> None:
        # ``_text`` is the parser's: a frame whose every line holds ": ", lines split by
        # CRLF, no other LF, no trailing CRLF (it checked all of it). ``_folded``, when
        # given, is what :meth:`_fold` would make of it (the parser lowers a whole read
        # at once).
        self._text: str | None = _text
        self._folded: str | None = _folded
        self._index: dict[str, str] | None = None
        self._headers: tuple[tuple[str, str], ...] | None = None
        self.event: str | None = None
        if _text is not None:
            if _text.startswith("Event: "):  # how Asterisk writes every event
                end = _text.find("\r\n")
                self.event = _text[7:end] if end >= 0 else _text[7:]
            else:
                self.event = self.get("Event")
        else:
            self._headers = tuple(normalise_headers(headers))
            self.event = self._event_of_pairs()

    @classmethod
    def _trusted(cls, headers: tuple[tuple[str, str], ...]) -> Message:
        """Build from pairs already known to be ``(str, str)`` (the parser's general path)."""
        self = cls()
        self._headers = headers
        self._index = self._folded = None  # nothing looked up yet: a look-up indexes these
        self.event = self._event_of_pairs()
        return self

    def _event_of_pairs(self) -> str | None:
        headers = self._headers
        if not headers:
            return None
        if headers[0][0] == "Event":
            return headers[0][1]
        return self.get("Event")

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """Every ``(key, value)`` pair in wire order, repeats included."""
        headers = self._headers
        if headers is None:
            lines = (self._text or "").split("\r\n")
            headers = self._headers = tuple([(k, v) for k, _, v in map(_partition, lines, _SEPARATOR)])
        return headers

    # -- look-ups ---------------------------------------------------------------
    def _build_index(self) -> dict[str, str]:
        # Built from the end so that the first occurrence of a repeated key wins.
        index = {key.lower(): value for key, value in reversed(self.headers)}
        self._index = index
        return index

    def _fold(self) -> str:
        """The lowered text behind a LF, or ``""`` when look-ups take the dict index."""
        text = self._text
        if text is None or len(text) > SEARCH_LIMIT or not text.isascii():
            self._folded = ""
            return ""
        # ASCII only: lowering keeps every character where it was, so a position found
        # in the lowered text is the same position in the text.
        folded = self._folded = "\n" + text.lower()
        return folded

    @overload
    def get(self, key: str) -> str | None: ...
    @overload
    def get(self, key: str, default: str) -> str: ...
    @overload
    def get(self, key: str, default: str | None) -> str | None: ...

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first value of ``key`` (any case), or ``default``."""
        folded = self._folded
        if folded is None:
            folded = self._fold()
        if folded:
            # Every line is "key: value" after a LF, so the first line that starts with
            # the key and ": " is its first occurrence. ``in`` first: a miss (ActionID,
            # ChanVariable on most events) costs no ``find``, which parses its arguments.
            # One search: most look-ups hit (a miss, ActionID or ChanVariable on most
            # events, costs the same search).
            needle = _NEEDLES.get(key) or _needle(key)
            at = folded.find(needle)
            if at < 0:
                return default
            text = self._text
            assert text is not None
            begin = at + len(needle) - 1  # folded has one LF more in front
            end = text.find("\r\n", begin)
            return text[begin:end] if end >= 0 else text[begin:]
        index = self._index
        if index is None:
            index = self._build_index()
        return index.get(key.lower(), default)

    def values(self, keys: tuple[str, ...]) -> list[str | None]:
        """``[self.get(key) for key in keys]`` in one call: for a handler that reads
        several headers of every event it takes (a queue member's five or six)."""
        folded = self._folded
        if folded is None:
            folded = self._fold()
        if not folded:
            return [self.get(key) for key in keys]
        text = self._text
        assert text is not None
        out: list[str | None] = []
        searches = _SEARCHES.get(keys) or _searches(keys)
        for needle, skip in searches:  # get's search, written out
            at = folded.find(needle)
            if at < 0:
                out.append(None)
                continue
            begin = at + skip
            end = text.find("\r\n", begin)
            out.append(text[begin:end] if end >= 0 else text[begin:])
        return out

    def lacks(self, keys: tuple[str, ...]) -> bool:
        """True when none of ``keys`` is a header (any case): one call for look-ups that
        usually miss (the tracker asks every event for ``ActionID`` and ``ChanVariable``)."""
        folded = self._folded
        if folded is None:
            folded = self._fold()
        if folded:
            for needle, _ in _SEARCHES.get(keys) or _searches(keys):
                if needle in folded:
                    return False
            return True
        index = self._index
        if index is None:
            index = self._build_index()
        return not any(key.lower() in index for key in keys)

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def get_all(self, key: str) -> list[str]:
        """Every value of a repeated key, in order (``ChanVariable``, ``Output``...)."""
        wanted = key.lower()
        return [v for k, v in self.headers if k.lower() == wanted]

    def keys(self) -> list[str]:
        """Header names in wire order, repeats included."""
        return [k for k, _ in self.headers]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)

    def __len__(self) -> int:
        return len(self.headers)

    # -- what kind of message ---------------------------------------------------
    @property
    def response(self) -> str | None:
        """``Success``/``Error``/``Goodbye``/``Follows`` for a response, else ``None``.

        An event that also has a ``Response`` header (OriginateResponse) is not a response.
        """
        if self.event is not None:
            return None
        return self.get("Response")

    @property
    def action(self) -> str | None:
        """The ``Action`` name of a client-sent message."""
        return self.get("Action")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    @property
    def is_event(self) -> bool:
        return self.event is not None

    @property
    def is_response(self) -> bool:
        return self.response is not None

    def channel_variables(self, prefix: str = "") -> dict[str, str]:
        """``ChanVariable`` values as a dict, in both of Asterisk's spellings.

        Snapshot events say ``ChanVariable: NAME=value`` (``DestChanVariable`` for the
        called side, pass ``prefix="Dest"``); events built from a live channel say
        ``ChanVariable(SIP/1001-0000001): NAME=value``.
        """
        wanted = (prefix + "ChanVariable").lower()
        out: dict[str, str] = {}
        folded = self._folded
        if folded is None:
            folded = self._fold()
        if folded and "\n" + wanted not in folded:
            return out  # no line starts with the key: the common case, one search
        for key, value in self.headers:
            low = key.lower()
            if low == wanted or (low.startswith(wanted + "(") and low.endswith(")")):
                name, sep, val = value.partition("=")
                if sep:
                    out.setdefault(name, val)
        return out

    # -- output -----------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The message as Asterisk writes it: ``Key: Value`` lines, CRLF, blank line."""
        text = self._text
        if text is not None:  # already "Key: value" lines joined by CRLF
            return (text + "\r\n\r\n").encode("utf-8")
        return "".join(f"{k}: {v}\r\n" for k, v in self.headers).encode("utf-8") + b"\r\n"

    def replace(self, **changes: str) -> Message:
        """A copy with the first occurrence of each key replaced (or appended)."""
        pending = {k.lower(): (k, v) for k, v in changes.items()}
        out: list[tuple[str, str]] = []
        for key, value in self.headers:
            hit = pending.pop(key.lower(), None)
            out.append((key, hit[1]) if hit else (key, value))
        out.extend(pending.values())
        return Message(out)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and other.headers == self.headers

    def __hash__(self) -> int:
        return hash(self.headers)

    def __repr__(self) -> str:
        head = self.event or self.response or self.action or "?"
        return f"<Message {head} {dict(self.headers)!r}>"
