"""The project's ``shared/`` reference beside the checkout (real Asterisk captures)."""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path:
    """The project's ``shared/`` reference (AMI captures), beside the checkout.

    ``PBXIS_SHARED`` overrides it; otherwise it is ``../shared`` from the repository root,
    which is where CI and every developer checkout have it.
    """
    override = os.environ.get("PBXIS_SHARED")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared"


def captures_dir() -> Path:
    """Raw AMI captures recorded from a real Asterisk 20."""
    return shared_dir() / "ami" / "captures"


def captures_pjsip22_dir() -> Path:
    """The same scenarios recorded from a real Asterisk 22.10.1 with PJSIP endpoints."""
    return shared_dir() / "ami" / "captures-pjsip22"
