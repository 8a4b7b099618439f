"""The seeded fault simulator (devkit.sim, issue 18) in CI: as many schedules
as fit a fixed budget, each checked against a fault-free run and a clean file
ingest of the same events; a failure names the seed that reproduces it."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter

import pytest

from devkit.sim import ScheduleFailed, run_schedule

BUDGET_S = float(os.environ.get("LEDGER_SIM_BUDGET_S", "75"))  # the CI run's share of simulation time
FIRST_SEED = int(os.environ.get("LEDGER_SIM_SEED", "20261206"))
MIN_SCHEDULES = 30  # run at least these, however slow the machine: the assertions below do not depend on time


def test_schedules_within_the_budget_keep_every_invariant(capsys):
    logging.disable(logging.CRITICAL)
    try:
        started = time.monotonic()
        seed, faults, crashes = FIRST_SEED, Counter(), 0
        while seed - FIRST_SEED < MIN_SCHEDULES or time.monotonic() - started < BUDGET_S:
            report = run_schedule(seed)  # raises ScheduleFailed naming the seed
            faults.update(report.faults)
            crashes += report.crashes
            seed += 1
    finally:
        logging.disable(logging.NOTSET)
    done = seed - FIRST_SEED
    with capsys.disabled():
        print(f"\n[sim] {done} schedules (seeds {FIRST_SEED}..{seed - 1}) in {time.monotonic() - started:.0f}s, "
              f"{crashes} crashes, faults {dict(sorted(faults.items()))}")
    # Every kind of fault was injected somewhere in the run (the first MIN_SCHEDULES seeds suffice).
    assert {"poll_timeout", "broker_gone", "empty_poll", "redelivery", "rebalance", "crash_before_commit",
            "crash_after_commit", "store_refuses", "dlq_timeout", "dlq_topic_missing", "poison_batches"} <= set(faults)


def test_the_simulator_catches_a_consumer_that_applies_a_message_twice(monkeypatch):
    """The invariant can fail: with the task's filter of redelivered messages
    off by one, a schedule fails and names its seed."""
    from consumers.kafka import tasks

    original = tasks.Task.batch

    def sloppy(self, messages, shares):
        first = self.events_next
        self.next_offsets[self.events_key] = max(0, first - 1)  # forgets the last message it applied
        try:
            return original(self, messages, shares)
        finally:
            if self.events_key in self.next_offsets and self.next_offsets[self.events_key] == max(0, first - 1):
                self.next_offsets[self.events_key] = first

    monkeypatch.setattr(tasks.Task, "batch", sloppy)
    logging.disable(logging.CRITICAL)
    try:
        with pytest.raises(ScheduleFailed, match=r"seed \d+: .*doubled .*reproduce: python -m devkit.sim --seed \d+"):
            for seed in range(1, 200):
                run_schedule(seed)
    finally:
        logging.disable(logging.NOTSET)


def test_a_schedule_is_reproducible_from_its_seed():
    logging.disable(logging.CRITICAL)
    try:
        first, again = run_schedule(7), run_schedule(7)
    finally:
        logging.disable(logging.NOTSET)
    assert (first.events, first.poison, first.steps, first.crashes, first.faults) == \
           (again.events, again.poison, again.steps, again.crashes, again.faults)


def test_a_reopened_task_frees_the_ledger_it_replaced():
    """Found by the simulator (its schedules slowed down 10x over a few
    hundred runs in one process): a ledger freezes the heap after each commit,
    and a dropped ledger sits in a reference cycle, so the ledger of a task
    reopened after a rebalance or a lost commit race was never freed — its
    whole cache per reopen, in a long-running consumer."""
    import random
    import weakref

    from devkit.sim import Clock, _start, produce
    from ledger.store import Store

    log = produce(random.Random(5), 60, events_partitions=1, shares_partitions=1, compressed=False, poison=False)
    consumer = _start(Store("memory://"), log, None, [], set(), Clock(), 50)
    for _ in range(5):
        consumer.step(0)
    old = weakref.ref(consumer.tasks.by_partition[0].ledger)
    consumer.tasks.open(0)  # a rebalance or a lost commit race: the task reopens
    consumer.step(0)  # the next commit freezes the heap again
    assert old() is None
