"""The README's two library programs, run as written against ``python -m pbxis.simulator``.

The README shows the files of ``docs/examples/`` verbatim (checked here), and each file
runs in its own process against the simulator in another, over TCP, as a user would
run them: they must print the snapshot, the queue login, the ActionID and the call.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
PROGRAMS = ("watch_agent.py", "watch_agent_asyncio.py")


def readme_blocks() -> list[str]:
    """Every ``::`` literal block of README.rst, dedented."""
    lines = (ROOT / "README.rst").read_text("utf-8").split("\n")
    blocks: list[str] = []
    for i, line in enumerate(lines):
        if not line.rstrip().endswith("::"):
            continue
        body: list[str] = []
        for following in lines[i + 2 :]:
            if following and not following.startswith("    "):
                break
            body.append(following[4:])
        blocks.append("\n".join(body).strip("\n") + "\n")
    return blocks


@pytest.mark.parametrize("program", PROGRAMS)
def test_readme_shows_the_program_verbatim(program: str) -> None:
    assert (EXAMPLES / program).read_text("utf-8") in readme_blocks()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def simulator() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pbxis.simulator",
            "--port",
            str(port),
            "--rate",
            "0",
            "--agents",
            "1001-1002",
            "--no-login",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the simulator did not listen"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize("program", PROGRAMS)
def test_program_runs_and_prints_live_events(simulator: int, program: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / program), f"127.0.0.1:{simulator}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    (originate,) = [line for line in lines if line.startswith("originate ")]
    assert originate.split()[1].startswith("originate-")
    ids = [e["id"] for e in events]
    assert ids == list(range(1, len(ids) + 1)), "every event once, in order"
    assert {"extensionStatus", "queueCount"} <= {e["type"] for e in events}, "the snapshot"
    assert any(e["type"] == "queueMemberStatus" and e["loggedIn"] for e in events), "the login"
    calls = [e for e in events if e["type"] == "phoneNumber"]
    assert calls and calls[0]["number"] == "0911234567" and calls[0]["direction"] == "out"
    assert any(e["type"] == "extensionStatus" and e["status"] == "inuse" for e in events), "answered"
