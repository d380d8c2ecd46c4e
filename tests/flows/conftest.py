"""The reference billing server for the flow tests, and the bot on either backend."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from billing_client.embedded import EmbeddedBilling
from billing_client.factory import open_embedded_billing
from billing_client.server import create_app
from settings import BillingSettings
from tests.conftest import App, make_settings, running_app
from tests.harness.databases import Databases
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.hashing import fast_hasher


class ReferenceBilling:
    """The reference billing server (billing API v1) on 127.0.0.1 with the demo account."""

    def __init__(self, backend: EmbeddedBilling, server: TestServer) -> None:
        self.backend = backend
        self.server = server

    @property
    def url(self) -> str:
        return str(self.server.make_url("/api/v1"))


@contextlib.asynccontextmanager
async def serve_reference(folder: Path) -> AsyncIterator[ReferenceBilling]:
    """Start the reference server on its own embedded database (demo loaded) in `folder`."""
    settings = BillingSettings(
        _env_file=None, BILLING_DATABASE_URL=f"sqlite+aiosqlite:///{folder / 'billing.db'}"
    )
    backend = await open_embedded_billing(settings, password_hasher=fast_hasher())
    server = TestServer(create_app(backend), host="127.0.0.1", port=0)
    try:
        await server.start_server()
        yield ReferenceBilling(backend, server)
    finally:
        await server.close()
        await backend.close()


@pytest.fixture
async def reference_billing(tmp_path: Path) -> AsyncIterator[ReferenceBilling]:
    async with serve_reference(tmp_path / "reference") as reference:
        yield reference


@pytest.fixture(params=["embedded", "http"])
async def any_billing_app(
    request: pytest.FixtureRequest,
    fake_telegram: FakeTelegram,
    bot_token: str,
    tmp_path: Path,
    databases: Databases,
) -> AsyncIterator[App]:
    """The bot in-process on the embedded billing, then on BILLING_URL = the reference server."""
    async with contextlib.AsyncExitStack() as stack:
        overrides: dict[str, object] = {**databases.settings()}
        if request.param == "http":
            reference = await stack.enter_async_context(serve_reference(tmp_path / "reference"))
            overrides["BILLING_URL"] = reference.url
        settings = make_settings(tmp_path, fake_telegram.api_url, bot_token, **overrides)
        yield await stack.enter_async_context(running_app(fake_telegram, settings))
