"""Progress on stderr while start/stop work: a Rich display on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from airpods.plan import Step


def human_size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return f"{value:.1f} GB"


class ConsoleReporter:
    """Implements usecases.common.Reporter."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.live = sys.stderr.isatty() and not quiet  # Rich only on a terminal (its import: ~20 ms)
        self.lock = threading.Lock()
        self.tasks: dict[str, int] = {}
        self.last: dict[str, tuple[str, float]] = {}
        self.progress: Any = None  # rich.progress.Progress, imported only on a terminal

    def __enter__(self) -> ConsoleReporter:
        if self.live:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True, soft_wrap=True),
                transient=False,
            )
            self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.progress is not None:
            self.progress.stop()

    def line(self, text: str) -> None:
        if self.quiet:
            return
        if self.progress is not None:
            self.progress.console.print(text, highlight=False, markup=False)
        else:
            with self.lock:  # one write per line: parallel steps never glue their lines together
                sys.stderr.write(text + "\n")
                sys.stderr.flush()

    def _task(self, key: str, text: str, done: bool = False) -> None:
        assert self.progress is not None
        with self.lock:
            if key not in self.tasks:
                self.tasks[key] = self.progress.add_task(text, total=1)
            self.progress.update(self.tasks[key], description=text, completed=1 if done else 0)

    def step(self, step: Step) -> None:
        if self.progress is not None and step.kind == "pull":
            self._task(step.target, f"pulling {step.target}")
        else:
            self.line(f"→ {step.why}")

    def pulled(self, image: str, seconds: float, size: int | None) -> None:
        text = f"pulled {image} ({human_size(size)}) in {seconds:.1f} s"
        if self.progress is not None:
            self._task(image, text, done=True)
        else:
            self.line(text)

    def waiting(self, service: str, elapsed: float, last: str) -> None:
        text = f"waiting for {service}: {last}"
        if self.progress is not None:
            self._task("wait:" + service, text)
            return
        # Plain output: a line when the answer changes, else every 10 s.
        with self.lock:
            previous = self.last.get(service)
            now = time.monotonic()
            if previous and previous[0] == last and now - previous[1] < 10:
                return
            self.last[service] = (last, now)
        self.line(f"  {text} ({elapsed:.0f} s)")

    def download(self, name: str, total: int | None) -> Callable[[int], None]:
        """Progress of one model file being fetched: `advance(n)` per n bytes (a line with the
        size off a terminal, a task with the percentage on one)."""
        self.line(f"{name}: {human_size(total)}")
        if self.progress is None:
            return lambda n: None
        done = [0]

        def advance(n: int) -> None:
            done[0] += n
            share = f" {done[0] * 100 // total}%" if total else f" {human_size(done[0])}"
            self._task("download:" + name, f"{name}{share}", done=bool(total) and done[0] >= (total or 0))

        return advance

    def finished(self, service: str, ready: bool, detail: str) -> None:
        if self.progress is not None and "wait:" + service in self.tasks:
            self._task("wait:" + service, f"{service}: {detail}", done=True)


class ByteProgress:
    """Byte progress bars on stderr (a line per file off a terminal): `bar = progress(name, total)`,
    then `bar(n)` for every n bytes done."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.progress: Any = None  # rich.progress.Progress, imported only on a terminal

    def __enter__(self) -> ByteProgress:
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, name: str, total: int | None):
        if self.progress is None:
            self.console.print(f"{name}: {human_size(total)}", highlight=False)
            return lambda n: None
        task = self.progress.add_task(name, total=total)
        return lambda n: self.progress.advance(task, n)

    def announce(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)
