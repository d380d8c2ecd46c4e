"""Bot processes forked from tests/reliability/forkserver.py: restarts without re-imports.

`ForkedBot` offers what the fault suite and `FakeTelegram.watch` use of `BotProcess`
(kill9, stop, wait_exit, log, running), for a child of the fork server.
"""

# Every wait takes its own timeout: a test states its time budget where it waits.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.harness.process import BASE_ENV, INHERITED_ENV, REPO_ROOT, StopResult

FORKSERVER = Path(__file__).resolve().parent / "forkserver.py"


class ForkedBot:
    def __init__(self, pid: int, log_path: Path, name: str) -> None:
        self.pid = pid
        self.log_path = log_path
        self.name = name
        self.returncode: int | None = None
        self._exited = asyncio.Event()
        self._hooks: list[Callable[[int], None]] = []
        self._expected_exit = False

    # --- what FakeTelegram.watch needs

    def unexpected_exit(self) -> str | None:
        if self.returncode is None or self._expected_exit:
            return None
        return f"{self.name} (pid {self.pid}) exited with code {self.returncode}"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.splitlines()[-lines:]) or "(no output)"

    def add_exit_hook(self, hook: Callable[[int], None]) -> None:
        self._hooks.append(hook)

    # --- state and control

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    @property
    def running(self) -> bool:
        return self.returncode is None

    def _exit(self, code: int) -> None:
        self.returncode = code
        self._exited.set()
        for hook in self._hooks:
            hook(code)

    def kill9(self) -> None:
        self._expected_exit = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    async def wait_exit(self, timeout: float = 10.0) -> int:
        self._expected_exit = True
        await asyncio.wait_for(self._exited.wait(), timeout)
        assert self.returncode is not None
        return self.returncode

    async def stop(self, timeout: float = 10.0) -> StopResult:
        """SIGTERM, then SIGKILL after `timeout` seconds."""
        self._expected_exit = True
        started = time.monotonic()
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
        killed = False
        try:
            await asyncio.wait_for(self._exited.wait(), timeout)
        except TimeoutError:
            killed = True
            self.kill9()
            await self._exited.wait()
        return StopResult(int(self.returncode or 0), time.monotonic() - started, killed)


def _truncate(path: Path) -> None:
    path.write_text("")


class ForkServer:
    """One fork server process; `spawn()` starts a bot in a few hundred milliseconds."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._bots: dict[int, ForkedBot] = {}
        self._exits: dict[int, int] = {}
        self._started: asyncio.Queue[int] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls) -> ForkServer:
        env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        env.update(BASE_ENV)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(FORKSERVER),
            cwd=REPO_ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            event = json.loads(line)
            if "started" in event:
                self._started.put_nowait(int(event["started"]))
            elif "exited" in event:
                pid, code = int(event["exited"]), int(event["code"])
                if pid in self._bots:
                    self._bots[pid]._exit(code)
                else:
                    self._exits[pid] = code

    async def spawn(
        self, env: dict[str, str], log_path: Path, name: str, timeout: float = 120.0
    ) -> ForkedBot:
        assert self._proc.stdin is not None
        full_env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        full_env.update(BASE_ENV)
        full_env.update(env)
        _truncate(log_path)
        request = {"env": full_env, "log": str(log_path)}
        self._proc.stdin.write((json.dumps(request) + "\n").encode())
        await self._proc.stdin.drain()
        pid = await asyncio.wait_for(self._started.get(), timeout)
        bot = ForkedBot(pid, log_path, name)
        self._bots[pid] = bot
        if pid in self._exits:
            bot._exit(self._exits.pop(pid))
        return bot

    async def close(self) -> None:
        for bot in self._bots.values():
            if bot.running:
                await bot.stop()
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), 10)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
