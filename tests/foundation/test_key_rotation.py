"""SECRET_KEY as an operator handles it: `python bot.py --rotate-secrets` after putting a
new key first, and the key file the bot generates when SECRET_KEY is not set."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from settings import Settings
from storage.crypto import GENERATED_KEY_FILE, SecretKeyFileError, Vault, load_or_create_secret_key
from storage.engine import create_engine, create_session_pool
from storage.migrate import upgrade_database
from storage.models import Account
from tests.conftest import make_settings, running_app
from tests.flows.walking import BUILDING_QUERY
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.process import BotProcess

OLD = "old-key-old-key-old-key-old-key"
NEW = "new-key-new-key-new-key-new-key"
# A process that imports aiogram on a loaded machine takes seconds before it does anything.
SLOW = 60.0
WAIT = 30.0  # the bot's answers, on a machine other test runs share


def process_env(settings: Settings, **overrides: str) -> dict[str, str]:
    """The environment of `python bot.py` for the same files as `settings`."""
    env = {
        "BOT_TOKEN": settings.BOT_TOKEN.get_secret_value(),
        "TELEGRAM_API_URL": settings.TELEGRAM_API_URL,
        "DATA_DIR": str(settings.DATA_DIR),
        "DATABASE_URL": settings.DATABASE_URL,
        "BILLING_DATABASE_URL": str(settings.BILLING_DATABASE_URL),
        "LOG_LEVEL": "INFO",
        **overrides,
    }
    return {name: value for name, value in env.items() if value}


async def run_to_exit(
    env: dict[str, str], *args: str, python_code: str | None = None
) -> BotProcess:
    """Run `python bot.py args` (or a script) to its end; the process, for its log and code."""
    argv = ("-c", python_code) if python_code is not None else ("bot.py", *args)
    process = BotProcess(env, args=argv)
    await process.start()
    try:
        await process.wait_exit(timeout=SLOW)
    finally:
        await process.close()
    return process


async def stored_passwords(settings: Settings) -> dict[str, str | None]:
    engine = create_engine(settings.DATABASE_URL)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(Account.id, Account.password_encrypted))
            return {account_id: password for account_id, password in rows}
    finally:
        await engine.dispose()


async def test_rotate_secrets_lets_the_bot_run_on_the_new_key_alone(
    fake_telegram: FakeTelegram, bot_token: str, tmp_path: Path
) -> None:
    old_settings = make_settings(tmp_path, fake_telegram.api_url, bot_token, SECRET_KEY=OLD)
    async with running_app(fake_telegram, old_settings) as app:
        phone = fake_telegram.user(user_id=1001, first_name="Анна")
        # The company's password, stored encrypted with the old key.
        await phone.send_command("/start")
        await phone.wait_for("логин", timeout=WAIT)
        await phone.ask("demo", until="пароль", timeout=WAIT)
        await phone.ask("demo", until="Вы вошли", timeout=WAIT)
    (account_id, before), *_ = (await stored_passwords(old_settings)).items()
    assert before is not None and Vault([OLD]).decrypt(before) == "demo"

    rotation = await run_to_exit(
        process_env(old_settings, SECRET_KEY=f"{NEW},{OLD}"), "--rotate-secrets"
    )
    assert rotation.returncode == 0, rotation.log
    assert "Re-encrypted 1 stored password(s)" in rotation.log
    assert "Polling" not in rotation.log
    assert OLD not in rotation.log and NEW not in rotation.log

    after = (await stored_passwords(old_settings))[account_id]
    assert after is not None and after != before
    new_settings = make_settings(tmp_path, fake_telegram.api_url, bot_token, SECRET_KEY=NEW)
    async with running_app(fake_telegram, new_settings) as app:
        # A fresh process has no billing session: opening a building decrypts the password.
        await phone.tap("Передача показаний по дому", until="Выберите", timeout=WAIT)
        found = await phone.ask(BUILDING_QUERY, until="Нашлось", timeout=WAIT)
        await phone.tap(found.buttons[0][0], until="Введите показание", timeout=WAIT)
        assert app.runner.failed == 0


async def test_rotate_secrets_keeps_and_names_a_password_no_key_opens(
    fake_telegram: FakeTelegram, bot_token: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, fake_telegram.api_url, bot_token, SECRET_KEY=OLD)
    lost = Vault(["a-key-nobody-has-any-more"]).encrypt("lost-password")
    engine = create_engine(settings.DATABASE_URL)
    await upgrade_database(engine)
    async with create_session_pool(engine)() as session:
        readable = Vault([OLD]).encrypt("ok-password")
        session.add(
            Account(id="acc-ok", name="ООО Ромашка", login="a", password_encrypted=readable)
        )
        session.add(Account(id="acc-lost", name="ТСЖ Лютик", login="b", password_encrypted=lost))
        await session.commit()
    await engine.dispose()

    rotation = await run_to_exit(
        process_env(settings, SECRET_KEY=f"{NEW},{OLD}"), "--rotate-secrets"
    )
    assert rotation.returncode == 1, rotation.log
    assert "Re-encrypted 1 stored password(s)" in rotation.log
    assert "1 stored password(s) match no key" in rotation.log and "acc-lost" in rotation.log
    assert "lost-password" not in rotation.log and lost not in rotation.log
    stored = await stored_passwords(settings)
    assert stored["acc-lost"] == lost, "an unreadable password is kept as it was"
    assert Vault([NEW]).decrypt(stored["acc-ok"] or "") == "ok-password"


# --- the generated key file -----------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"\n", b"\0" * 65], ids=["empty", "newline", "zeros"])
def test_a_damaged_key_file_is_refused_naming_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / GENERATED_KEY_FILE
    path.write_bytes(content)
    with pytest.raises(SecretKeyFileError, match=GENERATED_KEY_FILE) as raised:
        load_or_create_secret_key(None, tmp_path)
    assert "\n" not in str(raised.value)
    assert path.read_bytes() == content, "never replaced: a backup may restore it"


async def test_an_empty_key_file_stops_the_bot_with_one_line_not_a_traceback(
    fake_telegram: FakeTelegram, bot_token: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, fake_telegram.api_url, bot_token, SECRET_KEY=None)
    settings.DATA_DIR.mkdir(parents=True)
    (settings.DATA_DIR / GENERATED_KEY_FILE).write_text("")
    bot = await run_to_exit(process_env(settings))
    assert bot.returncode == 2, bot.log
    assert "Traceback" not in bot.log
    assert f"{settings.DATA_DIR / GENERATED_KEY_FILE} is empty or damaged" in bot.log


# The key file's write fails (here: a file size limit of 0 bytes), as when the disk is
# full or the machine stops between creating the file and writing the key into it.
FAILING_WRITE = """
import resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
sys.argv = ["bot.py"]
runpy.run_path("bot.py", run_name="__main__")
"""


async def test_a_key_file_whose_write_failed_does_not_stop_later_starts(
    fake_telegram: FakeTelegram, bot_token: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, fake_telegram.api_url, bot_token, SECRET_KEY=None)
    env = process_env(settings)
    failed = await run_to_exit(env, python_code=FAILING_WRITE)
    assert failed.returncode == 2, failed.log
    assert "Traceback" not in failed.log and GENERATED_KEY_FILE in failed.log
    key_file = settings.DATA_DIR / GENERATED_KEY_FILE
    assert not key_file.exists(), "no half-written key file is left behind"

    since = fake_telegram.now()
    async with BotProcess(env) as bot:
        fake_telegram.watch(bot)
        await fake_telegram.wait_for_call("getUpdates", since=since, timeout=SLOW)
        assert (await bot.stop()).returncode == 0
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert load_or_create_secret_key(None, settings.DATA_DIR) == key_file.read_text().strip()


# --- a SECRET_KEY that does not open the stored passwords -------------------------------


async def test_a_changed_secret_key_is_named_at_start_and_users_are_asked_to_log_in(
    fake_telegram: FakeTelegram, bot_token: str, tmp_path: Path
) -> None:
    old_settings = make_settings(tmp_path, fake_telegram.api_url, bot_token, SECRET_KEY=OLD)
    phone = fake_telegram.user(user_id=1001, first_name="Анна")
    async with running_app(fake_telegram, old_settings):
        await phone.send_command("/start")
        await phone.wait_for("логин", timeout=WAIT)
        await phone.ask("demo", until="пароль", timeout=WAIT)
        await phone.ask("demo", until="Вы вошли", timeout=WAIT)
    (account_id,) = await stored_passwords(old_settings)

    # The operator starts the bot with another key (OLD dropped, or mistyped).
    since = fake_telegram.now()
    async with BotProcess(process_env(old_settings, SECRET_KEY=NEW)) as bot:
        fake_telegram.watch(bot)
        await fake_telegram.wait_for_call("getUpdates", since=since, timeout=SLOW)
        assert "1 of 1 stored account password(s) match no key of SECRET_KEY" in bot.log
        assert f"(accounts: {account_id})" in bot.log
        assert OLD not in bot.log and NEW not in bot.log
        # A clear answer, not «что-то пошло не так»; a new login stores the password
        # with the key in use, and the buildings open again.
        menu = "Передача показаний по дому"
        await phone.tap(menu, until="администратор должен войти заново", timeout=WAIT)
        await phone.send_command("/start")
        await phone.wait_for("логин", timeout=WAIT)
        await phone.ask("demo", until="пароль", timeout=WAIT)
        await phone.ask("demo", until="Вы вошли", timeout=WAIT)
        await phone.tap(menu, until="Выберите", timeout=WAIT)
        assert "Traceback" not in bot.log
        assert (await bot.stop()).returncode == 0
