"""Run one command in N processes (``consume --workers N``, ``ingest --workers N``).

Each child is a fresh interpreter (multiprocessing's spawn context: none of the
parent's threads, connections or signal handlers) that runs the command with
its own parsed options and exits with the command's exit code. SIGTERM and
SIGINT are forwarded to the children; by default the first child to fail stops
the others (fail fast: whoever supervises us restarts the lot, and each child
resumes from its stored positions); ``consume`` keeps the others running.

With ``receive``, each child also gets ``args.report``: the sending end of a
pipe to the parent (``report.send(message)``, any picklable value), and every
message reaches ``receive(i, message)`` in the parent as it arrives (progress,
results), the last ones before ``supervise`` returns.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
from multiprocessing.connection import Connection, wait
from typing import Any, Callable

from cli.errors import PROG, exit_code

Run = Callable[[argparse.Namespace], int]
Receive = Callable[[int, Any], None]
FORWARDED = (signal.SIGTERM, signal.SIGINT)


def _child(run: Run, args: argparse.Namespace) -> None:
    sys.exit(exit_code(run, args))


def supervise(run: Run, members: list[argparse.Namespace], receive: Receive | None = None, *,
              fail_fast: bool = True) -> list[int]:
    """``run(args)`` for each ``args`` of ``members``, each in its own process;
    the children's exit codes (negative: ended by that signal). ``fail_fast``
    False: a child that fails leaves the others running (``consume``: each
    worker owns its own partitions)."""
    spawn = multiprocessing.get_context("spawn")
    inboxes: dict[Connection, int] = {}
    senders: list[Connection] = []
    if receive is not None:
        reporting = []
        for i, args in enumerate(members):
            reader, writer = spawn.Pipe(duplex=False)
            inboxes[reader] = i
            senders.append(writer)
            reporting.append(argparse.Namespace(**{**vars(args), "report": writer}))
        members = reporting
    children = [spawn.Process(target=_child, args=(run, args)) for args in members]

    def forward(signum: int, frame: object = None) -> None:
        for child in children:
            if child.pid is not None and child.exitcode is None:
                os.kill(child.pid, signum)

    def deliver(ready: list) -> None:
        for reader in ready:
            if reader not in inboxes:
                continue
            try:
                while reader.poll():
                    receive(inboxes[reader], reader.recv())  # type: ignore[misc]
            except EOFError:  # the child is gone and everything it sent was read
                del inboxes[reader]
                reader.close()

    for sig in FORWARDED:
        signal.signal(sig, forward)
    for child in children:
        child.start()
    for writer in senders:
        writer.close()  # the children hold theirs: the pipe ends when its child does
    running, stopping = children, False
    while running:
        deliver(wait([child.sentinel for child in running] + list(inboxes)))
        running = [child for child in running if child.exitcode is None]
        failed = next((child for child in children if child.exitcode not in (None, 0)), None)
        if failed is not None and running and not stopping and fail_fast:
            print(f"{PROG}: worker exited with {failed.exitcode}; stopping the others", file=sys.stderr)
            forward(signal.SIGTERM)
            stopping = True
    while inboxes:  # what the children sent before they exited
        deliver(wait(list(inboxes)))
    return [child.exitcode for child in children]
