"""Replacing a method of one object in a test, whatever the build.

Tests replace a method of an instance to inject a failure or to watch calls. A class
compiled by mypyc (the tracker under ``PBXIS_MYPYC=1``, see :mod:`tests.support.compiled`)
refuses attribute assignment on its instances, so such tests put an :class:`Override`
where the object is used instead: it answers the replaced names itself and hands every
other attribute to the real object, in both builds alike.
"""

from __future__ import annotations

from typing import Any


class Override:
    """``target`` with the methods in ``methods`` replaced."""

    def __init__(self, target: object, **methods: Any) -> None:
        self._target = target
        self._methods = methods

    def __getattr__(self, name: str) -> Any:
        methods = self.__dict__["_methods"]
        if name in methods:
            return methods[name]
        return getattr(self.__dict__["_target"], name)
