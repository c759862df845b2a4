"""The daemon as a user runs it: ``twistd -n pbxis --config`` against a separate simulator process.

The simulator is stopped and started again on the same port; pbxis must notice, report
it on ``/health``, reconnect by itself and log in again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.processes import health, running_daemons, start_simulator, stop, wait_for

pytestmark = pytest.mark.slow


def test_daemon_logs_in_and_reconnects_after_asterisk_restarts(tmp_path: Path) -> None:
    with running_daemons(tmp_path, simulator=False) as daemons:
        http_port = daemons.http
        sim = start_simulator(daemons.ami_port)
        daemon = daemons.start(wait=False)
        try:
            wait_for(lambda: health(http_port)[0] == 200, 20, "the first login")
            stop(sim)
            _, body = wait_for(lambda: (h := health(http_port))[0] == 503 and h, 10, "503 after the stop")
            assert body["ami"]["connected"] is False
            sim = start_simulator(daemons.ami_port)
            _, body = wait_for(lambda: (h := health(http_port))[0] == 200 and h, 20, "the re-login")
            assert body["ami"]["reconnects"] >= 1
        finally:
            stop(sim)
            stop(daemon)
    log = daemon.stdout.read().decode("utf-8", "replace") if daemon.stdout else ""
    assert log.count("AMI login accepted") >= 2, log
    assert "pbxis-secret" not in log
