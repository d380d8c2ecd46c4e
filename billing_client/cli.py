"""`python -m billing_client`: accounts, template import/export, the reference server.

Works on the embedded billing database (BILLING_DATABASE_URL) and reads the
same environment variables (and `.env`) as the bot. Exit codes: 0 done,
1 the request failed (a problem in the file, an unknown account, ...),
2 the command line or the settings are wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import SecretStr, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from billing_client.embedded import (
    AcceptanceWindow,
    AccountSummary,
    AdminError,
    EmbeddedBilling,
    ImportReport,
    normalize_login,
)
from billing_client.embedded.db import database_kind
from billing_client.embedded.rules import is_period
from billing_client.template import TemplateError, TemplateRow, read_template, write_template
from settings import BillingSettings, describe_error

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8
Command = Callable[[argparse.Namespace, BillingSettings], int]


class UsageError(Exception):
    """A wrong argument found after parsing (exit code 2)."""


def _say(text: str) -> None:
    print(text, flush=True)


def _complain(text: str) -> None:
    print(f"ошибка: {text}", file=sys.stderr, flush=True)


def _read_password(from_stdin: bool) -> SecretStr:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
    else:
        password = getpass.getpass("Пароль: ")
        if getpass.getpass("Пароль ещё раз: ") != password:
            raise AdminError("пароли не совпадают")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AdminError(f"пароль короче {MIN_PASSWORD_LENGTH} символов")
    return SecretStr(password)


async def _open(settings: BillingSettings) -> EmbeddedBilling:
    if settings.BILLING_URL:
        print(
            "внимание: задан BILLING_URL — бот работает с внешним биллингом, "
            "а эта команда меняет встроенный (BILLING_DATABASE_URL)",
            file=sys.stderr,
        )
    return await EmbeddedBilling.open(
        settings.BILLING_DATABASE_URL,
        timezone=settings.TIMEZONE,
        window=AcceptanceWindow(settings.BILLING_ACCEPT_FROM_DAY, settings.BILLING_ACCEPT_TO_DAY),
    )


def _account_add(args: argparse.Namespace, settings: BillingSettings) -> int:
    password = _read_password(args.password_stdin)

    async def add() -> str:
        billing = await _open(settings)
        try:
            account = await billing.add_account(args.login, args.name, password, inn=args.inn)
        finally:
            await billing.close()
        return account.name

    name = asyncio.run(add())
    _say(f"учётная запись «{normalize_login(args.login)}» ({name}) добавлена")
    return 0


def _account_list(args: argparse.Namespace, settings: BillingSettings) -> int:
    async def listing() -> list[AccountSummary]:
        billing = await _open(settings)
        try:
            return await billing.list_accounts()
        finally:
            await billing.close()

    accounts = asyncio.run(listing())
    if not accounts:
        _say("учётных записей нет")
        return 0
    width = max(len("логин"), *(len(account.login) for account in accounts))
    _say(f"{'логин':<{width}}  {'ИНН':<12}  {'домов':>6}  {'слотов':>8}  организация")
    for account in accounts:
        _say(
            f"{account.login:<{width}}  {account.inn or '—':<12}  {account.buildings:>6}  "
            f"{account.slots:>8}  {account.name}"
        )
    return 0


def _account_remove(args: argparse.Namespace, settings: BillingSettings) -> int:
    login = normalize_login(args.login)
    if not args.yes and sys.stdin.isatty():
        answer = input(f"Удалить «{login}» со всеми домами и показаниями? [y/N] ")
        if answer.strip().casefold() not in ("y", "yes", "д", "да"):
            _say("ничего не удалено")
            return 1

    async def remove() -> bool:
        billing = await _open(settings)
        try:
            return await billing.remove_account(login)
        finally:
            await billing.close()

    if not asyncio.run(remove()):
        raise AdminError(f"учётной записи «{login}» нет")
    _say(f"учётная запись «{login}» удалена со всеми домами и показаниями")
    return 0


def _import(args: argparse.Namespace, settings: BillingSettings) -> int:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AdminError(f"не удалось прочитать «{path}»: {exc.strerror or exc}") from None
    try:
        rows = read_template(data, path.name, settings.DEFAULT_CITY)
    except TemplateError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        _complain(f"файл «{path.name}» не загружен: ошибок — {len(exc.problems)}")
        return 1

    async def load() -> ImportReport:
        billing = await _open(settings)
        try:
            return await billing.import_rows(args.login, rows, prune=args.prune)
        finally:
            await billing.close()

    report = asyncio.run(load())
    _say(
        f"загружено в «{normalize_login(args.login)}»: домов {report.buildings} "
        f"(новых {report.buildings_added}), слотов {report.slots} (новых {report.slots_added}, "
        f"изменено {report.slots_updated}, удалено {report.slots_removed})"
    )
    return 0


def _export(args: argparse.Namespace, settings: BillingSettings) -> int:
    out = Path(args.out)
    if out.suffix.lower() != ".xlsx":
        raise UsageError("файл выгрузки должен быть .xlsx")
    if args.period is not None and not is_period(args.period):
        raise UsageError("период указывается как ГГГГ-ММ, например 2026-11")

    async def export() -> tuple[str, list[TemplateRow]]:
        billing = await _open(settings)
        try:
            period = args.period or billing.current_period()
            return period, await billing.export_rows(args.login, period)
        finally:
            await billing.close()

    period, rows = asyncio.run(export())
    # Write next to the target and rename: a half-written file never has its name.
    partial = out.with_name(out.name + ".part")
    try:
        partial.write_bytes(write_template(rows))
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise AdminError(f"не удалось записать «{out}»: {exc.strerror or exc}") from None
    filled = sum(row.value is not None for row in rows)
    _say(f"выгружено в «{out}»: слотов {len(rows)}, с показаниями за {period} — {filled}")
    return 0


def _serve(args: argparse.Namespace, settings: BillingSettings) -> int:
    # Imported here: only `serve` needs aiohttp and the demo.
    from billing_client.factory import open_embedded_billing
    from billing_client.server import run_server

    async def serve() -> None:
        billing = await open_embedded_billing(settings)
        logger.info("billing backend: embedded (%s)", database_kind(settings.BILLING_DATABASE_URL))
        task = asyncio.current_task()
        if task is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await run_server(
                billing,
                host=args.host,
                port=args.port,
                base_path=args.base_path,
                ready=lambda url: _say(f"billing API v1: {url} (Ctrl+C — остановить)"),
            )
        finally:
            await billing.close()

    # Ctrl+C and SIGTERM both cancel the server task; either is a normal stop.
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(serve())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m billing_client`."""
    parser = argparse.ArgumentParser(
        prog="python -m billing_client",
        description="Встроенный биллинг: учётные записи, загрузка и выгрузка макета, сервер API.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="КОМАНДА")

    account = commands.add_parser("account", help="учётные записи (ЛК юрлица)")
    account_commands = account.add_subparsers(dest="action", required=True, metavar="ДЕЙСТВИЕ")
    add = account_commands.add_parser("add", help="добавить учётную запись")
    add.add_argument("login", help="логин: латиница, цифры, «.», «_», «-»")
    add.add_argument("--name", required=True, help="название организации")
    add.add_argument("--inn", help="ИНН (10 или 12 цифр)")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="прочитать пароль из первой строки stdin (для скриптов)",
    )
    add.set_defaults(handler=_account_add)
    listing = account_commands.add_parser("list", help="список учётных записей")
    listing.set_defaults(handler=_account_list)
    remove = account_commands.add_parser("remove", help="удалить учётную запись со всеми данными")
    remove.add_argument("login")
    remove.add_argument("--yes", action="store_true", help="не спрашивать подтверждения")
    remove.set_defaults(handler=_account_remove)

    load = commands.add_parser("import", help="загрузить дома и приборы из макета (.xlsx/.csv)")
    load.add_argument("login")
    load.add_argument("file", help="файл .xlsx или .csv по формату макета")
    load.add_argument(
        "--prune",
        action="store_true",
        help="удалить из домов файла приборы, которых в файле нет (с их показаниями)",
    )
    load.set_defaults(handler=_import)

    export = commands.add_parser("export", help="выгрузить дома и показания в макет .xlsx")
    export.add_argument("login")
    export.add_argument("out", help="куда записать .xlsx")
    export.add_argument("--period", help="период ГГГГ-ММ (по умолчанию текущий)")
    export.set_defaults(handler=_export)

    serve = commands.add_parser("serve", help="эталонный HTTP-сервер billing API v1")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--base-path", default="/api/v1", help="по умолчанию /api/v1")
    serve.set_defaults(handler=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = BillingSettings()
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        return 2
    level = logging.getLevelName(settings.LOG_LEVEL)
    if args.command != "serve" and level > logging.DEBUG:
        # The command prints its own result; log lines would only repeat it.
        level = max(level, logging.WARNING)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    handler: Command = args.handler
    try:
        return handler(args, settings)
    except UsageError as exc:
        _complain(str(exc))
        return 2
    except AdminError as exc:
        _complain(str(exc))
        return 1
    except SQLAlchemyError as exc:
        _complain(f"база встроенного биллинга недоступна или повреждена ({type(exc).__name__})")
        logger.debug("database error", exc_info=True)
        return 1
    except OSError as exc:
        _complain(f"{exc.strerror or type(exc).__name__}")
        return 1
    except KeyboardInterrupt:
        _complain("прервано")
        return 1
    except Exception as exc:
        # A bug, not the operator's mistake: one line here, the traceback with
        # LOG_LEVEL=DEBUG.
        logger.debug("unexpected failure", exc_info=True)
        _complain(f"внутренняя ошибка ({type(exc).__name__}); подробности — с LOG_LEVEL=DEBUG")
        return 1
