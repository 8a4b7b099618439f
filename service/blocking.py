"""Handlers touch the store, which blocks: they run in worker threads."""

from __future__ import annotations

import functools
from typing import Any, Awaitable, Callable

import anyio.to_thread


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
