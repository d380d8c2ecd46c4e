"""Texts of the supervisor's group chat: binding, summaries, /status, the digest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from services.progress import BuildingProgress, Stage, StatusPage
from storage.models import SubmissionStatus
from texts.common import esc
from texts.walk import counted, skip_reason_label

if TYPE_CHECKING:
    # services.summary renders through this catalogue: a runtime import would be circular.
    from services.summary import SubmissionSummary

__all__ = [
    "BIND_AMBIGUOUS_ANONYMOUS",
    "BIND_NOT_GROUP_ADMIN",
    "BIND_NOT_LINKED",
    "BIND_NOT_LINKED_ANONYMOUS",
    "BTN_STATUS_NEXT",
    "BTN_STATUS_PREV",
    "GROUP_MIGRATED",
    "GROUP_NOT_BOUND",
    "STATUS_BILLING_DOWN",
    "UNBIND_NOT_BOUND",
    "UNBIND_OTHER_ACCOUNT",
    "bound",
    "bound_elsewhere",
    "digest_lines",
    "status_text",
    "summary_continued",
    "summary_document_caption",
    "summary_lines",
    "unbound",
]

WARNING_LABELS = {
    "below_previous": "меньше предыдущего",
    "big_jump": "большой расход",
}
# Long apartment lists are wrapped into lines of this many apartments, so that a
# summary can be split between messages without cutting a line.
APARTMENTS_PER_LINE = 40

BIND_NOT_LINKED = (
    "Привязать группу может только сотрудник, вошедший в бота. "
    "Откройте бота в личном чате, войдите (/start) и повторите /bind здесь."
)
BIND_NOT_GROUP_ADMIN = "Привязать или отвязать группу может только администратор этой группы."
BIND_NOT_LINKED_ANONYMOUS = (
    "Вы пишете анонимно, и среди администраторов группы нет никого, кто вошёл в бота. "
    "Войдите в бота в личном чате (/start) и повторите /bind."
)
BIND_AMBIGUOUS_ANONYMOUS = (
    "Вы пишете анонимно, а администраторы группы вошли в разные учётные записи. "
    "Отключите анонимность и повторите /bind, чтобы я понял, чью учётную запись привязать."
)
UNBIND_OTHER_ACCOUNT = (
    "Группа привязана к другой учётной записи: отвязать её может администратор группы, "
    "вошедший в бота под той учётной записью."
)
UNBIND_NOT_BOUND = "Эта группа не привязана: сводки сюда не приходят."
GROUP_NOT_BOUND = (
    "Эта группа не привязана к учётной записи. Администратор группы, вошедший в бота, "
    "может привязать её командой /bind."
)
GROUP_MIGRATED = "Группа стала супергруппой — сводки продолжат приходить сюда."
STATUS_BILLING_DOWN = "Личный кабинет энергосбыта сейчас не отвечает. Попробуйте /status позже."
BTN_STATUS_PREV = "‹ Пред."
BTN_STATUS_NEXT = "След. ›"


def bound(company: str) -> str:
    return (
        f"Группа привязана к учётной записи <b>{esc(company)}</b>. "
        "Сюда будут приходить сводки по каждой отправке показаний.\n"
        "/status — ход работы за месяц, /unbind — отвязать."
    )


def bound_elsewhere(company: str) -> str:
    return (
        f"Готово: сводки <b>{esc(company)}</b> теперь приходят в эту группу "
        "(прежняя группа их больше не получает)."
    )


def unbound(company: str) -> str:
    return f"Группа отвязана: сводки <b>{esc(company)}</b> сюда больше не приходят."


# --- the summary -----------------------------------------------------------------------


def _inspector(summary: SubmissionSummary) -> str:
    name = esc(summary.inspector_name)
    return f"{name} (@{esc(summary.inspector_username)})" if summary.inspector_username else name


def _apartment_lines(label: str, apartments: Sequence[str]) -> list[str]:
    lines = [f"• {label}: {len(apartments)}"]
    for start in range(0, len(apartments), APARTMENTS_PER_LINE):
        chunk = apartments[start : start + APARTMENTS_PER_LINE]
        lines.append("   кв. " + ", ".join(esc(a) for a in chunk))
    return lines


def _of_readings(count: int) -> str:
    """After «из»: «1 показания», «21 показания», «5 показаний»."""
    return counted(count, "показания", "показаний", "показаний")


def summary_lines(summary: SubmissionSummary) -> list[str]:
    """The summary, line by line (each line's HTML tags close on the same line)."""
    lines = [
        "📨 <b>Отправка показаний</b>",
        f"🏠 {esc(summary.address)}",
        f"👤 {_inspector(summary)}",
        f"🕒 {summary.finished_at:%d.%m.%Y %H:%M}",
        f"📅 Период: {esc(summary.period)}",
    ]
    if summary.status == SubmissionStatus.FAILED:
        lines.append(
            f"❗️ Энергосбыт не принял пакет из {_of_readings(summary.sent)}; "
            "они остались в черновике."
        )
        if summary.error:
            lines.append(f"Причина: {esc(summary.error)}")
        return lines
    lines.append(f"Отправлено: {summary.sent} из {summary.total}")
    lines.append(f"✅ Принято: {summary.accepted}")
    lines.append(f"❌ Не принято: {len(summary.rejected)}")
    for ref in summary.rejected:
        zone = f", {esc(ref.tariff)}" if ref.tariff else ""
        lines.append(
            f"• кв. {esc(ref.apartment)}, № {esc(ref.serial_number)}{zone}: {esc(ref.note)}"
        )
    skipped = sum(len(apartments) for apartments in summary.skipped.values())
    lines.append(f"⏭ Пропущено: {skipped}")
    for reason, apartments in summary.skipped.items():
        lines.extend(_apartment_lines(skip_reason_label(reason), apartments))
    kept = sum(len(apartments) for apartments in summary.kept_after_warning.values())
    if kept:
        lines.append(f"⚠️ Оставлено после предупреждения: {kept}")
        for kind, apartments in summary.kept_after_warning.items():
            lines.extend(_apartment_lines(WARNING_LABELS.get(kind, esc(kind)), apartments))
    return lines


def summary_continued(summary: SubmissionSummary, part: int, parts: int) -> str:
    return f"<i>{esc(summary.address)} — продолжение ({part}/{parts})</i>"


def summary_document_caption(summary: SubmissionSummary) -> str:
    return f"Макет с показаниями: {esc(summary.address)}, {esc(summary.period)}"


# --- /status and the digest ------------------------------------------------------------


def _progress_line(item: BuildingProgress) -> str:
    address = esc(item.address)
    if item.stage == Stage.SENT:
        when = f"{item.sent_at:%d.%m %H:%M}" if item.sent_at else ""
        return f"✅ {address} — {when}, {esc(item.sent_by or '')} ({item.done}/{item.total})"
    if item.stage == Stage.IN_PROGRESS:
        return f"✏️ {address} — {item.done} из {item.total}"
    return f"▫️ {address}"


def status_text(page: StatusPage) -> str:
    lines = [
        f"📊 <b>Показания за {esc(page.period)}</b>",
        f"Отправлено: {page.sent} · В работе: {page.in_progress} · Не начато: {page.not_started}",
        "",
    ]
    lines.extend(_progress_line(item) for item in page.items)
    if page.pages > 1:
        lines.append("")
        lines.append(f"Страница {page.page + 1} из {page.pages}")
    return "\n".join(lines)


def digest_lines(period: str, items: Sequence[BuildingProgress]) -> list[str]:
    waiting = [item for item in items if item.stage != Stage.SENT]
    if not waiting:
        return [f"☀️ Доброе утро! За {esc(period)} показания по всем домам отправлены."]
    return [
        f"☀️ <b>Доброе утро!</b> Идёт приём показаний за {esc(period)}.",
        f"Ещё не отправлены: {len(waiting)} из {len(items)}",
        *(_progress_line(item) for item in waiting),
    ]
