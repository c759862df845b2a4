"""The pure call-center state machine: AMI events in, per-agent events out.

No Twisted, no I/O, no clock: time comes in as ``now_ms``. :mod:`pbxis.sync` is the
Twisted glue that feeds it from the AMI client.
"""

from __future__ import annotations

from .rebuild import ActionResultLike, PlannedAction
from .tracker import CurrentCall, Tracker

__all__ = ["ActionResultLike", "CurrentCall", "PlannedAction", "Tracker"]
