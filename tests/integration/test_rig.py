"""The test rig's contract with scripts/test: `scripts/rig up` prints export lines and nothing
else, whatever it runs (apt, podman, builds), because its output is evaluated as shell."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXPORT = re.compile(r"^export ([A-Za-z_][A-Za-z0-9_]*)=")


def test_rig_up_prints_only_exports_and_they_name_the_rig(rig_owner):
    done = subprocess.run(
        [REPO / "scripts/rig", "up"], capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines and all(EXPORT.match(line) for line in lines), done.stdout
    names = {EXPORT.match(line).group(1) for line in lines}
    assert {"CONTAINERS_CONF", "CONTAINERS_REGISTRIES_CONF", "AIRPODS_RIG", "AIRPODS_RIG_REGISTRY"} <= names
    # the same lines pass scripts/test's guard, and evaluate to this run's rig
    check = subprocess.run([REPO / "scripts/lib/check-exports"], input=done.stdout, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    shown = subprocess.run(["bash", "-c", done.stdout + '\nprintf %s "$AIRPODS_RIG"'], capture_output=True, text=True)
    assert shown.stdout == os.environ["AIRPODS_RIG"]
