"""Stream tokens out of anything that gets logged: the one rule, used by the access log
and the error log alike.

Stream URLs carry the token (``/stream/<token>/sse``) and the agent page is opened with
``?token=``; a token in a log file is a credential in a log file.
"""

from __future__ import annotations

import re

__all__ = ["redact_url"]

_STREAM_TOKEN = re.compile(rb"(/stream/)[^/?#]+")
_TOKEN_PARAM = re.compile(rb"([?&]token=)[^&#]*", re.IGNORECASE)


def redact_url(url: bytes) -> bytes:
    """``url`` with the stream token of ``/stream/<token>/...`` and any ``token=`` blanked."""
    return _TOKEN_PARAM.sub(rb"\1<token>", _STREAM_TOKEN.sub(rb"\1<token>", url))
