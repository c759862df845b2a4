"""The optional mypyc build, for tests: build it once (cached), run pytest against it.

``setup.py`` compiles the modules of ``MYPYC_MODULES`` under ``PBXIS_MYPYC=1``. Here they
are built into a copy of the package under ``build/mypyc-test/<hash>``, the hash of every
source of ``pbxis``, ``setup.py`` and the mypy version: a build (about a minute of CPU)
happens once per change of the sources, and every run after that reuses it.

:func:`run_pytest` runs a pytest selection in a subprocess whose ``sys.path`` starts with
the build, after checking that each compiled module is the one imported (a package
``pbxis`` found elsewhere would make the run test the pure build and pass for nothing).
Subprocesses of the tests (``twistd pbxis``, the simulator) inherit ``PYTHONPATH`` and so
run the compiled build too.

``python -m tests.support.compiled --build-only`` only builds it (``make test`` does, before
pytest). ``python -m tests.support.compiled [pytest arguments]`` runs any selection that way:
``python -m tests.support.compiled`` is the whole suite against the compiled build
(``make test-compiled``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "mypyc-test"


def modules() -> tuple[str, ...]:
    """``setup.py``'s list, read from the file (importing it would run ``setup()``)."""
    text = (ROOT / "setup.py").read_text()
    block = text.split("MYPYC_MODULES = (", 1)[1].split(")", 1)[0]
    return tuple(line.strip().strip('",') for line in block.splitlines() if line.strip())


def module_names() -> list[str]:
    return [m.removesuffix(".py").replace("/", ".") for m in modules()]


def available() -> str | None:
    """Why the compiled build cannot be made here, or ``None`` when it can."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        return "no C compiler"
    try:
        import mypyc  # noqa: F401
    except ImportError:
        return "mypyc is not installed"
    return None


def build() -> tuple[Path, float]:
    """The build directory, and the seconds this call spent building (0 when cached)."""
    import mypy.version

    digest = hashlib.sha256(mypy.version.__version__.encode())
    digest.update(sys.version.encode())
    for path in sorted((ROOT / "pbxis").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    for path in sorted((ROOT / "twisted").rglob("*.py")):
        digest.update(path.read_bytes())
    digest.update((ROOT / "setup.py").read_bytes())
    target = CACHE / digest.hexdigest()[:16]
    if (target / "built").exists():
        return target, 0.0
    started = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    # Built beside its final place, then renamed: two runs building at once (two
    # helpers, two CI jobs) never see each other's half-built tree.
    work = Path(tempfile.mkdtemp(prefix="building-", dir=CACHE))
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "pbxis", work / "pbxis", ignore=ignore)
    shutil.copytree(ROOT / "twisted", work / "twisted", ignore=ignore)
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.rst"):
        shutil.copy(ROOT / name, work / name)
    proc = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=work,
        env={**os.environ, "PBXIS_MYPYC": "1"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise RuntimeError("mypyc build failed:\n" + proc.stdout[-3000:] + proc.stderr[-3000:])
    (work / "built").write_text("ok\n")
    try:
        work.rename(target)
    except OSError:  # another run finished the same build first: use it
        shutil.rmtree(work, ignore_errors=True)
    return target, time.monotonic() - started


def run_pytest(
    args: list[str], *, cwd: Path, timeout: float | None = None, capture: bool = True
) -> subprocess.CompletedProcess[str]:
    """pytest ``args`` in a subprocess that imports the compiled build."""
    built, _ = build()
    check = (
        "import importlib, sys\n"
        f"for name in {module_names()!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    assert not module.__file__.endswith('.py'), module.__file__\n"
        f"assert importlib.import_module('pbxis').__file__.startswith({str(built)!r})\n"
        "import pytest\n"
        "sys.exit(pytest.main(['--import-mode=append', '-p', 'no:cacheprovider',\n"
        f"    '--rootdir', {str(ROOT)!r}, '-c', {str(ROOT / 'pyproject.toml')!r}, *{args!r}]))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", check],
        cwd=cwd,  # not the checkout: its pure package must not shadow the build
        env={**os.environ, "PYTHONPATH": f"{built}{os.pathsep}{ROOT}"},
        capture_output=capture,
        text=True,
        timeout=timeout,
        check=False,
    )


def _absolute(arg: str) -> str:
    """A test path (``tests/x.py::test_y``) relative to here, as an absolute one."""
    path, sep, rest = arg.partition("::")
    if arg.startswith("-") or not Path(path).exists():
        return arg
    return str(Path(path).resolve()) + sep + rest


def main(argv: list[str]) -> int:
    why = available()
    if why is not None:
        print(f"compiled build unavailable: {why}", file=sys.stderr)
        return 0 if argv == ["--build-only"] else 1  # make test goes on: its test skips
    built, seconds = build()
    made = f"built in {seconds:.0f} s" if seconds else "cached"
    print(f"# compiled build {built} ({made})", flush=True)
    if argv == ["--build-only"]:
        # make test builds it (cached) before pytest, as it installs the rest: the suite's
        # tests/test_mypyc.py then runs against the build, not the compiler
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        # the run is not in the checkout: paths made absolute, and pytest's testpaths
        # (which apply only there) given as a path when none is
        args = [_absolute(a) for a in argv]
        if all(a.startswith("-") for a in argv):
            args.append(str(ROOT / "tests"))
        args = [*args, "--ignore", str(ROOT / "tests" / "test_mypyc.py")]
        proc = run_pytest(args, cwd=Path(tmp), capture=False)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
