"""Roles the config language has and this daemon does not run yet are refused in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_twistd_refuses_a_collector_node_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "pbxis.toml"
    path.write_text("[redis]\nurl = 'redis://127.0.0.1:1/0'\n[node]\nrole = 'collector'\n", "utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "twisted", "pbxis", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    expected = "pbxis: configuration error: [node].role: 'collector' is not available yet"
    assert proc.stderr.strip().startswith(expected)
