"""Texts of choosing a building, walking its meters, sending and viewing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from services.submission import GAVE_UP, BatchResult
from services.values import PlausibilityWarning, ValueProblem, ValueProblemKind, WarningKind
from services.walk import Progress, SkipReason, Slot
from storage.models import SlotStatus, SubmissionStatus
from texts.common import esc

# --- buttons -------------------------------------------------------------------

BTN_SKIP = "Пропустить"
BTN_BACK = "Назад"
BTN_JUMP = "К квартире №…"
BTN_SEND = "Отправить"
BTN_RETURN = "Вернуться"
BTN_EXIT = "В меню"
BTN_RETYPE = "Исправить"
BTN_PREV_PAGE = "‹ Пред."
BTN_NEXT_PAGE = "След. ›"
BTN_ALL_BUILDINGS = "Весь список домов"
BTN_EARLIER_PERIOD = "‹ Предыдущий период"
BTN_LATER_PERIOD = "Следующий период ›"
BTN_RETURN_TO_EMPTY = "Вернуться к заполнению"


def btn_keep(value: str) -> str:
    return f"Оставить {value}"


def btn_page(page: int, pages: int) -> str:
    return f"{page + 1} / {pages}"


SKIP_REASONS: dict[SkipReason, str] = {
    SkipReason.NO_ACCESS: "Нет доступа",
    SkipReason.BROKEN: "Прибор неисправен",
    SkipReason.UNREADABLE: "Не читается",
    SkipReason.REPLACED: "Прибор заменён",
    SkipReason.NONE: "Без причины",
}


def skip_reason_label(reason: str | None) -> str:
    try:
        return SKIP_REASONS[SkipReason(reason or "")]
    except ValueError:
        return "Без причины"


# --- choosing a building ----------------------------------------------------------

CHOOSE_BUILDING = (
    "Выберите дом из списка или напишите улицу и номер дома, например «Авиастроителей 0/0»."
)
CHOOSE_BUILDING_TO_VIEW = (
    "Показания какого дома посмотреть? Выберите из списка или напишите улицу и номер дома."
)
NO_BUILDINGS = "У учётной записи нет домов. Обратитесь в энергосбыт."


def search_results(query: str, found: int) -> str:
    return f"Нашлось по запросу «{esc(query)}»: {found}. Выберите дом."


def search_nothing(query: str) -> str:
    return (
        f"По запросу «{esc(query)}» ничего не нашлось. "
        "Проверьте улицу и номер дома или выберите из списка."
    )


BUILDING_GONE = "Этот дом больше не обслуживается учётной записью. Выберите другой."
NOT_TEXT_WHILE_CHOOSING = "Напишите улицу и номер дома текстом или выберите дом кнопкой."
QUERY_TOO_LONG = "Слишком длинный запрос. Напишите только улицу и номер дома."


# --- the card -----------------------------------------------------------------


def _fmt_date(value: date | None) -> str:
    return value.strftime("%d.%m.%Y") if value else ""


def counted(count: int, one: str, few: str, many: str) -> str:
    """The count with its noun agreed: (1, 21) one, (2-4, 22-24) few, the rest many."""
    if count % 10 == 1 and count % 100 != 11:
        word = one
    elif 2 <= count % 10 <= 4 and not 12 <= count % 100 <= 14:
        word = few
    else:
        word = many
    return f"{count} {word}"


def _building(progress: Progress) -> str:
    apartments = counted(progress.apartments, "квартира", "квартиры", "квартир")
    meters = counted(progress.total, "прибор", "прибора", "приборов")
    return f"🏠 <b>{esc(progress.address)}</b>\n{apartments}, {meters}"


def header(progress: Progress) -> str:
    skipped = f", пропущено {progress.skipped}" if progress.skipped else ""
    return f"{_building(progress)}, заполнено {progress.filled}{skipped}"


def _capacity(slot: Slot) -> str:
    if slot.fraction_digits:
        return f"{slot.digits} (+{slot.fraction_digits} после запятой)"
    return str(slot.digits)


def card(
    progress: Progress,
    slot: Slot,
    *,
    show_previous: bool,
    note: str | None = None,
    resumed: bool = False,
) -> str:
    lines = [header(progress), ""]
    if resumed:
        lines += ["Продолжаем с первого незаполненного прибора.", ""]
    if note:
        lines += [note, ""]
    lines.append(f"Квартира: <b>{esc(slot.apartment)}</b>")
    lines.append(f"Зав. номер: <code>{esc(slot.serial_number)}</code>")
    lines.append(f"Значность: {_capacity(slot)}")
    if slot.tariff:
        lines.append(f"Тариф: {esc(slot.tariff)}")
    if show_previous:
        if slot.previous_value is not None:
            lines.append(
                f"Предыдущее показание: {esc(slot.previous_value)} "
                f"от {_fmt_date(slot.previous_date)}"
            )
        else:
            lines.append("Предыдущее показание: нет")
    lines.append(f"Прибор {slot.position + 1} из {progress.total}")
    lines.append("")
    lines.append(_slot_state(slot))
    return "\n".join(lines)


def _slot_state(slot: Slot) -> str:
    if slot.status == SlotStatus.REJECTED:
        return (
            f"⚠️ Энергосбыт не принял {esc(slot.value or '')}: "
            f"{esc(slot.rejection_message or '')}\nВведите верное показание:"
        )
    if slot.status in (SlotStatus.FILLED, SlotStatus.ACCEPTED, SlotStatus.SENDING) and slot.value:
        sent = " (отправлено)" if slot.status == SlotStatus.ACCEPTED else ""
        return f"Введено: <b>{esc(slot.value)}</b>{sent}. Напишите новое значение, чтобы исправить."
    if slot.status == SlotStatus.SKIPPED:
        return (
            f"Пропущено: {skip_reason_label(slot.skip_reason)}. Напишите значение, если оно есть."
        )
    return "Введите показание:"


def slot_line(slot: Slot) -> str:
    tariff = f", {esc(slot.tariff)}" if slot.tariff else ""
    return f"кв. {esc(slot.apartment)}, № {esc(slot.serial_number)}{tariff}"


def done_line(slot: Slot) -> str:
    if slot.status == SlotStatus.SKIPPED:
        return f"⏭ {slot_line(slot)}: пропущено — {skip_reason_label(slot.skip_reason)}"
    return f"✅ {slot_line(slot)}: <b>{esc(slot.value or '')}</b>"


CHOOSE_SKIP_REASON = "Почему пропускаем?"
ASK_APARTMENT = "Напишите номер квартиры, например «12а» или «НП-1»."


def apartment_not_found(query: str) -> str:
    return f"Квартиры «{esc(query)}» в этом доме нет. Напишите номер ещё раз."


STALE_BUTTON = "Эта кнопка устарела — вот актуальная карточка."
SENDING_NOW = "Это показание сейчас отправляется в энергосбыт — исправить его можно после ответа."
# Billing dropped the meter while its card was on screen (another inspector re-opened).
METER_GONE = (
    "Прибора с этой карточки больше нет в списке дома в энергосбыте — показание не сохранено."
)

# --- values ---------------------------------------------------------------------


def _digits_rule(problem: ValueProblem) -> str:
    rule = f"не больше {problem.digits} цифр до запятой"
    if problem.fraction_digits:
        rule += f" и {problem.fraction_digits} после"
    else:
        rule += ", без дробной части"
    return rule


def value_problem(problem: ValueProblem) -> str:
    rule = _digits_rule(problem)
    kind = problem.kind
    if kind == ValueProblemKind.EMPTY:
        head = "Пустое значение."
    elif kind == ValueProblemKind.TOO_LONG:
        head = "Слишком длинное сообщение для показания."
    elif kind == ValueProblemKind.NOT_A_NUMBER:
        head = "Показание — это только цифры."
    elif kind == ValueProblemKind.NEGATIVE:
        head = "Показание не может быть отрицательным."
    elif kind == ValueProblemKind.SEVERAL_SEPARATORS:
        head = "В показании может быть только одна запятая."
    elif kind == ValueProblemKind.MISSING_INTEGER_PART:
        head = "Перед запятой нужны цифры."
    elif kind == ValueProblemKind.MISSING_FRACTION_DIGITS:
        head = "После запятой нужны цифры."
    elif kind == ValueProblemKind.FRACTION_NOT_ALLOWED:
        head = "У этого прибора нет дробной части."
    elif kind == ValueProblemKind.TOO_MANY_INTEGER_DIGITS:
        head = "Слишком много цифр до запятой."
    else:
        head = "Слишком много цифр после запятой."
    return f"❌ {head} Можно: {rule}."


def value_warning(warning: PlausibilityWarning, value: str) -> str:
    if warning.kind == WarningKind.BELOW_PREVIOUS:
        what = (
            f"Показание {esc(value)} меньше предыдущего ({esc(warning.previous)}) "
            f"на {warning.difference}."
        )
        why = "Это опечатка, заменённый прибор или счётчик прошёл через ноль?"
    else:
        what = (
            f"Показание {esc(value)} больше предыдущего ({esc(warning.previous)}) "
            f"на {warning.difference} кВт·ч — это больше {warning.jump_limit}."
        )
        why = "Проверьте, нет ли опечатки."
    return f"⚠️ {what}\n{why}\nОставить это значение или ввести заново?"


def edit_applied(slot: Slot) -> str:
    return f"✏️ Исправлено: {slot_line(slot)} → <b>{esc(slot.value or '')}</b>"


EDIT_NOT_A_READING = (
    "Правка не применена: это сообщение не было принято как показание. "
    "Введите значение новым сообщением (принятое показание исправляется правкой "
    "его сообщения)."
)


def edit_refused(problem: ValueProblem) -> str:
    return f"Правка не принята. {value_problem(problem)}"


def edit_needs_confirmation(warning: PlausibilityWarning, value: str) -> str:
    return (
        "Правка не применена: "
        + value_warning(warning, value).split("\n", 1)[0].removeprefix("⚠️ ")
        + " Чтобы оставить такое значение, найдите квартиру на карточке и введите его там."
    )


EDIT_ALREADY_SENDING = "Правка не применена: это показание сейчас отправляется в энергосбыт."

# --- unexpected input -----------------------------------------------------------

EXPECTING_NUMBER = "Я жду показание прибора — напишите его цифрами, например 13305."
REVIEW_EXPECTS_BUTTON = "Выберите действие кнопками на карточке выше."
EXPECTING_APARTMENT = "Я жду номер квартиры — напишите его текстом, например «12а» или «НП-1»."
FORWARDED_NOT_ACCEPTED = "Пересланные сообщения не принимаются как показания. Напишите число сами."

# --- review and sending -----------------------------------------------------------


def review(progress: Progress, warned: Sequence[Slot]) -> str:
    # The building without the header's counts: the lines below give them in full.
    done = progress.empty + progress.rejected == 0
    lines = [
        _building(progress),
        "",
        "<b>Все приборы пройдены.</b>" if done else "<b>Остались незаполненные приборы.</b>",
        f"Заполнено: {progress.filled}",
        f"Пропущено: {progress.skipped}",
        f"Не заполнено: {progress.empty + progress.rejected}",
        f"Ждут отправки: {progress.to_send}",
    ]
    if warned:
        lines.append("")
        lines.append("Оставлены после предупреждения:")
        lines.extend(f"• {slot_line(slot)}: {esc(slot.value or '')}" for slot in warned[:20])
        if len(warned) > 20:
            lines.append(f"… и ещё {len(warned) - 20}")
    return "\n".join(lines)


VALUE_AT_REVIEW = (
    "Это показание не записано: карточка прибора сейчас не открыта. "
    "Откройте нужный прибор («Вернуться к заполнению», затем «К квартире №…») "
    "и введите показание на его карточке."
)
NOT_ALL_FILLED = "Не все поля заполнены. Вернуться к заполнению?"
NOTHING_TO_SEND = "Нечего отправлять: новых показаний нет."
SENDING = "Отправляю показания в энергосбыт…"


def billing_down_saved_draft(period: str) -> str:
    """Billing is down: the building's latest saved draft is open (its period said, as
    it may be last month's on the first days of a new one)."""
    return (
        f"Энергосбыт сейчас не отвечает — открыт сохранённый список приборов за {esc(period)}. "
        "Вводите показания: они сохраняются и уйдут автоматически, когда он ответит."
    )


BILLING_DOWN_NO_DRAFT = (
    "Энергосбыт сейчас не отвечает, а список приборов этого дома ещё не загружался. "
    "Попробуйте открыть дом чуть позже."
)


def readings_count(count: int) -> str:
    """«1 показание», «3 показания», «5 показаний»."""
    return counted(count, "показание", "показания", "показаний")


def billing_not_answering(count: int) -> str:
    return (
        f"Энергосбыт сейчас не отвечает. Ваши показания ({readings_count(count)}) сохранены "
        "и будут отправлены автоматически, без дублей — результат придёт сообщением."
    )


def sending_in_background(count: int) -> str:
    return (
        f"Энергосбыт отвечает медленно. Ваши показания ({readings_count(count)}) сохранены "
        "и отправляются — результат придёт сообщением."
    )


def batch_result(result: BatchResult) -> str:
    if result.status == SubmissionStatus.PENDING:
        return billing_not_answering(result.sent)
    if result.status == SubmissionStatus.FAILED and result.error == GAVE_UP:
        return (
            "Энергосбыт так и не ответил, пакет снят с отправки. Показания остались "
            "в черновике — откройте дом и нажмите «Отправить» ещё раз."
        )
    if result.status == SubmissionStatus.FAILED:
        return (
            "Энергосбыт отказал в приёме пакета. Показания остались в черновике — "
            "попробуйте отправить позже."
        )
    lines = [f"📨 Отправлено: {result.sent}. Принято: {result.accepted}."]
    if result.rejected:
        lines.append(f"Не принято: {len(result.rejected)} — исправьте и отправьте снова:")
        lines.extend(
            f"• кв. {esc(r.apartment)}, № {esc(r.serial_number)}: {esc(r.message)}"
            for r in result.rejected[:30]
        )
        if len(result.rejected) > 30:
            lines.append(f"… и ещё {len(result.rejected) - 30}")
    return "\n".join(lines)


def batch_settled_later(result: BatchResult) -> str:
    """The message that brings a batch's outcome after the inspector moved on."""
    text = f"🏠 {esc(result.address)}\nРезультат отправки:\n" + batch_result(result)
    if result.status == SubmissionStatus.SENT and result.rejected:
        text += "\n\nОткройте дом в «Передаче показаний по дому», чтобы исправить."
    return text


# --- viewing ----------------------------------------------------------------------


def view_header(address: str, period: str) -> str:
    return f"🏠 <b>{esc(address)}</b>\nПринятые показания за {esc(period)}:"


def view_line(apartment: str, serial: str, tariff: str | None, value: str, taken: date) -> str:
    zone = f", {esc(tariff)}" if tariff else ""
    return f"кв. {esc(apartment)}, № {esc(serial)}{zone}: <b>{esc(value)}</b> ({_fmt_date(taken)})"


def view_empty(period: str) -> str:
    return f"За {esc(period)} принятых показаний нет."


# --- settings ---------------------------------------------------------------------

SETTINGS_TITLE = "<b>Настройки</b>\nПоказывать столбцы:"


def toggle_previous(on: bool) -> str:
    return f"{'☑️' if on else '⬜️'} Предыдущее показание"


def settings_saved(on: bool) -> str:
    state = "показывается" if on else "не показывается"
    return f"Сохранено: предыдущее показание {state}."
