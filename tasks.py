"""The project's two commands, usable on a fresh machine with only Python 3.11.

    python3 tasks.py run    # create/refresh .venv, then run the bot
    python3 tasks.py test   # create/refresh .venv, then run every check and test
    python3 tasks.py bench  # the performance benchmark (benchmarks/), a few minutes

The virtual environment is created once and refreshed only when requirements.lock
changes, so both commands are fast after the first run.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LOCK = ROOT / "requirements.lock"
STAMP = VENV / ".requirements.sha256"
PY = VENV / "bin" / "python"


def ensure_venv() -> None:
    """Create .venv and install the locked requirements when they changed."""
    if not PY.exists():
        print("tasks: creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == digest:
        return
    print("tasks: installing requirements.lock into .venv", flush=True)
    pip = [str(PY), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "-r", str(LOCK)], check=True)
    STAMP.write_text(digest)


def run(cmd: list[str], **kwargs: object) -> int:
    print("tasks: $", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT, **kwargs)  # type: ignore[arg-type]


def cmd_run(args: list[str]) -> int:
    ensure_venv()
    os.chdir(ROOT)
    os.execv(str(PY), [str(PY), "bot.py", *args])
    return 0  # pragma: no cover


def cmd_test(args: list[str]) -> int:
    ensure_venv()
    bin_ = VENV / "bin"
    checks = [
        [str(bin_ / "ruff"), "check", "."],
        [str(bin_ / "ruff"), "format", "--check", "."],
        [str(bin_ / "mypy"), "."],
    ]
    failed = 0
    if "--no-lint" not in args:
        for check in checks:
            failed |= run(check) != 0
    args = [a for a in args if a != "--no-lint"]
    rc = run([str(PY), "-m", "pytest", *args])
    if rc == 5:  # pytest: no tests collected
        print("tasks: no tests were collected", flush=True)
        rc = 1
    if failed and rc == 0:
        print("tasks: tests passed, but a lint/type check failed (see above)", flush=True)
        return 1
    return rc


def cmd_bench(args: list[str]) -> int:
    ensure_venv()
    return run([str(PY), "-m", "benchmarks", *args])


def cmd_lock(args: list[str]) -> int:
    ensure_venv()
    frozen = subprocess.run(
        [str(PY), "-m", "pip", "freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    header = LOCK.read_text().splitlines()[:2]
    LOCK.write_text("\n".join(header) + "\n" + frozen)
    return 0


COMMANDS = {"run": cmd_run, "test": cmd_test, "bench": cmd_bench, "lock": cmd_lock}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print("usage: python3 tasks.py {run|test|bench|lock} [args...]", file=sys.stderr)
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
