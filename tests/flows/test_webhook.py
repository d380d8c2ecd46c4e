"""MODE=webhook: the secret is checked, an update is stored before Telegram gets 200."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
from sqlalchemy import func, select

from storage.models import InboxUpdate
from tests.conftest import make_settings, running_app
from tests.harness.fake_telegram import FakeTelegram
from webhook import SECRET_HEADER

SECRET = "hook-Secret_0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_webhook_checks_the_secret_and_handles_each_update_once(
    fake_telegram: FakeTelegram, bot_token: str, tmp_path: Path
) -> None:
    tg = fake_telegram
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram"
    settings = make_settings(
        tmp_path,
        tg.api_url,
        bot_token,
        MODE="webhook",
        WEBHOOK_URL=url,
        WEBHOOK_SECRET=SECRET,
        WEBHOOK_HOST="127.0.0.1",
        WEBHOOK_PORT=port,
    )
    async with running_app(tg, settings, ready="setWebhook") as app:
        assert tg.webhook is not None and tg.webhook.secret_token == SECRET
        assert not tg.asked_to_drop_pending

        tg.duplicate_updates = True  # every update is POSTed a second time
        phone = tg.user(user_id=5001, first_name="Вебхук")
        await phone.send_command("/start")
        await phone.wait_for("логин")
        await phone.ask("demo", until="пароль")
        await tg.wait_all_confirmed()
        await tg.wait_quiet(0.3)
        asked = [m for m in phone.bot_messages() if "пароль" in m.text]
        assert len(asked) == 1, "the redelivered login was not handled again"
        assert app.runner.duplicates == 2
        assert {d.status for d in tg.webhook_deliveries} == {200}

        update = {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {"id": 1}}}
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: SECRET[:-1]}):
                async with http.post(url, json=update, headers=headers) as response:
                    assert response.status == 403
        async with app.session_pool() as session:
            stored = (await session.execute(select(func.count(InboxUpdate.update_id)))).scalar()
            forged = await session.get(InboxUpdate, 1)
        assert stored == 2  # /start and the login: both stored before they were answered
        assert forged is None
