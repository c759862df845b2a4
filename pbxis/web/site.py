"""The HTTP ``Site`` around the Klein app: what no route can do for itself.

Three things happen before a route runs or after it finished, so they live here:

* CORS headers for the configured origins (:mod:`pbxis.web.cors`), on every answer;

* Klein refuses a URL that is not UTF-8 once percent-decoded (``/agents/%FF``) with a
  plain-text 400 and a logged traceback; a client's typo is neither an error of ours
  nor outside the contract, so :class:`_Utf8Guard` answers it with the contract's JSON
  error before Klein sees it.
* Twisted's access log writes every request line, and stream URLs carry the stream
  token (``/stream/<token>/sse``; the agent page is opened with ``?token=``). The
  formatter blanks both out: a token in a log file is a credential in a log file.
"""

from __future__ import annotations

from collections.abc import Sequence

from klein import Klein
from twisted.python.components import proxyForInterface
from twisted.web.http import combinedLogFormatter
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import Site

from .cors import apply_cors
from .errors import ApiError
from .redact import redact_url

__all__ = ["access_log_formatter", "build_site", "redact_url"]

class _RedactedRequest(proxyForInterface(IRequest, "_request")):  # type: ignore[misc]
    """The request as the access log may see it: no token in the URL or the Referer."""

    # Read by the formatter but not declared by IRequest, so not proxied by default.
    clientproto = property(lambda self: self._request.clientproto)
    sentLength = property(lambda self: self._request.sentLength)
    code = property(lambda self: self._request.code)

    @property
    def uri(self) -> bytes:
        return redact_url(self._request.uri)

    def getHeader(self, key: bytes) -> bytes | None:
        value: bytes | None = self._request.getHeader(key)
        if value is not None and key.lower() == b"referer":
            return redact_url(value)
        return value


def access_log_formatter(timestamp: str, request: IRequest) -> str:
    """Twisted's combined log format, with stream tokens redacted (``IAccessLogFormatter``)."""
    return str(combinedLogFormatter(timestamp, _RedactedRequest(request)))


class _Utf8Guard(Resource):
    """Answers a URL Klein cannot decode with the contract's JSON 400, then defers to Klein."""

    isLeaf = True

    def __init__(self, inner: IResource, allowed_origins: Sequence[str]) -> None:
        super().__init__()
        self._inner = inner
        self._origins = allowed_origins

    def render(self, request: IRequest) -> bytes | int:
        # CORS for every answer, once, here: routes, errors and streams need not think of it.
        apply_cors(request, self._origins)
        segments = [*request.prepath, *request.postpath]
        try:
            b"/".join(segments).decode("utf-8")
            request.getRequestHostname().decode("utf-8")
        except UnicodeDecodeError:
            error = ApiError(400, "invalid_url", "the URL (and Host) must be UTF-8 once percent-decoded")
            request.setResponseCode(error.status)
            request.setHeader(b"content-type", b"application/json")
            return error.body()
        answer: bytes | int = self._inner.render(request)
        return answer


def build_site(app: Klein, allowed_origins: Sequence[str]) -> Site:
    """The ``Site`` serving ``app``: JSON for undecodable URLs, a token-free access log."""
    site = Site(_Utf8Guard(app.resource(), allowed_origins), logFormatter=access_log_formatter)
    site.displayTracebacks = False
    site.noisy = False
    return site
