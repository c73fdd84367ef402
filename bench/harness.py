"""Runs every benchmark module, writes one JSON file and prints a table (see bench/run)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import cold_start  # noqa: E402
import lifecycle  # noqa: E402
import llamacpp  # noqa: E402
import prefetch  # noqa: E402
import scaling  # noqa: E402
import top  # noqa: E402
from common import remove_pods  # noqa: E402

MODULES = (cold_start, lifecycle, llamacpp, prefetch, scaling, top)


def main(out: Path) -> int:
    began = time.time()
    entries = []
    for module in MODULES:
        print(f"bench: {module.__name__} …", file=sys.stderr, flush=True)
        entries += module.run()
    remove_pods()
    podman = subprocess.run(["podman", "--version"], capture_output=True, text=True).stdout.strip()
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began)),
        "host": platform.node(),
        "python": platform.python_version(),
        "podman": podman,
        "docker": subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
        ).stdout.strip(),
        "seconds": round(time.time() - began),
        "entries": entries,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    for e in entries:
        base = e["baseline"]["median"] if e["baseline"] else "-"
        ratio = e["ratio"] if e["ratio"] is not None else "-"
        verdict = "info" if e["pass"] is None else "PASS" if e["pass"] else "MISS"
        print(
            f"{verdict}  {e['measure']:<86} {e['airpods']['median']:>9} {e['unit']:<8}"
            f" base {base!s:>9}  ratio {ratio!s:>6}  target {e['target']}"
        )
    print(f"wrote {out}")
    return 0 if all(e["pass"] is not False for e in entries) else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
