"""``twistd pbxis`` freezes start-up objects; ``--gc-bursts`` adds pbxis.gcpolicy, off by default.

The burst policy's thaw walks the whole heap (a 100-150 ms stall at 1,000 WebSocket
clients, bench/bench_e2e.py), so it must stay an explicit choice.
"""

from __future__ import annotations

import pytest

from twisted.plugins.pbxis_plugin import Options, serviceMaker


@pytest.mark.parametrize(("argv", "bursts"), [([], False), (["--gc-bursts"], True)])
def test_gc_bursts_is_opt_in(argv: list[str], bursts: bool) -> None:
    options = Options()
    options.parseOptions(argv)
    service = serviceMaker.makeService(options)
    assert service.freeze_gc is True
    assert service.gc_bursts is bursts
