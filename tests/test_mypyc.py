"""The optional mypyc build: the tests of what the compiled modules do pass against them.

Every other test of this run imports the pure-Python package. This one builds the modules
``setup.py`` compiles under ``PBXIS_MYPYC=1`` (:mod:`tests.support.compiled`: once per
change of the sources, cached under ``build/mypyc-test``), checks that the compiled modules
are the ones imported, and runs against them, in one subprocess, the quick tests whose
assertions are about what the parser, the message and the tracker make of AMI traffic:
their unit tests (``tests/ami``, ``tests/tracker``) and the sync that feeds the tracker.
The rest (reliability, supervisors, simulator, engine, web, stores, browser: about a
minute and a half more) run on the pure build here, to keep ``make test`` within
its ten minutes on two cores; ``make test-compiled`` runs the whole suite against the
compiled build (about as long as ``make test``), for a release.
Skipped without a C compiler or mypyc.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import compiled

#: Run against the compiled build by this test (quick tests only: ``-m "not slow"``).
COMPILED_RUN = (
    "tests/ami",
    "tests/tracker",
    "tests/test_sync.py",
)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first build compiles C for about a minute, more on a busy machine
def test_quick_tests_of_the_compiled_modules_pass_against_the_compiled_build(tmp_path: Path) -> None:
    why = compiled.available()
    if why is not None:
        pytest.skip(why)
    assert "pbxis.ami.parser" in compiled.module_names()
    assert "pbxis.tracker.tracker" in compiled.module_names()
    paths = [str(compiled.ROOT / p) for p in COMPILED_RUN]
    proc = compiled.run_pytest(["-q", "-m", "not slow", *paths], cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout
