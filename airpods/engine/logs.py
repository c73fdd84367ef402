"""`podman logs` (or docker's) for one container as is, or several interleaved with a service
prefix; every line passes redact.redact (a secret a service prints shows as ********)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Mapping

from airpods.engine.base import Engine
from airpods.engine.early import cli_env
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
            env=cli_env(),
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
                try:
                    sys.stdout.write(prefix + redact(line))
                    sys.stdout.flush()
                except BrokenPipeError:  # the reader went away (`| head`): stop every stream
                    reader_gone.set()
                    for other in procs.values():
                        other.terminate()
                    return

    reader_gone = threading.Event()

    def watch_reader() -> None:
        """Following, a closed pipe shows only on the next write, which may never come: poll it."""
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLERR | select.POLLHUP)
        while not reader_gone.is_set() and any(p.poll() is None for p in procs.values()):
            if poller.poll(500):
                reader_gone.set()
                for proc in procs.values():
                    proc.terminate()

    threads = [threading.Thread(target=pump, args=(i, n, p), daemon=True) for i, (n, p) in enumerate(procs.items())]
    if follow and _is_pipe(sys.stdout):
        threads.append(threading.Thread(target=watch_reader, daemon=True))
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
        codes = [proc.wait() for proc in procs.values()]
        if reader_gone.is_set():
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
            return 0
        return max(codes)
    except KeyboardInterrupt:
        for proc in procs.values():
            proc.terminate()
        return 0


def _is_pipe(stream: object) -> bool:
    import os
    import stat

    try:
        return stat.S_ISFIFO(os.fstat(stream.fileno()).st_mode)  # type: ignore[attr-defined]
    except (OSError, ValueError, AttributeError):
        return False
