"""The real bot as a subprocess: start it, read its log, stop it politely or kill -9 it.

    async with BotProcess({"BOT_TOKEN": ..., "TELEGRAM_API_URL": tg.api_url}) as bot:
        await bot.wait_for_log("Start polling")
        ...
        result = await bot.stop()          # SIGTERM; result.returncode, result.seconds

The child gets a minimal clean environment (PATH, locale, unbuffered Python) plus what
the test passes, so a developer's own BOT_TOKEN or DATABASE_URL never leaks into a test.
"""

# Every wait takes its own timeout: a test states its time budget where it waits.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parents[2]

# Inherited from the test runner when set: what a Python process needs to start at all,
# plus coverage's hook so subprocess coverage works when a developer turns it on.
INHERITED_ENV = ("PATH", "HOME", "TMPDIR", "TEMP", "TMP", "SYSTEMROOT", "COVERAGE_PROCESS_START")
BASE_ENV = {
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONUNBUFFERED": "1",  # log lines reach the test as they are written
    "PYTHONIOENCODING": "utf-8",
    "PYTHONDONTWRITEBYTECODE": "1",
}


# The `start_bot` fixture: `bot = await start_bot(env={...})`.
StartBot = Callable[..., Awaitable["BotProcess"]]


class ProcessExited(AssertionError):
    """The process ended while a test was waiting for something from it."""


@dataclass(frozen=True)
class StopResult:
    returncode: int
    seconds: float  # from the signal to the exit
    killed: bool  # it ignored SIGTERM for `timeout` seconds and got SIGKILL


class BotProcess:
    """One run of `python bot.py` (or any script) with its output captured."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        args: Sequence[str] = ("bot.py",),
        cwd: Path | str = REPO_ROOT,
        python: str = sys.executable,
        log_path: Path | str | None = None,
        name: str = "bot",
    ) -> None:
        self.env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        self.env.update(BASE_ENV)
        self.env.update(env or {})
        self.args = [python, *args]
        self.cwd = Path(cwd)
        self.log_path = Path(log_path) if log_path is not None else None
        self.name = name
        self._chunks: list[str] = []
        self._log = ""
        self._changed = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._exit_hooks: list[Callable[[int], None]] = []
        self._expected_exit = False  # stop()/kill9() was asked: the exit is no surprise

    # --- lifecycle

    async def start(self) -> BotProcess:
        if self._proc is not None:
            raise RuntimeError("already started")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log_path.write_text("")
        self._proc = await asyncio.create_subprocess_exec(
            *self.args,
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Its own process group: kill9() takes children along, and a Ctrl-C in the
            # developer's terminal does not hit the bot before the test stops it.
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read_output())
        self._watcher = asyncio.create_task(self._watch_exit())
        return self

    async def __aenter__(self) -> BotProcess:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Make sure nothing is left running (stop politely, then kill)."""
        if self._proc is not None and self._proc.returncode is None:
            await self.stop()
        for task in (self._reader, self._watcher):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> StopResult:
        """Send SIGTERM (or sig) and wait; SIGKILL after timeout seconds."""
        proc = self._require()
        self._expected_exit = True
        started = time.monotonic()
        _signal(proc, sig)
        killed = False
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            killed = True
            self._kill_group()
            await proc.wait()
        await self._drain()
        return StopResult(int(proc.returncode or 0), time.monotonic() - started, killed)

    def kill9(self) -> None:
        """SIGKILL the process (and its group) now: a crash, no cleanup."""
        self._require()
        self._expected_exit = True
        self._kill_group()

    async def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait for the process to end on its own; returns the exit code."""
        proc = self._require()
        self._expected_exit = True
        try:
            code = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"{self.name} still running after {timeout} s\n{self.log_tail()}"
            ) from None
        await self._drain()
        return code

    def _kill_group(self) -> None:
        _signal(self._require(), signal.SIGKILL, group=True)

    def _require(self) -> asyncio.subprocess.Process:
        if self._proc is None:
            raise RuntimeError(f"{self.name} was not started")
        return self._proc

    # --- state

    @property
    def pid(self) -> int:
        return self._require().pid

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def unexpected_exit(self) -> str | None:
        """Why waiting on this bot is pointless: it exited without being asked to."""
        if self._proc is None or self._proc.returncode is None or self._expected_exit:
            return None
        return f"{self.name} (pid {self._proc.pid}) exited with code {self._proc.returncode}"

    def add_exit_hook(self, hook: Callable[[int], None]) -> None:
        """Called with the exit code when the process ends (FakeTelegram.watch uses it)."""
        self._exit_hooks.append(hook)

    # --- the log

    @property
    def log(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self._log

    def mark(self) -> int:
        """A position in the log, for wait_for_log(since=...)."""
        return len(self._log)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self._log.splitlines()[-lines:]) or "(no output)"

    async def wait_for_log(
        self,
        pattern: str | re.Pattern[str],
        timeout: float = 10.0,
        *,
        since: int = 0,
    ) -> str:
        """Wait until a log line (after position `since`) contains the substring or matches
        the regex; returns that line. Fails at once if the process exits first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            line = self._find_line(pattern, since)
            if line is not None:
                return line
            if (
                self._proc is not None
                and self._proc.returncode is not None
                and (self._reader is None or self._reader.done())
            ):
                raise ProcessExited(
                    f"{self.name} exited with code {self._proc.returncode} before logging "
                    f"{_show(pattern)}\n--- last log lines ---\n{self.log_tail()}"
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.name} did not log {_show(pattern)} within {timeout} s\n"
                    f"--- last log lines ---\n{self.log_tail()}"
                )
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()

    def _find_line(self, pattern: str | re.Pattern[str], since: int) -> str | None:
        for line in self._log[since:].splitlines():
            if (pattern in line) if isinstance(pattern, str) else pattern.search(line):
                return line
        return None

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _read_output(self) -> None:
        proc = self._require()
        assert proc.stdout is not None
        log_file = self.log_path.open("a", encoding="utf-8") if self.log_path else None
        try:
            while chunk := await proc.stdout.read(65536):
                text = chunk.decode("utf-8", errors="replace")
                self._log += text
                if log_file is not None:
                    log_file.write(text)
                    log_file.flush()
                self._notify()
        finally:
            if log_file is not None:
                log_file.close()
            self._notify()

    async def _watch_exit(self) -> None:
        proc = self._require()
        code = await proc.wait()
        await self._drain()
        for hook in self._exit_hooks:
            hook(code)
        self._notify()

    async def _drain(self) -> None:
        """Let the reader take the last output, so the log is complete after an exit."""
        if self._reader is not None and not self._reader.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), 5.0)


def _show(pattern: str | re.Pattern[str]) -> str:
    return repr(pattern) if isinstance(pattern, str) else f"/{pattern.pattern}/"


def _signal(proc: asyncio.subprocess.Process, sig: int, *, group: bool = False) -> None:
    """Send `sig` to the process (`group`: to its process group) with os.kill.

    Not Popen.send_signal or kill(): they first poll the child, and a poll that finds
    it just dead reaps it before asyncio's child watcher does, which then reports exit
    code 255 instead of the real one (seen: a kill -9 read as 255).
    """
    if proc.returncode is not None:
        return  # reaped already: the pid may belong to another process by now
    try:
        if group:
            try:
                os.killpg(proc.pid, sig)
                return
            except PermissionError:
                pass  # not its own group's leader: the process alone
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass  # already gone
