"""``python -m devkit.sim [--seed N] [--schedules N] [--seconds S]``: run schedules
of the seeded fault simulator (see ``devkit.sim``); a failure prints the seed
that reproduces it and exits 1."""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from collections import Counter

from devkit.sim import ScheduleFailed, run_schedule


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.sim", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="the first seed (default: a random one, printed)")
    parser.add_argument("--schedules", type=int, default=1, help="how many schedules: seeds N, N+1, … (default 1)")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long instead")
    parser.add_argument("--events", type=int, default=None, help="events per schedule (default: 20-90, by seed)")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the faults make the consumer log a lot; the verdict is ours
    first = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    started = time.monotonic()
    faults: Counter = Counter()
    done = crashes = 0
    seed = first
    while (done < args.schedules) if args.seconds is None else (time.monotonic() - started < args.seconds):
        try:
            report = run_schedule(seed, events=args.events)
        except ScheduleFailed as exc:
            print(f"FAIL {exc}", file=sys.stderr)
            return 1
        faults.update(report.faults)
        crashes += report.crashes
        done += 1
        seed += 1
    seconds = time.monotonic() - started
    print(f"{done} schedules from seed {first} in {seconds:.1f}s ({done / seconds * 3600:,.0f}/hour): all invariants held; "
          f"crashes {crashes}; faults {dict(sorted(faults.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
