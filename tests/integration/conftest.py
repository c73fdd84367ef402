"""Integration fixtures: the real airpods CLI against real Podman (and real Docker Engine) on the
offline rig.

The rig (scripts/rig, run by scripts/test) serves the real image names from a loopback registry
and gives the tests a Podman store of their own and, as root, a Docker daemon of their own.
Engine-neutral tests take the `engine` fixture and run once per engine of AIRPODS_TEST_ENGINES
(the rig says which: "podman docker" as root, "podman" for the rootless pass).
Every test starts from nothing airpods-made and leaves nothing behind, even when it fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

MANAGED = "label=io.airpods.managed=true"
ENGINES = tuple(os.environ.get("AIRPODS_TEST_ENGINES", "podman").split())


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check, timeout=timeout)


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def docker_json(*args: str) -> list:
    """`docker … --format '{{json .}}'`: one object a line."""
    out = docker(*args, "--format", "{{json .}}").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def docker_inspect(*names: str) -> list:
    return json.loads(docker("inspect", *names).stdout) if names else []


def pytest_generate_tests(metafunc):
    if "engine" in metafunc.fixturenames:
        metafunc.parametrize("engine", ENGINES, scope="function")


def pytest_collection_modifyitems(config, items):
    """Docker's own tests (the `on_docker` fixture) run where the rig runs its Docker daemon
    (AIRPODS_TEST_ENGINES names docker: the rootful pass); elsewhere (the rootless pass) they
    are deselected, not skipped, as the engine-neutral tests are parametrised on Podman only.
    So are the tests of the rig itself (`rig_owner`): in the rootless pass the rig is root's; and
    the tests that need root's own powers (`as_root`: mounting a small tmpfs)."""
    if "docker" in ENGINES:  # the rootful pass: the tests as a docker-group user wait for the rootless one
        as_user = [item for item in items if "docker_user" in getattr(item, "fixturenames", ())]
        if as_user:
            config.hook.pytest_deselected(items=as_user)
            items[:] = [item for item in items if item not in as_user]
        return
    rootful = ("on_docker", "rig_owner", "as_root")
    docker_only = [item for item in items if set(rootful) & set(getattr(item, "fixturenames", ()))]
    if docker_only:
        config.hook.pytest_deselected(items=docker_only)
        items[:] = [item for item in items if item not in docker_only]


def remove_everything_docker_made() -> None:
    """The Docker twin of remove_everything_airpods_made, in the rig's own dockerd."""
    ids = docker("ps", "-aq", "--filter", MANAGED).stdout.split()
    if ids:
        docker("rm", "--force", *ids, check=False)
    for volume in docker_json("volume", "ls"):
        if volume["Name"].startswith("airpods_") or "io.airpods.managed=true" in (volume.get("Labels") or ""):
            docker("volume", "rm", "--force", volume["Name"], check=False)
    for network in docker_json("network", "ls", "--filter", MANAGED):
        docker("network", "rm", network["Name"], check=False)


def docker_problem() -> str | None:
    """Why the rig's Docker daemon cannot serve the tests here, or None."""
    host = os.environ.get("DOCKER_HOST", "")
    if not shutil.which("docker") or not host.startswith("unix:///run/airpods-test"):
        return "needs the rig's own Docker daemon (scripts/rig up as root exports DOCKER_HOST)"
    if docker("version", check=False, timeout=30).returncode != 0:
        return f"the rig's Docker daemon at {host} does not answer (see $AIRPODS_RIG/../docker/dockerd.log)"
    return None


def podman_json(*args: str):
    out = podman(*args, "--format", "json").stdout.strip()
    return json.loads(out) if out else []


def remove_everything_airpods_made() -> None:
    for pod in podman_json("pod", "ps", "--filter", MANAGED):
        podman("pod", "rm", "--force", "--time", "0", pod["Name"], check=False)
    # Labelled by airpods, or named like its volumes (kube play creates unlabelled ones).
    for volume in podman_json("volume", "ls"):
        if volume["Name"].startswith("airpods_") or (volume.get("Labels") or {}).get("io.airpods.managed"):
            podman("volume", "rm", "--force", volume["Name"], check=False)
    for network in podman_json("network", "ls", "--filter", MANAGED):
        podman("network", "rm", "--force", network.get("name") or network.get("Name"), check=False)
    secrets = podman("secret", "ls", "--format", "{{.Name}}", check=False).stdout.split()  # 4.3: no json
    stale = [name for name in secrets if name.startswith("airpods-")]
    if stale:
        podman("secret", "rm", *stale, check=False)


def foreign_store() -> str | None:
    """Why Podman's store here is not one the tests may empty, or None. The tests and the bench
    remove every airpods pod, volume and secret they see: only ever in a store that belongs to
    them (the rig's, or the dedicated rootless test user's)."""
    info = podman("info", "--format", "{{.Store.GraphRoot}}", check=False)
    if info.returncode != 0:
        return "podman does not work here"
    root, rig = info.stdout.strip(), os.environ.get("AIRPODS_RIG")
    if (rig and Path(root).is_relative_to(rig)) or os.environ.get("AIRPODS_E2E_DEDICATED_USER") == "1":
        return None
    return (
        f"Podman's store here is {root}, not the rig's: this machine's own airpods pods, volumes and secrets are in it"
    )


@pytest.fixture
def rig_owner(rig: Path) -> Path:
    """The rig, for a test that runs scripts/rig itself (the rootful pass only: see above)."""
    return rig


@pytest.fixture(scope="session")
def rig() -> Path:
    if not os.environ.get("AIRPODS_RIG") or not shutil.which("podman"):
        pytest.skip("needs real Podman and the offline rig: run ./scripts/test")
    if why := foreign_store():
        pytest.skip(f"{why}; run the suite through ./scripts/test")
    return Path(os.environ["AIRPODS_RIG"])


def default_signals() -> None:
    """In a child before exec: SIGINT and SIGQUIT back to their defaults, whatever the suite inherited."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


class Airpods:
    """Runs the real `airpods` command in a subprocess, with this test's config file, on one
    engine (Podman: as a user without a setting gets it, by `auto`; Docker: `--engine docker`)."""

    def __init__(self, tmp_path: Path, name: str = "airpods.toml", engine: str = "podman") -> None:
        self.config = tmp_path / name
        self.engine = engine
        if not self.config.exists():
            self.config.write_text("")

    def ctr(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The engine's own CLI (podman or docker), for what a test checks behind airpods' back."""
        return (docker if self.engine == "docker" else podman)(*args, check=check, timeout=timeout)

    def pods(self) -> set[str]:
        """airpods' pods (Docker: the pod labels of its containers)."""
        if self.engine == "docker":
            out = docker("ps", "-a", "--filter", MANAGED, "--format", '{{.Label "io.airpods.pod"}}').stdout
            return set(out.split())
        return {p["Name"] for p in podman_json("pod", "ps", "--filter", MANAGED)}

    def volumes(self, *filters: str) -> set[str]:
        out = self.ctr("volume", "ls", *(arg for f in filters for arg in ("--filter", f)), "--format", "{{.Name}}")
        return set(out.stdout.split())

    def container_ids(self) -> dict[str, str]:
        """Container name → ID of airpods' containers (not pods' infra containers)."""
        if self.engine == "docker":
            rows = docker("ps", "-a", "--filter", MANAGED, "--format", "{{.Names}} {{.ID}}").stdout.splitlines()
            ids = dict(row.split() for row in rows if row.strip())
            full = {c["Id"][:12]: c["Id"] for c in docker_inspect(*ids.values())}
            return {name: full[short[:12]] for name, short in ids.items()}
        return container_ids()

    def published(self) -> set[tuple[str, int]]:
        """(host address, host port) of every running container's published ports."""
        if self.engine == "docker":
            ids = docker("ps", "-q").stdout.split()
            return {
                (b["HostIp"], int(b["HostPort"]))
                for c in docker_inspect(*ids)
                for binds in (c["NetworkSettings"]["Ports"] or {}).values()
                for b in binds or []
            }
        return {(p["host_ip"], p["host_port"]) for c in podman_json("ps") for p in c.get("Ports") or []}

    def write_config(self, text: str) -> None:
        self.config.write_text(textwrap.dedent(text))

    def argv(self, *args: str) -> list[str]:
        engine = ["--engine", "docker"] if self.engine == "docker" else []
        return [sys.executable, "-m", "airpods", "--config", str(self.config), *engine, *args]

    def __call__(self, *args: str, timeout: float = 300) -> Run:
        done = subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            preexec_fn=default_signals,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """The command in the background. Its SIGINT disposition is reset to the default: a suite
        started as a background job of a non-interactive shell inherits SIGINT *ignored*, and
        a Ctrl-C test would then never interrupt anything."""
        return subprocess.Popen(
            self.argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
            preexec_fn=default_signals,
        )


@pytest.fixture
def engine(request) -> str:
    """The engine an engine-neutral test runs on (parametrised by pytest_generate_tests)."""
    if request.param == "docker" and (why := docker_problem()):
        pytest.skip(why)
    return request.param


@pytest.fixture
def airpods(rig, tmp_path, request) -> Airpods:
    engine = request.getfixturevalue("engine") if "engine" in request.fixturenames else "podman"
    clean = remove_everything_docker_made if engine == "docker" else remove_everything_airpods_made
    clean()
    yield Airpods(tmp_path, engine=engine)
    failed = getattr(request.node, "rep_call_failed", False)
    if failed:
        _save_artifacts(request.node.name, engine)
    if not (failed and os.environ.get("AIRPODS_E2E_KEEP_FAILED") == "1"):
        clean()


def artifacts_folder() -> Path:
    """Where a failed test's artifacts go: $AIRPODS_E2E_ARTIFACTS (scripts/test makes one with
    mktemp), else a fresh private folder of this run (never a predictable /tmp path that another
    user could have planted a symlink at)."""
    global _artifacts
    if _artifacts is None:
        import tempfile

        named = os.environ.get("AIRPODS_E2E_ARTIFACTS")
        _artifacts = Path(named) if named else Path(tempfile.mkdtemp(prefix="airpods-e2e-artifacts-"))
        _artifacts.mkdir(mode=0o700, exist_ok=True)
    return _artifacts


_artifacts: Path | None = None


def _save_artifacts(name: str, engine: str = "podman") -> None:
    """On failure: the engine's ps and every airpods container's log, for the CI log reader."""
    out = artifacts_folder() / name
    out.mkdir(exist_ok=True)
    cli = docker if engine == "docker" else podman
    (out / "ps.json").write_text(cli("ps", "-a", "--format", "{{json .}}", check=False).stdout)
    names = cli("ps", "-a", "--filter", MANAGED, "--format", "{{.Names}}", check=False).stdout.split()
    for cname in names:
        logs = cli("logs", cname, check=False)
        (out / f"{cname}.log").write_text(logs.stdout + logs.stderr)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call_failed = report.failed


def eventually(check: Callable[[], object], timeout: float = 30, interval: float = 0.2):
    """Poll until `check()` is truthy (returning it), never a bare sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def container_ids() -> dict[str, str]:
    return {c["Names"][0]: c["Id"] for c in podman_json("ps", "-a", "--filter", MANAGED) if not c.get("IsInfra")}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny real GGUF (llama architecture, random weights), written with the gguf package."""
    from tests.rig.tiny_gguf import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")


def put_in_volume(volume: str, *files: Path, engine: str = "podman") -> None:
    """Copy files into a named volume through podman (rootful or rootless alike), or into a
    volume of the rig's rootful dockerd through its mountpoint."""
    import tarfile
    import tempfile

    if engine == "docker":
        docker("volume", "create", "--label", "io.airpods.managed=true", volume)
        mountpoint = Path(docker("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip())
        for path in files:
            shutil.copyfile(path, mountpoint / path.name)
        return
    if podman("volume", "exists", volume, check=False).returncode != 0:
        podman("volume", "create", "--label", "io.airpods.managed=true", volume)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "files.tar"
        with tarfile.open(archive, "w") as tar:
            for path in files:
                tar.add(path, arcname=path.name)
        podman("volume", "import", volume, str(archive))


@pytest.fixture
def model_volume(airpods, tiny_model) -> str:
    put_in_volume("airpods_llamacpp_models", tiny_model, engine=airpods.engine)
    return "airpods_llamacpp_models"


def openai_env(airpods: Airpods, name: str | None = None) -> dict[str, str]:
    """What `airpods env [NAME]` exports, parsed."""
    import shlex

    done = airpods("env", *([name] if name else []))
    assert done.code == 0, done.err
    pairs = [shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in done.out.splitlines()]
    return dict(pairs)


@pytest.fixture
def as_root() -> None:
    """A test that needs root (it runs in the rootful pass only: see pytest_collection_modifyitems)."""
    assert os.geteuid() == 0, "this test mounts a file system: it runs in the rootful pass"


@pytest.fixture
def small_disk(as_root, tmp_path) -> Iterator[Path]:
    """A 16 MiB tmpfs: a disk that fills up for real (ENOSPC), unmounted afterwards."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


@pytest.fixture
def hub(monkeypatch):
    """A local stand-in for the Hugging Face hub (and a file server), where huggingface_hub and
    URL pulls look (HF_ENDPOINT) for the test's duration."""
    from tests.integration.fake_hub import Hub, serve

    hub = Hub()
    server = serve(hub)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield hub
    hub.released.set()  # a body a failed test left held ends now
    server.shutdown()


def capabilities(airpods: Airpods, container: str) -> tuple[str, str]:
    """(CapEff, NoNewPrivs) of the container's first process, from its /proc/1/status."""
    status = airpods.ctr("exec", container, "cat", "/proc/1/status").stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return fields["CapEff"].strip(), fields["NoNewPrivs"].strip()


def service_env(airpods: Airpods, container: str) -> dict[str, str]:
    """The environment the container's first process runs with (/proc/1/environ): env secrets are
    exported there by the wrapper (engine/env_handover), never in `exec env` or `inspect`."""
    raw = airpods.ctr("exec", container, "cat", "/proc/1/environ").stdout
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
