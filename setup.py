"""setuptools shim; metadata lives in setup.cfg.

``twisted/plugins`` has no ``__init__.py`` (it must stay a namespace shared with
Twisted), so it is named here by hand; ``find_packages`` cannot see it.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["pbxis", "pbxis.*"]), "twisted.plugins"])
