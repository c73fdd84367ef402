"""`start`, `pull` and Ctrl-C on the in-memory engine (tests/memory_engine.py): the real use
cases, asserting on the state they leave. Services publish no port here (host 0), so a running
container is ready; probes are the end-to-end tests' business."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from airpods.engine.errors import EngineError
from airpods.errors import Interrupted, RuntimeFailure, UsageError
from airpods.plan import Step
from airpods.stack.model import Mount
from airpods.usecases import pull as pulling
from airpods.usecases import start as starting
from tests.memory_engine import MemoryEngine
from tests.unit.helpers import stack_of

UNPUBLISHED = """
[services.ollama]
ports = [{ host = 0, container = 11434 }]
[services.open-webui]
ports = [{ host = 0, container = 8080 }]
[services.llamacpp]
ports = [{ host = 0, container = 8080 }]
"""
ALL = {"ollama", "open-webui", "llamacpp"}


class Quiet:
    """A reporter that keeps what it was told."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, step: Step) -> None:
        self.lines.append(step.why)

    def pulled(self, image: str, seconds: float, size: int | None) -> None:
        self.lines.append(f"pulled {image}")

    def waiting(self, service: str, elapsed: float, last: str) -> None:
        pass

    def line(self, text: str) -> None:
        self.lines.append(text)

    def download(self, name: str, total: int | None) -> Callable[[int], None]:
        return lambda done: None


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A private HOME and state folder: start writes the stack's key and preset files there."""
    for name, sub in (("HOME", "home"), ("XDG_STATE_HOME", "state"), ("XDG_CONFIG_HOME", "config")):
        monkeypatch.setenv(name, str(tmp_path / sub))
    return tmp_path


@pytest.fixture
def stack(home):
    return stack_of(home, UNPUBLISHED)


@pytest.fixture
def engine(home, stack) -> MemoryEngine:
    return MemoryEngine(home / "volumes", registry={image: f"sha256:{n}-a" for n, image in enumerate(stack.images)})


def start(stack, engine: MemoryEngine, **options) -> starting.StartResult:
    return starting.start(lambda present: stack, engine, Quiet(), **options)


def start_interrupted(stack, engine: MemoryEngine, at: Callable[[Step], bool]) -> Interrupted:
    """Start, with Ctrl-C arriving in the main thread when a worker is about to run a step `at`
    picks (whatever SIGINT disposition the suite inherited)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def interrupt(step: Step) -> None:
        if at(step):
            os.kill(os.getpid(), signal.SIGINT)
            threading.Event().wait(0.5)  # the main thread handles it while this worker is busy

    engine.on_execute = interrupt
    try:
        with pytest.raises(Interrupted) as raised:
            start(stack, engine)
    finally:
        signal.signal(signal.SIGINT, previous)
    return raised.value


def ids(engine: MemoryEngine) -> dict[str, str]:
    return {c.name: c.id for c in engine.containers_by_name.values()}


def test_a_first_start_creates_the_whole_stack_and_a_second_changes_nothing(stack, engine):
    first = start(stack, engine)
    assert first.ok and {r.service for r in first.readiness} == ALL
    made = engine.state()
    assert set(made["pods"]) == ALL and made["networks"] == [stack.network]
    assert set(made["volumes"]) == set(stack.volumes) and set(made["secrets"]) == {s.name for s in stack.secrets}
    before = ids(engine)
    again = start(stack, engine)
    assert again.ok and not [s for s in again.plan.steps if not s.on_host] and ids(engine) == before
    assert engine.state() == made


def test_a_container_the_engine_refuses_fails_only_its_service(stack, engine):
    engine.failures[("container", "ollama-0")] = EngineError(
        ["podman", "run"], 125, "Error: crun: no space left on device"
    )
    result = start(stack, engine)
    failed = {r.service: r.detail for r in result.readiness if not r.ready}
    assert failed == {"ollama": "podman could not create its container: Error: crun: no space left on device"}
    assert set(engine.state()["pods"]) == ALL - {"ollama"}  # its half-made pod is gone, the others run
    assert result.rolled_back == ["ollama"]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), ValueError("unexpected")])
def test_an_unexpected_error_in_one_service_fails_that_service_alone(stack, engine, error):
    """Any exception in a service's worker used to roll back every pod of the run."""
    engine.failures[("pod", "llamacpp")] = error
    result = start(stack, engine)
    failed = {r.service: r.detail for r in result.readiness if not r.ready}
    assert list(failed) == ["llamacpp"] and str(error) in failed["llamacpp"] and "its pod" in failed["llamacpp"]
    assert set(engine.state()["pods"]) == {"ollama", "open-webui"}


def test_a_container_that_exits_fails_with_its_exit_code_and_keep_failed_keeps_it(stack, engine):
    engine.exits["llamacpp-0"] = 3
    result = start(stack, engine)
    failed = {r.service: r for r in result.readiness if not r.ready}
    assert list(failed) == ["llamacpp"] and failed["llamacpp"].exit_code == 3
    assert "exit code 3" in failed["llamacpp"].detail
    assert set(engine.state()["pods"]) == {"ollama", "open-webui"}
    engine.exits["llamacpp-0"] = 3
    kept = start(stack, engine, keep_failed=True)
    assert not kept.ok and set(engine.state()["pods"]) == ALL


def test_an_image_that_cannot_be_pulled_fails_only_the_services_that_need_it(stack, engine):
    llama = stack.service("llamacpp").image
    del engine.registry[llama]
    result = start(stack, engine)
    failed = {r.service: r.detail for r in result.readiness if not r.ready}
    assert list(failed) == ["llamacpp"] and f"its image {llama} could not be pulled" in failed["llamacpp"]
    assert set(engine.state()["pods"]) == {"ollama", "open-webui"}
    assert [s.name for s in result.stack.services] == ["ollama", "open-webui", "llamacpp"]  # shown with its URL


def test_pull_then_start_recreates_exactly_the_service_whose_image_changed(stack, engine):
    assert start(stack, engine).ok
    before = ids(engine)
    engine.registry[stack.service("ollama").image] = "sha256:new"
    pulled = {p.image: p for p in pulling.pull(stack, engine, Quiet())}
    ollama = pulled[stack.service("ollama").image]
    assert (ollama.outcome, ollama.to_recreate) == ("updated", ("ollama",))
    assert {p.outcome for image, p in pulled.items() if image != ollama.image} == {"unchanged"}
    result = start(stack, engine)
    assert result.ok
    after = ids(engine)
    assert [name for name in after if after[name] != before[name]] == ["ollama-0"]
    assert engine.containers_by_name["ollama-0"].image_id == "sha256:new"


def test_ctrl_c_removes_the_pods_and_secrets_the_run_created_and_says_what_stays(stack, engine, monkeypatch):
    """Ctrl-C arrives in the main thread while the services' workers create their pods."""
    creating = threading.Event()

    def first_llamacpp_container(step: Step) -> bool:
        if step.kind == "container" and step.service == "llamacpp" and not creating.is_set():
            creating.set()
            return True
        return False

    raised = start_interrupted(stack, engine, first_llamacpp_container)
    left = engine.state()
    assert left["pods"] == [] and left["containers"] == {} and left["secrets"] == []
    assert left["networks"] == [stack.network] and set(left["volumes"]) == set(stack.volumes)  # said in README
    assert "removed what this start created: pod " in raised.message
    assert all(f"secret {s.name}" in raised.message for s in stack.secrets)


def test_ctrl_c_leaves_what_an_earlier_start_created(stack, engine):
    assert start(stack, engine).ok
    earlier = engine.state()
    engine.pods_by_name.pop("llamacpp")  # it went away: this start recreates it alone
    engine.containers_by_name.pop("llamacpp-0")
    start_interrupted(stack, engine, lambda step: step.kind == "container")
    left = engine.state()
    assert left["pods"] == ["ollama", "open-webui"] and left["secrets"] == earlier["secrets"]


def test_the_dry_run_plan_changes_nothing_and_says_every_refusal(stack, engine, home):
    assert start(stack, engine).ok
    engine.pods_by_name.pop("llamacpp")  # gone: start would recreate it
    engine.containers_by_name.pop("llamacpp-0")
    before = engine.state()
    missing = home / "not-made"
    limited = replace(
        stack,
        services=tuple(
            replace(s, memory="2g", mounts=(*s.mounts, Mount(str(missing), "/data", "rw", False, ())))
            if s.name == "llamacpp"
            else s
            for s in stack.services
        ),
    )
    engine.limits = "this Podman cannot limit memory (cgroup v1)"
    shown, plan = starting.plan_start(lambda present: limited, engine)
    assert engine.state() == before
    refusals = [note for note in plan.notes if note.startswith("start would refuse")]
    assert len(refusals) == 2 and "resources set" in refusals[0] and str(missing) in refusals[1]
    with pytest.raises(RuntimeFailure) as refused:
        start(limited, engine)
    assert "resources set" in refused.value.message and engine.state() == before


def test_a_declared_model_is_fetched_once_and_a_failed_fetch_fails_only_its_router(home, engine):
    from tests.rig.tiny_gguf import write_tiny_model

    model = write_tiny_model(home / "tiny.gguf")
    declared = stack_of(home, UNPUBLISHED + f'[services.llamacpp.models.tiny]\nsource = "{model}"\n')
    first = start(declared, engine)
    assert first.ok and [s.target for s in first.plan.steps if s.kind == "fetch"] == ["tiny"]
    assert (engine.root / "airpods_llamacpp_models" / "tiny.gguf").read_bytes() == model.read_bytes()
    preset_file = Path(next(m.source for m in declared.service("llamacpp").mounts if m.target == "/presets"))
    assert "[tiny]" in (preset_file / "models.ini").read_text()
    again = start(declared, engine)
    assert again.ok and not [s for s in again.plan.steps if s.kind == "fetch"]  # the store has it
    _, shown = starting.plan_start(lambda present: declared, engine)  # the dry run reads the store too
    assert not [s for s in shown.steps if s.kind == "fetch"]

    engine.remove_pod("llamacpp")
    before = engine.state()
    missing = stack_of(home, UNPUBLISHED + f'[services.llamacpp.models.gone]\nsource = "{home / "gone.gguf"}"\n')
    with pytest.raises(UsageError, match="model gone \\(services.llamacpp.models.gone.source\\)"):
        start(missing, engine)  # the config names a file that is not there: refused before any effect
    assert engine.state() == before

    junk = home / "junk.gguf"
    junk.write_bytes(b"not a model at all" * 100)
    broken = stack_of(home, UNPUBLISHED + f'[services.llamacpp.models.junk]\nsource = "{junk}"\n')
    result = start(broken, engine)
    failed = {r.service: r.detail for r in result.readiness if not r.ready}
    assert list(failed) == ["llamacpp"] and "its model junk could not be fetched" in failed["llamacpp"]
    assert set(engine.state()["pods"]) == {"ollama", "open-webui"}


def test_a_rotated_secret_recreates_its_service_and_its_older_value_goes_once_it_runs(home, engine, monkeypatch):
    from airpods.secrets import key_id
    from airpods.stack.build import build_stack
    from tests.unit.helpers import KEY, NO_GPU, load_text

    config = load_text(home, UNPUBLISHED + '[services.open-webui.secrets]\nMY_TOKEN = "env:MY_TOKEN"\n').config

    def stack_with(value: str):
        monkeypatch.setenv("MY_TOKEN", value)
        return build_stack(config, NO_GPU, (), key_id(KEY), secret_ids={"env:MY_TOKEN": key_id(value)})

    old = stack_with("first-value")
    assert start(old, engine).ok
    old_secret = next(s.name for s in old.secrets if s.source == "env:MY_TOKEN")
    assert engine.secrets[old_secret][0] == "first-value"
    before = ids(engine)
    new = stack_with("second-value")
    result = start(new, engine)
    assert result.ok and [s.names for s in result.plan.steps if s.kind == "prune"] == [(old_secret,)]
    new_secret = next(s.name for s in new.secrets if s.source == "env:MY_TOKEN")
    assert old_secret not in engine.secrets and engine.secrets[new_secret][0] == "second-value"
    after = ids(engine)
    assert [name for name in after if after[name] != before[name]] == ["open-webui-0"]


def test_the_lock_is_held_around_engine_changes_and_free_during_pulls_and_waits(stack, engine, monkeypatch):
    """A second command (here: another thread with its own lock file handle, as another
    process has) can take the lifecycle lock while start pulls and while its services get
    ready, never while start creates pods and containers."""
    from airpods import apply
    from airpods.state import LifecycleLock

    probing = threading.Lock()  # the pulls' threads probe at once: one probe must not see another's

    def free() -> bool:
        with probing:
            other = LifecycleLock(0, stack.project)
            try:
                other.acquire()
            except RuntimeFailure:
                return False
            other.release()
            return True

    seen: dict[str, list[bool]] = {}

    def look(step: Step) -> None:
        seen.setdefault(step.kind, []).append(free())

    real_wait = apply.wait_one

    def waiting(*args, **kwargs):  # free once every service's pod and container are made
        deadline = time.monotonic() + 5
        while not free() and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.setdefault("wait", []).append(free())
        return real_wait(*args, **kwargs)

    engine.images.clear()  # every image is pulled
    engine.on_execute = look
    monkeypatch.setattr(apply, "wait_one", waiting)
    assert start(stack, engine).ok
    assert seen["pull"] and all(seen["pull"]) and seen["wait"] and all(seen["wait"])
    assert not any(seen["pod"] + seen["container"] + seen["network"] + seen["volume"])
    assert free()  # and once start is done


def test_an_update_whose_image_fails_is_rolled_back_to_its_image_and_data(stack, engine, home):
    """The new image exits after half-migrating the service's data: start snapshots the data
    before, then brings back the image it ran (kept under an airpods name) and the data; the
    service runs again, the failure is said, and the next plain start leaves it alone."""
    from airpods.snapshots import failed_updates, snapshot_folder

    assert start(stack, engine).ok
    ollama = stack.service("ollama")
    (volume,) = [m.source for m in ollama.mounts if m.named]
    (engine.root / volume / "db").write_text("before")
    old_id = engine.containers_by_name["ollama-0"].image_id
    engine.registry[ollama.image] = "sha256:broken"
    engine.bad_images["sha256:broken"] = 1

    def migrate(step: Step) -> None:  # what a failing database migration leaves behind
        new = step.spec is not None and step.spec.run_image is None  # not the rollback's container
        if (
            step.kind == "container"
            and step.service == "ollama"
            and new
            and engine.images[ollama.image] == "sha256:broken"
        ):
            (engine.root / volume / "db").write_text("half-migrated")

    pulling.pull(stack, engine, Quiet())
    engine.on_execute = migrate
    result = start(stack, engine)
    (failed,) = [r for r in result.readiness if not r.ready]
    assert failed.service == "ollama" and failed.detail.startswith(f"rolled back ollama to {old_id[:19]}")
    assert (
        "the new image sha256:broken failed" in failed.detail and "restored from the snapshot taken at" in failed.detail
    )
    running = engine.containers_by_name["ollama-0"]
    assert (running.state, running.image_id) == ("running", old_id)  # it runs again, on the image it ran
    assert (engine.root / volume / "db").read_text() == "before"  # the data as it was
    assert len(list(snapshot_folder(stack.project, "ollama").glob("*.tar"))) == 1
    assert failed_updates(stack.project)["ollama"][0] == "sha256:broken"
    assert "ollama" in engine.state()["pods"] and not [v for v in engine.volumes if ".restoring-" in v]
    again = start(stack, engine)  # the broken image is not tried again by a plain start
    assert again.ok and engine.containers_by_name["ollama-0"].image_id == old_id
    assert any("failed at" in note and "airpods update ollama" in note for note in again.plan.notes)


def test_without_rollback_a_failed_update_fails_as_before(stack, engine):
    assert start(stack, engine).ok
    ollama = stack.service("ollama")
    engine.registry[ollama.image] = "sha256:broken"
    engine.bad_images["sha256:broken"] = 1
    pulling.pull(stack, engine, Quiet())
    result = start(stack, engine, rollback=False, snapshot=False)
    assert [r.service for r in result.readiness if not r.ready] == ["ollama"]
    assert "ollama" not in engine.state()["pods"]  # removed, as any failed service


def test_ctrl_c_during_an_update_keeps_the_old_image_and_the_snapshot(stack, engine):
    from airpods.plan import kept_image
    from airpods.snapshots import snapshot_folder

    assert start(stack, engine).ok
    ollama = stack.service("ollama")
    old_id = engine.containers_by_name["ollama-0"].image_id
    engine.registry[ollama.image] = "sha256:new"
    pulling.pull(stack, engine, Quiet())
    start_interrupted(stack, engine, lambda step: step.kind == "container" and step.service == "ollama")
    assert engine.images[kept_image(ollama)] == old_id  # what a rollback or `airpods start` needs
    assert len(list(snapshot_folder(stack.project, "ollama").glob("*.tar"))) == 1


def test_a_model_nobody_can_load_is_the_configs_error_before_any_effect(home, engine):
    from airpods.errors import ConfigError

    ghost = stack_of(home, UNPUBLISHED + "[services.llamacpp.models.ghost]\nctx_size = 512\n")
    assert start(stack_of(home, UNPUBLISHED), engine).ok
    engine.remove_pod("llamacpp")
    before = engine.state()
    with pytest.raises(ConfigError) as refused:
        start(ghost, engine)
    assert refused.value.key == "services.llamacpp.models.ghost" and "holds no ghost.gguf" in refused.value.message
    assert engine.state() == before
    (engine.root / "airpods_llamacpp_models" / "ghost.gguf").write_bytes(b"GGUF")  # there now: it starts
    assert start(ghost, engine).ok
