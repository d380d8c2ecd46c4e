"""deploy/: the files Docker and systemd read agree with the settings and the README.

Docker does not run here; what can be checked without it is checked: the compose
file parses, every variable it gives the bot is a setting and the values pass the
settings' own validation, the image runs the README's command as a non-root user.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from settings import Mode, Settings
from tests.harness.fake_telegram import BOT_TOKEN as FAKE_BOT_TOKEN

# No PostgreSQL or Redis here (the deploy files): only the SQLite pass runs
# these (no_services, see tasks.py).
pytestmark = pytest.mark.no_services

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# What an operator puts into .env for compose: ${NAME} / ${NAME:?…} / ${NAME:-default}.
OPERATOR_VALUES = {
    "BOT_TOKEN": FAKE_BOT_TOKEN,
    "WEBHOOK_URL": "https://bot.example.org/telegram",
    "WEBHOOK_SECRET": "webhook-secret-value",
    "SECRET_KEY": "a-long-secret-key-for-the-vault",
    "POSTGRES_PASSWORD": "pg-password",
}
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::?(?P<op>[-?])(?P<arg>[^}]*))?\}")


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def bot_services() -> dict[str, dict[str, Any]]:
    services = compose()["services"]
    return {name: s for name, s in services.items() if s.get("image", "").startswith("meter")}


def interpolate(value: str) -> str:
    def one(match: re.Match[str]) -> str:
        name = match["name"]
        if name in OPERATOR_VALUES:
            return OPERATOR_VALUES[name]
        assert match["op"] == "-", f"${{{name}}} has no default and no test value"
        return match["arg"]

    return INTERPOLATION.sub(one, value)


def test_compose_runs_two_webhook_instances_on_postgresql_and_redis() -> None:
    services = compose()["services"]
    bots = bot_services()
    assert len(bots) >= 2
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"].startswith("redis:")
    for name, service in bots.items():
        env = service["environment"]
        assert env["MODE"] == Mode.WEBHOOK.value, name
        assert env["DATABASE_URL"].startswith("postgresql+asyncpg://"), name
        assert env["REDIS_URL"].startswith("redis://redis:"), name
        assert {"postgres", "redis"} <= set(service["depends_on"]), name
        probe = " ".join(service["healthcheck"]["test"])
        assert f"127.0.0.1:{env['METRICS_PORT']}/healthz" in probe, name
    upstream = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    for name, service in bots.items():
        assert f"server {name}:{service['environment']['WEBHOOK_PORT']}" in upstream


def test_every_variable_compose_gives_the_bot_is_a_valid_setting() -> None:
    known = set(Settings.model_fields)
    for name, service in bot_services().items():
        env: dict[str, Any] = {
            key: interpolate(str(value)) for key, value in service["environment"].items()
        }
        unknown = sorted(set(env) - known)
        assert not unknown, f"{name}: not settings: {unknown}"
        settings = Settings(_env_file=None, **env)
        assert settings.MODE is Mode.WEBHOOK
        assert settings.BILLING_URL is None  # unset: the embedded billing on PostgreSQL
        assert settings.METRICS_PORT == 9100


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_image_runs_the_readmes_command_as_a_non_root_user() -> None:
    steps = dockerfile_instructions()
    value = {name: arg for name, arg in steps}  # the last of each kind
    assert value["FROM"] == "python:3.11-slim"
    assert any(n == "RUN" and "pip install -r requirements.lock" in a for n, a in steps)
    user = value["USER"]
    assert user not in {"root", "0"}
    command = " ".join(json.loads(value["CMD"]))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Running at scale", 1)[1].split("\n## ", 1)[0]
    assert f"`{command}`" in section, f"README's 'Running at scale' must name `{command}`"
    assert (ROOT / command.split()[-1]).is_file()
    assert "/data" in value["VOLUME"] and "DATA_DIR=/data" in value["ENV"]


def test_the_systemd_unit_reads_an_environment_file_and_runs_the_bot() -> None:
    unit = (DEPLOY / "bot.service").read_text(encoding="utf-8")
    options = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0] != "#"
    )
    assert options["EnvironmentFile"].startswith("/etc/")
    assert options["ExecStart"].endswith("/.venv/bin/python bot.py")
    assert options["User"] not in {"root", "0"}
    assert options["Restart"] == "on-failure"


@pytest.mark.parametrize("name", ["compose.yaml", "Dockerfile", "bot.service", "nginx.conf"])
def test_no_secret_is_written_into_the_deploy_files(name: str) -> None:
    text = (DEPLOY / name).read_text(encoding="utf-8")
    assert not re.search(r"\d{6,}:[A-Za-z0-9_-]{30,}", text)  # a bot token
    for secret in ("WEBHOOK_SECRET", "SECRET_KEY", "POSTGRES_PASSWORD"):
        for line in text.splitlines():
            if f"{secret}:" in line and "${" not in line:
                pytest.fail(f"{name}: {secret} has a literal value: {line.strip()}")
