"""The routers as get_routers() builds them, checked for what costs CPU on every update."""

from __future__ import annotations

from collections.abc import Iterator

from aiogram import Router
from aiogram.dispatcher.event.handler import CallableObject

from handlers import get_routers


def _callables(router: Router) -> Iterator[tuple[str, CallableObject]]:
    """Every handler and filter (router-level ones too) below `router`."""
    for name, observer in router.observers.items():
        where = f"{router.name}.{name}"
        for root_filter in observer._handler.filters or []:
            yield where, root_filter
        for handler in observer.handlers:
            yield where, handler
            for handler_filter in handler.filters or []:
                yield where, handler_filter
    for sub_router in router.sub_routers:
        yield from _callables(sub_router)


def test_no_filter_or_handler_runs_in_a_worker_thread() -> None:
    """aiogram runs a callable that is not awaitable (a bare F.… or State) through
    asyncio.to_thread: a thread round trip per check and update, which was most of
    the routing's CPU (issue 7). handlers/filters.py: Magic(F.…), StateFilter(…)."""
    in_threads = [
        f"{where}: {callable_object.callback!r}"
        for router in get_routers()
        for where, callable_object in _callables(router)
        if not callable_object.awaitable
    ]
    assert in_threads == []
