"""Pydantic models of every request and response of billing API v1.

Unknown fields in answers are ignored so that a billing adding fields does not
break the bot; a missing or mistyped field is a protocol error.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_VALUE_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_PERIOD_RE = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


def _ascii_value(value: str) -> str:
    if not _VALUE_RE.match(value) or not value.isascii():
        raise ValueError("a reading value is ASCII digits with an optional '.' and fraction")
    return value


def _period(value: str) -> str:
    if not _PERIOD_RE.match(value):
        raise ValueError("a period is YYYY-MM")
    return value


ReadingValue = Annotated[str, AfterValidator(_ascii_value)]
Period = Annotated[str, AfterValidator(_period)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Account(_Model):
    id: str
    name: str
    inn: str | None = None


class LoginRequest(_Model):
    login: str
    password: str


class LoginResult(_Model):
    token: str
    expires_at: datetime
    account: Account


class Building(_Model):
    id: str
    city: str
    street: str
    house: str
    address: str


class BuildingList(_Model):
    buildings: list[Building]


class BuildingRef(_Model):
    id: str
    address: str


class Previous(_Model):
    value: ReadingValue
    date: date


class Meter(_Model):
    """One reading slot: a single-tariff meter, or one zone of a multi-tariff one."""

    id: str
    apartment: str
    serial_number: str
    digits: Annotated[int, Field(ge=1, le=12)]
    fraction_digits: Annotated[int, Field(ge=0, le=3)] = 0
    tariff: str | None = None
    previous: Previous | None = None


class BuildingMeters(_Model):
    building: BuildingRef
    period: Period
    meters: list[Meter]


class ReadingIn(_Model):
    meter_id: str
    value: ReadingValue
    taken_at: datetime


class SubmitRequest(_Model):
    readings: list[ReadingIn]


class Rejection(_Model):
    meter_id: str
    code: str
    message: str


class SubmitResult(_Model):
    submission_id: str
    accepted: list[str]
    rejected: list[Rejection]


class AcceptedReading(_Model):
    meter_id: str
    value: ReadingValue
    taken_at: datetime
    submitted_at: datetime
    submission_id: str


class PeriodReadings(_Model):
    period: Period
    readings: list[AcceptedReading]


class ErrorBody(_Model):
    code: str
    message: str


class ErrorEnvelope(_Model):
    error: ErrorBody


REJECTION_CODES = (
    "invalid_value",
    "too_many_digits",
    "below_previous",
    "unknown_meter",
    "period_closed",
)
