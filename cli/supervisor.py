"""Run one command in N processes (``consume --workers N``).

Each child is a fresh interpreter (multiprocessing's spawn context: none of the
parent's threads, connections or signal handlers) that runs the command with
its own parsed options and exits with the command's exit code. SIGTERM and
SIGINT are forwarded to the children; the first child to fail stops the others
(fail fast: whoever supervises us restarts the lot, and each child resumes from
its stored positions).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
from multiprocessing.connection import wait
from typing import Callable

from cli.errors import PROG, exit_code

Run = Callable[[argparse.Namespace], int]
FORWARDED = (signal.SIGTERM, signal.SIGINT)


def _child(run: Run, args: argparse.Namespace) -> None:
    sys.exit(exit_code(run, args))


def supervise(run: Run, members: list[argparse.Namespace]) -> list[int]:
    """``run(args)`` for each ``args`` of ``members``, each in its own process;
    the children's exit codes (negative: ended by that signal)."""
    spawn = multiprocessing.get_context("spawn")
    children = [spawn.Process(target=_child, args=(run, args)) for args in members]

    def forward(signum: int, frame: object = None) -> None:
        for child in children:
            if child.pid is not None and child.exitcode is None:
                os.kill(child.pid, signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    for child in children:
        child.start()
    running, stopping = children, False
    while running:
        wait([child.sentinel for child in running])
        running = [child for child in running if child.exitcode is None]
        failed = next((child for child in children if child.exitcode not in (None, 0)), None)
        if failed is not None and running and not stopping:
            print(f"{PROG}: worker exited with {failed.exitcode}; stopping the others", file=sys.stderr)
            forward(signal.SIGTERM)
            stopping = True
    return [child.exitcode for child in children]
