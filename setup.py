"""setuptools shim; metadata lives in setup.cfg.

``twisted/plugins`` has no ``__init__.py`` (it must stay a namespace shared with
Twisted), so it is named here by hand; ``find_packages`` cannot see it.

``package_dir={"": "."}`` says in so many words that the packages live at the project's
root. Without it, a PEP 660 editable install (``pip install -e .``) of this flat layout
gets setuptools' import-hook strategy, which maps ``pbxis`` but cannot extend Twisted's
plugin scan: ``twisted.plugins`` finds plugins by walking ``sys.path`` for
``twisted/plugins`` directories, and the checkout is not on ``sys.path`` then, so
``twistd pbxis`` says "Unknown command". With the root declared, setuptools writes a
plain ``.pth`` naming the checkout, and the scan finds ``twisted/plugins/pbxis_plugin.py``.

``PBXIS_MYPYC=1`` compiles the hot modules (the AMI parser and message, the tracker)
with mypyc: ``PBXIS_MYPYC=1 pip install --no-build-isolation .`` with mypy and a C
compiler present. Without it (the default) the package is pure Python and ``pip wheel .``
needs no compiler; both builds run the same tests (``tests/test_mypyc.py``).
"""

import os

from setuptools import find_packages, setup

# The modules compiled by ``PBXIS_MYPYC=1`` (their pure-Python source ships too).
MYPYC_MODULES = (
    "pbxis/ami/message.py",
    "pbxis/ami/parser.py",
    "pbxis/tracker/channels.py",
    "pbxis/tracker/codes.py",
    "pbxis/tracker/digest.py",
    "pbxis/tracker/filters.py",
    "pbxis/tracker/model.py",
    "pbxis/tracker/rebuild.py",
    "pbxis/tracker/tracker.py",
)


def _extensions() -> list:
    if os.environ.get("PBXIS_MYPYC", "0") in ("", "0"):
        return []
    from mypyc.build import mypycify

    # Errors in modules not compiled are not this build's business (mypy checks them).
    return mypycify(["--follow-imports=silent", *MYPYC_MODULES], opt_level="3")


setup(
    package_dir={"": "."},
    # pbxis.web.static holds no Python: it is named so that its files are package data
    # of their own directory (setuptools warns about unlisted importable directories).
    packages=[*find_packages(include=["pbxis", "pbxis.*"]), "pbxis.web.static", "twisted.plugins"],
    ext_modules=_extensions(),
)
