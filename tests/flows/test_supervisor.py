"""The supervisor's group chat end to end: binding, summaries with the template file,
a group's migration, /status, the digest and the default SUPERVISOR_CHAT_ID."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from aiogram.types import CallbackQuery
from sqlalchemy import select

import texts
from services import group_posts, groups, progress, submission, summary
from storage.models import Draft, DraftSlot, GroupBinding, GroupPost
from tests.conftest import App
from tests.flows import walking
from tests.harness.phone import Group, Phone

GROUP_ID = -100500
DEFAULT_GROUP_ID = -1001000000777


async def log_in(
    app: App, user_id: int = 1001, name: str = "Анна", username: str | None = "anna"
) -> Phone:
    phone = app.tg.user(user_id=user_id, first_name=name, username=username)
    await walking.log_in(phone)
    return phone


async def open_building(phone: Phone, query: str = "авиастраителей") -> None:
    await phone.tap("Передача показаний по дому", until="Выберите дом")
    found = await phone.ask(query, until="Нашлось")
    await phone.tap(found.buttons[0][0], until="Введите показание")


async def first_value(app: App, address_part: str) -> str:
    """A value billing accepts for the building's first slot: its previous reading."""
    async with app.session_pool() as session:
        slot = await session.scalar(
            select(DraftSlot)
            .join(Draft, Draft.id == DraftSlot.draft_id)
            .where(Draft.address.contains(address_part), DraftSlot.position == 0)
        )
    assert slot is not None
    return slot.previous_value or "1"


async def send_one_value_one_skip(
    app: App, phone: Phone, address_part: str = "Авиастроителей"
) -> str:
    """Type the first slot's previous value (accepted), skip the second, send anyway."""
    value = await first_value(app, address_part)
    await phone.ask(value.replace(".", ","), until="Прибор 2 из")
    await phone.tap("Пропустить", until="Почему пропускаем")
    await phone.tap("Нет доступа", until="Прибор 3 из")
    await phone.tap("Отправить", until="Не все поля заполнены")
    await phone.tap("Отправить", until="Отправлено: 1")
    return value


async def binding(app: App) -> list[tuple[str, int]]:
    async with app.session_pool() as session:
        rows = await session.execute(select(GroupBinding.account_id, GroupBinding.chat_id))
        return [(account_id, chat_id) for account_id, chat_id in rows.all()]


async def bind_group(app: App, boss: Phone, chat_id: int = GROUP_ID) -> Group:
    group = app.tg.group(chat_id, "Диспетчерская", admins=[boss])
    await group.post(boss, "/bind@meters_test_bot")
    await group.wait_for("Группа привязана")
    return group


# --- binding ---------------------------------------------------------------------------


async def test_group_admin_binds_and_every_send_posts_a_summary_with_the_template(
    app: App,
) -> None:
    boss = await log_in(app)
    group = await bind_group(app, boss)
    assert "ООО «УК Демо-Сибирь»" in group.last_bot_message().text  # type: ignore[union-attr]
    assert [chat for _, chat in await binding(app)] == [GROUP_ID]

    inspector = await log_in(app, 1002, "Иван", "ivan")
    await open_building(inspector)
    value = await send_one_value_one_skip(app, inspector)

    summary = await group.wait_for("Отправка показаний")
    text = summary.text
    assert "Авиастроителей ул., 3" in text
    assert "Иван (@ivan)" in text
    assert "Отправлено: 1 из 128" in text
    assert "Принято: 1" in text
    assert "Не принято: 0" in text
    assert "Нет доступа: 1" in text
    assert "Период: " in text
    await app.tg.feed.wait_for(lambda: group.documents() or None, 10)
    document = group.documents()[0]
    assert document.filename is not None and document.filename.endswith(".xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(document.data)).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert len(rows) == 1 + 128  # the header and every slot of the building
    assert [row[10] for row in rows[1:]].count(value) == 1


async def test_a_group_member_who_is_not_an_admin_cannot_bind(app: App) -> None:
    boss = await log_in(app)
    inspector = await log_in(app, 1002, "Иван", "ivan")
    group = app.tg.group(GROUP_ID, "Диспетчерская", admins=[boss], members=[inspector])
    await group.post(inspector, "/bind")
    refusal = await group.wait_for("только администратор этой группы")
    assert refusal
    assert await binding(app) == []


async def test_a_group_admin_not_linked_to_any_account_cannot_bind(app: App) -> None:
    stranger = app.tg.user(2001, "Пётр")
    group = app.tg.group(GROUP_ID, "Диспетчерская", admins=[stranger])
    await group.post(stranger, "/bind")
    await group.wait_for("только сотрудник, вошедший в бота")
    assert await binding(app) == []


async def test_an_anonymous_admin_binds_for_the_linked_admins_account(app: App) -> None:
    boss = await log_in(app)
    group = app.tg.group(GROUP_ID, "Диспетчерская", admins=[boss])
    await group.post_as_anonymous_admin("/bind")
    await group.wait_for("Группа привязана")
    assert [chat for _, chat in await binding(app)] == [GROUP_ID]


async def test_an_anonymous_admin_is_refused_when_no_admin_is_linked(app: App) -> None:
    stranger = app.tg.user(2001, "Пётр")
    group = app.tg.group(GROUP_ID, "Диспетчерская", admins=[stranger])
    await group.post_as_anonymous_admin("/bind")
    await group.wait_for("среди администраторов группы нет никого")
    assert await binding(app) == []


async def test_unbind_stops_the_summaries(app: App) -> None:
    boss = await log_in(app)
    group = await bind_group(app, boss)
    await group.post(boss, "/unbind")
    await group.wait_for("Группа отвязана")
    assert await binding(app) == []
    await group.post(boss, "/unbind")
    await group.wait_for("не привязана")

    await open_building(boss)
    await send_one_value_one_skip(app, boss)
    async with app.session_pool() as session:
        assert list(await session.scalars(select(GroupPost))) == []


async def test_a_group_that_became_a_supergroup_keeps_its_summaries(app: App) -> None:
    boss = await log_in(app)
    group = await bind_group(app, boss, chat_id=-4242)
    await group.migrate_to_supergroup(-1004242)
    await app.tg.wait_all_confirmed()

    await open_building(boss)
    await send_one_value_one_skip(app, boss)
    summary = await group.wait_for("Отправка показаний")
    assert summary
    assert [chat for _, chat in await binding(app)] == [-1004242]
    delivered = app.tg.calls_of("sendMessage", chat_id=-1004242, ok=True)
    assert any("Отправка показаний" in str(call.params.get("text")) for call in delivered)


@pytest.mark.app_settings(SUPERVISOR_CHAT_ID=-5151)
async def test_the_default_group_gets_summaries_and_a_migration_at_send_time_is_followed(
    app: App,
) -> None:
    boss = await log_in(app)
    group = app.tg.group(-5151, "Диспетчерская", admins=[boss])
    # The group migrates before anything is posted; the bot only learns it from the
    # 400 "group chat was upgraded" of its first post to the old id.
    await group.migrate_to_supergroup(-1005151)
    await open_building(boss)
    await send_one_value_one_skip(app, boss)
    summary = await group.wait_for("Отправка показаний")
    assert summary
    errors = [c for c in app.tg.errors() if c.chat_id == -5151]
    assert errors and "upgraded to a supergroup" in str(errors[0].error)
    await app.tg.feed.wait_for(lambda: group.documents() or None, 10)


# --- /status ---------------------------------------------------------------------------


async def test_status_shows_sent_in_progress_and_not_started_paged(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    boss = await log_in(app)
    group = await bind_group(app, boss)
    await open_building(boss)
    await send_one_value_one_skip(app, boss)
    await group.wait_for("Отправка показаний")
    await boss.ask("/menu", until=lambda m: bool(m.buttons) and "Главное меню" in m.text)
    await open_building(boss, "гоголя")
    value = await first_value(app, "Гоголя")
    await boss.ask(value.replace(".", ","), until="Прибор 2 из")

    monkeypatch.setattr(progress, "STATUS_PAGE_SIZE", 4)
    await group.post(boss, "/status")
    page = await group.wait_for("Показания за")
    assert "Отправлено: 1 · В работе: 1 · Не начато: 8" in page.text
    assert "Страница 1 из 3" in page.text
    assert page.text.count("▫️") == 4
    await group.press(boss, "След. ›")
    page = await group.wait_for("Страница 2 из 3")
    await group.press(boss, "След. ›")
    last = await group.wait_for("Страница 3 из 3")
    assert "✏️ Новосибирск, Гоголя ул., 38 — 1 из " in last.text
    assert "✅" in last.text and "Анна (@anna)" in last.text


async def test_status_in_a_group_that_is_not_bound(app: App) -> None:
    boss = await log_in(app)
    group = app.tg.group(GROUP_ID, "Диспетчерская", admins=[boss])
    await group.post(boss, "/status")
    await group.wait_for("не привязана к учётной записи")


async def test_a_double_tap_on_the_next_page_posts_no_error_in_the_group(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the second tap re-rendered the same page, Telegram answered
    "message is not modified" and the group got the private chat's generic error."""
    boss = await log_in(app)
    group = await bind_group(app, boss)
    monkeypatch.setattr(progress, "STATUS_PAGE_SIZE", 4)
    await group.post(boss, "/status")
    page = await group.wait_for("Страница 1 из 3")
    await group.press(boss, "След. ›", message=page)
    second = await group.press(boss, "След. ›", message=page)
    await group.wait_for_answer_to(second)
    await group.wait_for("Страница 2 из 3")
    await app.tg.wait_quiet()
    assert [m.text for m in group.bot_messages() if "пошло не так" in m.text] == []


async def test_an_unexpected_error_in_the_group_stops_the_spinner_and_never_says_menu(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    boss = await log_in(app)
    group = await bind_group(app, boss)
    monkeypatch.setattr(progress, "STATUS_PAGE_SIZE", 4)
    await group.post(boss, "/status")
    await group.wait_for("Страница 1 из 3")

    async def a_bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    # The handler fails before it answers the press: the error handler answers it.
    monkeypatch.setattr(CallbackQuery, "answer", a_bug)
    press = await group.press(boss, "След. ›")
    reaction = await group.wait_for_answer_to(press)
    assert reaction.answer == {"text": texts.UNEXPECTED_ERROR_SHORT}
    await app.tg.wait_quiet()
    assert [m.text for m in group.bot_messages() if "пошло не так" in m.text] == []

    monkeypatch.setattr(groups, "bound_account", a_bug)
    await group.post(boss, "/status")
    reply = await group.wait_for("пошло не так")
    assert reply.text == texts.UNEXPECTED_ERROR_SHORT  # no /menu: it means nothing here


# --- the digest ------------------------------------------------------------------------


async def digests(app: App) -> list[str]:
    async with app.session_pool() as session:
        keys = await session.scalars(
            select(GroupPost.dedupe_key).where(GroupPost.dedupe_key.startswith("digest:"))
        )
        return list(keys)


@pytest.mark.app_settings(DIGEST_ENABLED=True, DIGEST_HOUR=9)
async def test_the_morning_digest_comes_once_on_window_days_only(app: App) -> None:
    tz = ZoneInfo("Asia/Novosibirsk")
    boss = await log_in(app)
    group = await bind_group(app, boss)
    assert app.poster is not None

    for before in (datetime(2026, 11, 22, 10, 0), datetime(2026, 11, 23, 8, 59)):
        app.clock.at = before.replace(tzinfo=tz)  # the eve of the window; 8:59 on its day
        await app.poster.run_once()
        assert await digests(app) == []

    app.clock.at = datetime(2026, 11, 23, 9, 0, tzinfo=tz)
    await app.poster.run_once()
    digest = await group.wait_for("Доброе утро")
    assert "Ещё не отправлены: 10 из 10" in digest.text
    assert "Авиастроителей ул., 3" in digest.text

    app.clock.at = datetime(2026, 11, 23, 15, 0, tzinfo=tz)  # later that day: not again
    await app.poster.run_once()
    app.clock.at = datetime(2026, 11, 26, 9, 30, tzinfo=tz)  # after the window
    await app.poster.run_once()
    assert len(await digests(app)) == 1
    app.clock.at = datetime(2026, 11, 24, 9, 1, tzinfo=tz)  # the next window day
    await app.poster.run_once()
    assert len(await digests(app)) == 2
    await app.tg.feed.wait_for(
        lambda: len([m for m in group.bot_messages() if "Доброе утро" in m.text]) == 2 or None, 10
    )


async def test_a_batch_settled_elsewhere_still_gets_its_summary(app: App) -> None:
    # A batch settled without the hook (the bot died in between, or a background
    # sender settled it): the sweep queues its summary.
    boss = await log_in(app)
    group = await bind_group(app, boss)
    await open_building(boss)
    value = await first_value(app, "Авиастроителей")
    await boss.ask(value.replace(".", ","), until="Прибор 2 из")
    now = datetime.now(UTC)
    app.outbox.on_finished.clear()  # the worker settles this batch without the hook
    async with app.session_pool() as session:
        draft_id = await session.scalar(select(Draft.id))
        assert draft_id is not None
        batch_id = await submission.create_batch(
            session, draft_id=draft_id, user_id=1001, chat_id=1001, now=now
        )
    assert batch_id is not None
    results = await app.outbox.wait_for([batch_id], 10, chat_id=1001)
    assert results[batch_id].accepted == 1

    async with app.session_pool() as session:
        # (the poster's own sweep may have come first: either way it is queued once)
        await summary.enqueue_missing_summaries(
            session, default_chat_id=None, tz=app.settings.tz, now=datetime.now(UTC)
        )
        assert await group_posts.queued(session, summary.summary_key(batch_id))
        again = await summary.enqueue_missing_summaries(
            session, default_chat_id=None, tz=app.settings.tz, now=datetime.now(UTC)
        )
        assert again == 0
    assert app.poster is not None
    app.poster.wake()
    message = await group.wait_for("Отправка показаний")
    assert "Отправлено: 1 из 128" in message.text
    await app.tg.wait_quiet(0.3)
    assert len([m for m in group.bot_messages() if "Отправка показаний" in m.text]) == 1
