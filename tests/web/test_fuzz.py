"""Schemathesis against ``/openapi.json`` of a running app: no 5xx, answers match the document.

schemathesis is synchronous (requests), so the app runs in its own process
(``test_api_fakes.py`` run as a script, over the fakes) and this process only sends
HTTP. Examples are bounded and derandomized, so a run is repeatable and short.
Stream routes are left out: they belong to the streams module and hold connections
open by design.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from pbxis.web.openapi import openapi_document
from tests.web.test_api_fakes import API_KEY

pytestmark = pytest.mark.slow

POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE


def _cases() -> list[tuple[str, schemathesis.GenerationMode]]:
    """(operation label, mode); negative data needs some input to be wrong about."""
    cases = []
    for path, item in openapi_document("http://x")["paths"].items():
        if path.startswith("/stream/"):
            continue
        for method, operation in item.items():
            if method not in {"get", "put", "post", "delete"}:
                continue
            label = f"{method.upper()} {path}"
            cases.append((label, POSITIVE))
            if item.get("parameters") or operation.get("parameters") or operation.get("requestBody"):
                cases.append((label, NEGATIVE))
    return sorted(cases)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    script = Path(__file__).with_name("test_api_fakes.py")
    process = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        assert port.isdigit(), f"the app server did not start (got {port!r})"
        yield f"http://127.0.0.1:{port}"
    finally:
        assert process.stdin is not None
        process.stdin.close()  # the server stops when its stdin closes
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture(scope="module")
def schema(base_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


@pytest.mark.parametrize(("label", "mode"), _cases())
def test_fuzz(
    schema: schemathesis.BaseSchema,
    session: requests.Session,
    base_url: str,
    label: str,
    mode: schemathesis.GenerationMode,
) -> None:
    operation = schema.find_operation_by_label(label)
    assert operation is not None, label

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        # Generating from regex patterns dominates the run time; negative data is the
        # costlier kind, so it gets fewer examples to keep the whole run well under 60 s.
        max_examples=25 if mode is POSITIVE else 15,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(
            base_url=base_url, session=session, headers={"Authorization": f"Bearer {API_KEY}"}
        )

    run()
