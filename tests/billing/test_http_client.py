"""HttpBilling over real HTTP on loopback: retries, timeouts, broken answers, secrecy."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from billing_client.base import BillingAuth
from billing_client.embedded import EmbeddedBilling
from billing_client.errors import (
    BillingProtocolError,
    BillingRequestError,
    BillingUnavailable,
    IdempotencyConflict,
    InvalidCredentials,
    NotFound,
    TokenExpired,
    TooManyAttempts,
)
from billing_client.http import HttpBilling, parse_retry_after
from billing_client.models import ReadingIn
from billing_client.server import Fault
from tests.billing.conftest import LOGIN, PASSWORD, TZ, Served, by_place

TAKEN = datetime(2026, 11, 24, 9, 41, tzinfo=TZ)


def auth() -> BillingAuth:
    return BillingAuth(login=LOGIN, password=SecretStr(PASSWORD))


async def first_building(client: HttpBilling, who: BillingAuth) -> tuple[str, str]:
    """The main building's id and its single-tariff meter's id."""
    building_id = (await client.buildings(who)).buildings[0].id
    meters = by_place((await client.meters(who, building_id)).meters)
    return building_id, meters[("1", None)].id


# -- retries ------------------------------------------------------------------------


@pytest.mark.parametrize("after_commit", [True, False])
async def test_a_keyed_post_is_retried_after_a_5xx_without_storing_twice(
    served: Served, backend: EmbeddedBilling, after_commit: bool
) -> None:
    who = auth()
    building_id, meter_id = await first_building(served.client, who)
    served.faults.push(Fault.error(503, after_commit=after_commit), route="submit")

    result = await served.client.submit(
        who, building_id, [ReadingIn(meter_id=meter_id, value="13420", taken_at=TAKEN)], "k-5xx"
    )

    assert result.accepted == [meter_id]
    assert served.faults.hits["submit"] == 2
    assert await backend.submission_count() == 1
    listed = await served.client.readings(who, building_id)
    assert [(r.value, r.submission_id) for r in listed.readings] == [
        ("13420", result.submission_id)
    ]


async def test_a_keyed_post_that_timed_out_after_commit_is_replayed(
    served: Served, backend: EmbeddedBilling
) -> None:
    who = auth()
    building_id, meter_id = await first_building(served.client, who)
    client = served.new_client(total_timeout=0.3)
    served.faults.push(Fault.delay(30), route="submit")

    result = await client.submit(
        who, building_id, [ReadingIn(meter_id=meter_id, value="13420", taken_at=TAKEN)], "k-slow"
    )

    assert result.accepted == [meter_id]
    assert served.faults.hits["submit"] == 2
    assert await backend.submission_count() == 1


async def test_a_dropped_connection_after_commit_is_retried_and_replayed(
    served: Served, backend: EmbeddedBilling
) -> None:
    who = auth()
    building_id, meter_id = await first_building(served.client, who)
    served.faults.push(Fault.drop(), route="submit")

    result = await served.client.submit(
        who, building_id, [ReadingIn(meter_id=meter_id, value="13420", taken_at=TAKEN)], "k-drop"
    )

    assert result.accepted == [meter_id]
    assert served.faults.hits["submit"] == 2
    assert await backend.submission_count() == 1


async def test_a_login_is_not_retried(served: Served) -> None:
    served.faults.push(Fault.error(503), route="login")

    with pytest.raises(BillingUnavailable):
        await served.client.login(LOGIN, SecretStr(PASSWORD))

    assert served.faults.hits["login"] == 1
    assert served.sleeps == []


async def test_a_post_without_a_key_is_not_retried(served: Served) -> None:
    who = auth()
    building_id, meter_id = await first_building(served.client, who)
    served.faults.push(Fault.error(503, after_commit=False), route="submit")

    with pytest.raises(BillingUnavailable):
        await served.client.submit(
            who, building_id, [ReadingIn(meter_id=meter_id, value="1", taken_at=TAKEN)], ""
        )

    assert served.faults.hits["submit"] == 1


async def test_a_get_is_retried_with_growing_backoff(served: Served) -> None:
    served.faults.push(Fault.error(500), Fault.error(502), route="buildings")

    result = await served.client.buildings(auth())

    assert len(result.buildings) == 2
    assert served.faults.hits["buildings"] == 3
    first, second = served.sleeps
    # Equal jitter: the n-th wait lies in [base*2^(n-1)/2, base*2^(n-1)].
    assert 0.025 <= first <= 0.05
    assert 0.05 <= second <= 0.1


async def test_retries_give_up_as_unavailable(served: Served) -> None:
    who = auth()
    await served.client.buildings(who)
    served.faults.push(*[Fault.error(503)] * 3, route="buildings")

    with pytest.raises(BillingUnavailable) as caught:
        await served.client.buildings(who)

    assert served.faults.hits["buildings"] == 1 + 3  # the first call, then 1 + 2 retries
    assert "503" in str(caught.value)


async def test_retry_after_of_a_429_is_waited_for(served: Served) -> None:
    who = auth()
    await served.client.buildings(who)
    served.faults.push(Fault.throttle(retry_after=2), route="buildings")

    result = await served.client.buildings(who)

    assert len(result.buildings) == 2
    assert served.sleeps == [2.0]


async def test_retry_after_of_a_503_replaces_the_backoff(served: Served) -> None:
    who = auth()
    await served.client.buildings(who)
    served.faults.push(Fault.error(503, retry_after=3), route="buildings")

    await served.client.buildings(who)

    assert served.sleeps == [3.0]


async def test_a_long_retry_after_is_raised_not_waited_for(served: Served) -> None:
    who = auth()
    await served.client.buildings(who)
    served.faults.push(Fault.throttle(retry_after=600), route="buildings")

    with pytest.raises(TooManyAttempts) as caught:
        await served.client.buildings(who)

    assert caught.value.retry_after == 600
    assert served.sleeps == []


# -- timeouts and broken answers ------------------------------------------------------


async def test_a_timeout_is_unavailable_after_the_retries(served: Served) -> None:
    who = auth()
    # Logged in through the default client (5 s): on a loaded machine a login can take
    # longer than the short timeout under test, which is about the call after it.
    await served.client.buildings(who)
    client = served.new_client(total_timeout=0.2, retries=1)
    served.faults.push(Fault.delay(30), Fault.delay(30), route="buildings")

    with pytest.raises(BillingUnavailable) as caught:
        await client.buildings(who)

    assert "within 0.2 s" in str(caught.value)
    assert served.faults.hits["buildings"] == 1 + 2


async def test_an_unreachable_billing_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The port is closed again: nothing listens there.
    client = HttpBilling(f"http://127.0.0.1:{port}/api/v1", retries=0, connect_timeout=2)
    try:
        with pytest.raises(BillingUnavailable) as caught:
            await client.buildings(auth())
    finally:
        await client.close()

    assert "unreachable" in str(caught.value)


async def test_malformed_json_is_a_protocol_error(served: Served) -> None:
    who = auth()
    await served.client.buildings(who)
    served.faults.push(Fault.malformed(), route="buildings")

    with pytest.raises(BillingProtocolError) as caught:
        await served.client.buildings(who)

    assert "not JSON" in str(caught.value)
    assert served.faults.hits["buildings"] == 2  # a broken answer is not retried


async def test_an_answer_of_the_wrong_shape_is_a_protocol_error(served: Served) -> None:
    who = auth()
    await served.client.buildings(who)
    served.faults.push(Fault.wrong_shape(), route="buildings")

    with pytest.raises(BillingProtocolError) as caught:
        await served.client.buildings(who)

    assert "buildings: Field required" in str(caught.value)


async def test_unknown_fields_in_answers_are_ignored(served: Served) -> None:
    who = auth()
    building_id, meter_id = await first_building(served.client, who)
    plain = await served.client.meters(who, building_id)
    served.faults.push(Fault.extra_fields(), Fault.extra_fields(), route=None)

    decorated = await served.client.meters(who, building_id)
    submitted = await served.client.submit(
        who, building_id, [ReadingIn(meter_id=meter_id, value="13420", taken_at=TAKEN)], "k-x"
    )

    assert decorated == plain
    assert submitted.accepted == [meter_id]


# -- the wire itself -------------------------------------------------------------------


async def test_the_server_speaks_the_contract_on_the_wire(served: Served) -> None:
    base = served.base_url
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/auth/login", json={"login": LOGIN, "password": PASSWORD}
        ) as response:
            assert response.status == 200
            token = (await response.json())["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        async with http.get(f"{base}/buildings", headers=bearer) as response:
            building_id = (await response.json())["buildings"][0]["id"]
        async with http.get(f"{base}/buildings/{building_id}/meters", headers=bearer) as response:
            meter_id = (await response.json())["meters"][0]["id"]
        body = {
            "readings": [{"meter_id": meter_id, "value": "13420", "taken_at": TAKEN.isoformat()}]
        }

        async with http.post(
            f"{base}/buildings/{building_id}/readings", json=body, headers=bearer
        ) as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "idempotency_key_required"

        # A value sent as a JSON number is judged, not refused: leading zeros would be lost.
        numeric = {
            "readings": [
                {"meter_id": meter_id, "value": 13420, "taken_at": "2026-11-24T09:41:00+07:00"}
            ]
        }
        async with http.post(
            f"{base}/buildings/{building_id}/readings",
            json=numeric,
            headers={**bearer, "Idempotency-Key": "wire-1"},
        ) as response:
            assert response.status == 200
            assert [r["code"] for r in (await response.json())["rejected"]] == ["invalid_value"]

        async with http.get(f"{base}/buildings") as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "unauthorized"
        async with http.post(f"{base}/auth/login", data=b"{not json") as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "invalid_request"
        async with http.get(f"{base}/no/such/path") as response:
            assert response.status == 404
            assert response.content_type == "application/json"
            assert (await response.json())["error"]["code"] == "not_found"
        for _ in range(10):
            async with http.post(
                f"{base}/auth/login", json={"login": LOGIN, "password": "guess"}
            ) as response:
                assert response.status == 401
        async with http.post(
            f"{base}/auth/login", json={"login": LOGIN, "password": PASSWORD}
        ) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "900"
            assert (await response.json())["error"]["code"] == "too_many_attempts"


# -- error mapping for any billing, not only ours ----------------------------------------


@pytest.fixture
async def canned() -> AsyncIterator[Callable[[int, bytes, dict[str, str]], HttpBilling]]:
    """A fake billing that answers GET /buildings with a canned status and body."""
    status, body, headers = [200], [b""], [dict[str, str]()]

    async def buildings(_: web.Request) -> web.Response:
        return web.Response(
            status=status[0], body=body[0], headers=headers[0], content_type="application/json"
        )

    app = web.Application()
    app.router.add_get("/v1/buildings", buildings)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    clients: list[HttpBilling] = []

    def make(new_status: int, new_body: bytes, new_headers: dict[str, str]) -> HttpBilling:
        status[0], body[0], headers[0] = new_status, new_body, new_headers
        client = HttpBilling(str(server.make_url("/v1")), retries=0)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
    await server.close()


def envelope(code: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": "Текст"}}).encode()


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (401, envelope("invalid_credentials"), InvalidCredentials, "invalid_credentials"),
        (404, envelope("not_found"), NotFound, "not_found"),
        (409, envelope("idempotency_conflict"), IdempotencyConflict, "idempotency_conflict"),
        (409, envelope("something_else"), BillingRequestError, "something_else"),
        (
            400,
            envelope("idempotency_key_required"),
            BillingRequestError,
            "idempotency_key_required",
        ),
        (418, b"", BillingRequestError, "billing_error"),
        (429, envelope("rate_limited"), TooManyAttempts, "rate_limited"),
        (500, b"<html>Internal Server Error</html>", BillingUnavailable, "unavailable"),
        (502, b"", BillingUnavailable, "unavailable"),
        (200, b'{"buildings": "nope"}', BillingProtocolError, "protocol_error"),
        (200, b"", BillingProtocolError, "protocol_error"),
    ],
)
async def test_statuses_and_codes_become_typed_errors(
    canned: Callable[[int, bytes, dict[str, str]], HttpBilling],
    status: int,
    body: bytes,
    error: type[Exception],
    code: str,
) -> None:
    client = canned(status, body, {"Retry-After": "999"} if status == 429 else {})

    with pytest.raises(error) as caught:
        await client.buildings_with_token("t")

    assert type(caught.value) is error
    assert caught.value.code == code  # type: ignore[attr-defined]


async def test_a_second_token_expiry_in_a_row_is_not_looped_on(
    canned: Callable[[int, bytes, dict[str, str]], HttpBilling],
) -> None:
    client = canned(401, envelope("token_expired"), {})
    logins = 0

    async def login(login: str, password: SecretStr) -> object:
        nonlocal logins
        logins += 1
        return type("R", (), {"token": f"fresh-{logins}"})()

    client.login = login  # type: ignore[assignment, method-assign]
    who = auth()
    who.token = SecretStr("stale")

    with pytest.raises(TokenExpired):
        await client.buildings(who)

    assert logins == 1


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)

    assert parse_retry_after("120") == 120
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-5") is None
    assert (
        parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30
    )
    assert (
        parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0
    )
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


# -- secrecy ---------------------------------------------------------------------------


async def test_no_password_or_token_reaches_logs_or_error_texts(
    served: Served, backend: EmbeddedBilling, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    who = auth()
    building_id, meter_id = await first_building(served.client, who)
    tokens = [who.token.get_secret_value()] if who.token else []
    served.faults.push(Fault.error(503), route="submit")
    await backend.expire_tokens(LOGIN)  # the submit also logs in again
    errors: list[str] = []

    await served.client.submit(
        who, building_id, [ReadingIn(meter_id=meter_id, value="13420", taken_at=TAKEN)], "k-s"
    )
    try:
        await served.client.login(LOGIN, SecretStr("wrong " + PASSWORD))
    except InvalidCredentials as exc:
        errors.append(str(exc))
    if who.token:
        tokens.append(who.token.get_secret_value())

    assert len(set(tokens)) == 2
    text = caplog.text + "\n".join(errors) + repr(who)
    assert PASSWORD not in text
    for token in tokens:
        assert token not in text
    ours = "\n".join(
        record.getMessage()
        for record in caplog.records
        if record.name.startswith(("billing_client", "aiohttp"))
    )
    assert "13420" not in ours  # request bodies are not logged either


async def test_user_info_in_the_billing_url_is_dropped_with_a_warning(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    url = served.base_url.replace("http://", "http://someone:s3cret@")

    client = HttpBilling(url, retries=0)
    try:
        buildings = await client.buildings(auth())
    finally:
        await client.close()

    assert len(buildings.buildings) == 2
    assert "user info" in caplog.text
    assert "s3cret" not in caplog.text
