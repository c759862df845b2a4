"""The agent page (``/client/{tech}/{agent}``) and the static files behind it.

The page is one HTML template plus ``app.css``, ``pbxis.js`` and ``page.js``. The only
request data that reaches the HTML is the validated tech and agent, and even those go in
as JSON inside a ``<script type="application/json">`` block with ``<``, ``>`` and ``&``
escaped, so no value can close the element or start markup. The page's JavaScript reads
that block; the token never passes through the server-side template at all (the
browser takes it from its own URL).

Static files are served from a fixed set computed from the package directory at import:
a request names a file, never a path, so there is nothing to traverse and nothing to
list. Caching is short on purpose: a deployment that upgrades pbxis must not keep old
JavaScript in agents' browsers for long.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from klein import Klein
from twisted.web.iweb import IRequest

from .errors import ApiError
from .validation import agent_name

__all__ = ["STATIC_DIR", "TECHS", "add_client_routes", "render_page"]

STATIC_DIR: Final = Path(__file__).parent / "static"
TECHS: Final = ("long-poll", "sse", "websocket")

_PAGE_TEMPLATE: Final = "agent.html"
_INDEX_PAGE: Final = "index.html"
_CONFIG_MARK: Final = "{{config}}"

_CONTENT_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
"""What ``/static`` serves, by suffix. HTML is left out: the templates are not assets."""

STATIC_CACHE: Final = "public, max-age=300"

_PAGE_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'self'; object-src 'none'"
)
"""The page runs only pbxis's own scripts. ``connect-src`` allows WebSockets explicitly
because older browsers do not count ``ws:`` to the page's own host as ``'self'``."""


def _static_files() -> dict[str, Path]:
    return {
        path.name: path
        for path in STATIC_DIR.iterdir()
        if path.is_file() and path.suffix in _CONTENT_TYPES and not path.name.startswith(".")
    }


def _script_json(value: object) -> str:
    """JSON that is safe inside a ``<script>`` element and in HTML generally."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(tech: str, agent: str) -> bytes:
    """The agent page for an already validated ``tech`` and ``agent``."""
    template = (STATIC_DIR / _PAGE_TEMPLATE).read_text("utf-8")
    config = _script_json({"tech": tech, "agent": agent})
    return template.replace(_CONFIG_MARK, config, 1).encode("utf-8")


def _html_headers(request: IRequest) -> None:
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"content-security-policy", _PAGE_POLICY.encode("ascii"))
    request.setHeader(b"x-content-type-options", b"nosniff")
    # The page URL may carry the agent's stream token: never send it to anyone else.
    request.setHeader(b"referrer-policy", b"no-referrer")


def add_client_routes(app: Klein) -> None:
    """Install ``GET /client``, ``GET /client/{tech}/{agent}`` and ``GET /static/<name>`` on ``app``.

    Errors are raised as :class:`~pbxis.web.errors.ApiError`; the app renders them.
    """
    static = _static_files()

    @app.route("/client", methods=["GET", "HEAD"])
    def client_index(request: IRequest) -> bytes:
        """A small page to pick an agent and a transport (the demo's front door)."""
        _html_headers(request)
        return (STATIC_DIR / _INDEX_PAGE).read_bytes()

    @app.route("/client/<tech>/<agent>", methods=["GET", "HEAD"])
    def client_page(request: IRequest, tech: str, agent: str) -> bytes:
        if tech not in TECHS:
            raise ApiError(
                400, "invalid_field", f"tech: use one of {', '.join(TECHS)} (e.g. /client/sse/1001)"
            )
        agent_name(agent)
        _html_headers(request)
        return render_page(tech, agent)

    @app.route("/static/<path:name>", methods=["GET", "HEAD"])
    def static_file(request: IRequest, name: str) -> bytes:
        path = static.get(name)
        if path is None:
            raise ApiError(404, "not_found", "no such static file; the client library is /static/pbxis.js")
        request.setHeader(b"content-type", _CONTENT_TYPES[path.suffix].encode("ascii"))
        request.setHeader(b"cache-control", STATIC_CACHE.encode("ascii"))
        request.setHeader(b"x-content-type-options", b"nosniff")
        return path.read_bytes()
