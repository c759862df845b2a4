"""The daemon as a user runs it: ``twistd -n pbxis --config`` against a separate simulator process.

The simulator is stopped and started again on the same port; pbxis must notice, report
it on ``/health``, reconnect by itself and log in again.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# twistd of this interpreter, as the README runs it.
TWISTD = [
    sys.executable,
    "-c",
    "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError:
        return 0, {}


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def start_simulator(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pbxis.simulator", "--port", str(port), "--rate", "0", "--seed", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def ports() -> Iterator[tuple[int, int]]:
    yield free_port(), free_port()


def test_daemon_logs_in_and_reconnects_after_asterisk_restarts(
    tmp_path: Path, ports: tuple[int, int]
) -> None:
    ami_port, http_port = ports
    config = tmp_path / "pbxis.toml"
    config.write_text(
        f"""
[ami]
host = "127.0.0.1"
port = {ami_port}
username = "pbxis"
secret_env = "PBXIS_TEST_SECRET"
reconnect_min_delay = 0.1
reconnect_max_delay = 0.5

[http]
listen = "tcp:{http_port}:interface=127.0.0.1"
""",
        "utf-8",
    )
    sim = start_simulator(ami_port)
    env = {**os.environ, "PBXIS_TEST_SECRET": "pbxis-secret"}
    daemon = subprocess.Popen(
        [*TWISTD, "--pidfile=", "-n", "pbxis", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: health(http_port)[0] == 200, 20, "the first login")
        stop(sim)
        _, body = wait_for(lambda: (h := health(http_port))[0] == 503 and h, 10, "503 after the stop")
        assert body["ami"]["connected"] is False
        sim = start_simulator(ami_port)
        _, body = wait_for(lambda: (h := health(http_port))[0] == 200 and h, 20, "the re-login")
        assert body["ami"]["reconnects"] >= 1
    finally:
        stop(sim)
        stop(daemon)
    log = daemon.stdout.read().decode("utf-8", "replace") if daemon.stdout else ""
    assert log.count("AMI login accepted") >= 2, log
    assert "pbxis-secret" not in log
