"""`python -m billing_client` as an operator runs it: a real process, real files."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from billing_client.base import BillingAuth
from billing_client.cli import main
from billing_client.http import HttpBilling
from billing_client.template import read_template

# The CLI runs on its own SQLite file in tmp_path in both passes: the same result
# twice, so only the SQLite pass runs these (no_services, see tasks.py).
pytestmark = pytest.mark.no_services

ROOT = Path(__file__).resolve().parents[2]

GOOD_CSV = (
    "Улица;Дом;Квартира;Зав. номер;Значность;Знаков после запятой;Тариф;"
    "Предыдущее показание;Дата предыдущего показания\n"
    "Гоголя ул.;38;1;0011;5;;;00412;20.10.2026\n"
    "Гоголя ул.;38;2;0012;6;1;день;;\n"
    "Гоголя ул.;38;2;0012;6;1;ночь;;\n"
    "Кирова ул.;86;НП-1;777;8;2;;;\n"
)
BAD_CSV = (
    "Улица;Дом;Квартира;Зав. номер;Значность\n"
    "Гоголя ул.;38;1;0011;5\n"
    "Гоголя ул.;38;2;0012;пять\n"
    "Гоголя ул.;38;1;0011;5\n"
)


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BILLING_", "DEFAULT_CITY", "TIMEZONE", "LOG_LEVEL"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        BILLING_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'billing.db'}",
        **extra,
    )
    return env


def cli(
    tmp_path: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    # Run in tmp_path so that a developer's .env in the checkout cannot leak in.
    return subprocess.run(
        [sys.executable, "-m", "billing_client", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment(tmp_path, **env),
        timeout=60,
    )


def test_accounts_are_added_listed_and_removed(tmp_path: Path) -> None:
    added = cli(
        tmp_path,
        "account", "add", "UK-Sibir", "--name", "ООО «УК Сибирь»", "--inn", "5405000000",
        "--password-stdin",
        stdin="a long enough password\n",
    )  # fmt: skip
    assert (added.returncode, added.stderr) == (0, "")
    assert added.stdout == "учётная запись «uk-sibir» (ООО «УК Сибирь») добавлена\n"

    listed = cli(tmp_path, "account", "list")
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[1].split() == ["uk-sibir", "5405000000", "0", "0", "ООО",
                                                     "«УК", "Сибирь»"]  # fmt: skip
    assert "a long enough password" not in listed.stdout + listed.stderr

    removed = cli(tmp_path, "account", "remove", "uk-sibir", "--yes")
    assert (removed.returncode, removed.stderr) == (0, "")
    assert cli(tmp_path, "account", "list").stdout == "учётных записей нет\n"


@pytest.mark.duration(10)
def test_import_and_export_through_the_command_line(tmp_path: Path) -> None:
    cli(tmp_path, "account", "add", "uk", "--name", "УК", "--password-stdin",
        stdin="a long enough password\n")  # fmt: skip
    (tmp_path / "good.csv").write_text(GOOD_CSV, encoding="utf-8-sig")
    (tmp_path / "bad.csv").write_text(BAD_CSV, encoding="utf-8")

    refused = cli(tmp_path, "import", "uk", "bad.csv")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "строка 3, столбец «Значность»: «пять» — нужно целое число от 1 до 12",
        "строка 4, столбец «Зав. номер»: слот повторяет строку 2: тот же дом, квартира, "
        "заводской номер и тариф",
        "ошибка: файл «bad.csv» не загружен: ошибок — 2",
    ]
    # Nothing of the refused file was loaded.
    assert cli(tmp_path, "account", "list").stdout.splitlines()[1].split()[2:4] == ["0", "0"]

    loaded = cli(tmp_path, "import", "uk", "good.csv")
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout == (
        "загружено в «uk»: домов 2 (новых 2), слотов 4 (новых 4, изменено 0, удалено 0)\n"
    )

    exported = cli(tmp_path, "export", "uk", "out.xlsx", "--period", "2026-11")
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == "выгружено в «out.xlsx»: слотов 4, с показаниями за 2026-11 — 0\n"
    rows = read_template((tmp_path / "out.xlsx").read_bytes(), "out.xlsx", "Новосибирск")
    assert [(r.street, r.apartment, r.serial_number, r.tariff, r.previous_value) for r in rows] == [
        ("Гоголя ул.", "1", "0011", None, "00412"),
        ("Гоголя ул.", "2", "0012", "день", None),
        ("Гоголя ул.", "2", "0012", "ночь", None),
        ("Кирова ул.", "НП-1", "777", None, None),
    ]
    assert not (tmp_path / "out.xlsx.part").exists()


@pytest.fixture
def in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """The CLI's main() in this process (fast), with the same environment as `cli`."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        monkeypatch.delenv(key)
    for key, value in environment(tmp_path).items():
        monkeypatch.setenv(key, value)

    def run(*args: str, stdin: str = "", **env: str) -> tuple[int, str, str]:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


PASSWORD_LINE = "a long enough password\n"


@pytest.mark.parametrize(
    ("args", "stdin", "env", "code", "stderr"),
    [
        (["account", "add", "uk", "--name", "X", "--password-stdin"], PASSWORD_LINE, {}, 1,
         "ошибка: учётная запись «uk» уже есть\n"),
        (["account", "add", "uk-2", "--name", "X", "--password-stdin"], "short\n", {}, 1,
         "ошибка: пароль короче 8 символов\n"),
        (["account", "add", "uk 2", "--name", "X", "--password-stdin"], PASSWORD_LINE, {}, 1,
         "ошибка: логин «uk 2» не годится: латинские буквы, цифры, «.», «_», «-», до 64 "
         "символов, начиная с буквы или цифры\n"),
        (["account", "remove", "nobody", "--yes"], "", {}, 1,
         "ошибка: учётной записи «nobody» нет\n"),
        (["export", "uk", "out.csv"], "", {}, 2, "ошибка: файл выгрузки должен быть .xlsx\n"),
        (["export", "uk", "o.xlsx", "--period", "11.2026"], "", {}, 2,
         "ошибка: период указывается как ГГГГ-ММ, например 2026-11\n"),
        (["export", "nobody", "o.xlsx"], "", {}, 1, "ошибка: учётной записи «nobody» нет\n"),
        (["import", "uk", "missing.xlsx"], "", {}, 1,
         "ошибка: не удалось прочитать «missing.xlsx»: No such file or directory\n"),
        (["account", "list"], "", {"TIMEZONE": "Mars/Olympus"}, 2,
         "Setting TIMEZONE is invalid: expected an IANA time zone such as Asia/Novosibirsk.\n"),
        (["account", "list"], "", {"BILLING_DATABASE_URL": "mysql://db/billing"}, 2,
         "Setting BILLING_DATABASE_URL is invalid: expected a sqlite+aiosqlite:/// or "
         "postgresql+asyncpg:// URL.\n"),
    ],
    ids=["duplicate-login", "short-password", "bad-login", "remove-unknown", "export-not-xlsx",
         "bad-period", "export-unknown", "import-missing-file", "bad-timezone", "bad-db-url"],
)  # fmt: skip
def test_failures_are_one_clear_line_with_an_exit_code(
    in_process: Callable[..., tuple[int, str, str]],
    args: list[str],
    stdin: str,
    env: dict[str, str],
    code: int,
    stderr: str,
) -> None:
    assert in_process("account", "add", "uk", "--name", "УК", "--password-stdin",
                      stdin=PASSWORD_LINE)[0] == 0  # fmt: skip

    result = in_process(*args, stdin=stdin, **env)

    assert result[0] == code
    assert result[2] == stderr


def test_a_command_line_mistake_is_exit_code_2(
    in_process: Callable[..., tuple[int, str, str]],
) -> None:
    with pytest.raises(SystemExit) as caught:
        in_process("account", "add", "uk")  # --name is required

    assert caught.value.code == 2


def test_passwords_typed_twice_must_match(
    in_process: Callable[..., tuple[int, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    typed = iter(["first password", "second password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))

    code, _, err = in_process("account", "add", "uk", "--name", "УК")

    assert (code, err) == (1, "ошибка: пароли не совпадают\n")


async def test_serve_runs_the_reference_server_with_the_demo(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "billing_client", "serve", "--port", "0",
        cwd=tmp_path,
        env=environment(tmp_path, LOG_LEVEL="WARNING"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert line.startswith("billing API v1: http://127.0.0.1:")
        base_url = line.split()[3]
        assert base_url.endswith("/api/v1")

        client = HttpBilling(base_url, retries=0)
        try:
            buildings = await client.buildings(
                BillingAuth(login="demo", password=SecretStr("demo"))
            )
        finally:
            await client.close()
        assert len(buildings.buildings) == 10
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    assert code == 0
