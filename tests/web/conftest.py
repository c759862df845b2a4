"""The ``env`` fixture shared by the command-API tests (see ``test_api_fakes.Env``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted

from tests.web.test_api_fakes import Env


@pytest.fixture
def app_clock() -> Any:
    """The app's clock; ``None`` is the reactor. A module overrides this to drive time."""
    return None


@pytest_twisted.async_yield_fixture
async def env(app_clock: Any) -> AsyncIterator[Env]:
    e = Env(app_clock)
    try:
        yield e
    finally:
        await e.stop()
