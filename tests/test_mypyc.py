"""The optional mypyc build: the same parser and tracker tests pass against the compiled modules.

The pure-Python package is what every other test runs. This one builds the modules
``setup.py`` compiles under ``PBXIS_MYPYC=1`` into a copy of the package (cached under
``build/mypyc-test/<hash of the sources>``: a build takes about a minute), checks that the
compiled modules are the ones imported, and runs ``tests/ami`` and ``tests/tracker``
against them in a subprocess. Skipped without a C compiler or mypyc.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "mypyc-test"


def _modules() -> tuple[str, ...]:
    """``setup.py``'s list, read from the file (importing it would run ``setup()``)."""
    text = (ROOT / "setup.py").read_text()
    block = text.split("MYPYC_MODULES = (", 1)[1].split(")", 1)[0]
    return tuple(line.strip().strip('",') for line in block.splitlines() if line.strip())


def _build() -> Path:
    import mypy.version

    digest = hashlib.sha256(mypy.version.__version__.encode())
    for path in sorted((ROOT / "pbxis").rglob("*.py")):
        digest.update(path.read_bytes())
    digest.update((ROOT / "setup.py").read_bytes())
    target = CACHE / digest.hexdigest()[:16]
    if (target / "built").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    shutil.copytree(ROOT / "pbxis", target / "pbxis")
    shutil.copytree(ROOT / "twisted", target / "twisted")
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.rst"):
        shutil.copy(ROOT / name, target / name)
    proc = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=target,
        env={**os.environ, "PBXIS_MYPYC": "1"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (target / "built").write_text("ok\n")
    return target


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first build compiles C for about a minute, more on a busy machine
def test_parser_and_tracker_tests_pass_against_the_compiled_modules(tmp_path: Path) -> None:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    pytest.importorskip("mypyc")
    built = _build()
    names = [m.removesuffix(".py").replace("/", ".") for m in _modules()]
    assert "pbxis.ami.parser" in names
    check = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    assert not module.__file__.endswith('.py'), module.__file__\n"
        "import pytest\n"
        "sys.exit(pytest.main(['--import-mode=append', '-q', '-p', 'no:cacheprovider',\n"
        f"    '--rootdir', {str(ROOT)!r}, '-c', {str(ROOT / 'pyproject.toml')!r},\n"
        f"    {str(ROOT / 'tests' / 'ami')!r}, {str(ROOT / 'tests' / 'tracker')!r}]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", check],
        cwd=tmp_path,  # not the checkout: its pure package must not shadow the build
        env={**os.environ, "PYTHONPATH": f"{built}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert " passed" in proc.stdout
