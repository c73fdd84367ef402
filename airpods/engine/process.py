"""Running an engine's CLI: one command with a timeout and its stderr in a typed error, or one
whose output is shown as it comes (one-off tool containers)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Sequence

from airpods.engine.errors import EngineError, EngineTimeout


def run_cli(
    argv: Sequence[str],
    timeout: float,
    check: bool = True,
    input_text: str | None = None,
    hint: Callable[[str], str | None] = lambda _stderr: None,
) -> subprocess.CompletedProcess[str]:
    """`argv` run with its output captured (stdin: `input_text`, else nothing). Raises
    EngineTimeout after `timeout` seconds, and with `check` EngineError (exit code, stderr's
    tail, `hint(stderr)` as the next step) when it fails."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise EngineTimeout(argv, timeout) from None
    if check and done.returncode != 0:
        raise EngineError(argv, done.returncode, done.stderr, hint=hint(done.stderr))
    return done


def run_streaming(
    argv: Sequence[str], on_line: Callable[[str], None], timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """`argv` run to completion, stdout and stderr together, each line handed to `on_line` as
    it comes (without its newline) and all of it returned as stdout. Raises EngineTimeout after
    `timeout_s` seconds (the client process is killed)."""
    process = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, bufsize=1
    )
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        process.kill()

    timer = threading.Timer(timeout_s, expire)
    timer.start()
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            on_line(line.rstrip("\n"))
        process.wait()
    finally:
        timer.cancel()
    if expired.is_set():
        raise EngineTimeout(argv, timeout_s)
    return subprocess.CompletedProcess(list(argv), process.returncode, "".join(lines), "")
