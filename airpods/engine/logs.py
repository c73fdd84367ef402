"""`podman logs` (or docker's) for one container as is, or several interleaved with a service
prefix; every line passes redact.redact (a secret a service prints shows as ********)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Mapping

from airpods.engine.base import Engine
from airpods.redact import redact

COLORS = ("36", "35", "33", "32", "34", "31")


def stream_logs(
    engine: Engine, containers: Mapping[str, str], *, follow: bool, lines: int | None, since: str | None
) -> int:
    """Returns the engine's exit code (the worst of them). Ctrl-C ends the stream quietly."""
    argvs = {name: engine.logs_argv(ctr, follow=follow, lines=lines, since=since) for name, ctr in containers.items()}
    width = max(map(len, argvs))
    color = sys.stdout.isatty()
    out_lock = threading.Lock()
    procs = {
        name: subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
        for name, argv in argvs.items()
    }

    def pump(index: int, name: str, proc: subprocess.Popen[str]) -> None:
        prefix = f"{name:<{width}} | " if len(procs) > 1 else ""
        if color and prefix:
            prefix = f"\033[{COLORS[index % len(COLORS)]}m{prefix}\033[0m"
        assert proc.stdout is not None
        for line in proc.stdout:
            with out_lock:
                sys.stdout.write(prefix + redact(line))
                sys.stdout.flush()

    threads = [threading.Thread(target=pump, args=(i, n, p), daemon=True) for i, (n, p) in enumerate(procs.items())]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
        return max(proc.wait() for proc in procs.values())
    except KeyboardInterrupt:
        for proc in procs.values():
            proc.terminate()
        return 0
