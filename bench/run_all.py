"""Run every bench, each in its own process, and print their figures (``make bench``).

Each bench is a standalone script (``python bench/bench_parse.py --help``); this runs
them in the order of issue 8 with the same ``--quick`` flag. A bench that fails is
reported and the others still run; the exit status says whether all passed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = (
    "bench_parse",
    "bench_digest",
    "bench_rebuild",
    "bench_gc",
    "bench_e2e",
    "bench_scale",
    "bench_ingest",
    "bench_webnodes",
    "bench_takeover",
    "bench_sites",
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (under 30 s in all)")
    p.add_argument(
        "--compiled",
        action="store_true",
        help="run against the mypyc build (built once, cached: tests/support/compiled.py)",
    )
    p.add_argument("only", nargs="*", help=f"benches to run (default: all of {', '.join(BENCHES)})")
    args = p.parse_args()
    chosen = args.only or list(BENCHES)
    sys.path.insert(0, str(HERE))
    from common import machine

    env = dict(os.environ)
    if args.compiled:
        sys.path.insert(0, str(HERE.parent))
        from tests.support.compiled import build

        built, seconds = build()
        made = f"built in {seconds:.0f} s" if seconds else "cached"
        print(f"# mypyc build {built.name}: {made}", flush=True)
        env["PYTHONPATH"] = os.pathsep.join([str(built), *filter(None, [env.get("PYTHONPATH")])])
    print(f"# {machine('compiled' if args.compiled else None)}", flush=True)
    print(f"# load average at start: {_load()}", flush=True)
    failed = []
    for name in chosen:
        script = HERE / (name if name.endswith(".py") else f"{name}.py")
        print(f"## {script.stem}", flush=True)
        started = time.monotonic()
        cmd = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
        rc = subprocess.call(cmd, cwd=HERE, env=env)
        print(f"# {script.stem}: {time.monotonic() - started:.1f} s, exit {rc}", flush=True)
        if rc != 0:
            failed.append(script.stem)
    print(f"# load average at end: {_load()}", flush=True)
    if failed:
        print(f"# failed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


def _load() -> str:
    """Other processes on the cores skew every figure: say how busy the machine was."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
