"""The project's shell scripts' own guarantees, on real inputs (no engine needed)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
THIS = Path(__file__).resolve()


def check_exports(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([REPO / "scripts/lib/check-exports"], input=text, capture_output=True, text=True)


def test_export_lines_pass():
    assert check_exports("export A='x'\nexport AIRPODS_RIG=/var/cache/airpods-test/rig\n").returncode == 0


@pytest.mark.parametrize(
    "noise",
    [
        "Selecting previously unselected package debootstrap.\n",  # what apt printed (the failure)
        "(Reading database ... 5%\n",
        "rig: building ghcr.io/ggml-org/llama.cpp:server\n",
        "exported A=1\n",
        "export 1A=x\n",
        "",
    ],
)
def test_anything_else_is_refused_and_shown(noise):
    done = check_exports("export A='x'\n" + noise if noise else "")
    assert done.returncode == 1
    assert noise.strip() in done.stderr


def test_the_debian_mirror_comes_from_the_machines_apt_sources(tmp_path):
    """What scripts/lib/debian-mirror prints is read from apt's configuration, or named by the
    user; never a host written in the project."""
    named = subprocess.run(
        [REPO / "scripts/lib/debian-mirror"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "AIRPODS_DEBIAN_MIRROR": "http://mirror.example/debian"},
    )
    assert named.stdout.strip() == "http://mirror.example/debian"


SKIP_DIRS = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "build", "dist"}


def test_no_package_archive_host_is_written_in_the_project():
    """Mirrors come from the machine's configuration (scripts/lib/debian-mirror, pip's and
    npm's own config): no package archive's or registry's host is written in any file."""
    hosts = re.compile(
        r"deb\.debian\.org|security\.debian\.org|archive\.ubuntu\.com|pypi\.org|pythonhosted\.org|npmjs\.(org|com)"
    )
    found = []
    for path in REPO.rglob("*"):
        parts = set(path.relative_to(REPO).parts)
        if path.is_dir() or parts & SKIP_DIRS or any(p.endswith(".egg-info") for p in parts) or path == THIS:
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        found += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in hosts.finditer(text)]
    assert found == []
