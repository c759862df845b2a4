"""Every install path the README names gives a working ``twistd pbxis``.

Each path is installed into a fresh venv, from a directory outside the checkout (so that
nothing is imported from the source tree by accident), and the demo is started from that
venv's own ``twistd``: the plugin must be found, the static files and the sample config
must be in the installed package, and ``/health`` must go 200 once the embedded simulator
is logged in. This is the test behind issue #13's first finding: an editable install once
left ``twistd`` saying ``Unknown command: pbxis``.

Dependencies come from a wheelhouse built once (pip's own cache makes that quick) and
kept between runs, keyed by the packaging files; every venv then installs offline from it,
so the four paths cost seconds each, not a resolution against the index each time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import free_port, stop

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ("setup.cfg", "setup.py", "pyproject.toml")
#: What a build of pbxis needs (pyproject's build-system) besides the runtime dependencies.
BUILD_REQUIREMENTS = ("setuptools >= 77", "wheel")
#: The build frontend the README names for sdists and wheels.
FRONTEND = "build >= 1.0"


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    # Never the test run's PYTHONPATH (it names the checkout, or the compiled build under
    # tests/support/compiled.py): pip would take the pbxis found there for installed.
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _base_python() -> str:
    """The interpreter this venv was made from: venvs are made from it, not from a venv."""
    return getattr(sys, "_base_executable", sys.executable)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    key = hashlib.sha256(b"".join((ROOT / name).read_bytes() for name in PACKAGING)).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pbxis-test-wheelhouse"
    house = cache / key
    if not (house / ".complete").exists():
        shutil.rmtree(house, ignore_errors=True)
        house.mkdir(parents=True)
        # pbxis's own wheel pulls in every runtime dependency; it is removed afterwards so
        # that each test installs pbxis from the path under test, never from here.
        _run(sys.executable, "-m", "pip", "wheel", "-q", "-w", house, ROOT, *BUILD_REQUIREMENTS, FRONTEND,
             cwd=house)  # fmt: skip
        for own in house.glob("pbxis-*.whl"):
            own.unlink()
        (house / ".complete").touch()
    return house


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    path = tmp_path / "venv"
    _run(_base_python(), "-m", "venv", path, cwd=tmp_path)
    return path


def _pip_offline(venv: Path, wheelhouse: Path, *args: str | Path, cwd: Path) -> None:
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-index", "--find-links", wheelhouse,
         *args, cwd=cwd)  # fmt: skip


def _copy_checkout(dest: Path) -> Path:
    """The checkout as a clone of it would be once committed: tracked and new files, not ignored ones."""
    files = _run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT).split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return _copy_checkout(tmp_path / "src")


def _install(kind: str, venv: Path, wheelhouse: Path, source: Path, work: Path) -> None:
    python = venv / "bin" / "python"
    if kind == "plain":
        _pip_offline(venv, wheelhouse, source, cwd=work)
    elif kind == "editable":
        _pip_offline(venv, wheelhouse, "-e", source, cwd=work)
    elif kind == "wheel":
        dist = work / "dist"
        _run(python, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index", "--find-links", wheelhouse,
             "-w", dist, source, cwd=work)  # fmt: skip
        (wheel,) = dist.glob("pbxis-*.whl")
        _pip_offline(venv, wheelhouse, wheel, cwd=work)
    elif kind == "sdist":
        dist = work / "dist"
        # python -m build, without isolation only because the index is not to be asked:
        # its build requirements come from the wheelhouse. Installing the sdist then builds
        # a wheel from it in pip's own isolated environment, as a user's pip would.
        _pip_offline(venv, wheelhouse, *BUILD_REQUIREMENTS, FRONTEND, cwd=work)
        _run(python, "-m", "build", "--sdist", "--no-isolation", "-o", dist, source, cwd=work)
        (sdist,) = dist.glob("pbxis-*.tar.gz")
        _pip_offline(venv, wheelhouse, sdist, cwd=work)
    else:  # pragma: no cover
        raise AssertionError(kind)


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "work"
    path.mkdir()
    yield path


@pytest.mark.parametrize("kind", ["plain", "editable", "wheel", "sdist"])
def test_install_path_gives_a_working_twistd_pbxis(
    kind: str, venv: Path, wheelhouse: Path, source: Path, work: Path
) -> None:
    _install(kind, venv, wheelhouse, source, work)
    bindir = venv / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"

    helptext = _run(bindir / "twistd", "pbxis", "--help", cwd=work, env=env)
    assert "--config" in helptext
    sample = _run(bindir / "twistd", "pbxis", "--sample-config", cwd=work, env=env)
    assert "[ami]" in sample and "[http]" in sample
    where = _run(bindir / "python", "-c", "import pbxis, sys; print(pbxis.__file__)", cwd=work, env=env)
    if kind == "editable":
        assert Path(where.strip()).is_relative_to(source), where
    else:
        assert Path(where.strip()).is_relative_to(venv), where

    port = free_port()
    config = work / "demo.toml"
    config.write_text(
        f'[http]\nlisten = "tcp:{port}:interface=127.0.0.1"\n\n[simulator]\ncalls_per_minute = 0.0\n', "utf-8"
    )
    daemon = subprocess.Popen(
        [bindir / "twistd", "--pidfile=", "-n", "pbxis", "--config", config],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while _get(f"http://127.0.0.1:{port}/health")[0] != 200:
            assert daemon.poll() is None, "the daemon exited"
            assert time.monotonic() < deadline, "no 200 from /health within 30 s"
            time.sleep(0.1)
        status, body = _get(f"http://127.0.0.1:{port}/static/pbxis.js")
        assert status == 200 and b"EventSource" in body
        status, body = _get(f"http://127.0.0.1:{port}/client")
        assert status == 200 and b"<html" in body.lower()
    finally:
        stop(daemon)
    output = daemon.stdout.read().decode("utf-8", "replace") if daemon.stdout else ""
    assert "Traceback" not in output, output
    if kind in ("wheel", "plain"):
        # licenses/LICENSE in Metadata 2.4; an older pip puts it at the dist-info's root.
        licences = list(venv.glob("lib/python*/site-packages/pbxis-*.dist-info/**/LICENSE"))
        assert licences and "Apache License" in licences[0].read_text("utf-8")
