"""Summaries of a big building and the group's pace, end to end against the fake Bot API."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import openpyxl
import pytest
from sqlalchemy import select

from billing_client.embedded.backend import EmbeddedBilling
from billing_client.template import TemplateRow
from services import group_posts
from storage.models import Draft, DraftSlot, GroupPost, SlotStatus
from tests.conftest import App
from tests.flows.test_supervisor import GROUP_ID, bind_group, log_in
from tests.harness.faults import RateLimit

APARTMENTS = 500
STREET = "Тестовая ул."


def big_building() -> list[TemplateRow]:
    return [
        TemplateRow(
            city="Новосибирск",
            street=STREET,
            house="500",
            apartment=str(number),
            serial_number=f"SN{number:06d}",
            digits=6,
            previous_value="5000",
            previous_date=date(2026, 10, 24),
        )
        for number in range(1, APARTMENTS + 1)
    ]


async def test_a_500_apartment_summary_is_split_without_losing_a_line_and_has_the_template(
    app: App,
) -> None:
    assert isinstance(app.billing, EmbeddedBilling)
    await app.billing.import_rows("demo", big_building())
    boss = await log_in(app)
    group = await bind_group(app, boss)
    await boss.tap("Передача показаний по дому", until="Выберите дом")
    found = await boss.ask("тестовая 500", until="Нашлось")
    await boss.tap(found.buttons[0][0], until="Введите показание")

    # The walk itself is covered elsewhere: fill the draft as 500 typed values would.
    # Even apartments read 5100 (accepted), odd ones 4000 (below the previous 5000:
    # kept after the warning, then rejected by billing), the last ten were skipped.
    now = datetime.now(UTC)
    async with app.session_pool() as session:
        draft = await session.scalar(select(Draft).where(Draft.address.contains(STREET)))
        assert draft is not None
        slots = list(await session.scalars(select(DraftSlot).where(DraftSlot.draft_id == draft.id)))
        assert len(slots) == APARTMENTS
        for slot in slots:
            number = int(slot.apartment)
            if number > APARTMENTS - 10:
                slot.status, slot.skip_reason = SlotStatus.SKIPPED, "no_access"
            elif number % 2:
                slot.status, slot.value, slot.warning = SlotStatus.FILLED, "4000", "below_previous"
            else:
                slot.status, slot.value = SlotStatus.FILLED, "5100"
            slot.entered_by, slot.entered_at = 1001, now
        await session.commit()

    await boss.tap("Отправить", until="Отправлено: 490", timeout=30)

    def all_parts_arrived() -> list[str] | None:
        texts = [
            str(call.params["text"])
            for call in app.tg.calls_of("sendMessage", chat_id=GROUP_ID, ok=True)
            if "Тестовая" in str(call.params.get("text"))
        ]
        documents = app.tg.calls_of("sendDocument", chat_id=GROUP_ID, ok=True)
        return texts if documents else None

    parts = await app.tg.feed.wait_for(all_parts_arrived, 30)
    assert len(parts) >= 4
    assert all(len(part) <= 4096 for part in parts)
    assert "Отправлено: 490 из 500" in parts[0]
    assert "Принято: 245" in parts[0]
    joined = "\n".join(parts)
    rejected = [line for line in joined.splitlines() if line.startswith("• кв. ")]
    assert len(rejected) == 245
    assert {line.split(",")[0] for line in rejected} == {
        f"• кв. {n}" for n in range(1, APARTMENTS - 9, 2)
    }
    assert all("Показание меньше предыдущего (5000)" in line for line in rejected)
    assert "Нет доступа: 10" in joined
    assert "кв. 491, 492, 493, 494, 495, 496, 497, 498, 499, 500" in joined
    assert "меньше предыдущего: 245" in joined
    for index, part in enumerate(parts[1:], start=2):
        assert f"продолжение ({index}/{len(parts)})" in part

    document = group.documents()[0]
    workbook = openpyxl.load_workbook(io.BytesIO(document.data))
    rows = list(workbook.worksheets[0].iter_rows(values_only=True))
    assert rows[0][3] == "Квартира"
    values = {row[3]: row[10] for row in rows[1:]}
    assert len(values) == APARTMENTS
    assert values["2"] == "5100" and values["1"] == "4000" and values["500"] is None
    notes = list(workbook["Примечания"].iter_rows(values_only=True))
    assert len(notes) == 1 + 10 and notes[1][3] == "Нет доступа"


async def queue_posts(app: App, count: int) -> None:
    async with app.session_pool() as session:
        await group_posts.enqueue(
            session,
            chat_id=GROUP_ID,
            account_id=None,
            key="pacing",
            posts=[group_posts.Post(text=f"Сообщение {n}") for n in range(count)],
            now=datetime.now(UTC),
        )
    assert app.poster is not None
    app.poster.wake()


def delivered(app: App) -> list[tuple[float, str]]:
    return [
        (call.at, str(call.params["text"]))
        for call in app.tg.calls_of("sendMessage", chat_id=GROUP_ID, ok=True)
        if str(call.params.get("text", "")).startswith("Сообщение")
    ]


def most_in_any_window(times: list[float], seconds: float) -> int:
    return max(sum(1 for t in times if start <= t < start + seconds) for start in times)


async def post_paced(app: App, own_limit: int, count: int) -> float:
    """Bind a group, set the bot's pace (per 3 s) against Telegram's 5 in 3 s, queue
    `count` posts and wait until all arrived; the fake's clock at the start."""
    boss = await log_in(app)
    await bind_group(app, boss)
    assert app.poster is not None
    app.poster.limit, app.poster.window = own_limit, timedelta(seconds=3)
    app.tg.faults.group_limit = RateLimit(5, 3)
    since = app.tg.now()
    await queue_posts(app, count)
    await app.tg.feed.wait_for(lambda: len(delivered(app)) == count or None, 30)
    return since


@pytest.mark.duration(10)
async def test_posts_keep_under_the_group_limit_and_none_is_dropped(app: App) -> None:
    # Telegram's 20 a minute, scaled down to 5 in 3 s so the test takes seconds.
    since = await post_paced(app, own_limit=5, count=16)
    sent = delivered(app)
    assert [text for _, text in sent] == [f"Сообщение {n}" for n in range(16)]
    assert most_in_any_window([at for at, _ in sent], 3.0) <= 5
    assert [t for t in app.tg.throttles if t.at >= since] == []


async def test_a_429_from_the_group_is_waited_out_and_nothing_is_lost(app: App) -> None:
    # The bot's own pace is wrong here (8 in 3 s against Telegram's 5): the 429s
    # that follow must be waited out, never retried early, and every post arrives.
    since = await post_paced(app, own_limit=8, count=12)
    assert [text for _, text in delivered(app)] == [f"Сообщение {n}" for n in range(12)]
    assert [t for t in app.tg.throttles if t.at >= since], "the fake should have throttled"
    assert app.tg.early_retries() == []
    assert app.poster is not None
    await app.poster.run_once()  # waits for the turn that sent the last one to commit
    async with app.session_pool() as session:
        waiting = await session.scalars(select(GroupPost).where(GroupPost.sent_at.is_(None)))
        assert list(waiting) == []
