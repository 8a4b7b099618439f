"""The engine alone, per event: no I/O, every state value cached (a memory
store and a cache large enough), decode included and apart.

    python benchmarks/scripts/engine_probe.py [--events 100000] [--repeat 3]

Prints which build ran (compiled .so or interpreted .py) and µs per event,
best of --repeat (CPU time of this process: the machine is shared), for decode alone and for decode + apply in batches of 5,000.
"""

from __future__ import annotations

import argparse
import gc
import json
import time

import ledger.engine.core as core
import schemas.decode as decode
from devkit.synthetic import generate
from ledger.engine import memory_engine
from ledger.config import Rules
from ledger.limits import Limits
from ledger.records import Source
from schemas.decode import decode_event

BATCH = 5_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    lines = list(generate(args.events, seed=7))
    source = Source("probe")
    gc.disable()
    decode_s, apply_s = [], []
    for _ in range(args.repeat):
        started = time.process_time()
        for raw in lines:
            decode_event(raw)
        decode_s.append(time.process_time() - started)
        engine = memory_engine(Limits(cache_bytes=1 << 40))  # nothing evicted
        engine.adopt_rules(Rules())
        started = time.process_time()
        for i in range(0, len(lines), BATCH):
            engine.begin_batch()
            for raw in lines[i:i + BATCH]:
                engine.ingest(raw, source)  # decode + apply; the memory store answers misses
            engine.end_batch()
        apply_s.append(time.process_time() - started)
    build = "compiled" if core.__file__.endswith(".so") and decode.__file__.endswith(".so") else "interpreted"
    n = len(lines)
    print(json.dumps({"build": build, "events": n, "decode_us_per_event": round(min(decode_s) / n * 1e6, 2),
                      "decode_and_apply_us_per_event": round(min(apply_s) / n * 1e6, 2)}))


if __name__ == "__main__":
    main()
