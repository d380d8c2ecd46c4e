"""The supervisor's group with the real `python bot.py`: bind, send, the summary arrives."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from storage.engine import create_engine
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.process import StartBot


async def first_previous_value(database_url: str) -> str:
    """A value billing accepts for the open building's first slot: its previous one."""
    engine = create_engine(database_url)
    async with engine.connect() as conn:
        value = (
            await conn.execute(
                text("SELECT previous_value FROM draft_slots WHERE position = 0 LIMIT 1")
            )
        ).scalar()
    await engine.dispose()
    return str(value or "1")


@pytest.mark.duration(15)
async def test_the_real_process_binds_a_group_and_posts_the_summary_with_the_file(
    start_bot: StartBot, fake_telegram: FakeTelegram, bot_env: dict[str, str]
) -> None:
    tg = fake_telegram
    await start_bot()
    boss = tg.user(user_id=3001, first_name="Анна", username="anna")
    await boss.send_command("/start")
    await boss.wait_for("логин", timeout=15)
    await boss.ask("demo", until="пароль", timeout=15)
    await boss.ask("demo", until="Вы вошли", timeout=15)

    group = tg.group(-100300, "Диспетчерская", admins=[boss])
    await group.post(boss, "/bind@meters_test_bot")
    await group.wait_for("Группа привязана", timeout=15)

    await boss.tap("Передача показаний по дому", until="Выберите дом", timeout=15)
    found = await boss.ask("титова", until="Нашлось", timeout=15)
    await boss.tap(found.buttons[0][0], until="Введите показание", timeout=15)
    value = await first_previous_value(bot_env["DATABASE_URL"])
    await boss.ask(value.replace(".", ","), until="Прибор 2 из", timeout=15)
    await boss.tap("Пропустить", until="Почему пропускаем", timeout=15)
    await boss.tap("Нет доступа", until="Прибор 3 из", timeout=15)
    await boss.tap("Отправить", until="Не все поля заполнены", timeout=15)
    await boss.tap("Отправить", until="Отправлено: 1", timeout=15)

    summary = await group.wait_for("Отправка показаний", timeout=20)
    assert "Титова ул., 7" in summary.text
    assert "Анна (@anna)" in summary.text
    assert "Нет доступа: 1" in summary.text
    assert "Принято: 1" in summary.text
    await tg.feed.wait_for(lambda: group.documents() or None, 20)
    assert group.documents()[0].filename.endswith(".xlsx")  # type: ignore[union-attr]
