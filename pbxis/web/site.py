"""The HTTP ``Site`` around the Klein app: what no route can do for itself.

Some things must happen before a route runs, or before a request has even been read:

* **Bodies are bounded as they arrive.** Twisted buffers a whole body before any
  resource sees it, and spools one over 100 KB (or of unknown length) to a temporary
  file. :class:`_BoundedRequest` keeps the body in memory and :class:`GuardedChannel`
  answers 413 as soon as a declared ``Content-Length`` or the chunks received so far
  exceed :data:`~pbxis.web.validation.MAX_BODY_BYTES`: before authentication, before
  ``100 Continue``, and without reading the rest.
* **Reading a request has deadlines.** Twisted's idle timeout restarts with every byte,
  so a client trickling one byte a second holds a connection forever. The channel gives
  the request line and headers ``header_timeout`` seconds from their first byte, and the
  body ``body_timeout`` seconds from the end of the headers; past either, 408 and close.
* **Host and Origin are checked before routing.** With ``allowed_hosts`` configured, a
  ``Host`` outside it (DNS rebinding) is 421; a state-changing request (POST, PUT,
  DELETE, PATCH) whose ``Origin`` is neither pbxis's own nor in ``allowed_origins`` is
  403, so a page the agent happens to visit cannot drive the API with a form or a
  no-cors ``fetch``.
* CORS headers for the configured origins (:mod:`pbxis.web.cors`), on every answer.
* Klein refuses a URL that is not UTF-8 once percent-decoded (``/agents/%FF``) with a
  plain-text 400 and a logged traceback; the guard answers it with the contract's JSON
  error before Klein sees it.
* Twisted's access log writes every request line, and stream URLs carry the stream
  token (``/stream/<token>/sse``; the agent page is opened with ``?token=``). The
  formatter blanks both out: a token in a log file is a credential in a log file.

The channel is an HTTP/1.1 :class:`~twisted.web.http.HTTPChannel` (pbxis does not offer
HTTP/2, whose channel would bypass these limits).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

from klein import Klein
from twisted.internet.interfaces import IDelayedCall, IHalfCloseableDescriptor, ISSLTransport
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.components import proxyForInterface
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel, combinedLogFormatter
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from .cors import apply_cors, origin_allowed
from .errors import ApiError, error_body
from .redact import redact_url
from .validation import MAX_BODY_BYTES

__all__ = [
    "BODY_TIMEOUT",
    "HEADER_TIMEOUT",
    "GuardedChannel",
    "HostPolicy",
    "PbxisSite",
    "access_log_formatter",
    "build_site",
    "redact_url",
    "request_base_url",
]

log = Logger(namespace="pbxis.web")

HEADER_TIMEOUT = 10.0
"""Seconds from a request's first byte to the end of its headers."""
BODY_TIMEOUT = 30.0
"""Seconds from the end of the headers to the end of the body."""
LINGER_SECONDS = 2.0
"""After a refusal, how long the client's unread request bytes are discarded (not kept)
before the socket is aborted: closing a socket with unread input sends a TCP reset,
which can destroy the refusal before the client read it."""
LINGER_BYTES = 1 << 20

_STATE_CHANGING = frozenset({b"POST", b"PUT", b"DELETE", b"PATCH"})
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(?::(?P<port>[0-9]{1,5}))?$")
_REASONS = {408: b"Request Timeout", 413: b"Content Too Large"}


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


# -- Host ------------------------------------------------------------------------------


def _split_host(value: str) -> tuple[str, str | None] | None:
    """``(host, port)`` of a ``Host`` header or an ``allowed_hosts`` entry; ``None`` if malformed."""
    match = _HOST_PORT.match(value.strip())
    if match is None:
        return None
    return match.group("host").lower().rstrip("."), match.group("port")


class HostPolicy:
    """Which ``Host`` headers pbxis answers, and which it may put into stream URLs.

    Empty ``allowed_hosts``: any Host is answered (as before), but it is never trusted to
    build a URL: stream URLs then name the address the request arrived on. An entry
    without a port matches any port. ``public_url``'s host is always allowed.
    """

    def __init__(self, allowed_hosts: Sequence[str] = (), public_url: str = "") -> None:
        entries: list[tuple[str, str | None]] = []
        for entry in allowed_hosts:
            parsed = _split_host(entry)
            if parsed is None:
                raise ValueError(f"{entry!r} is not a host name or host:port")
            entries.append(parsed)
        if entries and public_url:
            netloc = urlsplit(public_url).netloc
            parsed = _split_host(netloc) if netloc else None
            if parsed is not None:
                entries.append(parsed)
        self._entries = tuple(entries)

    @property
    def enforced(self) -> bool:
        return bool(self._entries)

    def names_this_machine(self, host_header: str) -> bool:
        """Whether a page at this ``Host`` can only be pbxis's own, never a rebinding name.

        DNS rebinding points an attacker's name at pbxis: the browser then sends that name
        as ``Host`` and as the ``Origin``'s host, so "Origin equals Host" proves nothing
        for a name. It does for an IP literal or ``localhost`` (no page of another site
        carries those), and for a name ``allowed_hosts`` vouched for.
        """
        parsed = _split_host(host_header)
        if parsed is None:
            return False
        host = parsed[0]
        if self._entries:
            return self.allows(host_header)
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        return True

    def allows(self, host_header: str | None) -> bool:
        """Whether a request with this ``Host`` (``None``: no header) is answered."""
        if not self._entries or host_header is None:
            # No Host at all is HTTP/1.0; a browser always sends one, so DNS rebinding
            # cannot arrive without it.
            return True
        parsed = _split_host(host_header)
        if parsed is None:
            return False
        host, port = parsed
        return any(host == h and (p is None or p == port) for h, p in self._entries)


def request_base_url(request: IRequest) -> str:
    """The URL the client reached us at, for when no ``[http].public_url`` is configured.

    The Host header is the client's own word: it is used only when the site checked it
    against ``[http].allowed_hosts``; otherwise the URL names the local address the
    request arrived on, which no client can choose.
    """
    scheme = "https" if request.isSecure() else "http"
    site = getattr(getattr(request, "channel", None), "site", None)
    policy = getattr(site, "host_policy", None)
    raw = request.getHeader(b"host")
    host = raw.decode("latin-1") if isinstance(raw, bytes) else (raw or "")
    if not (isinstance(policy, HostPolicy) and policy.enforced and _split_host(host) is not None):
        addr = request.getHost()
        address = f"[{addr.host}]" if ":" in addr.host else addr.host
        host = f"{address}:{addr.port}"
    return f"{scheme}://{host}"


# -- the channel and the request ----------------------------------------------------


class _BoundedRequest(Request):
    """A request whose body lives in memory and is refused as soon as it is too big."""

    _received = 0
    _body: BytesIO | None = None

    def gotLength(self, length: int | None) -> None:
        # Never Twisted's temporary file: the channel refuses anything over the limit
        # before it could matter, so memory is bounded by that limit.
        self._body = BytesIO()
        self.content = self._body
        self._received = 0

    def handleContentChunk(self, data: bytes) -> None:
        channel = self.channel
        if not isinstance(channel, GuardedChannel) or self._body is None:
            super().handleContentChunk(data)
            return
        if channel.refused:
            return
        self._received += len(data)
        limit = channel.site.max_body_bytes
        if self._received > limit:
            channel.refuse(413, "body_too_large", f"the body must be at most {limit} bytes")
            return
        self._body.write(data)


class GuardedChannel(HTTPChannel):
    """``HTTPChannel`` with body limits and read deadlines (see the module docstring)."""

    site: PbxisSite
    refused = False
    _deadline: IDelayedCall | None = None
    _phase: str | None = None  # what the deadline is for: "headers" or "body"
    _in_body = False  # headers complete, body still arriving
    _linger: IDelayedCall | None = None
    _discarded = 0

    # -- deadlines ----------------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        """Parse, then start a deadline if a request is left half-read.

        A request that arrives whole (the common case) never costs a timer; one left
        partial after its first segment gets the header deadline from then on, and the
        body deadline once its headers are complete.
        """
        if self.refused:
            self._discard(data)
            return
        super().dataReceived(data)
        if self.refused or self._handlingRequest or self.transport is None:
            return
        if self._in_body:
            if self._phase != "body":
                self._arm(self.site.body_timeout, "body")
        elif self._phase is None and (self._buffer or self.requests):
            self._arm(self.site.header_timeout, "headers")

    def _arm(self, seconds: float, what: str) -> None:
        self._cancel_deadline()
        self._phase = what
        if seconds > 0:
            self._deadline = self.callLater(seconds, functools.partial(self._too_slow, what))

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        self._phase = None

    def _too_slow(self, what: str) -> None:
        self._deadline = None
        log.info(
            "HTTP client {peer} did not send its request {what} in time; dropping it",
            peer=str(self.transport.getPeer()) if self.transport else None,
            what=what,
        )
        self.refuse(408, "request_timeout", f"the request {what} did not arrive in time")

    # -- the parser's steps ---------------------------------------------------------------
    def allHeadersReceived(self) -> None:
        if self.refused:
            return
        length = self.length
        limit = self.site.max_body_bytes
        if length is not None and length > limit:
            # Declared too big: answer now, before 100 Continue, before any body byte.
            self.refuse(413, "body_too_large", f"the body must be at most {limit} bytes")
            return
        super().allHeadersReceived()
        self._cancel_deadline()
        self._in_body = length != 0  # dataReceived arms the body deadline if it is still due

    def rawDataReceived(self, data: bytes) -> None:
        if self.refused:
            self._discard(data)
            return
        super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        if self.refused:
            return
        self._cancel_deadline()
        self._in_body = False
        super().allContentReceived()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_deadline()
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self._linger = None
        super().connectionLost(reason)

    # -- refusing -------------------------------------------------------------------------
    def refuse(self, status: int, code: str, message: str) -> None:
        """Answer the request being read with a JSON error, and stop reading it.

        The rest of the request is never parsed or kept: what still arrives is discarded
        for a short while (so the client reads the answer rather than a TCP reset),
        then the connection is aborted.
        """
        if self.refused or self.transport is None:
            return
        self.refused = True
        self._cancel_deadline()
        body = error_body(code, message)
        headers = [
            (b"Content-Type", b"application/json"),
            (b"Content-Length", str(len(body)).encode()),
            (b"Connection", b"close"),
        ]
        request = self.requests[-1] if self.requests else None
        origin = request.getHeader(b"origin") if request is not None else None
        if origin is not None and origin_allowed(origin.decode("latin-1"), self.site.allowed_origins):
            headers += [(b"Access-Control-Allow-Origin", origin), (b"Vary", b"Origin")]
        head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error"))
        head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self.transport.write(head + b"\r\n" + body)
        self.setTimeout(None)
        # HTTPChannel registered itself as the transport's producer; unregister it so
        # that nothing resumes reading from a client we refused.
        unregister = getattr(self.transport, "unregisterProducer", None)
        if unregister is not None:
            unregister()
        if ISSLTransport.providedBy(self.transport) or not IHalfCloseableDescriptor.providedBy(
            self.transport
        ):
            # TLS wraps the socket (a half-close underneath would cut it mid-record).
            self.transport.loseConnection()
            return
        self.transport.loseWriteConnection()  # type: ignore[attr-defined]
        self._linger = self.callLater(LINGER_SECONDS, self._abort)

    def _discard(self, data: bytes) -> None:
        self._discarded += len(data)
        if self._discarded > LINGER_BYTES:
            self._abort()

    def _abort(self) -> None:
        self._linger = None
        if self.transport is not None:
            abort = getattr(self.transport, "abortConnection", self.transport.loseConnection)
            abort()


class PbxisSite(Site):
    """A ``Site`` building :class:`GuardedChannel` and :class:`_BoundedRequest`, with the limits."""

    protocol = GuardedChannel  # type: ignore[assignment]

    def __init__(
        self,
        resource: IResource,
        *,
        allowed_origins: Sequence[str] = (),
        host_policy: HostPolicy | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        header_timeout: float = HEADER_TIMEOUT,
        body_timeout: float = BODY_TIMEOUT,
        reactor: Any = None,
    ) -> None:
        kwargs: dict[str, Any] = {"logFormatter": access_log_formatter, "requestFactory": _BoundedRequest}
        if reactor is not None:
            kwargs["reactor"] = reactor
        super().__init__(resource, **kwargs)
        self.allowed_origins = allowed_origins
        self.host_policy = host_policy or HostPolicy()
        self.max_body_bytes = max_body_bytes
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.displayTracebacks = False
        self.noisy = False


# -- the guard before Klein ---------------------------------------------------------


def _header(request: IRequest, name: bytes) -> str | None:
    raw = request.getHeader(name)
    if raw is None:
        return None
    return raw.decode("latin-1") if isinstance(raw, bytes) else raw


class _Guard(Resource):
    """Host, Origin and URL checks in the contract's JSON, then defers to Klein."""

    isLeaf = True

    def __init__(
        self, inner: IResource, allowed_origins: Sequence[str], hosts: HostPolicy, public_url: str
    ) -> None:
        super().__init__()
        self._inner = inner
        self._origins = allowed_origins
        self._hosts = hosts
        public = urlsplit(public_url) if public_url else None
        self._public_origin = f"{public.scheme}://{public.netloc}".lower() if public else None

    def render(self, request: IRequest) -> bytes | int:
        # CORS for every answer, once, here: routes, errors and streams need not think of it.
        apply_cors(request, self._origins)
        error = self._check(request)
        if error is not None:
            for name, value in error.headers.items():
                request.setHeader(name.encode("latin-1"), value.encode("latin-1"))
            request.setResponseCode(error.status)
            request.setHeader(b"content-type", b"application/json")
            return error.body()
        answer: bytes | int = self._inner.render(request)
        return answer

    def _check(self, request: IRequest) -> ApiError | None:
        host = _header(request, b"host")
        if not self._hosts.allows(host):
            return ApiError(
                421,
                "host_not_allowed",
                "this Host is not one of [http].allowed_hosts; use the address pbxis is published at",
            )
        segments = [*request.prepath, *request.postpath]
        try:
            b"/".join(segments).decode("utf-8")
            request.getRequestHostname().decode("utf-8")
        except UnicodeDecodeError:
            return ApiError(400, "invalid_url", "the URL (and Host) must be UTF-8 once percent-decoded")
        origin = _header(request, b"origin")
        if request.method in _STATE_CHANGING and origin is not None and not self._origin_ok(origin, host):
            return ApiError(
                403,
                "origin_not_allowed",
                "this page's Origin may not change state in pbxis; add it to [http].allowed_origins"
                " (pbxis's own pages at a host name need that name in [http].allowed_hosts or"
                " [http].public_url)",
            )
        return None

    def _origin_ok(self, origin: str, host: str | None) -> bool:
        if origin_allowed(origin, self._origins):
            return True
        parts = urlsplit(origin)
        netloc = parts.netloc.lower()
        same_origin = host is not None and netloc and netloc == host.strip().lower()
        if same_origin and host is not None and self._hosts.names_this_machine(host):
            return True  # pbxis's own pages (same origin, at an address no other site can take)
        return self._public_origin is not None and origin.lower().rstrip("/") == self._public_origin


def build_site(
    app: Klein,
    allowed_origins: Sequence[str],
    *,
    allowed_hosts: Sequence[str] = (),
    public_url: str = "",
    max_body_bytes: int = MAX_BODY_BYTES,
    header_timeout: float = HEADER_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
    reactor: Any = None,
) -> PbxisSite:
    """The ``Site`` serving ``app``, with every guard of the module docstring."""
    hosts = HostPolicy(allowed_hosts, public_url)
    guard = _Guard(app.resource(), allowed_origins, hosts, public_url)
    return PbxisSite(
        guard,
        allowed_origins=allowed_origins,
        host_policy=hosts,
        max_body_bytes=max_body_bytes,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        reactor=reactor,
    )
