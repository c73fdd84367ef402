"""Running an engine command whose output is shown as it comes (one-off tool containers)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Sequence

from airpods.engine.errors import EngineTimeout


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
