"""A sans-I/O AMI parser: bytes in, :class:`Message` objects out.

Plan. AMI frames a message as ``Key: Value`` lines ended by a blank line, except for
three things a naive ``split(b"\\r\\n\\r\\n")`` gets wrong:

* the banner (``Asterisk Call Manager/9.0.0``) is one line with no blank line after it;
* Asterisk 13 and older answer ``Command`` with ``Response: Follows`` and raw CLI text
  that may itself contain blank lines, ended by ``--END COMMAND--``;
* some values end in a stray LF (``value\\n\\r\\n\\r\\n``), which leaves an empty
  "message" between two frames; clients send bare LF.

Goal. Feeding a message in many small chunks costs O(n), not O(n^2): like h11's
receive buffer we remember where the search for the blank line stopped, and we drop
consumed bytes lazily (only when more than half of the buffer is dead), so a large
burst of small events is not copied once per event.

Worst case. A peer that never sends a blank line would make us buffer forever, so a
message larger than ``max_message_size`` raises :class:`RemoteProtocolError`; the
connection owner is expected to drop the link. The parser is then unusable.

The same parser reads what clients send (the simulator uses it with
``expect_banner=False``): framing is identical in both directions.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import repeat
from operator import contains
from typing import Final

from .message import SEARCH_LIMIT, Banner, Message

__all__ = [
    "NEED_DATA",
    "AMIParser",
    "AMIProtocolError",
    "LocalProtocolError",
    "ParsedItem",
    "RemoteProtocolError",
]


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()
"""Returned by :meth:`AMIParser.next_event` when no complete message is buffered."""

ParsedItem = Message | Banner


class AMIProtocolError(Exception):
    """Base of the AMI framing errors."""


class RemoteProtocolError(AMIProtocolError):
    """The peer sent bytes that cannot be AMI (e.g. an endless message)."""


class LocalProtocolError(AMIProtocolError, ValueError):
    """We were asked to send something that would corrupt the stream (CR/LF in a header)."""


_BLANK_LINE = re.compile(rb"\n\r?\n")
_END_COMMAND = b"--END COMMAND--"
_FOLLOWS_PREFIX = re.compile(rb"\s*Response:[ \t]*Follows\b", re.IGNORECASE)
# The general header line: key, colon, optional blanks, value without trailing blanks.
# Lines without a colon are not headers and are skipped (the valid part of a damaged
# message still parses).
_HEADER_LINE = re.compile(r"^([^:\n]+):[ \t]*(.*?)[ \t\r]*$", re.MULTILINE)
_FOLLOWS_HEADER_KEYS = frozenset({"response", "privilege", "actionid", "message"})

DEFAULT_MAX_MESSAGE_SIZE: Final = 4 * 1024 * 1024

# The fast path's check: ``map(_holds, lines, _SEPARATOR)`` is ``": " in line`` for every
# line without a bytecode per line.
_holds = contains  # a builtin taking fast calls (``str.__contains__`` packs a tuple per call)
_SEPARATOR: Final = repeat(": ")


def parse_block(block: bytes) -> Message | None:
    """Parse one framed message (without its blank line); ``None`` if it holds no header.

    Asterisk writes every line as ``Key: value`` + CRLF, so the fast path is two C-level
    splits per line and no regular expression; it takes the value verbatim after the
    one space, as Asterisk formats it. A block with any other line (bare LF, a key
    without a space after the colon, a line without a colon) takes the general pattern,
    which also trims blanks around values.
    """
    text = block.decode("utf-8", "replace")
    if text.endswith("\r"):  # the CR of the last line's CRLF (the frame ends at its LF)
        text = text[:-1]
    lines = text.split("\r\n")
    if all(map(_holds, lines, _SEPARATOR)) and text.count("\n") == len(lines) - 1:
        return Message(_text=text)
    found = _HEADER_LINE.findall(text)
    if not found:
        return None
    return Message._trusted(tuple(found))


def _parse_follows(block: bytes) -> Message:
    """Parse a pre-14 ``Response: Follows`` message into headers plus ``Output`` lines."""
    text = block.decode("utf-8", "replace").replace("\r\n", "\n")
    body, _, _ = text.rpartition(_END_COMMAND.decode())
    pairs: list[tuple[str, str]] = []
    lines = body.split("\n")
    i = 0
    # Leading blank lines are frame debris, not output.
    while i < len(lines) and not lines[i].strip():
        i += 1
    while i < len(lines):
        key, sep, value = lines[i].partition(":")
        if not sep or key.strip().lower() not in _FOLLOWS_HEADER_KEYS:
            break
        pairs.append((key.strip(), value.strip()))
        i += 1
    output = lines[i:]
    if output and output[-1] == "":
        output.pop()  # the newline before --END COMMAND--
    pairs.extend(("Output", line.rstrip("\r")) for line in output)
    return Message._trusted(tuple(pairs))


def _folds(text: str, blocks: list[str]) -> Iterable[str | None]:
    """Each block's look-up text (``"\\n"`` + the block lowered, see :class:`Message`),
    made for the whole read in two C-level calls rather than two per message.

    Split on ``"\\r\\n\\r"``, the lowered read falls apart where the blocks do, each piece
    after the first beginning with the LF that ends the blank line: the ``"\\n"`` a
    look-up needs in front. A line beginning with CR would cut one piece more: the
    counts then differ, and the messages lower their own text when first asked.
    Non-ASCII reads and long messages are left to the message, as it would treat them.
    """
    if not text.isascii() or max(map(len, blocks)) > SEARCH_LIMIT:
        return repeat(None)
    folds = text.lower().split("\r\n\r")
    if len(folds) != len(blocks):
        return repeat(None)
    folds[0] = "\n" + folds[0]
    return folds


class AMIParser:
    """Incremental AMI parser, in the shape of h11's ``Connection``.

    Call :meth:`receive_data` with whatever the socket gave, then :meth:`next_event`
    until it returns :data:`NEED_DATA` (or iterate :meth:`messages`).
    """

    def __init__(
        self,
        *,
        expect_banner: bool = True,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self._buf = bytearray()
        self._start = 0  # first byte not yet consumed
        self._scan = 0  # where the search for the next blank line resumes
        self._expect_banner = expect_banner
        self._max = max_message_size
        self._broken: RemoteProtocolError | None = None
        self._ready: deque[Message] = deque()  # parsed by a batch, not yet returned

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a message (parsed ones included)."""
        return len(self._buf) - self._start + sum(len(m.to_bytes()) for m in self._ready)

    def receive_data(self, data: bytes) -> None:
        """Append bytes from the peer. Never parses by itself."""
        if self._start and self._start * 2 >= len(self._buf):
            del self._buf[: self._start]
            self._scan -= self._start
            self._start = 0
        self._buf += data

    def messages(self) -> Iterator[ParsedItem]:
        """Yield every complete message buffered so far."""
        ready = self._ready  # a batch's messages go out without a call per message
        while True:
            if ready:
                yield ready.popleft()
                continue
            item = self.next_event()
            if item is NEED_DATA:
                return
            yield item  # type: ignore[misc]

    def next_event(self) -> ParsedItem | _NeedData:
        """The next complete :class:`Message` (or the :class:`Banner`), or NEED_DATA.

        Raises :class:`RemoteProtocolError` when the buffered message outgrows the limit.
        """
        if self._ready:
            return self._ready.popleft()
        if self._broken is not None:
            raise self._broken
        buf = self._buf
        while True:
            start = self._start
            if start >= len(buf):
                return NEED_DATA
            if self._expect_banner:
                banner = self._take_banner()
                if banner is NEED_DATA:
                    return NEED_DATA
                if banner is not None:
                    return banner
                continue
            item: Message | _NeedData | None
            if _FOLLOWS_PREFIX.match(buf, start):
                item = self._take_follows()
            elif self._take_batch():
                if self._ready:
                    return self._ready.popleft()
                continue  # the region held only frames without a header
            else:
                item = self._take_block()
            if item is NEED_DATA:
                return NEED_DATA
            if item is not None:
                return item

    # -- internals ----------------------------------------------------------------
    def _fail(self, text: str) -> RemoteProtocolError:
        self._broken = RemoteProtocolError(text)
        return self._broken

    def _check_size(self) -> None:
        if len(self._buf) - self._start > self._max:
            raise self._fail(
                f"AMI message larger than {self._max} bytes without a blank line; "
                "the peer is not speaking AMI or the stream is corrupt"
            )

    def _take_banner(self) -> Banner | _NeedData | None:
        """Consume the first line as the banner if it has no colon (``Asterisk Call Manager/x``)."""
        buf = self._buf
        nl = buf.find(b"\n", self._start)
        if nl < 0:
            self._check_size()
            return NEED_DATA
        line = bytes(buf[self._start : nl]).decode("utf-8", "replace").strip()
        self._expect_banner = False
        if not line:
            self._start = self._scan = nl + 1
            self._expect_banner = True  # stray blank line before the banner
            return None
        if ":" in line:
            return None  # no banner; this is already a message
        self._start = self._scan = nl + 1
        return Banner(line)

    def _take_batch(self) -> bool:
        """Parse every complete message buffered, in one pass, when they are all plain.

        This is the path Asterisk's own output takes: one ``rfind``, one decode and one
        split for a whole socket read instead of a search, a copy and a decode per
        message. Anything unusual in the region (a bare LF, a pre-14 ``Follows``
        answer) leaves it to the message-by-message path. True when the region was consumed.
        """
        buf = self._buf
        start = self._start
        end = buf.rfind(b"\r\n\r\n", start)
        if end < 0 or buf[start] in (0x0D, 0x0A):
            return False
        text = buf[start:end].decode("utf-8", "replace")
        if "Follows" in text:
            return False
        blocks = text.split("\r\n\r\n")
        lines = text.split("\r\n")
        # The CRLFs the split consumed are every LF of the region only if none is bare:
        # one count instead of counting LF and CRLF both. A bare LF (rare: a client
        # typing by hand) leaves the region to the careful path.
        if text.count("\n") != len(lines) - 1:
            return False
        folds = _folds(text, blocks)
        # ``lines`` is each block's lines with one "" between blocks (a frame's end), and
        # a blank line holds no ": ": every line of every block holds its ": " when the
        # count of lines holding one is the count of lines that are not those blanks.
        # One C-level pass over the read, no bytecode per line nor per message.
        parsed: list[Message]
        if sum(map(_holds, lines, _SEPARATOR)) == len(lines) - len(blocks) + 1:
            pairs = zip(blocks, folds, strict=False)  # folds may be repeat(None)
            parsed = [Message(_text=block, _folded=folded) for block, folded in pairs]
        else:
            parsed = []
            for block, folded in zip(blocks, folds, strict=False):
                # The message keeps the block's text and splits it only if asked for its
                # pairs; a block with a line without ": " takes the general pattern.
                if all(map(_holds, block.split("\r\n"), _SEPARATOR)):
                    parsed.append(Message(_text=block, _folded=folded))
                else:
                    found = _HEADER_LINE.findall(block)
                    if found:
                        parsed.append(Message._trusted(tuple(found)))
        self._ready.extend(parsed)
        self._start = self._scan = end + 4
        return True

    def _take_block(self) -> Message | _NeedData | None:
        buf = self._buf
        start = self._start
        # A blank line right at the start (debris after a value with a stray LF).
        if buf[start] == 0x0A:
            self._start = self._scan = start + 1
            return None
        if buf.startswith(b"\r\n", start):
            self._start = self._scan = start + 2
            return None
        match = _BLANK_LINE.search(buf, max(self._scan, start))
        if match is None:
            # Resume two bytes back: the \n of a split \n\r\n may already be here.
            self._scan = max(start, len(buf) - 2)
            self._check_size()
            return NEED_DATA
        end = match.end()
        block = bytes(buf[start : match.start()])
        self._start = self._scan = end
        return parse_block(block)

    def _take_follows(self) -> Message | _NeedData:
        buf = self._buf
        start = self._start
        marker = buf.find(_END_COMMAND, max(self._scan, start))
        if marker < 0:
            self._scan = max(start, len(buf) - len(_END_COMMAND))
            self._check_size()
            return NEED_DATA
        match = _BLANK_LINE.search(buf, marker)
        if match is None:
            self._scan = marker
            self._check_size()
            return NEED_DATA
        block = bytes(buf[start : match.start()])
        self._start = self._scan = match.end()
        return _parse_follows(block)
