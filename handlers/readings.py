"""«Передача показаний по дому»: open a building, walk its meters, send."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramNotFound
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

import texts
from billing_client.base import Billing
from billing_client.errors import BillingError, BillingUnavailable, NotFound
from handlers.buildings import BuildingList
from handlers.filters import LinkedUser, Magic
from handlers.live import CARD_KEY, disarm_card, edit_card, new_card, retire_card, take_card
from keyboards.callbacks import (
    BuildingChosen,
    Purpose,
    ReviewAction,
    ReviewActionKind,
    SlotAction,
    SlotActionKind,
)
from keyboards.menu import main_menu_keyboard
from keyboards.readings import (
    back_to_card_keyboard,
    card_keyboard,
    confirm_value_keyboard,
    not_all_filled_keyboard,
    reason_of,
    review_keyboard,
    skip_reasons_keyboard,
)
from services import submission, walk
from services.buildings import BuildingDirectory
from services.credentials import AccountNotLinked, CredentialsProvider
from services.outbox import Outbox
from settings import Settings
from storage.models import SlotStatus, SubmissionStatus, TelegramUser

log = logging.getLogger(__name__)


class Walk(StatesGroup):
    entering_value = State()
    confirming_value = State()
    choosing_skip_reason = State()
    entering_apartment = State()
    reviewing = State()


def _now() -> datetime:
    return datetime.now(UTC)


# --- rendering the card ------------------------------------------------------------


async def show_slot(
    bot: Bot,
    chat_id: int,
    state: FSMContext,
    session: AsyncSession,
    user: TelegramUser,
    slot: walk.Slot,
    *,
    note: str | None = None,
    old_becomes: str | None = None,
    edit: bool = False,
    resumed: bool = False,
    progress: walk.Progress | None = None,
) -> None:
    """Show `slot` on the card and wait for its value.

    `progress`: the draft's counts, when the caller has just read them.
    """
    if progress is None:
        progress = await walk.progress(session, slot.draft_id)
    text = texts.card(progress, slot, show_previous=user.show_previous, note=note, resumed=resumed)
    markup = card_keyboard(slot.draft_id, slot.position)
    await state.set_state(Walk.entering_value)
    await state.update_data(
        draft_id=slot.draft_id, position=slot.position, meter=slot.meter_id, pending=None
    )
    if edit:
        await edit_card(bot, chat_id, state, text, markup)
    else:
        await new_card(bot, chat_id, state, text, markup, old_becomes=old_becomes)


async def show_review(
    bot: Bot,
    chat_id: int,
    state: FSMContext,
    session: AsyncSession,
    draft_id: int,
    *,
    old_becomes: str | None = None,
    edit: bool = False,
) -> None:
    progress = await walk.progress(session, draft_id)
    warned = await walk.warned_slots(session, draft_id)
    text = texts.review(progress, warned)
    await state.set_state(Walk.reviewing)
    await state.update_data(draft_id=draft_id, position=progress.total, meter=None, pending=None)
    if edit:
        await edit_card(bot, chat_id, state, text, review_keyboard(draft_id))
    else:
        await new_card(
            bot, chat_id, state, text, review_keyboard(draft_id), old_becomes=old_becomes
        )


async def show_next(
    bot: Bot,
    chat_id: int,
    state: FSMContext,
    session: AsyncSession,
    user: TelegramUser,
    draft_id: int,
    after: int,
    *,
    old_becomes: str | None = None,
    edit: bool = False,
) -> None:
    """The next slot that needs a value after `after`, or the review past the end."""
    slot = await walk.next_open(session, draft_id, after)
    if slot is None:
        await show_review(
            bot, chat_id, state, session, draft_id, old_becomes=old_becomes, edit=edit
        )
        return
    await show_slot(bot, chat_id, state, session, user, slot, old_becomes=old_becomes, edit=edit)


# --- opening a building -------------------------------------------------------------


async def building_chosen(
    callback: CallbackQuery,
    callback_data: BuildingChosen,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    linked_user: TelegramUser,
    directory: BuildingDirectory,
    credentials: CredentialsProvider,
    billing: Billing,
    outbox: Outbox,
) -> None:
    assert linked_user.account_id is not None
    if await _walking_elsewhere(callback, bot, state, session, callback_data.building_id):
        return
    chat_id = await take_card(callback, state)
    buildings = BuildingList(bot, state, session, linked_user, directory, credentials)
    try:
        auth = await credentials.auth_for(session, linked_user.account_id)
        if outbox.billing_down:
            raise BillingUnavailable("circuit breaker open")
        building = await directory.get(linked_user.account_id, auth, callback_data.building_id)
        if building is None:
            raise NotFound
        meters = await billing.meters(auth, building.id)
    except BillingUnavailable:
        # Data entry goes on while billing is down: the draft saved last time holds
        # the meters; the readings wait in it and in the outbox.
        await _open_saved_draft(
            bot, chat_id, state, session, linked_user, callback_data.building_id
        )
        return
    except NotFound:
        await buildings.building_gone(chat_id, Purpose.SEND)
        return
    except (AccountNotLinked, BillingError) as exc:
        # The company's password is gone or refused: the list says why, with the menu.
        await buildings.unavailable(chat_id, exc, edit=True)
        return
    progress = await walk.open_building(
        session,
        account_id=linked_user.account_id,
        building=building,
        meters=meters,
        now=_now(),
    )
    # The list of addresses is replaced by the chosen one: other buildings are hidden.
    await retire_card(bot, chat_id, state, becomes=texts.header(progress))
    slot = await walk.next_open(session, progress.draft_id)
    if slot is None:
        await show_review(bot, chat_id, state, session, progress.draft_id)
        return
    await show_slot(
        bot,
        chat_id,
        state,
        session,
        linked_user,
        slot,
        resumed=progress.done > 0,
        progress=progress,
    )


async def _walking_elsewhere(
    callback: CallbackQuery,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    building_id: str,
) -> bool:
    """A press of a list that is no longer the live card while the chat walks a building.

    A double tap: the first press made the list the building's header and showed a
    card. The second one for the same building is answered and dropped (opening again
    would leave two live cards of one slot); for another building the live card loses
    its buttons first. Returns True when the press is dropped.
    """
    assert callback.message is not None
    data = await state.get_data()
    draft_id = data.get("draft_id")
    if (
        callback.message.message_id == data.get(CARD_KEY)
        or await state.get_state() not in _WALK_STATES | {Walk.reviewing.state}
        or not isinstance(draft_id, int)
    ):
        return False
    if (await walk.progress(session, draft_id)).building_id == building_id:
        await callback.answer()
        return True
    await disarm_card(bot, callback.message.chat.id, state)
    return False


async def _open_saved_draft(
    bot: Bot,
    chat_id: int,
    state: FSMContext,
    session: AsyncSession,
    user: TelegramUser,
    building_id: str,
) -> None:
    assert user.account_id is not None
    draft_id = await walk.latest_draft(session, user.account_id, building_id)
    if draft_id is None:
        # The pressed list becomes the menu: its id outlives the cleared walk.
        card_id = (await state.get_data()).get(CARD_KEY)
        await state.clear()
        await edit_card(
            bot,
            chat_id,
            state,
            texts.BILLING_DOWN_NO_DRAFT,
            main_menu_keyboard(),
            message_id=card_id if isinstance(card_id, int) else None,
        )
        return
    progress = await walk.progress(session, draft_id)
    await retire_card(bot, chat_id, state, becomes=texts.header(progress))
    slot = await walk.next_open(session, draft_id)
    if slot is None:
        await show_review(bot, chat_id, state, session, draft_id)
        return
    await show_slot(
        bot,
        chat_id,
        state,
        session,
        user,
        slot,
        note=texts.billing_down_saved_draft(progress.period),
        progress=progress,
    )


# --- values -----------------------------------------------------------------------


async def value_entered(
    message: Message,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    linked_user: TelegramUser,
    settings: Settings,
    replayed: bool = False,
) -> None:
    assert message.text is not None
    # After a crash the inbox hands a message in again: if it already filled its slot,
    # go on from there instead of putting the same text into the next slot.
    filled = (
        await walk.slot_by_message(session, linked_user.id, message.message_id)
        if replayed
        else None
    )
    data = await state.get_data()
    if filled is not None:
        # The card is still the filled slot's when the crash also lost the FSM's change:
        # it becomes that slot's line, as it would have (a line already is one).
        at_filled = (data.get("draft_id"), data.get("position")) == (
            filled.draft_id,
            filled.position,
        )
        await show_next(
            bot,
            message.chat.id,
            state,
            session,
            linked_user,
            filled.draft_id,
            filled.position,
            old_becomes=texts.done_line(filled) if at_filled else None,
        )
        return
    walking = _walk_of(data)
    if walking is None:
        await _show_current(bot, message.chat.id, state, session, linked_user, data)
        return
    draft_id, position = walking
    # At «Не все поля заполнены» the FSM still points at the slot whose card was shown:
    # the value is for it, as if the inspector had gone back to filling. Past the end
    # (the review) there is no such slot, and guessing one would be worse.
    if await state.get_state() == Walk.reviewing.state and (
        await walk.slot_at(session, draft_id, position) is None
    ):
        await message.answer(texts.VALUE_AT_REVIEW)
        return
    chat_id = message.chat.id
    try:
        outcome = await walk.enter_value(
            session,
            draft_id=draft_id,
            position=position,
            meter_id=_meter_of(data),
            text=message.text,
            jump_limit=settings.JUMP_LIMIT,
            user_id=linked_user.id,
            message_id=message.message_id,
            now=_now(),
        )
    except walk.SlotGone:
        await _meter_gone(bot, chat_id, state, session, linked_user, draft_id, position)
        return
    if isinstance(outcome, walk.Saved):
        await _walk_on(bot, chat_id, state, session, linked_user, outcome.slot)
    elif isinstance(outcome, walk.Refused):
        await show_slot(
            bot,
            chat_id,
            state,
            session,
            linked_user,
            outcome.slot,
            note=texts.value_problem(outcome.problem),
        )
    elif isinstance(outcome, walk.NeedsConfirmation):
        await new_card(
            bot,
            chat_id,
            state,
            texts.value_warning(outcome.warning, outcome.value),
            confirm_value_keyboard(draft_id, outcome.slot.position, outcome.value),
        )
        await state.set_state(Walk.confirming_value)
        await state.update_data(
            position=outcome.slot.position,
            pending=outcome.value,
            pending_message=message.message_id,
        )
    else:
        await show_slot(
            bot, chat_id, state, session, linked_user, outcome.slot, note=texts.SENDING_NOW
        )


async def value_invalid(message: Message) -> None:
    """Stickers, photos, voice and the like where a number is expected."""
    await message.answer(texts.EXPECTING_NUMBER)


async def review_not_text(message: Message) -> None:
    """A sticker, photo or the like while the review (or its question) is on screen."""
    await message.answer(texts.REVIEW_EXPECTS_BUTTON)


async def apartment_invalid(message: Message) -> None:
    await message.answer(texts.EXPECTING_APARTMENT)


async def forwarded_refused(message: Message) -> None:
    await message.answer(texts.FORWARDED_NOT_ACCEPTED)


async def apartment_entered(
    message: Message,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    linked_user: TelegramUser,
) -> None:
    assert message.text is not None
    data = await state.get_data()
    walking = _walk_of(data)
    if walking is None:
        await _show_current(bot, message.chat.id, state, session, linked_user, data)
        return
    draft_id, current = walking
    position = await walk.apartment_position(session, draft_id, message.text[:50])
    if position is None:
        await new_card(
            bot,
            message.chat.id,
            state,
            texts.apartment_not_found(message.text[:50]),
            back_to_card_keyboard(draft_id, current),
        )
        return
    slot = await walk.slot_at(session, draft_id, position)
    assert slot is not None
    await show_slot(bot, message.chat.id, state, session, linked_user, slot)


# --- buttons on the card ---------------------------------------------------------------


async def slot_action(
    callback: CallbackQuery,
    callback_data: SlotAction,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    linked_user: TelegramUser,
    settings: Settings,
    outbox: Outbox,
) -> None:
    assert callback.message is not None
    chat_id = callback.message.chat.id
    data = await state.get_data()
    current = (data.get("draft_id"), data.get("position"))
    walk_state = await state.get_state()
    on_card = callback.message.message_id == data.get(CARD_KEY)
    if on_card and walk_state == Walk.reviewing.state:
        # A second tap of a button the question (or the review) has just replaced on
        # this very message: the screen already answers it.
        await callback.answer()
        return
    if (
        current != (callback_data.draft_id, callback_data.position)
        or not on_card
        or walk_state not in _WALK_STATES
    ):
        await callback.answer(texts.STALE_BUTTON)
        await _show_current(bot, chat_id, state, session, linked_user, data)
        return
    await callback.answer()
    draft_id, position = callback_data.draft_id, callback_data.position
    action = callback_data.action
    if action == SlotActionKind.SKIP:
        await state.set_state(Walk.choosing_skip_reason)
        await edit_card(
            bot, chat_id, state, texts.CHOOSE_SKIP_REASON, skip_reasons_keyboard(draft_id, position)
        )
    elif action == SlotActionKind.REASON:
        try:
            slot = await walk.skip_slot(
                session,
                draft_id=draft_id,
                position=position,
                meter_id=_meter_of(data),
                reason=reason_of(callback_data.arg),
                user_id=linked_user.id,
                now=_now(),
            )
        except walk.SlotGone:
            await _meter_gone(bot, chat_id, state, session, linked_user, draft_id, position)
            return
        if slot is None:
            await _show_card(
                bot,
                chat_id,
                state,
                session,
                linked_user,
                data,
                draft_id,
                position,
                note=texts.SENDING_NOW,
            )
            return
        await _walk_on(bot, chat_id, state, session, linked_user, slot)
    elif action == SlotActionKind.BACK:
        await _show_card(
            bot, chat_id, state, session, linked_user, data, draft_id, position, back=True
        )
    elif action == SlotActionKind.JUMP:
        await state.set_state(Walk.entering_apartment)
        await edit_card(
            bot, chat_id, state, texts.ASK_APARTMENT, back_to_card_keyboard(draft_id, position)
        )
    elif action in (SlotActionKind.CARD, SlotActionKind.RETYPE):
        await _show_card(bot, chat_id, state, session, linked_user, data, draft_id, position)
    elif action == SlotActionKind.KEEP:
        await _keep_confirmed(
            bot, chat_id, state, session, linked_user, settings, data, callback_data
        )
    elif action == SlotActionKind.SEND:
        await _Sending(bot, chat_id, state, session, linked_user, outbox, settings).ask_or_send(
            draft_id
        )
    elif action == SlotActionKind.EXIT:
        await state.clear()
        await edit_card(
            bot,
            chat_id,
            state,
            texts.MAIN_MENU,
            main_menu_keyboard(),
            message_id=callback.message.message_id,
        )


_WALK_STATES = {
    Walk.entering_value.state,
    Walk.confirming_value.state,
    Walk.choosing_skip_reason.state,
    Walk.entering_apartment.state,
}


async def _keep_confirmed(
    bot: Bot,
    chat_id: int,
    state: FSMContext,
    session: AsyncSession,
    user: TelegramUser,
    settings: Settings,
    data: dict[str, object],
    callback_data: SlotAction,
) -> None:
    pending = data.get("pending")
    draft_id, position = callback_data.draft_id, callback_data.position
    if not isinstance(pending, str) or pending != callback_data.arg:
        await _show_card(bot, chat_id, state, session, user, data, draft_id, position)
        return
    message_id = data.get("pending_message")
    try:
        outcome = await walk.enter_value(
            session,
            draft_id=draft_id,
            position=position,
            meter_id=_meter_of(data),
            text=pending,
            jump_limit=settings.JUMP_LIMIT,
            confirmed_value=pending,
            user_id=user.id,
            message_id=message_id if isinstance(message_id, int) else None,
            now=_now(),
        )
    except walk.SlotGone:
        await _meter_gone(bot, chat_id, state, session, user, draft_id, position)
        return
    if isinstance(outcome, walk.Saved):
        await _walk_on(bot, chat_id, state, session, user, outcome.slot)
    else:
        await show_slot(bot, chat_id, state, session, user, outcome.slot, edit=True)


def _meter_of(data: dict[str, object]) -> str | None:
    """The meter the card on screen shows (None at the review)."""
    meter = data.get("meter")
    return meter if isinstance(meter, str) else None


async def _meter_gone(
    bot: Bot,
    chat_id: int,
    state: FSMContext,
    session: AsyncSession,
    user: TelegramUser,
    draft_id: int,
    position: int,
) -> None:
    """The card's meter left billing's list while the card was on screen."""
    slot = await walk.next_open(session, draft_id, position - 1)
    if slot is not None:
        await show_slot(bot, chat_id, state, session, user, slot, note=texts.METER_GONE)
        return
    await bot.send_message(chat_id, texts.METER_GONE)
    await show_review(bot, chat_id, state, session, draft_id)


async def _walk_on(
    bot: Bot,
    chat_id: int,
    state: FSMContext,
    session: AsyncSession,
    user: TelegramUser,
    done: walk.Slot,
) -> None:
    """The slot just filled or skipped becomes a line; the next open slot's card."""
    await show_next(
        bot,
        chat_id,
        state,
        session,
        user,
        done.draft_id,
        done.position,
        old_becomes=texts.done_line(done),
    )


async def _show_card(
    bot: Bot,
    chat_id: int,
    state: FSMContext,
    session: AsyncSession,
    user: TelegramUser,
    data: dict[str, object],
    draft_id: int,
    position: int,
    *,
    back: bool = False,
    note: str | None = None,
) -> None:
    """The card on screen again (`back`: the one before it), found by its meter: the
    walk may have been renumbered under it (see walk.card_slot)."""
    try:
        slot = await walk.card_slot(session, draft_id, position, _meter_of(data))
    except walk.SlotGone:
        await _meter_gone(bot, chat_id, state, session, user, draft_id, position)
        return
    if back and slot.position > 0:
        slot = await walk.slot_at(session, draft_id, slot.position - 1) or slot
    await show_slot(bot, chat_id, state, session, user, slot, note=note, edit=True)


def _walk_of(data: dict[str, object]) -> tuple[int, int] | None:
    """The draft and position the chat's walk is at, if its FSM data has them."""
    draft_id, position = data.get("draft_id"), data.get("position")
    if isinstance(draft_id, int) and isinstance(position, int):
        return draft_id, position
    return None


async def _show_current(
    bot: Bot,
    chat_id: int,
    state: FSMContext,
    session: AsyncSession,
    user: TelegramUser,
    data: dict[str, object],
) -> None:
    walking = _walk_of(data)
    if walking is None:
        # No walk in the data (lost, or from an old version): the menu, and no walk state.
        await new_card(bot, chat_id, state, texts.MAIN_MENU, main_menu_keyboard())
        await state.set_state(None)
        return
    draft_id, position = walking
    meter = _meter_of(data)
    try:
        slot = await walk.card_slot(session, draft_id, position, meter)
    except walk.SlotGone:
        if meter is None:  # past the last slot: the review
            await show_review(bot, chat_id, state, session, draft_id)
        else:
            await _meter_gone(bot, chat_id, state, session, user, draft_id, position)
        return
    if await state.get_state() == Walk.reviewing.state:
        # The question was asked on this slot's card: it is still the question.
        await new_card(bot, chat_id, state, texts.NOT_ALL_FILLED, not_all_filled_keyboard(draft_id))
        return
    await show_slot(bot, chat_id, state, session, user, slot)


# --- review and sending ---------------------------------------------------------------


async def review_action(
    callback: CallbackQuery,
    callback_data: ReviewAction,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    linked_user: TelegramUser,
    outbox: Outbox,
    settings: Settings,
) -> None:
    assert callback.message is not None
    chat_id = callback.message.chat.id
    data = await state.get_data()
    if data.get("draft_id") != callback_data.draft_id or callback.message.message_id != data.get(
        "card_id"
    ):
        await callback.answer(texts.STALE_BUTTON)
        await _show_current(bot, chat_id, state, session, linked_user, data)
        return
    await callback.answer()
    draft_id = callback_data.draft_id
    if callback_data.action == ReviewActionKind.RETURN:
        await show_next(bot, chat_id, state, session, linked_user, draft_id, -1, edit=True)
        return
    sending = _Sending(bot, chat_id, state, session, linked_user, outbox, settings)
    if callback_data.action == ReviewActionKind.SEND:
        await sending.ask_or_send(draft_id)
    else:
        await sending.send(draft_id)


@dataclass(frozen=True, slots=True)
class _Sending:
    """What sending a draft needs, gathered once per press of «Отправить»."""

    bot: Bot
    chat_id: int
    state: FSMContext
    session: AsyncSession
    user: TelegramUser
    outbox: Outbox
    settings: Settings

    async def ask_or_send(self, draft_id: int) -> None:
        """Send, or first ask the seed's question when a slot is still empty."""
        progress = await walk.progress(self.session, draft_id)
        if progress.empty:
            await self.state.set_state(Walk.reviewing)
            await self.state.update_data(draft_id=draft_id)
            await edit_card(
                self.bot,
                self.chat_id,
                self.state,
                texts.NOT_ALL_FILLED,
                not_all_filled_keyboard(draft_id),
            )
            return
        await self.send(draft_id)

    async def send(self, draft_id: int) -> None:
        """Write the batch (outbox) and show its result if it comes within SEND_WAIT."""
        bot, chat_id, state, session, outbox = (
            self.bot,
            self.chat_id,
            self.state,
            self.session,
            self.outbox,
        )
        # A batch still pending from an outage is hurried: pressing «Отправить» again
        # is how an inspector asks to try now (with the batch's own key).
        waiting = await submission.pending_for_draft(session, draft_id)
        batch_id = await submission.create_batch(
            session, draft_id=draft_id, user_id=self.user.id, chat_id=chat_id, now=_now()
        )
        if batch_id is None and not waiting:
            progress = await walk.progress(session, draft_id)
            await edit_card(
                bot,
                chat_id,
                state,
                f"{texts.NOTHING_TO_SEND}\n\n{texts.review(progress, [])}",
                review_keyboard(draft_id),
            )
            return
        await submission.hurry(session, waiting, now=_now())
        batches = [*waiting, *([batch_id] if batch_id is not None else [])]
        down = outbox.billing_down
        if not down:
            await edit_card(bot, chat_id, state, texts.SENDING, None)
        wait = 0 if down else self.settings.SEND_WAIT
        results = await outbox.wait_for(batches, wait, chat_id=chat_id)
        # The worker changed slot rows in its own session: reload them here. The user
        # row is expired with them and must be loaded again now, not lazily later.
        session.expire_all()
        await session.refresh(self.user)
        lines = [texts.batch_result(results[batch]) for batch in batches if batch in results]
        unsettled = [batch for batch in batches if batch not in results]
        if unsettled:
            count = sum([(await submission.describe(session, batch)).sent for batch in unsettled])
            # Down when the send began (even if the cooldown has run out since) or now.
            down = down or outbox.billing_down
            later = texts.billing_not_answering if down else texts.sending_in_background
            lines.append(later(count))
        await retire_card(bot, chat_id, state, becomes="\n\n".join(lines))
        await outbox.shown(results, chat_id=chat_id)
        if any(r.status == SubmissionStatus.SENT and r.rejected for r in results.values()):
            # Rejected values go back to the draft: walk straight to the first of them.
            await show_next(bot, chat_id, state, session, self.user, draft_id, -1)
            return
        await state.clear()
        await new_card(bot, chat_id, state, texts.MAIN_MENU, main_menu_keyboard())


def result_notifier(bot: Bot) -> Callable[[submission.BatchResult], Awaitable[None]]:
    """How the outbox worker tells an inspector a batch's outcome after they moved on."""

    async def notify(result: submission.BatchResult) -> None:
        try:
            await bot.send_message(result.chat_id, texts.batch_settled_later(result))
        except (TelegramForbiddenError, TelegramNotFound) as exc:
            # Blocked the bot or the chat is gone: nobody to tell, and nothing to retry.
            log.warning("Batch %s: inspector not told (%s)", result.submission_id, exc.message)
        except TelegramBadRequest as exc:
            if "chat not found" not in exc.message:
                raise
            log.warning("Batch %s: inspector's chat not found", result.submission_id)

    return notify


# --- edits of typed values ---------------------------------------------------------------


async def value_edited(
    edited_message: Message,
    session: AsyncSession,
    linked_user: TelegramUser,
    settings: Settings,
) -> None:
    assert edited_message.text is not None
    slot = await walk.slot_by_message(session, linked_user.id, edited_message.message_id)
    if slot is None or slot.status == SlotStatus.SKIPPED:
        await edited_message.reply(texts.EDIT_NOT_A_READING)
        return
    outcome = await walk.enter_value(
        session,
        draft_id=slot.draft_id,
        position=slot.position,
        text=edited_message.text,
        jump_limit=settings.JUMP_LIMIT,
        user_id=linked_user.id,
        message_id=edited_message.message_id,
        now=_now(),
    )
    if isinstance(outcome, walk.Saved):
        await edited_message.reply(texts.edit_applied(outcome.slot))
    elif isinstance(outcome, walk.Refused):
        await edited_message.reply(texts.edit_refused(outcome.problem))
    elif isinstance(outcome, walk.NeedsConfirmation):
        await edited_message.reply(texts.edit_needs_confirmation(outcome.warning, outcome.value))
    else:
        await edited_message.reply(texts.EDIT_ALREADY_SENDING)


async def edit_not_a_reading(edited_message: Message) -> None:
    await edited_message.reply(texts.EDIT_NOT_A_READING)


def create_router() -> Router:
    router = Router(name=__name__)
    for observer in (router.message, router.callback_query, router.edited_message):
        observer.filter(LinkedUser())
    router.callback_query.register(
        building_chosen, BuildingChosen.filter(F.purpose == Purpose.SEND)
    )
    router.callback_query.register(slot_action, SlotAction.filter())
    router.callback_query.register(review_action, ReviewAction.filter())

    typing = StateFilter(Walk.entering_value, Walk.confirming_value, Walk.choosing_skip_reason)
    typing_a_value = StateFilter(
        Walk.entering_value, Walk.confirming_value, Walk.choosing_skip_reason, Walk.reviewing
    )
    entering_apartment = StateFilter(Walk.entering_apartment)
    text, not_text, not_command = Magic(F.text), Magic(~F.text), Magic(~F.text.startswith("/"))
    router.message.register(forwarded_refused, Magic(F.forward_origin), text)
    router.message.register(value_entered, typing_a_value, text, not_command)
    router.message.register(value_invalid, typing, not_text)
    router.message.register(review_not_text, StateFilter(Walk.reviewing), not_text)
    router.message.register(apartment_entered, entering_apartment, text, not_command)
    router.message.register(apartment_invalid, entering_apartment, not_text)
    router.edited_message.register(value_edited, text)
    router.edited_message.register(edit_not_a_reading)
    return router
