"""The morning digest during the submission window: the buildings not yet sent.

`DigestScheduler` is called at every turn of the group poster with the current
time; when a window day's digest hour has come, it queues each account's digest
once (the queue's key is account and local day, so restarts never repeat it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import texts
from billing_client.base import Billing
from billing_client.errors import BillingError
from services import group_posts
from services.credentials import AccountNotLinked, CredentialsProvider
from services.progress import current_period, digest_accounts, digest_due, period_progress
from services.summary import split_lines

log = logging.getLogger(__name__)

# After billing failed to list an account's buildings, wait this long before asking again.
RETRY_AFTER_FAILURE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class DigestConfig:
    enabled: bool
    hour: int
    start_day: int
    end_day: int
    tz: ZoneInfo
    default_chat_id: int | None


def digest_key(account_id: str, day: str) -> str:
    return f"digest:{account_id}:{day}"


class DigestScheduler:
    def __init__(
        self,
        session_pool: async_sessionmaker[AsyncSession],
        billing: Billing,
        credentials: CredentialsProvider,
        config: DigestConfig,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._pool = session_pool
        self._billing = billing
        self._credentials = credentials
        self._config = config
        self._failed_at: dict[str, datetime] = {}
        self._clock = clock or (lambda: datetime.now(UTC))

    async def __call__(self) -> int:
        """Queue every digest due now (by the clock); the number of accounts queued."""
        now = self._clock()
        config = self._config
        if not config.enabled:
            return 0
        day = digest_due(
            now, config.tz, start_day=config.start_day, end_day=config.end_day, hour=config.hour
        )
        if day is None:
            return 0
        queued = 0
        async with self._pool() as session:
            accounts = await digest_accounts(session, config.default_chat_id)
            for account_id, chat_id in accounts.items():
                key = digest_key(account_id, day.isoformat())
                if await group_posts.queued(session, key):
                    continue
                failed = self._failed_at.get(account_id)
                if failed is not None and now - failed < RETRY_AFTER_FAILURE:
                    continue
                if await self._queue_one(session, account_id, chat_id, key, now):
                    queued += 1
        return queued

    async def _queue_one(
        self, session: AsyncSession, account_id: str, chat_id: int, key: str, now: datetime
    ) -> bool:
        try:
            auth = await self._credentials.auth_for(session, account_id)
            buildings = (await self._billing.buildings(auth)).buildings
        except (BillingError, AccountNotLinked) as exc:
            self._failed_at[account_id] = now
            log.warning("Digest of account %s postponed: %s", account_id, type(exc).__name__)
            return False
        period = current_period(now, self._config.tz)
        items = await period_progress(session, account_id, buildings, period, self._config.tz)
        messages = split_lines(texts.digest_lines(period, items))
        await group_posts.enqueue(
            session,
            chat_id=chat_id,
            account_id=account_id,
            key=key,
            posts=[group_posts.Post(text=message) for message in messages],
            now=now,
        )
        self._failed_at.pop(account_id, None)
        log.info("Digest of account %s queued for group %s", account_id, chat_id)
        return True
