"""Summaries and the company's group: a company that moves its summaries to another
group while some still wait for the old one (the bot was removed from it), and a
company with no group at all."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from services import summary
from storage.models import GroupPost
from tests.conftest import App
from tests.flows.test_supervisor import bind_group, log_in, open_building, send_one_value_one_skip

OLD_GROUP = -100500
NEW_GROUP = -100600


async def test_a_summary_waiting_for_a_group_the_bot_left_goes_to_the_newly_bound_one(
    app: App,
) -> None:
    boss = await log_in(app)
    old = await bind_group(app, boss, chat_id=OLD_GROUP)
    await old.remove_bot(by=boss)  # someone removes the bot from the old group
    await app.tg.wait_all_confirmed()
    await open_building(boss)
    await send_one_value_one_skip(app, boss)  # its summary waits: the old group refuses

    await app.tg.wait_for_call(
        "sendMessage", where=lambda call: call.chat_id == OLD_GROUP, timeout=30
    )

    new = await bind_group(app, boss, chat_id=NEW_GROUP)  # the company moves its summaries
    summary = await new.wait_for("Отправка показаний", timeout=30)
    assert "Авиастроителей" in summary.text

    await old.add_bot(by=boss)  # later the bot is added back to the old group
    await app.tg.wait_all_confirmed()
    await app.tg.wait_quiet(1.0)
    assert not any("Отправка показаний" in m.text for m in old.bot_messages())
    async with app.session_pool() as session:
        waiting = list(await session.scalars(select(GroupPost).where(GroupPost.sent_at.is_(None))))
    assert waiting == []


async def test_a_company_without_a_group_is_not_swept_again_and_again(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    # No group bound and no SUPERVISOR_CHAT_ID: the send's own hook says once that
    # the summary has nowhere to go; the sweeps (every minute) do not load it again.
    boss = await log_in(app)
    await open_building(boss)
    await send_one_value_one_skip(app, boss)
    caplog.set_level(logging.INFO, logger="services.summary")
    caplog.clear()
    for _ in range(3):
        async with app.session_pool() as session:
            queued = await summary.enqueue_missing_summaries(
                session, default_chat_id=None, tz=app.settings.tz, now=datetime.now(UTC)
            )
        assert queued == 0
    assert not [r for r in caplog.records if "No group for account" in r.getMessage()]
