"""Real processes for the suite: ``python -m pbxis.simulator`` and ``twistd pbxis`` as users run them.

The process tests (restart, Redis kill -9, webhooks across a kill) each need the same
things: a free port, a simulator process, a config naming it, ``twistd -n pbxis`` started
and waited for, and every process stopped by PID at the end whatever happened.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "CALLS",
    "TWISTD",
    "Daemons",
    "free_port",
    "health",
    "running_daemons",
    "start_simulator",
    "stop",
    "wait_for",
]

T = TypeVar("T")

#: twistd of this interpreter, as the README runs it.
TWISTD = [
    sys.executable,
    "-c",
    "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()",
]

#: The simulator's AMI secret, handed to pbxis through the environment (never on a command line).
SECRET_ENV = {"PBXIS_TEST_SECRET": "pbxis-secret"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def health(port: int) -> tuple[int, dict[str, Any]]:
    """``GET /health`` on loopback: (status, body), or (0, {}) when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError:
        return 0, {}


def wait_for(predicate: Callable[[], T], timeout: float, what: str, *, step: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


#: ``python -m pbxis.simulator`` arguments for customer calls flowing: two agents in one queue,
#: 150 calls a minute, talking 1-2 s (each agent's log grows by a few events a second)
CALLS = ("--agents", "1001-1002", "--queues", "sales", "--rate", "150", "--talk", "1-2")


def start_simulator(port: int, *args: str, seed: int = 1) -> subprocess.Popen[bytes]:
    """``python -m pbxis.simulator`` on ``port``: no calls unless ``args`` ask (``CALLS``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pbxis.simulator", "--port", str(port), *(args or ("--rate", "0")),
         "--seed", str(seed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it does not go within 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _serving(answer: tuple[int, dict[str, Any]]) -> bool:
    return answer[0] == 200 and answer[1].get("status") != "standby"


@dataclass
class Daemons:
    """A config for a simulator on ``ami_port``, and the ``twistd pbxis`` processes started on it."""

    config: Path
    cwd: Path
    ami_port: int
    http: int
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: the simulator process (None with ``simulator=False``)
    simulator: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: bool = True, log: Path | None = None) -> subprocess.Popen[bytes]:
        """``twistd -n pbxis`` on :attr:`config`; its output to a pipe, or appended to ``log``.

        A file suits a long-lived process whose output is read while it runs (a pipe
        nobody reads fills up and blocks the daemon).
        """
        out = log.open("ab") if log is not None else None
        try:
            daemon = subprocess.Popen(
                [*TWISTD, "--pidfile=", "-n", "pbxis", "--config", str(self.config)],
                cwd=self.cwd,
                env={**os.environ, **SECRET_ENV},
                stdout=subprocess.PIPE if out is None else out,
                stderr=subprocess.STDOUT,
            )
        finally:
            if out is not None:
                out.close()
        self.started.append(daemon)
        if wait:
            # 200 and not a standby (with [redis], a node stands by until it holds the lease)
            wait_for(lambda: _serving(health(self.http)), 30, "the daemon's login")
        return daemon


@contextmanager
def running_daemons(tmp_path: Path, extra_config: str = "", *, simulator: bool = True) -> Iterator[Daemons]:
    """A simulator process and a pbxis config for it (``[ami]``, ``[http]`` and ``extra_config``).

    Daemons are started with :meth:`Daemons.start`; at the end every one of them and the
    simulator are stopped by PID.
    """
    ami_port, http_port = free_port(), free_port()
    sim = start_simulator(ami_port) if simulator else None
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
{extra_config}""",
        "utf-8",
    )
    daemons = Daemons(config, tmp_path, ami_port, http_port, simulator=sim)
    try:
        yield daemons
    finally:
        for daemon in daemons.started:
            stop(daemon)
        if sim is not None:
            stop(sim)
