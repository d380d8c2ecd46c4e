"""Imports the bot once, then forks a fresh `bot.main()` for every start request.

Importing aiogram costs seconds of CPU; the fault suite restarts the bot dozens of
times. Each forked child is a real, separate bot process (its own pid, process
group, event loop, database connections and log file), killed with a real SIGKILL
or SIGTERM; only the imports are shared. Protocol on stdin/stdout, one JSON per line:

    -> {"env": {...}, "log": "/path/bot-3.log"}      start a bot
    <- {"started": pid}
    <- {"exited": pid, "code": -9}                    whenever a child ends
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import billing_client.embedded.backend
import bot

assert bot.main is not None and billing_client.embedded.backend is not None


def _child(env: dict[str, str], log_path: str) -> None:
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()  # its own process group, like BotProcess
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.environ.clear()
    os.environ.update(env)
    code = 1
    try:
        code = bot.main([])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _say(message: dict[str, int]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _say({"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def serve() -> None:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    stdin = sys.stdin.fileno()
    buffer = b""
    while True:
        try:
            ready, _, _ = select.select([stdin, wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            os.read(wake_r, 4096)
            _reap()
        if stdin in ready:
            chunk = os.read(stdin, 65536)
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    os.close(wake_r)
                    os.close(wake_w)
                    _child(request["env"], request["log"])
                _say({"started": pid})


if __name__ == "__main__":
    serve()
