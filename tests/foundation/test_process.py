"""The real `python bot.py` process against the fake Bot API server."""

from __future__ import annotations

import pytest

from tests.harness.databases import fsm_contents
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.process import StartBot


@pytest.mark.duration(15)
async def test_start_is_answered_by_the_real_process(
    start_bot: StartBot, fake_telegram: FakeTelegram
) -> None:
    bot = await start_bot()
    await bot.wait_for_log("Starting: mode=polling", timeout=10)
    phone = fake_telegram.user(user_id=2001, first_name="Пётр")
    await phone.send_command("/start")
    reply = await phone.wait_for("логин", timeout=15)
    assert reply.from_bot
    commands = {c["command"] for c in fake_telegram.sent_commands()}
    assert {"start", "menu", "help", "cancel", "logout"} <= commands
    assert not fake_telegram.asked_to_drop_pending
    result = await bot.stop()
    assert result.returncode == 0
    assert result.seconds < 10


@pytest.mark.duration(30)
async def test_fsm_state_survives_a_restart(
    start_bot: StartBot, fake_telegram: FakeTelegram, bot_env: dict[str, str]
) -> None:
    first = await start_bot()
    phone = fake_telegram.user(user_id=2002, first_name="Анна")
    await phone.send_command("/start")
    await phone.wait_for("логин", timeout=15)
    await phone.ask("demo", until="пароль", timeout=15)
    await first.stop()

    fsm = await fsm_contents(bot_env["DATABASE_URL"], bot_env.get("REDIS_URL"))
    states = [value for key, value in fsm.items() if ":2002:" in key and key.endswith(":state")]
    assert states == ["Login:entering_password"]

    await start_bot()
    reply = await phone.ask("demo", until="Вы вошли", timeout=20)
    assert "Главное меню" in reply.text


@pytest.mark.duration(10)
async def test_updates_sent_while_the_bot_was_down_are_handled(
    start_bot: StartBot, fake_telegram: FakeTelegram
) -> None:
    phone = fake_telegram.user(user_id=2003, first_name="Олег")
    await phone.send_command("/start")  # nobody is polling yet
    await start_bot()
    await phone.wait_for("логин", timeout=15)
