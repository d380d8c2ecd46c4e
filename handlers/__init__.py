"""Routing: the one place that shows the order and scope of every router.

Routers are built fresh by each call (no module-level routers), so tests and
several dispatchers in one process each get their own.
"""

from __future__ import annotations

from aiogram import F, Router

from handlers import common, errors


def get_routers() -> list[Router]:
    """Private-chat inspector routers first; the supervisor's group router after."""
    private = Router(name="private")
    private.message.filter(F.chat.type == "private")
    private.callback_query.filter(F.message.chat.type == "private")
    private.include_routers(common.create_router())
    return [errors.create_router(), private]
