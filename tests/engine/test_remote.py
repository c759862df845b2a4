"""A command run on another node fails with the same typed error, and so the same HTTP
answer, as when it runs here (pbxis.engine.remote); the relay's own failures are typed."""

from __future__ import annotations

from typing import Any

import pytest

from pbxis.engine.remote import error_from_reply, result_of
from pbxis.errors import (
    AlreadyLoggedIn,
    CommandError,
    Conflict,
    Forbidden,
    InvalidArgument,
    NotLoggedIn,
    NumberNotAllowed,
    PbxRefused,
    PbxTimeout,
    PbxUnavailable,
    RateLimited,
    UnknownAgent,
    UnknownQueue,
)
from pbxis.web.api import api_error_for

ERRORS: list[CommandError] = [
    InvalidArgument("number: use digits"),
    Forbidden("not your queue"),
    NumberNotAllowed("0900: refused"),
    UnknownAgent("agent 1001 is not registered"),
    UnknownQueue("no queue nosuch"),
    AlreadyLoggedIn("already in sales"),
    NotLoggedIn("not in sales"),
    Conflict("no_call", "no current call"),
    RateLimited("too many", retry_after=7),
    PbxUnavailable("AMI down", retry_after=3),
    PbxTimeout("no answer"),
    PbxRefused("permission denied"),
]


def reply_of(error: Exception) -> dict[str, Any]:
    """What the collector's executor sends back for ``error`` (redis_commands)."""
    from pbxis.store.redis_commands import _error_fields

    return {"error": type(error).__name__, "message": str(error), **_error_fields(error)}


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_an_error_comes_back_typed_with_the_same_http_answer(error: CommandError) -> None:
    again = error_from_reply(reply_of(error))
    assert type(again) is type(error) and again.message == error.message and again.code == error.code
    here, there = api_error_for(error), api_error_for(again)
    assert (there.status, there.code, there.message, there.headers) == (
        here.status, here.code, here.message, here.headers,
    )  # fmt: skip


def test_a_fault_on_the_collector_is_a_502_not_a_crash() -> None:
    with pytest.raises(PbxRefused, match="KeyError"):
        result_of(reply_of(KeyError("boom")))
    with pytest.raises(PbxRefused):
        result_of({"error": "SystemExit", "message": "not a domain error"})
    with pytest.raises(PbxRefused):
        result_of("garbage")
    assert result_of({"ok": "action-1"}) == "action-1"
    assert result_of({"ok": None}) is None


def test_the_relays_own_failures_are_503_and_504() -> None:
    from pbxis.store.redis_commands import CommandNotTaken, CommandTimeout, NoCollector

    no = api_error_for(NoCollector(retry_after=5))
    assert no.status == 503 and no.headers["Retry-After"] == "5" and no.code == "pbx_unavailable"
    # not taken in time (the web node's abandonment won): it never ran, so 503 as well
    never = api_error_for(CommandNotTaken(retry_after=5))
    assert never.status == 503 and never.headers["Retry-After"] == "5"
    assert "not run" in never.message and "may or may not" not in never.message
    unknown = api_error_for(CommandTimeout())
    assert unknown.status == 504 and "may or may not have run" in unknown.message
