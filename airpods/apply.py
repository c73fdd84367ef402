"""The executor of `start`'s plan: it runs each step as the plan says and decides nothing;
a failure of any kind in a service's steps fails that service alone, and what the run created
is kept so that Ctrl-C can undo it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from airpods.engine.base import Engine
from airpods.engine.errors import EngineError
from airpods.errors import AirpodsError, Interrupted, RuntimeFailure
from airpods.health import ContainerWatch, Readiness, wait_one
from airpods.plan import Plan, Step, service_steps
from airpods.secrets import forget_values
from airpods.stack.model import ServiceSpec, Stack
from airpods.usecases.common import Reporter, rollback, stack_subset


class Execution:
    """One start's walk of its plan: it runs each step as the plan says (no decisions of its
    own) and keeps what the run created (pods per service, secrets), to undo on Ctrl-C and to
    remove a failed service's pods."""

    def __init__(self, engine: Engine, reporter: Reporter, key: str | None, drain_s: float = 60.0) -> None:
        self.engine, self.reporter, self.key, self.drain_s = engine, reporter, key, drain_s
        self.pods: dict[str, list[str]] = {}
        self.secrets: list[str] = []
        self.changed_presets: dict[str, tuple[str, str]] = {}  # router → (its file's text before, after)
        self.loaded: dict[str, list[str]] = {}  # a recreated router → the models it had loaded
        self.cancel = threading.Event()
        self.watch: ContainerWatch | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.creating = 0  # service workers not yet past their engine changes
        self.created = threading.Condition()
        self.stack: Stack | None = None
        self.snapshots: dict[str, Path] = {}  # service → the snapshot this run took of it
        self.reverted: set[str] = set()  # services rolled back to their previous image: they run

    def shared(self, stack: Stack, step: Step, notes: list[str]) -> None:
        """A step of the whole stack: network, volume, secret, orphan pod, volume folders (a
        folder that cannot be made is a note: its service still starts)."""
        self.reporter.step(step)
        if step.kind == "folders":
            notes += self.make_folders(stack, step)
            return
        if step.kind == "secret":
            self.secrets.append(step.target)  # before: one that Ctrl-C interrupts half-made is removed too
        self.engine.execute(step)

    def make_folders(self, stack: Stack, step: Step) -> list[str]:
        from airpods.models.store import ModelStore

        spec = next(s for s in stack.services for m in s.mounts if m.source == step.target and m.folders)
        mount = next(m for m in spec.mounts if m.source == step.target)
        store = ModelStore(self.engine, mount.source, stack.labels, folder=not mount.named, service=spec.name)
        try:
            made, left = store.make_folders(step.names)
        except (RuntimeFailure, OSError) as exc:
            return [f"{spec.name}: could not create its folders in {mount.source}: {exc}"]
        if made:
            self.reporter.line(f"{spec.name}: created {len(made)} folders in {mount.source}: {', '.join(made)}")
        return [f"{spec.name}: folder not created in {mount.source}: {why}" for why in left]

    def fetch(self, stack: Stack, step: Step) -> None:
        from airpods.models.manage import model_store
        from airpods.models.presets import fetch_model

        self.reporter.step(step)
        router = stack.service(step.names[0])
        preset = next(p for p in router.presets if p.name == step.target)
        fetch_model(model_store(stack, self.engine), router.name, preset, self.reporter.download, self.reporter.line)

    def presets(self, stack: Stack, step: Step) -> None:
        from airpods.models.presets import write_presets

        self.changed_presets.update(write_presets(stack_subset(stack, [step.target]), self.engine))

    def services(self, stack: Stack, plan: Plan, created: Callable[[], None] = lambda: None) -> list[Readiness]:
        """Every service's own steps at once, each in its worker; `created` is called (in this
        thread) once every worker is past its engine changes, while the readiness waits go on."""
        self.watch = ContainerWatch(self.engine, stack.project)
        self.stack = stack
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(stack.services)), thread_name_prefix="service")
        self.creating = len(stack.services)
        try:
            futures = [self.pool.submit(self.bring_up, spec, plan) for spec in stack.services]
            with self.created:
                self.created.wait_for(lambda: self.creating == 0)
            created()
            return [f.result() for f in futures]
        except BaseException:
            self.cancel.set()  # the workers stop waiting
            raise
        finally:
            self.join()

    def past_changes(self) -> None:
        """A service worker is done with the engine changes (before its wait, or on failure)."""
        with self.created:
            self.creating -= 1
            self.created.notify_all()

    def join(self) -> None:
        """Wait until every service worker has stopped, whatever further Ctrl-C comes meanwhile
        (a worker may be inside an engine command: what it makes is then recorded, and undone)."""
        while self.pool is not None:
            try:
                self.pool.shutdown(wait=True)
                self.pool = None
            except KeyboardInterrupt:
                self.cancel.set()

    def bring_up(self, spec: ServiceSpec, plan: Plan) -> Readiness:
        """The service's steps up to its wait; whatever fails here fails this service alone
        (an unexpected error too: it is said as the service's failure). A service being updated
        to a new image that fails, or is not ready, is rolled back when its plan says so."""
        doing = "wait for it"
        changing = True
        steps = [s for s in plan.steps if s.service == spec.name and s.kind != "prune"]
        back = next((s for s in steps if s.kind == "rollback"), None)
        result: Readiness | None = None
        removed = False  # the pod it ran before is gone: only then is there anything to roll back
        try:
            for step in steps:
                if self.cancel.is_set():
                    return Readiness(spec.name, False, 0.0, "interrupted")
                if step.kind == "rollback":
                    continue  # only after a failure, below
                if step.kind == "wait":
                    assert self.watch is not None
                    changing = False
                    self.past_changes()
                    result = wait_one(self.engine, self.watch, spec, self.reporter.waiting, self.cancel, self.key)
                    if result.ready and spec.name in self.loaded:
                        self.load_again(spec)
                    break
                if step.kind in ("reload", "drain"):
                    self.router_step(spec, step)
                    continue
                doing = f"create its {step.kind}" if step.kind in ("pod", "container") else f"{step.kind} it"
                self.reporter.step(step)
                if step.kind == "pod":
                    self.pods.setdefault(spec.name, []).append(step.target)  # before: a half-made pod is removed too
                if step.kind == "snapshot":
                    self.snapshot(spec, step)
                elif step.kind == "restore":
                    from airpods.snapshots import restore_snapshot

                    restore_snapshot(self.engine, Path(step.names[0]), spec.labels, self.tool_image())
                else:
                    self.engine.execute(step)
                removed = removed or step.kind == "remove"
            else:
                result = Readiness(spec.name, True, 0.0, "running and unchanged")
        except EngineError as exc:  # the engine's own words, without the whole command line
            why = exc.stderr_tail or f"exit {exc.returncode}"
            result = Readiness(spec.name, False, 0.0, f"{self.engine.name} could not {doing}: {why}")
        except Exception as exc:  # noqa: BLE001 - a failure of any kind stays in its service
            why = exc.message if isinstance(exc, AirpodsError) else f"{type(exc).__name__}: {exc}"
            result = Readiness(spec.name, False, 0.0, f"could not {doing}: {why}")
        finally:
            if changing:
                self.past_changes()
        if result.ready or back is None or not removed or self.cancel.is_set():
            return result
        return self.roll_back(spec, back, result)

    def router_step(self, spec: ServiceSpec, step: Step) -> None:
        """A kept router rereads the preset file this start changed; a running router about to
        be recreated has its requests let finish, and its loaded models kept to load again
        (models/router.py). A router that does not answer is left to its wait."""
        from airpods.models import router

        try:
            if step.kind == "reload" and spec.name in self.changed_presets:
                old, new = self.changed_presets[spec.name]
                router.apply_presets(spec, self.key, old, new, self.drain_s, self.reporter.line, self.cancel.is_set)
            elif step.kind == "drain":
                why = f"its pod is recreated ({step.names[0]})"
                self.loaded[spec.name] = router.before_recreate(
                    spec, self.key, self.drain_s, self.reporter.line, why, self.cancel.is_set
                )
        except router.RouterError as exc:
            self.reporter.line(f"{spec.name}: {exc}")

    def load_again(self, spec: ServiceSpec) -> None:
        from airpods.models import router

        try:
            router.load_again(spec, self.key, self.loaded.pop(spec.name), self.reporter.line)
        except router.RouterError as exc:
            self.reporter.line(f"{spec.name}: could not load its models again: {exc}")

    def snapshot(self, spec: ServiceSpec, step: Step) -> None:
        from airpods.snapshots import take_snapshot

        assert self.stack is not None
        self.snapshots[spec.name] = take_snapshot(
            self.engine, self.stack, spec.name, list(step.names), self.tool_image()
        )

    def tool_image(self) -> str:
        from airpods.backup import tool_image

        assert self.stack is not None
        return tool_image(self.stack, self.engine)

    def roll_back(self, spec: ServiceSpec, step: Step, failed: Readiness) -> Readiness:
        """The service failed on its new image: remove what this run made of it, put back the
        data it had (the snapshot this run took, if the new image ran), run the kept image with
        the same config, wait for it. Its failure stays a failure (the update failed), said
        with what was done; the service runs again, so its pods stay."""
        from airpods.plan import short_id
        from airpods.snapshots import remember_failed, restore_snapshot, taken_at

        kept, old_id, _ = step.names
        self.reporter.line(f"{spec.name}: the new image failed ({failed.detail}); rolling back to {short_id(old_id)}")
        try:
            new_id = self.engine.image_ids([spec.image]).get(spec.image, "")
            rollback(self.engine, self.pods.pop(spec.name, []))
            data = ""
            if (archive := self.snapshots.get(spec.name)) is not None:
                restore_snapshot(self.engine, archive, spec.labels, self.tool_image())
                data = f"; your data was restored from the snapshot taken at {taken_at(archive)}"
            previous = replace(spec, run_image=kept)
            for again in service_steps(previous)[:-1]:  # its pod and container (then the wait)
                self.reporter.step(again)
                if again.kind == "pod":
                    self.pods.setdefault(spec.name, []).append(again.target)
                self.engine.execute(again)
            assert self.watch is not None
            up = wait_one(self.engine, self.watch, previous, self.reporter.waiting, self.cancel, self.key)
        except (AirpodsError, EngineError, OSError) as exc:
            why = exc.message if isinstance(exc, AirpodsError) else str(exc)
            return replace(failed, detail=f"{failed.detail}; the rollback failed too: {why}")
        if not up.ready:
            return replace(
                failed, detail=f"{failed.detail}; rolled back to {short_id(old_id)}, which failed too: {up.detail}"
            )
        if new_id:
            remember_failed(spec.project, spec.name, new_id)
        if spec.name in self.loaded:  # a router: what it had loaded before the update, again
            self.load_again(previous)
        self.reverted.add(spec.name)
        return replace(
            failed,
            detail=f"rolled back {spec.name} to {short_id(old_id)}: the new image {short_id(new_id)} failed: "
            f"{failed.detail}{data}",
        )

    def after_up(self, stack: Stack, step: Step) -> None:
        """What follows a service being up: a rotated secret's older values go, from the
        engine and airpods' copies."""
        if step.kind == "prune":
            self.engine.remove_secrets(step.names)
            forget_values(step.names)

    def undo(self, exc: BaseException, keep_failed: bool) -> None:
        """After every worker stopped: Ctrl-C removes the pods and secrets this run created
        (and raises Interrupted saying which); another error removes its pods unless
        `keep_failed`, and says so in its message."""
        self.cancel.set()
        self.join()
        every = [pod for pods in self.pods.values() for pod in pods]
        if isinstance(exc, KeyboardInterrupt):
            removed = rollback(self.engine, every)
            if self.secrets:
                self.engine.remove_secrets(self.secrets)
                forget_values(self.secrets)
            undone = [*(f"pod {pod}" for pod in removed), *(f"secret {name}" for name in self.secrets)]
            raise Interrupted(
                "interrupted"
                + (f"; removed what this start created: {', '.join(undone)}" if undone else "; no pod had been created")
            ) from None
        if not keep_failed:
            removed = rollback(self.engine, every)
            if removed and isinstance(exc, AirpodsError):
                exc.message += f" (removed the pods this start created: {', '.join(removed)})"
