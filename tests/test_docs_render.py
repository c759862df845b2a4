"""README.rst and docs/*.rst render without a warning.

They are edited by many hands and merged often; a broken table or a heading cut in half
by a merge renders as garbage on the package index without failing anything else.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from docutils.core import publish_doctree
from docutils.utils import SystemMessage

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.rst", *sorted((ROOT / "docs").glob("*.rst"))]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_renders_without_warnings(path: Path) -> None:
    try:
        publish_doctree(
            path.read_text("utf-8"),
            source_path=str(path),
            settings_overrides={"halt_level": 2, "report_level": 2, "warning_stream": False},
        )
    except SystemMessage as e:
        pytest.fail(f"{path.name}: {e}")
