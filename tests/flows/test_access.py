"""Access: only linked, not revoked users act; a button cannot act on someone else's draft."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update

import texts
from keyboards.callbacks import ReviewAction, ReviewActionKind, SlotAction, SlotActionKind
from storage.models import SlotStatus, TelegramUser
from tests.conftest import App
from tests.flows.walking import open_building, slots
from tests.harness.phone import Phone


async def log_in(app: App, user_id: int) -> Phone:
    phone = app.tg.user(user_id=user_id, first_name="Пётр", username=f"petr{user_id}")
    await phone.send_command("/start")
    await phone.wait_for("логин")
    await phone.ask("demo", until="пароль")
    await phone.ask("demo", until="Вы вошли")
    return phone


def answers(phone: Phone) -> list[str]:
    return [str(answer.get("text", "")) for answer in phone.callback_answers()]


async def test_tampered_button_cannot_act_on_another_users_draft(app: App) -> None:
    owner = await open_building(app, user_id=3001)
    draft_id = (await slots(app))[0].draft_id
    other = await log_in(app, 3002)  # same company, but not walking this draft
    menu = other.last_bot_message()
    assert menu is not None

    for data in (
        SlotAction(
            action=SlotActionKind.REASON, draft_id=draft_id, position=0, arg="no_access"
        ).pack(),
        SlotAction(action=SlotActionKind.SEND, draft_id=draft_id, position=0).pack(),
        ReviewAction(action=ReviewActionKind.SEND_ANYWAY, draft_id=draft_id).pack(),
    ):
        press = await other.press_data(data, message=menu.message_id)
        await other.wait_for_answer_to(press)

    assert answers(other).count(texts.STALE_BUTTON) == 3
    rows = await slots(app)
    assert [r.status for r in rows].count(SlotStatus.EMPTY) == len(rows), "draft untouched"
    assert "Прибор 1 из" in (owner.last_bot_message() or menu).text


async def test_an_old_cards_button_does_not_change_the_current_slot(app: App) -> None:
    phone = await open_building(app, user_id=3003)
    first_card = phone.last_bot_message()
    assert first_card is not None
    draft_id = (await slots(app))[0].draft_id
    await phone.ask((await slots(app))[0].previous_value or "1", until="Прибор 2 из")

    # The first card lost its buttons; a client replaying its data still gets nowhere.
    skip = SlotAction(action=SlotActionKind.REASON, draft_id=draft_id, position=0, arg="broken")
    press = await phone.press_data(skip.pack(), message=first_card.message_id)
    await phone.wait_for_answer_to(press)
    assert texts.STALE_BUTTON in answers(phone)
    first, second = (await slots(app))[:2]
    assert first.status == SlotStatus.FILLED and first.skip_reason is None
    assert second.status == SlotStatus.EMPTY


async def test_revoked_user_loses_access_at_once(app: App) -> None:
    phone = await open_building(app, user_id=3004)
    card = phone.last_bot_message()
    assert card is not None
    async with app.session_pool() as session:
        await session.execute(
            update(TelegramUser).where(TelegramUser.id == 3004).values(revoked_at=datetime.now(UTC))
        )
        await session.commit()

    reply = await phone.ask("12345", until="закрыл вам доступ")
    assert reply.text == texts.ACCESS_REVOKED
    await phone.tap("Пропустить", message=card.message_id)
    assert answers(phone)[-1] == texts.ACCESS_REVOKED
    rows = await slots(app)
    assert all(r.status == SlotStatus.EMPTY for r in rows)


async def test_unlinked_user_pressing_any_button_is_sent_to_log_in(app: App) -> None:
    stranger = app.tg.user(user_id=3005, first_name="Чужой")
    await stranger.send_command("/start")
    greeting = await stranger.wait_for("логин")
    data = SlotAction(action=SlotActionKind.SEND, draft_id=1, position=0).pack()
    press = await stranger.press_data(data, message=greeting.message_id)
    await stranger.wait_for_answer_to(press)
    assert answers(stranger) == [texts.NOT_LINKED_SHORT]


async def test_a_double_tap_acts_once_and_leaves_one_live_card(app: App) -> None:
    """A laggy phone sends the same button twice; the second tap changes nothing."""
    phone = await open_building(app, user_id=3005)
    card = phone.last_bot_message()
    assert card is not None
    skip = card.button_data("Пропустить")

    await phone.press("Пропустить")
    await phone.wait_for("Почему пропускаем")
    calls_before = len(app.tg.calls)
    again = await phone.press_data(skip, message=card.message_id)
    await phone.wait_for_answer_to(again)
    await app.tg.wait_quiet()

    live = [m for m in phone.bot_messages() if m.buttons]
    assert [m.message_id for m in live] == [card.message_id], "one card, where it was"
    assert "Почему пропускаем" in live[0].text
    changed = {c.method for c in app.tg.calls[calls_before:]} & {"sendMessage", "deleteMessage"}
    assert not changed, "the second tap sent or deleted nothing"
    assert (await slots(app))[0].status == SlotStatus.EMPTY


async def test_a_double_tap_on_a_reason_skips_one_slot(app: App) -> None:
    """The second tap comes from the old card: it skips nothing, one live card stays."""
    phone = await open_building(app, user_id=3006)
    await phone.tap("Пропустить", until="Почему пропускаем")
    card = phone.last_bot_message()
    assert card is not None
    reason = card.button_data("Нет доступа")

    await phone.press("Нет доступа")
    await phone.wait_for("Прибор 2 из")
    again = await phone.press_data(reason, message=card.message_id)
    assert (await phone.wait_for_answer_to(again)).answer == {"text": texts.STALE_BUTTON}
    await app.tg.wait_quiet()

    live = [m for m in phone.bot_messages() if m.buttons]
    assert len(live) == 1 and "Прибор 2 из" in live[0].text
    first, second = (await slots(app))[:2]
    assert first.status == SlotStatus.SKIPPED and second.status == SlotStatus.EMPTY
