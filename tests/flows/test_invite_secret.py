"""An invite code stays out of the database: only its hash is stored (services/team.py),
so the /start update that carries it is kept redacted in the inbox, like a password."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import App, make_settings, running_app
from tests.flows.test_supervisor import log_in
from tests.flows.test_team import invite_code, join
from tests.harness.fake_telegram import FakeTelegram


async def stored_text(app: App) -> str:
    """Every inbox payload and every FSM record, as a copy of the database holds them."""
    async with app.engine.connect() as conn:
        payloads = (await conn.execute(text("SELECT payload FROM inbox_updates"))).scalars()
        fsm = (await conn.execute(text("SELECT key, state, data FROM fsm_records"))).all()
    return "\n".join([*payloads, *(str(tuple(row)) for row in fsm)])


async def test_an_opened_invite_link_leaves_no_clear_code_in_the_database(app: App) -> None:
    admin = await log_in(app)
    code = await invite_code(admin)
    # The admin checks the link: refused as a member, the code stays valid.
    await admin.send_command("/start", args=code)
    await admin.wait_for("Ссылка осталась неиспользованной")
    assert await app.runner.drain(10)
    assert code not in await stored_text(app)
    # The invite still works, and leaves no code behind either.
    await join(app, code, 3003, "Иван")
    assert await app.runner.drain(10)
    assert code not in await stored_text(app)


async def test_an_invite_lost_in_a_crash_is_asked_again_and_then_works(
    fake_telegram: FakeTelegram, bot_token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its text was never stored, so a crash before its handler ran cannot replay it:
    the next start deletes the message and asks the user to send it again, i.e. to open
    the link again."""
    settings = make_settings(tmp_path, fake_telegram.api_url, bot_token)
    async with running_app(fake_telegram, settings) as app:
        admin = await log_in(app)
        code = await invite_code(admin)
        assert await app.runner.drain(10)

        def crash_before_handling(*args: Any, **kwargs: Any) -> None:
            pass  # stored and confirmed, then the bot dies before the handler runs

        monkeypatch.setattr(app.runner, "_schedule", crash_before_handling)
        ivan = fake_telegram.user(user_id=3003, first_name="Иван", username="user3003")
        await ivan.send_command("/start", args=code)
        await fake_telegram.wait_all_confirmed()
        assert code not in await stored_text(app)
        monkeypatch.undo()
    since = ivan.mark()
    async with running_app(fake_telegram, settings) as app:
        await ivan.wait_for("Откройте ссылку-приглашение ещё раз", since=since)
        await ivan.wait_screen(lambda s: all(code not in m.text for m in s.messages))
        await ivan.send_command("/start", args=code)  # the link opened again
        await ivan.wait_for("Добро пожаловать")


async def test_an_invite_taken_just_before_a_crash_is_not_asked_again(
    fake_telegram: FakeTelegram, bot_token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The join was committed and the welcome shown, but the bot died before the update's
    done mark: the next start finds it unfinished. The link is used now, so the user is
    told they are in, not sent back to open it."""
    settings = make_settings(tmp_path, fake_telegram.api_url, bot_token)
    async with running_app(fake_telegram, settings) as app:
        admin = await log_in(app)
        code = await invite_code(admin)
        assert await app.runner.drain(10)

        async def crash_before_the_done_mark(*args: Any, **kwargs: Any) -> None:
            raise ConnectionResetError  # the bot dies here: the update stays not done

        monkeypatch.setattr(app.runner._done, "mark", crash_before_the_done_mark)
        ivan = fake_telegram.user(user_id=3003, first_name="Иван", username="user3003")
        await ivan.send_command("/start", args=code)
        await ivan.wait_for("Добро пожаловать")
        assert await app.runner.drain(10)
        monkeypatch.undo()
    since = ivan.mark()
    async with running_app(fake_telegram, settings) as app:
        await ivan.wait_for("Приглашение уже принято", since=since)
        await ivan.wait_screen(lambda s: all(code not in m.text for m in s.messages))
        assert not [m for m in ivan.bot_messages() if "Откройте ссылку" in m.text]
        await ivan.send_command("/menu")
        await ivan.wait_for("Что делаем?", since=since)
