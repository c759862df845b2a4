"""Headless Chromium for the browser tests, driven from one dedicated thread.

Playwright's sync API blocks and insists on being called from the thread that started
it, while the reactor (the daemon under test) must keep running in the main thread. So
one worker thread owns Playwright and the browser for the whole session; a test hands
it a function with :meth:`Browser.run` and gets a Deferred. Inside that function, the
test reaches back into the reactor with :func:`on_reactor` (to drive the simulator).
Waiting is done on page content with Playwright's timeouts, never with sleeps.
"""

from __future__ import annotations

import concurrent.futures
import shutil
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from twisted.internet import defer, reactor, threads

from tests.support.chromium import CHROMIUM_ARGS

T = TypeVar("T")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Browser:
    """One Chromium, owned by one thread; pages are opened per test in fresh contexts."""

    def __init__(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="playwright")
        self._playwright: Any = None
        self._browser: Any = None

    def _start(self) -> Any:
        if self._browser is None:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS)
            )
        return self._browser

    def run(self, fn: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        """Run ``fn(page, *args)`` in the browser thread with a fresh page; fire with its result."""

        def job() -> T:
            context = self._start().new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(10_000)
            try:
                return fn(context.new_page(), *args)
            finally:
                context.close()

        d: defer.Deferred[T] = defer.Deferred()
        future = self._executor.submit(job)

        def done(f: concurrent.futures.Future[T]) -> None:
            error = f.exception()
            if error is not None:
                reactor.callFromThread(d.errback, error)
            else:
                reactor.callFromThread(d.callback, f.result())

        future.add_done_callback(done)
        return d

    def close(self) -> None:
        def stop() -> None:
            if self._browser is not None:
                self._browser.close()
                self._playwright.stop()

        self._executor.submit(stop).result(timeout=30)
        self._executor.shutdown()


def on_reactor(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """From the browser thread: call ``fn`` in the reactor thread, wait for its (async) result."""

    def call() -> defer.Deferred[Any]:
        return defer.ensureDeferred(_await(fn(*args, **kwargs)))

    return threads.blockingCallFromThread(reactor, call)


async def _await(value: Any) -> Any:
    if isinstance(value, defer.Deferred) or hasattr(value, "__await__"):
        return await value
    return value


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        pytest.fail("no Chromium: run scripts/ensure-chromium (the browser tests need it)")
    b = Browser()
    yield b
    b.close()
