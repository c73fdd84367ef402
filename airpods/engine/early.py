"""An engine listing started before it is asked for: `airpods status` starts its `ps` as soon as
it knows the engine, so the client runs while Python imports and derives the stack (about
60 ms of a ~230 ms status, measured with bench/lifecycle.py on 2 cores). `run_cli` takes the
result when the same command line is run; one never asked for ends by itself (a listing only
reads).

Light on purpose (subprocess, os, shutil, labels): it runs before the engine modules load."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from airpods.labels import MANAGED_FILTER

# The one listing of airpods' containers each engine's `containers()` runs (podman: every
# field in one call, --pod for PodName; docker: the IDs, then one `container inspect`).
LISTINGS: dict[str, tuple[str, ...]] = {
    "podman": ("ps", "--all", "--pod", "--format", "json", "--filter", MANAGED_FILTER),
    "docker": ("ps", "-aq", "--filter", f"label={MANAGED_FILTER.split('=', 1)[1]}"),
}

_started: dict[tuple[str, ...], subprocess.Popen[str]] = {}


def cli_env() -> dict[str, str]:
    """The environment every engine command runs with: this process's own, with Podman 5's
    cgroups-v1 deprecation warning switched off. Podman prints it on stderr for every command
    on a cgroup v1 host and names this variable itself; unswitched, it lands in what `logs`
    shows and in every error's stderr tail. Docker ignores it."""
    return {**os.environ, "PODMAN_IGNORE_CGROUPSV1_WARNING": "1"}


def start_listing(engine: str) -> None:
    """Start `engine`'s container listing now (nothing when its client is not installed: the
    engine itself then says so)."""
    binary = shutil.which(engine)
    if binary is None or engine not in LISTINGS:
        return
    argv = (binary, *LISTINGS[engine])
    try:
        _started[argv] = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=cli_env(),
        )
    except OSError:
        pass  # run normally later, with the engine's own error


def take(argv: Sequence[str]) -> subprocess.Popen[str] | None:
    """The process started early for exactly this command line, once; None if there is none."""
    return _started.pop(tuple(argv), None)
