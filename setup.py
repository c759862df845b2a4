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
"""

from setuptools import find_packages, setup

setup(
    package_dir={"": "."},
    # pbxis.web.static holds no Python: it is named so that its files are package data
    # of their own directory (setuptools warns about unlisted importable directories).
    packages=[*find_packages(include=["pbxis", "pbxis.*"]), "pbxis.web.static", "twisted.plugins"],
)
