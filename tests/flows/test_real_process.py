"""The whole inspector flow with the real `python bot.py` process, on each billing
backend, and a crash (SIGKILL) in the middle of a walk. Slow: a few, on purpose."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from pydantic import SecretStr

from billing_client.base import Billing, BillingAuth
from billing_client.embedded import EmbeddedBilling
from storage.engine import create_engine, create_session_pool
from storage.models import DraftSlot, SlotStatus
from tests.flows.conftest import serve_reference
from tests.flows.walking import BUILDING_QUERY, draft_slots, plausible
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.phone import Phone
from tests.harness.process import StartBot

DEMO = BillingAuth(login="demo", password=SecretStr("demo"))
WAIT = 20.0  # a real process on a loaded machine


async def stored_slots(database_url: str) -> list[DraftSlot]:
    """The draft as the bot's database has it (read from outside the process)."""
    engine = create_engine(database_url)
    try:
        return await draft_slots(create_session_pool(engine))
    finally:
        await engine.dispose()


async def log_in_and_open(phone: Phone) -> None:
    await phone.send_command("/start")
    await phone.wait_for("логин", timeout=WAIT)
    await phone.ask("demo", until="пароль", timeout=WAIT)
    welcome = await phone.ask("demo", until="Вы вошли", timeout=WAIT)
    assert "ООО «УК Демо-Сибирь»" in welcome.text
    await phone.tap("Передача показаний по дому", until="Выберите дом", timeout=WAIT)
    found = await phone.ask(BUILDING_QUERY, until="Нашлось", timeout=WAIT)
    await phone.tap(found.buttons[0][0], until="Введите показание", timeout=WAIT)


async def accepted(billing: Billing) -> dict[str, str]:
    readings = await billing.readings(DEMO, "b-1")
    return {r.meter_id: str(r.value) for r in readings.readings}


@pytest.mark.duration(20)
@pytest.mark.parametrize("backend", ["embedded", "http"])
async def test_the_whole_flow_with_the_real_bot_process(
    backend: str,
    start_bot: StartBot,
    fake_telegram: FakeTelegram,
    bot_env: dict[str, str],
    tmp_path: Path,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        env: dict[str, str] = {}
        if backend == "http":
            reference = await stack.enter_async_context(serve_reference(tmp_path / "reference"))
            env["BILLING_URL"] = reference.url
            billing: EmbeddedBilling = reference.backend
        else:
            billing = await EmbeddedBilling.open(bot_env["BILLING_DATABASE_URL"])
            stack.push_async_callback(billing.close)
        bot = await start_bot(env=env)
        phone = fake_telegram.user(user_id=3001, first_name="Иван", username="ivan")
        await log_in_and_open(phone)
        rows = await stored_slots(bot_env["DATABASE_URL"])

        refused = await phone.ask("28835,55", until="❌", timeout=WAIT)
        assert "Слишком много цифр после запятой" in refused.text
        await phone.ask(plausible(rows[0]), until="Прибор 2 из", timeout=WAIT)
        await phone.tap("Пропустить", until="Почему пропускаем?", timeout=WAIT)
        await phone.tap("Прибор неисправен", until="Прибор 3 из", timeout=WAIT)
        await phone.ask(plausible(rows[2]), until="Прибор 4 из", timeout=WAIT)

        await phone.tap("Отправить", until="Не все поля заполнены", timeout=WAIT)
        await phone.tap("Отправить", until="Отправлено: 2. Принято: 2.", timeout=WAIT)
        await phone.wait_for("Главное меню", timeout=WAIT)

        statuses = [s.status for s in (await stored_slots(bot_env["DATABASE_URL"]))[:4]]
        assert statuses == [
            SlotStatus.ACCEPTED,
            SlotStatus.SKIPPED,
            SlotStatus.ACCEPTED,
            SlotStatus.EMPTY,
        ]
        assert await accepted(billing) == {
            rows[0].meter_id: plausible(rows[0]),
            rows[2].meter_id: plausible(rows[2]),
        }
        assert not fake_telegram.errors()
        assert (await bot.stop()).returncode == 0


@pytest.mark.duration(40)
async def test_a_crash_mid_walk_loses_no_value(
    start_bot: StartBot, fake_telegram: FakeTelegram, bot_env: dict[str, str]
) -> None:
    bot = await start_bot()
    phone = fake_telegram.user(user_id=3002, first_name="Анна", username="anna")
    await log_in_and_open(phone)
    rows = await stored_slots(bot_env["DATABASE_URL"])
    await phone.ask(plausible(rows[0]), until="Прибор 2 из", timeout=WAIT)
    await phone.ask(plausible(rows[1]), until="Прибор 3 из", timeout=WAIT)
    await phone.tap("Пропустить", until="Почему пропускаем?", timeout=WAIT)
    await phone.tap("Нет доступа", until="Прибор 4 из", timeout=WAIT)
    await fake_telegram.wait_all_confirmed(timeout=WAIT)

    bot.kill9()
    assert await bot.wait_exit() == -9
    # What was answered is in the database, before any restart.
    kept = (await stored_slots(bot_env["DATABASE_URL"]))[:3]
    assert [(s.status, s.value) for s in kept] == [
        (SlotStatus.FILLED, plausible(rows[0])),
        (SlotStatus.FILLED, plausible(rows[1])),
        (SlotStatus.SKIPPED, None),
    ]
    # Typed while the bot is down: handled after the restart, into the slot on the card.
    await phone.send(plausible(rows[3]))

    await start_bot()
    await phone.wait_for("Прибор 5 из", timeout=WAIT)
    await phone.send_command("/menu")
    await phone.wait_for(lambda m: "Передача показаний по дому" in m.button_labels, timeout=WAIT)
    await phone.tap("Передача показаний по дому", until="Выберите дом", timeout=WAIT)
    found = await phone.ask(BUILDING_QUERY, until="Нашлось", timeout=WAIT)
    await phone.tap(found.buttons[0][0], until="Продолжаем", timeout=WAIT)
    card = phone.last_bot_message()
    assert card is not None and "Прибор 5 из" in card.text
    assert "заполнено 3, пропущено 1" in card.text
    after = await stored_slots(bot_env["DATABASE_URL"])
    assert [s.value for s in after[:4]] == [
        plausible(rows[0]),
        plausible(rows[1]),
        None,
        plausible(rows[3]),
    ]
