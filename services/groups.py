"""Binding a supervisor's group chat to an account (one group per account).

Who may bind is decided here from plain facts the Telegram edge collects: the
sender's link to an account, and whether they administer the group (for an
anonymous administrator: which linked users administer it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Account, GroupBinding, GroupPost, TelegramUser

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Bound:
    account_id: str
    company: str
    moved_from: int | None  # the account's previous group, if it had another one


async def linked_accounts(session: AsyncSession, user_ids: Iterable[int]) -> set[str]:
    """Accounts that these Telegram users are linked to (revoked users do not count)."""
    ids = list(user_ids)
    if not ids:
        return set()
    rows = await session.scalars(
        select(TelegramUser.account_id).where(
            TelegramUser.id.in_(ids),
            TelegramUser.account_id.is_not(None),
            TelegramUser.revoked_at.is_(None),
        )
    )
    return {account_id for account_id in rows if account_id is not None}


async def bind(
    session: AsyncSession,
    *,
    account_id: str,
    chat_id: int,
    title: str,
    bound_by: int | None,
    now: datetime,
) -> Bound:
    """Make `chat_id` the account's group (replacing its previous one); commits.

    A group serves one account: binding it for another account moves it over.
    Messages still waiting are the account's, not the chat's: the account's own
    (for a previous group the bot may have been removed from) come here, and another
    account's waiting for this chat are dropped (the group is no longer theirs).
    """
    await session.execute(
        delete(GroupBinding).where(
            GroupBinding.chat_id == chat_id, GroupBinding.account_id != account_id
        )
    )
    dropped = await _drop_waiting(
        session, GroupPost.chat_id == chat_id, GroupPost.account_id != account_id
    )
    moved = await session.execute(
        update(GroupPost)
        .where(
            GroupPost.account_id == account_id,
            GroupPost.chat_id != chat_id,
            GroupPost.sent_at.is_(None),
        )
        .values(chat_id=chat_id, not_before=None)
    )
    binding = await session.get(GroupBinding, account_id)
    moved_from = None
    if binding is None:
        binding = GroupBinding(account_id=account_id)
        session.add(binding)
    elif binding.chat_id != chat_id:
        moved_from = binding.chat_id
    binding.chat_id = chat_id
    binding.title = title[:300]
    binding.bound_by = bound_by
    binding.bound_at = now.astimezone(UTC)
    account = await session.get(Account, account_id)
    await session.commit()
    log.info(
        "Group %s bound to account %s by %s (waiting messages: %d moved here, %d of another "
        "account dropped)",
        chat_id,
        account_id,
        bound_by,
        moved.rowcount,  # type: ignore[attr-defined]
        dropped,
    )
    return Bound(account_id, account.name if account else account_id, moved_from)


async def bound_account(session: AsyncSession, chat_id: int) -> str | None:
    return await session.scalar(
        select(GroupBinding.account_id).where(GroupBinding.chat_id == chat_id)
    )


async def unbind(session: AsyncSession, chat_id: int) -> str | None:
    """Stop the group's summaries; the company's name, or None if it was not bound."""
    binding = await session.scalar(select(GroupBinding).where(GroupBinding.chat_id == chat_id))
    if binding is None:
        return None
    account = await session.get(Account, binding.account_id)
    await session.delete(binding)
    dropped = await _drop_waiting(
        session, GroupPost.chat_id == chat_id, GroupPost.account_id == binding.account_id
    )
    await session.commit()
    log.info(
        "Group %s unbound from account %s (%d waiting messages dropped)",
        chat_id,
        binding.account_id,
        dropped,
    )
    return account.name if account else binding.account_id


async def _drop_waiting(session: AsyncSession, *where: ColumnElement[bool]) -> int:
    """Delete the messages not sent yet that match `where`; how many."""
    result = await session.execute(delete(GroupPost).where(GroupPost.sent_at.is_(None), *where))
    return int(result.rowcount)  # type: ignore[attr-defined]
