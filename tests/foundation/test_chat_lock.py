"""The per-chat Redis lock several instances share (storage.fsm.RenewedRedisIsolation)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram.fsm.storage.base import DefaultKeyBuilder, StorageKey
from redis.asyncio import Redis
from redis.asyncio.lock import Lock

from storage.fsm import ChatLockTimeout, RenewedRedisIsolation
from tests.harness.databases import fresh_redis_url

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_REDIS_URL"), reason="needs a test Redis (TEST_REDIS_URL)"
)

TTL = 2.0  # seconds; the bot uses storage.fsm.CHAT_LOCK_TTL (5 s). Long enough that a
# loaded CI machine stalling the event loop for a moment does not let the lock lapse.
KEY = StorageKey(bot_id=42, chat_id=1001, user_id=1001)
KEYS = DefaultKeyBuilder(with_bot_id=True, with_destiny=True)
LOCK_NAME = KEYS.build(KEY, "lock")


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    url = await fresh_redis_url()
    assert url is not None
    client = Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


def instance(redis: Redis, client: type[Redis] = Redis, **options: float) -> RenewedRedisIsolation:
    """One bot instance's isolation, on its own connections like another process."""
    kwargs = redis.connection_pool.connection_kwargs
    own = client(host=kwargs["host"], port=kwargs["port"], db=kwargs["db"])
    return RenewedRedisIsolation(own, KEYS, ttl=TTL, poll=0.02, **options)


async def enter_and_leave(isolation: RenewedRedisIsolation, entered: asyncio.Event) -> None:
    async with isolation.lock(KEY):
        entered.set()


async def test_a_handler_longer_than_the_ttl_keeps_the_chat(redis: Redis) -> None:
    first, second = instance(redis), instance(redis)
    second_entered = asyncio.Event()
    async with first.lock(KEY):
        waiting = asyncio.create_task(enter_and_leave(second, second_entered))
        # The handler works for four lifetimes of the lock (a slow billing call, say).
        for _ in range(8):
            await asyncio.sleep(TTL / 2)
            assert not second_entered.is_set(), "another instance got the chat mid-handler"
            assert await redis.pttl(LOCK_NAME) > 0
    await asyncio.wait_for(waiting, timeout=5)
    assert second_entered.is_set()
    assert await redis.exists(LOCK_NAME) == 0  # released, not left to expire


async def test_a_crashed_instance_blocks_its_chat_only_for_the_ttl(redis: Redis) -> None:
    # What a SIGKILLed instance leaves: its lock, last renewed just now, never released.
    await redis.set(LOCK_NAME, b"dead-instance-token", px=int(TTL * 1000))
    entered = asyncio.Event()
    waiting = asyncio.create_task(enter_and_leave(instance(redis), entered))
    await asyncio.wait_for(waiting, timeout=TTL * 4)
    assert entered.is_set()


async def test_a_lock_lost_meanwhile_does_not_break_the_update(redis: Redis) -> None:
    handled = False
    async with instance(redis).lock(KEY):
        # Redis lost the key (expired while unreachable) and another instance took it.
        await redis.set(LOCK_NAME, b"other-instance-token", px=60_000)
        await asyncio.sleep(TTL)  # a renewal round meets the foreign lock
        handled = True
    assert handled
    # The other instance's lock is left alone.
    assert await redis.get(LOCK_NAME) == b"other-instance-token"


class RenewalAnsweredAsTheHandlerEnds(Lock):
    """A chat lock whose first renewal gets its reply in the very step the handler ends.

    redis-py sends each command under asyncio.wait_for (the socket timeout); on Python
    3.11 a cancel arriving as the awaited reply completes is dropped (CPython gh-86296).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.renewal_sent = asyncio.Event()
        self.reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def do_reacquire(self) -> Any:
        self.renewal_sent.set()
        await asyncio.wait_for(self.reply, timeout=5)
        return await super().do_reacquire()


class RenewalTimedClient(Redis):
    chat_lock: RenewalAnsweredAsTheHandlerEnds

    def lock(self, name: Any, *args: Any, **kwargs: Any) -> Any:
        self.chat_lock = RenewalAnsweredAsTheHandlerEnds(self, name, *args, **kwargs)
        return self.chat_lock


async def test_a_renewal_answered_as_the_handler_ends_does_not_keep_the_chat(
    redis: Redis,
) -> None:
    # The CI hang: the renewal's cancel was lost, it renewed the lock forever, and the
    # chat's update never finished nor let the next one in.
    first = instance(redis, RenewalTimedClient)
    client = first.redis
    assert isinstance(client, RenewalTimedClient)

    async def handler() -> None:
        async with first.lock(KEY):
            await client.chat_lock.renewal_sent.wait()
            client.chat_lock.reply.set_result(None)

    handling = asyncio.create_task(handler())
    done, _ = await asyncio.wait({handling}, timeout=TTL * 2)
    assert done, "the update never finished: its chat lock kept being renewed"
    await handling
    assert await redis.exists(LOCK_NAME) == 0
    entered = asyncio.Event()
    await asyncio.wait_for(enter_and_leave(instance(redis), entered), timeout=TTL)
    assert entered.is_set()


async def test_a_chat_held_too_long_fails_the_waiting_update_instead_of_hanging(
    redis: Redis,
) -> None:
    # A stuck holder that keeps renewing: the next update gives up after `wait`.
    await redis.set(LOCK_NAME, b"stuck-instance-token", px=60_000)
    entered = asyncio.Event()
    with pytest.raises(ChatLockTimeout):
        await asyncio.wait_for(enter_and_leave(instance(redis, wait=0.5), entered), timeout=5)
    assert not entered.is_set()
    assert await redis.get(LOCK_NAME) == b"stuck-instance-token"
