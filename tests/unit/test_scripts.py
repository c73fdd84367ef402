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


def test_export_lines_as_printf_q_writes_them_pass():
    lines = subprocess.run(
        ["bash", "-c", 'printf "export %s=%q\\n" A "podman docker" AIRPODS_RIG /var/cache/airpods-test/rig B "a\'b"'],
        capture_output=True,
        text=True,
    ).stdout
    assert check_exports(lines).returncode == 0, lines


@pytest.mark.parametrize(
    "noise",
    [
        "Selecting previously unselected package debootstrap.\n",  # what apt printed (the failure)
        "export A=1; touch /tmp/x\n",  # anything after a plain value would be run by eval
        "export A=$(id)\n",
        "export A=`id`\n",
        "export A='x'; id\n",
        "(Reading database ... 5%\n",
        "rig: building ghcr.io/ggml-org/llama.cpp:server\n",
        "exported A=1\n",
        "export 1A=x\n",
        "",
    ],
)
def test_anything_else_is_refused_and_shown(noise):
    done = check_exports("export A=x\n" + noise if noise else "")
    assert done.returncode == 1
    assert noise.strip() in done.stderr


def debian_mirror(tmp_path, files: dict[str, str], os_release: str = "ID=debian\nVERSION_CODENAME=bookworm\n"):
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (apt / name).write_text(text)
    (tmp_path / "os-release").write_text(os_release)
    return subprocess.run(
        [REPO / "scripts/lib/debian-mirror", "--apt-dir", apt, "--os-release", tmp_path / "os-release"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )


DEBIAN = "Types: deb\nURIs: http://mirror.test/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
SIGNED = "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"sources.list.d/debian.sources": DEBIAN + SIGNED}, "http://mirror.test/debian"),
        # Docker's own repository (Suites: bookworm, Components: stable) never wins
        (
            {
                "sources.list.d/docker.sources": "Types: deb\nURIs: https://docker.test/linux/debian\n"
                "Suites: bookworm\nComponents: stable\n",
                "sources.list": "deb http://mirror.test/debian bookworm main\n",
            },
            "http://mirror.test/debian",
        ),
        # a third-party 'main' that sorts first loses to Debian's keyring
        (
            {
                "sources.list.d/adoptium.sources": "Types: deb\nURIs: https://adoptium.test/deb\nSuites: bookworm\n"
                "Components: main\n",
                "sources.list.d/zz-debian.sources": DEBIAN + SIGNED,
            },
            "http://mirror.test/debian",
        ),
        # disabled stanzas (any spelling), deb-src only, comments, lower-case fields, CRLF
        (
            {
                "sources.list.d/debian.sources": "Types: deb\nURIs: http://off.test/debian\nSuites: bookworm\n"
                "Components: main\nEnabled: False\n\n"
                "Types: deb-src\nURIs: http://src.test/debian\nSuites: bookworm\nComponents: main\n\n"
                "# Types: deb\r\ntypes: deb\r\nuris: http://mirror.test/debian/\r\nsuites: bookworm\r\n"
                "components: main contrib\r\n",
            },
            "http://mirror.test/debian",
        ),
        # one-line format with an options block of several words
        (
            {"sources.list": "deb [arch=amd64 signed-by=/k/x.gpg] http://mirror.test/debian bookworm main\n"},
            "http://mirror.test/debian",
        ),
        ({"sources.list": "deb [ arch=amd64 ] http://mirror.test/debian bookworm main\n"}, "http://mirror.test/debian"),
        # continuation lines and several URIs
        (
            {
                "sources.list.d/debian.sources": "Types: deb\nURIs: http://mirror.test/debian\n http://two.test/debian\n"
                "Suites:\n bookworm\nComponents: main\n"
            },
            "http://mirror.test/debian",
        ),
    ],
)
def test_the_debian_mirror_comes_from_the_machines_apt_sources(tmp_path, files, expected):
    done = debian_mirror(tmp_path, files)
    assert (done.returncode, done.stdout.strip()) == (0, expected), done.stderr


@pytest.mark.parametrize(
    ("files", "os_release", "said"),
    [
        ({"sources.list": "deb http://mirror.test/debian trixie main\n"}, None, "no enabled 'deb' source of bookworm"),
        (
            {"sources.list": "deb http://archive.test/ubuntu noble main\n"},
            "ID=ubuntu\nVERSION_CODENAME=noble\n",
            "not Debian",
        ),
        ({}, "ID=debian\n", "not Debian with a release codename"),  # sid/testing without a codename
    ],
)
def test_no_debian_mirror_is_an_error_that_says_how_to_name_one(tmp_path, files, os_release, said):
    done = debian_mirror(tmp_path, files, *([os_release] if os_release else []))
    assert done.returncode == 1 and done.stdout == ""
    assert said in done.stderr and "AIRPODS_DEBIAN_MIRROR" in done.stderr


def test_a_named_mirror_wins(tmp_path):
    named = subprocess.run(
        [REPO / "scripts/lib/debian-mirror", "--apt-dir", tmp_path],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "AIRPODS_DEBIAN_MIRROR": "http://mirror.test/debian"},
    )
    assert named.stdout.strip() == "http://mirror.test/debian"


def project_files() -> list[Path]:
    """The files of the project: git's tracked and new (not ignored) files in a checkout, else
    every file but build and cache folders (an unpacked source archive)."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
    )
    if listed.returncode == 0:
        return [REPO / name for name in listed.stdout.decode().split("\0") if name]
    skip = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "build", "dist"}
    return [p for p in REPO.rglob("*") if p.is_file() and not set(p.relative_to(REPO).parts) & skip]


def test_no_package_archive_host_is_written_in_the_project():
    """Mirrors come from the machine's configuration (scripts/lib/debian-mirror, pip's and
    npm's own config): no package archive's or registry's host is written in any file."""
    hosts = re.compile(
        r"deb\.debian\.org|security\.debian\.org|archive\.ubuntu\.com|pypi\.org|pythonhosted\.org|npmjs\.(org|com)"
    )
    found = []
    for path in project_files():
        if path == THIS or not path.is_file():
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        found += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in hosts.finditer(text)]
    assert found == []


def test_the_gpu_bare_check_dry_mode_writes_its_folder(tmp_path):
    """scripts/gpu-bare-check runs for real on a GPU machine (issue 36 §3); its dry mode runs
    anywhere: the commands printed (one CUDA architecture, from the fake compute capability),
    the recorded log for each server, fit and detection for real, and the summary."""
    import json
    import subprocess
    import sys

    from tests.rig.tiny_gguf import write_tiny_model

    script = Path(__file__).parents[2] / "scripts" / "gpu-bare-check"
    model = write_tiny_model(tmp_path / "tiny.gguf")
    out = tmp_path / "out"
    argv = [sys.executable, str(script), "--dry", "--model", str(model), "--out", str(out), "--root", str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "-DCMAKE_CUDA_ARCHITECTURES=90" in done.stdout and "-ngl 999" in done.stdout
    assert "--no-index --find-links" in done.stdout and "--verbose" in done.stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "fit-tiny-ctx2048.json",
        "fit-tiny-ctx8192.json",
        "gpu.json",
        "server-tiny-ctx2048.log",
        "server-tiny-ctx8192.log",
        "summary.json",
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry"] and summary["cuda_architectures"] == "90" and len(summary["runs"]) == 2
    first = summary["runs"][0]
    assert (first["model"], first["ctx"], first["where"]) == ("tiny.gguf", 2048, "CUDA0")
    assert first["total"]["server_mib"] == 62.5 + 64.0 + 104.0  # the recorded log's CUDA0 buffers
    assert first["kv"]["fit_mib"] > 0 and isinstance(first["total"]["diff_percent"], float)
    assert json.loads((out / "gpu.json").read_text())["gpu"] == "no GPU found: CPU images"
    bad = subprocess.run([sys.executable, str(script), "--out", str(out), "--model", str(model)], capture_output=True)
    assert bad.returncode == 2  # no --sdist outside --dry
