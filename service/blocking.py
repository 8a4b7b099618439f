"""Handlers touch the store, which blocks: where they run.

A write, or a read whose read models must first fold new segments, runs in a
worker thread. A bounded read (a page of at most ``PAGE_ROWS`` rows, every
list paged in SQL) on a SQLite store whose read models are current runs on
the event loop itself: it costs a few SQLite page reads (0.1-0.4 ms), less
than the hop to a worker thread and back, and a worker thread busy beside the
event loop makes both wait for the GIL at every SQLite call (measured: the
payouts page at 100k promoters answered 505 requests/s threaded, 1,104 on the
loop; ``docs/performance.md``). PostgreSQL reads stay in threads: they wait
on the network.
"""

from __future__ import annotations

import functools
from typing import Any, Awaitable, Callable

import anyio.to_thread

from projections.readmodels import if_current


def threaded(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Run a blocking handler in a worker thread.

    Litestar 2.25's own ``sync_to_thread=True`` breaks when a GET and a POST
    handler share a path (the sync wrapper's coroutine is never awaited), so
    handlers are made async here, keeping their signature for Litestar.
    """

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    return run


def bounded_read(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Run a bounded read on the event loop when its store allows
    (``Service.reads_on_loop``) and the read models are current; otherwise in a
    worker thread, as :func:`threaded`. The handler takes ``service``.

    On the loop the handler reads the tables as of the check (made after the
    request arrived, so a client reads its own writes) and folds nothing.
    """

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        service = kwargs["service"]
        call = functools.partial(fn, *args, **kwargs)
        if service.reads_on_loop:
            with if_current(service.store) as current:
                if current:
                    return call()
        return await anyio.to_thread.run_sync(call)

    return run
