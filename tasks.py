"""The project's two commands, usable on a fresh machine with only Python 3.11.

    python3 tasks.py run    # create/refresh .venv, then run the bot
    python3 tasks.py test   # create/refresh .venv, then run every check and test
    python3 tasks.py bench  # the performance benchmark (benchmarks/), a few minutes;
                            # (--no-webhook: without 1 vs 2 webhook instances on PostgreSQL)

The virtual environment is created once and refreshed only when requirements.lock
changes, so both commands are fast after the first run.

`test` runs the suite twice: on SQLite, then again on a throwaway PostgreSQL 15
and redis-server started here (see services_for_tests); tests marked no_services
(they use neither) run in the first pass only. Options, before any
pytest arguments: --no-lint, --sqlite-only (skip the second pass), --serial
(no pytest-xdist workers).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Iterator
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
    # The deploy's allocator setting (deploy/Dockerfile), unless the caller chose one.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    os.execv(str(PY), [str(PY), "bot.py", *args])
    return 0  # pragma: no cover


OPTIONS = ("--no-lint", "--sqlite-only", "--serial")


def cmd_test(args: list[str]) -> int:
    ensure_venv()
    options = {a for a in args if a in OPTIONS}
    args = [a for a in args if a not in OPTIONS]
    bin_ = VENV / "bin"
    checks = [
        [str(bin_ / "ruff"), "check", "."],
        [str(bin_ / "ruff"), "format", "--check", "."],
    ]
    failed = 0
    mypy: Background | None = None
    if "--no-lint" not in options:
        for check in checks:
            failed |= run(check) != 0
        # mypy takes ~25 s of CPU on a clean clone (no cache); the test workers mostly
        # wait on sockets and subprocesses, so it runs beside the first pass.
        mypy = Background([str(bin_ / "mypy"), "."])
    compile_sources()
    pytest = [str(PY), "-m", "pytest", *workers("--serial" in options)]
    try:
        rc = pytest_pass("SQLite", [*pytest, *args], {})
        if mypy is not None:
            failed |= mypy.finish() != 0
    finally:
        if mypy is not None:
            mypy.stop()
    if rc == 0 and "--sqlite-only" not in options:
        # A test marked no_services gives the same result on PostgreSQL + Redis: it ran
        # once already. A -m among the arguments comes later and wins.
        rc = second_pass([*pytest, "-m", "not no_services", *args])
    if failed and rc == 0:
        print("tasks: tests passed, but a lint/type check failed (see above)", flush=True)
        return 1
    return rc


def compile_sources() -> None:
    """Write the bytecode of the project's own modules once, before the tests.

    The tests start `python bot.py` a few dozen times per pass with
    PYTHONDONTWRITEBYTECODE=1 (tests/harness/process.py): on a clean clone each start
    compiled ~100 modules again (~0.4 s of CPU). Reading bytecode is still allowed.
    """
    skip = r"[/\\]\.(venv|git)[/\\]"
    subprocess.run([str(PY), "-m", "compileall", "-q", "-x", skip, str(ROOT)], check=False)


class Background:
    """A check run beside the tests; its output is printed whole when it is waited for."""

    def __init__(self, cmd: list[str]) -> None:
        print("tasks: $", " ".join(cmd), "(beside the SQLite pass)", flush=True)
        self.cmd = cmd
        self.process = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def finish(self) -> int:
        output, _ = self.process.communicate()
        name = Path(self.cmd[0]).name
        print(f"tasks: {name} finished (exit {self.process.returncode}):", flush=True)
        sys.stdout.buffer.write(output)
        sys.stdout.flush()
        return self.process.returncode

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def workers(serial: bool) -> list[str]:
    """pytest-xdist workers (each test has its own files, databases and ports).

    One more worker than cores: the tests spend about half their time waiting (on the
    fake Bot API server, bot processes, PostgreSQL), and with two workers on two cores
    CPU use stayed near 50%; three cut the SQLite pass by about a third. Tests go out
    one at a time, longest first (`duration` markers, tests/conftest.py), so no worker
    is left idle while another runs a two-minute test at the end.
    """
    cores = os.cpu_count() or 1
    if serial or cores < 2:
        return []
    probe = subprocess.run([str(PY), "-c", "import xdist"], capture_output=True)
    if probe.returncode != 0:
        return []
    return ["-n", str(min(cores + 1, 4)), "--dist", "load", "--maxschedchunk", "1"]


def pytest_pass(
    name: str, pytest: list[str], env: dict[str, str], *, may_be_empty: bool = False
) -> int:
    print(f"tasks: test pass on {name}", flush=True)
    started = time.monotonic()
    rc = run(pytest, env={**os.environ, **env})
    print(f"tasks: {name} pass took {time.monotonic() - started:.0f} s (exit {rc})", flush=True)
    if rc == 5:  # pytest: no tests collected
        if may_be_empty:  # e.g. only no_services tests were asked for
            print(f"tasks: no test to run on {name}", flush=True)
            return 0
        print("tasks: no tests were collected", flush=True)
        return 1
    return rc


def second_pass(pytest: list[str]) -> int:
    """The whole suite again on PostgreSQL + Redis; required in CI, optional elsewhere."""
    try:
        with services_for_tests() as env:
            # The 2,000-strings-per-field figure is measured in the SQLite pass; here
            # the same generated input runs on PostgreSQL at a quarter of the count.
            env = {"MALFORMED_PER_FIELD": "500", **env}
            return pytest_pass("PostgreSQL + Redis", pytest, env, may_be_empty=True)
    except ServiceUnavailable as exc:
        if os.environ.get("CI"):
            print(f"tasks: cannot start the test services: {exc}", flush=True)
            return 1
        print(
            f"tasks: skipped the PostgreSQL + Redis pass: {exc}\n"
            "tasks: (install PostgreSQL 15 and redis-server to run it; CI always does)",
            flush=True,
        )
        return 0


class ServiceUnavailable(Exception):
    """PostgreSQL or Redis cannot be started on this machine."""


@contextlib.contextmanager
def services_for_tests() -> Iterator[dict[str, str]]:
    """A throwaway PostgreSQL and redis-server on 127.0.0.1; removed afterwards.

    Yields the environment the test fixtures read: TEST_DATABASE_URL (a server
    where each test creates and drops its own databases), BILLING_TEST_DATABASE_URL
    and TEST_REDIS_URL (each worker empties its own Redis database).
    """
    with (
        tempfile.TemporaryDirectory(prefix="tasks-services-") as folder,
        postgres_server(Path(folder) / "pg") as pg_url,
        redis_server() as redis_url,
    ):
        yield {
            "TEST_DATABASE_URL": f"{pg_url}/postgres",
            "BILLING_TEST_DATABASE_URL": f"{pg_url}/billing_test",
            "TEST_REDIS_URL": redis_url,
        }


def quiet_run(
    cmd: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run without standard input (CI has none); stderr kept for the error message."""
    try:
        return subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            check=False,
        )
    except OSError as exc:  # e.g. runuser or apt-get missing on a developer's machine
        raise ServiceUnavailable(f"cannot run {cmd[0]}: {exc.strerror}") from None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    preferred = [p for p in found if "/15/" in p] or found
    if preferred:
        return Path(preferred[0]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ServiceUnavailable("PostgreSQL's initdb was not found (/usr/lib/postgresql/*/bin)")


def as_postgres_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: use the `postgres` account then."""
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceUnavailable("running as root and there is no 'postgres' user") from None
    return ["runuser", "-u", "postgres", "--", *cmd]


@contextlib.contextmanager
def postgres_server(folder: Path) -> Iterator[str]:
    """initdb into `folder`, start on a free port, yield the base URL, stop and remove."""
    bindir = postgres_bin()
    folder.mkdir(parents=True)
    if os.geteuid() == 0:
        as_postgres_user(["true"])
        shutil.chown(folder.parent, "postgres")
        shutil.chown(folder, "postgres")
    data, log = folder / "data", folder / "server.log"
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
    done = quiet_run(as_postgres_user([*initdb, "-E", "UTF8", "--no-locale"]))
    if done.returncode != 0:
        raise ServiceUnavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
    port = free_port()
    # A throwaway server: durability settings off make CREATE DATABASE and commits fast.
    options = (
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=300 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    pg_ctl = str(bindir / "pg_ctl")
    start = [pg_ctl, "start", "-w", "-t", "60", "-D", str(data), "-l", str(log), "-o", options]
    done = quiet_run(as_postgres_user(start))
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-800:] if log.exists() else done.stderr
        raise ServiceUnavailable(f"PostgreSQL did not start: {tail.strip()}")
    print(f"tasks: PostgreSQL started on 127.0.0.1:{port} ({bindir})", flush=True)
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}"
    finally:
        stop = [pg_ctl, "stop", "-D", str(data), "-m", "immediate"]
        quiet_run(as_postgres_user(stop))
        print("tasks: PostgreSQL stopped", flush=True)


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("tasks: installing redis-server with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "redis-server"]
        if quiet_run(install, env).returncode != 0:
            quiet_run(["apt-get", "update", "-q"], env)
            quiet_run(install, env)
        found = shutil.which("redis-server")
        if found:
            return found
    raise ServiceUnavailable("redis-server is not installed (apt-get install redis-server)")


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server without persistence on a free port; yields its URL."""
    port = free_port()
    cmd = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    cmd += ["--appendonly", "no", "--databases", "64", "--protected-mode", "yes"]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not redis_answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ServiceUnavailable("redis-server did not start")
            time.sleep(0.05)
        print(f"tasks: redis-server started on 127.0.0.1:{port}", flush=True)
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print("tasks: redis-server stopped", flush=True)


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


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


def cmd_services(args: list[str]) -> int:
    """Start the test PostgreSQL + Redis and wait; for running single tests on them."""
    del args
    try:
        with services_for_tests() as env:
            print("tasks: export these, then run pytest; Ctrl-C (or SIGTERM) stops the servers:")
            for name, value in env.items():
                print(f"export {name}={value}", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    except ServiceUnavailable as exc:
        print(f"tasks: cannot start the test services: {exc}", file=sys.stderr)
        return 1
    return 0


COMMANDS = {
    "run": cmd_run,
    "test": cmd_test,
    "bench": cmd_bench,
    "lock": cmd_lock,
    "services": cmd_services,
}


def stop_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds the `with` blocks, so the test servers are stopped and
    # their folders removed when CI or a developer terminates the run.
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print("usage: python3 tasks.py {run|test|bench|lock|services} [args...]", file=sys.stderr)
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
