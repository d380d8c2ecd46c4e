"""A company moves its summaries to another group while some still wait for the old
one (the bot was removed from it): they follow the company, never the old chat."""

from __future__ import annotations

from sqlalchemy import select

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
