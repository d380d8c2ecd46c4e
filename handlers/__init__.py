"""Routing: the one place that shows the order and scope of every router.

Routers are built fresh by each call (no module-level routers), so tests and
several dispatchers in one process each get their own.
"""

from __future__ import annotations

from aiogram import F, Router

from handlers import auth, buildings, common, errors, readings, supervisor, team, viewing
from handlers.filters import Magic


def get_routers() -> list[Router]:
    """Private-chat routers (inspector flows, the admin's team), then the supervisor's
    group router (groups and supergroups only)."""
    private = Router(name="private")
    private.message.filter(Magic(F.chat.type == "private"))
    private.edited_message.filter(Magic(F.chat.type == "private"))
    private.callback_query.filter(Magic(F.message.chat.type == "private"))
    private.include_routers(
        common.create_router(),  # /help, /cancel, /menu work in any state
        team.create_router(),  # /start <invite code> before auth's /start; /team, /invite
        auth.create_router(),  # /start, login, /logout
        buildings.create_router(),
        readings.create_router(),
        viewing.create_router(),
        common.create_fallback_router(),
    )
    return [errors.create_router(), private, supervisor.create_router()]
