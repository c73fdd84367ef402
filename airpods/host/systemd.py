"""The systemd adapter: the one place airpods runs systemctl and loginctl (autostart's units,
the doctor's reboot check). Each answer is the finished command; stdin is never read."""

from __future__ import annotations

import shutil
import subprocess

from airpods.errors import RuntimeFailure


def systemctl(rootless: bool, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """`systemctl [--user] ARGS`. Raises RuntimeFailure where systemctl is not installed."""
    binary = shutil.which("systemctl")
    if not binary:
        raise RuntimeFailure(
            "systemctl is not installed: autostart needs systemd",
            hint="on a machine without systemd, run `airpods start` from its boot scripts",
        )
    argv = [binary, *(["--user"] if rootless else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout_s)


def loginctl(*args: str) -> subprocess.CompletedProcess[str] | None:
    """loginctl's answer, None where it is not installed."""
    if not shutil.which("loginctl"):
        return None
    return subprocess.run(["loginctl", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
