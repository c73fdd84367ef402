"""`airpods start`: observe → plan every effect → preflight → execute (see `run_start`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

from airpods.apply import Execution
from airpods.engine.base import Engine
from airpods.errors import AirpodsError, RuntimeFailure
from airpods.health import Readiness
from airpods.plan import Observed, Plan, PullPolicy, build_start_plan, declared_models, pull_plan
from airpods.preflight import new_containers, observe_host, preflight
from airpods.secrets import stack_secret_values
from airpods.server_flags import checked_images, learn_tables
from airpods.stack.model import USER_SECRET_PREFIX, Stack
from airpods.state import LifecycleLock
from airpods.usecases.common import (
    Pulls,
    Reporter,
    StackFor,
    locked,
    observe_stack,
    run_pulls,
    stack_in_use,
    stack_key,
    stack_subset,
)
from airpods.usecases.common import rollback as remove_run_pods


@dataclass
class StartResult:
    stack: Stack
    plan: Plan
    readiness: list[Readiness] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    kept_failed: bool = False
    notes: list[str] = field(default_factory=list)  # what the user should know once it is up
    reverted: list[str] = field(default_factory=list)  # failed on a new image, running again on the one before

    @property
    def ok(self) -> bool:
        return all(r.ready for r in self.readiness)


def plan_start(
    stack_for: StackFor,
    engine: Engine | None,
    *,
    pull: PullPolicy = "missing",
    pull_only: bool = False,
    remove_orphans: bool = False,
    snapshot: bool = True,
    rollback: bool = True,
) -> tuple[Stack, Plan]:
    """The plan `start` would run (observing podman when there is one): `--dry-run`."""
    if engine is None:
        stack, observed = stack_for(()), Observed()
    elif pull_only:
        stack = stack_for(())
        observed = engine.observe_images(stack.images)
    else:
        stack, observed = observe_stack(stack_for, engine)
        observed = observe_for_start(stack, engine, observed)
    if pull_only:
        return stack, pull_plan(stack, observed, pull)
    plan = build_start_plan(
        stack, observed, pull=pull, remove_orphans=remove_orphans, snapshot=snapshot, rollback=rollback
    )
    if engine is None:
        return stack, plan
    # the fit check's warnings and every refusal `start` would make, said instead of refused
    said: list[str] = []
    refused: RuntimeFailure | None = None
    try:
        check_fit(stack, plan, engine, observed, said.append)
    except RuntimeFailure as strict:
        refused = strict
    host = observe_host(stack, plan, engine, observed)
    said += [
        f"start would refuse: {problem.message}; {problem.hint}"
        for problem in preflight(stack, plan, observed.pods, host, refused)
    ]
    return stack, replace(plan, notes=plan.notes + tuple(said))


def check_fit(stack: Stack, plan: Plan, engine: Engine, observed: Observed, say: Callable[[str], None]) -> None:
    """Before anything is created: the models the llama.cpp instances this start creates load,
    against their memory limit and the host's free memory (models/fit_check.py): a warning
    through `say`, or for fit = "strict" a refusal (RuntimeFailure). A store observed empty
    has nothing to check."""
    if observed.models == frozenset():
        return
    from airpods.models.fit_check import check_start, start_loads

    creating = new_containers(plan)
    check_start([load for load in start_loads(stack, engine) if load[0].name in creating], say, stack.gpu)


def start(
    stack_for: StackFor,
    engine: Engine,
    reporter: Reporter,
    *,
    keep_failed: bool = False,
    pull: PullPolicy = "missing",
    remove_orphans: bool = False,
    snapshot: bool = True,
    rollback: bool = True,
) -> StartResult:
    """Start the stack in use under the lifecycle lock; see `run_start`."""
    with locked(stack_for(())) as lock:
        return run_start(
            stack_for,
            engine,
            reporter,
            lock,
            keep_failed=keep_failed,
            pull=pull,
            remove_orphans=remove_orphans,
            snapshot=snapshot,
            rollback=rollback,
        )


def observe_for_start(stack: Stack, engine: Engine, observed: Observed) -> Observed:
    """`observed` plus what only `start` reads, without creating anything: the models in the
    stack's model store when it has a llama.cpp server (None when this host cannot read the
    store; read once here for the plan's fetches, the fit check and the closing note), and the
    project of each user secret that is not one of the stack's (an older value, pruned once its
    service runs)."""
    models: frozenset[str] | None = frozenset()
    unseen: tuple[str, ...] = ()
    files: frozenset[str] | None = None
    if any(s.kind == "llamacpp" for s in stack.services):
        from airpods.models.presets import existing_store

        try:
            store = existing_store(stack, engine)
            stored = store.models() if store else []
            models = frozenset(m.name for m in stored)
            files = frozenset(store.paths()) if store else frozenset()
            unseen = tuple(f"model {m.name}: {m.unseen}" for m in stored if m.unseen)
        except (RuntimeFailure, OSError):
            models = None
    current = {d.name for d in stack.secrets}
    older = [n for n in observed.secrets if n.startswith(USER_SECRET_PREFIX) and n not in current]  # see prune_steps
    from airpods.snapshots import failed_updates

    return replace(
        observed,
        models=models,
        unseen_models=unseen,
        store_files=files,
        failed_updates=failed_updates(stack.project),
        secret_projects=engine.secret_projects(older) if older else {},
    )


def run_start(
    stack_for: StackFor,
    engine: Engine,
    reporter: Reporter,
    lock: LifecycleLock,
    *,
    keep_failed: bool,
    pull: PullPolicy,
    remove_orphans: bool,
    snapshot: bool = True,
    rollback: bool = True,
) -> StartResult:
    """Observe, plan every effect, refuse before the first one if preflight finds a problem,
    then walk the plan: the shared steps (network, volumes, secrets, folders), the pulls
    (concurrently), the declared models' fetches and the preset files; after a fresh look at
    the image IDs, every service at once (its pod, its container, the wait for it); last, for
    the services that are up, a kept router's preset reload and the pruning of rotated secrets.

    `lock` (taken by the caller) is held around the engine changes only: it is let go of
    around the pulls and the models' downloads (after which the engine is looked at again,
    since another command may have changed it meanwhile) and once every service's pod and
    container are made, while they get ready; it is taken back to remove failed services and
    for what follows them being up.

    A service that fails (the engine refuses it, its container exits, it is not healthy in
    time, or anything else goes wrong in its worker) has the pods this run created for it
    removed (`keep_failed` keeps them); every other service goes on. Ctrl-C removes, after every
    worker has stopped (so no half-created pod survives), the pods and secrets this run
    created; the network, volumes (they may already hold what the run fetched), preset files and
    volume folders (derived from the config, rewritten alike by the next start) and pulled
    images stay.

    A service recreated for a new image is snapshotted first and, should it fail on that image,
    rolled back to the image it ran and its data (`snapshot`, `rollback`; plan.update_steps):
    it then runs again, and its failure is said as the update's."""
    stack, observed = observe_stack(stack_for, engine)
    observed = observe_for_start(stack, engine, observed)
    key = stack_key(stack)
    plan = build_start_plan(
        stack,
        observed,
        api_key=key or "",
        values=stack_secret_values(stack),
        pull=pull,
        remove_orphans=remove_orphans,
        snapshot=snapshot,
        rollback=rollback,
    )
    refused: RuntimeFailure | None = None
    try:  # the fit check's warnings come first, whatever is refused
        check_fit(stack, plan, engine, observed, reporter.line)
    except RuntimeFailure as strict:
        refused = strict
    problems = preflight(stack, plan, observed.pods, observe_host(stack, plan, engine, observed), refused)
    if problems:
        raise problems[0]
    result = StartResult(stack, plan, kept_failed=keep_failed)
    run = Execution(engine, reporter, key)
    try:
        for step in (s for s in plan.steps if s.service is None and s.kind not in ("pull", "fetch", "presets")):
            run.shared(stack, step, result.notes)
        downloads = [s for s in plan.steps if s.kind in ("pull", "fetch")]
        with lock.released() if downloads else nullcontext():
            pulls = run_pulls(
                engine, [s for s in downloads if s.kind == "pull"], reporter, stack.settings.max_concurrent_pulls
            )
            blocked = run_model_steps(stack, plan, run, result.notes, "fetch")
        blocked += run_model_steps(stack, plan, run, result.notes, "presets", blocked)
        unpulled: list[Readiness] = []
        if downloads:  # new images may change which services are recreated, others may have run: plan again
            stack, plan, unpulled = replan_after_downloads(
                stack_for, engine, stack, observed, result.plan, pulls, snapshot=snapshot, rollback=rollback
            )
            result.plan = plan  # result.stack stays whole: a service that failed is shown with its URL
        failed = {r.service for r in unpulled}
        blocked = [r for r in blocked if r.service not in failed]
        failed |= {r.service for r in blocked}
        going = stack_subset(stack, [s.name for s in stack.services if s.name not in failed])
        result.readiness = unpulled + blocked + run.services(going, plan, created=lock.release)
        lock.acquire()
    except BaseException as exc:
        if not lock.held:
            lock.acquire()
        run.undo(exc, keep_failed)
        raise
    result.reverted = sorted(run.reverted)
    if not keep_failed:  # a service rolled back to its previous image runs: its pods stay
        down = [r.service for r in result.readiness if not r.ready and r.service not in run.reverted]
        result.rolled_back = remove_run_pods(engine, [pod for name in down for pod in run.pods.get(name, [])])
    up = {r.service for r in result.readiness if r.ready}
    for step in (s for s in plan.steps if s.kind in ("reload", "prune") and s.service in up):
        run.after_up(stack, step)
    result.notes += model_notes(stack, engine, observed, [r.service for r in result.readiness if r.ready])
    result.notes += list(observed.unseen_models)
    return result


def run_model_steps(
    stack: Stack, plan: Plan, run: Execution, notes: list[str], kind: str, blocked: Sequence[Readiness] = ()
) -> list[Readiness]:
    """The declared models' fetches (`kind` "fetch") or the routers' preset files ("presets").
    One that fails fails its router alone (returned), when this start creates it; a router left
    running keeps running without it, and a note says so. A router already `blocked` is skipped."""
    created = {s.service for s in plan.steps if s.kind == "pod"}
    skipped = {r.service for r in blocked}
    failed: list[Readiness] = []
    for step in (s for s in plan.steps if s.kind == kind):
        router = step.names[0] if step.kind == "fetch" else step.target
        if router in skipped:
            continue
        try:
            if step.kind == "fetch":
                run.fetch(stack, step)
            else:
                run.presets(stack, step)
        except (AirpodsError, OSError, ValueError) as exc:  # ValueError: a preset file that is not text
            why = exc.message if isinstance(exc, AirpodsError) else str(exc)
            what = f"its model {step.target} could not be fetched" if step.kind == "fetch" else "its preset file failed"
            skipped.add(router)
            if router in created:
                failed.append(Readiness(router, False, 0.0, f"{what}: {why}"))
            else:
                notes.append(f"{router}: {what}: {why}; it keeps running without it")
    return failed


def replan_after_downloads(
    stack_for: StackFor,
    engine: Engine,
    stack: Stack,
    observed: Observed,
    plan: Plan,
    pulls: Pulls,
    *,
    snapshot: bool = True,
    rollback: bool = True,
) -> tuple[Stack, Plan, list[Readiness]]:
    """After pulls and downloads (without the lock), a fresh look at what exists: the services'
    steps are planned again (a new image recreates its services; a pod another command made or
    removed meanwhile is seen), a service whose image is absent fails, and a pulled
    llama-server's own flag table is read and the stack derived again with it. Returns the
    stack and plan to go on with and the failed services."""
    observed = replace(
        engine.observe(stack.network, stack.volumes, stack.images),
        models=observed.models,
        failed_updates=observed.failed_updates,
        secret_projects=observed.secret_projects,
    )
    if learn_tables(engine, checked_images(stack)):  # a pulled llama-server: check against its flags
        stack = stack_in_use(stack_for, observed.pods)
    absent = [s for s in stack.services if s.image not in observed.images]
    unpulled = [
        Readiness(s.name, False, 0.0, f"its image {s.image} could not be pulled: {pulls.failed.get(s.image, 'absent')}")
        for s in absent
    ]
    ready = stack_subset(stack, [s.name for s in stack.services if s not in absent])
    again = build_start_plan(ready, observed, pull="never", snapshot=snapshot, rollback=rollback)
    kept = [
        f"pull of {image} failed, kept the local image: {why}"
        for image, why in pulls.failed.items()
        if image in observed.images
    ]
    return (
        ready,
        replace(
            again,
            steps=tuple(s for s in plan.steps if s.service is None) + tuple(s for s in again.steps if s.service),
            notes=plan.notes + tuple(kept),
        ),
        unpulled,
    )


def model_notes(stack: Stack, engine: Engine, observed: Observed, ready: Sequence[str]) -> list[str]:
    """A llama.cpp server that is up with no model to serve says so, with the way to get one
    (the store is read again only when it held none and this start fetched some)."""
    llama = [s.name for s in stack.services if s.kind == "llamacpp" and s.name in ready]
    if not llama or observed.models != frozenset():  # a model, or a store this host cannot read: no claim
        return []
    if declared_models(stack.services):
        from airpods.models.presets import existing_store

        try:
            store = existing_store(stack, engine)
            if store is not None and store.models():
                return []
        except (RuntimeFailure, OSError):
            return []
    return [
        f"{', '.join(llama)} {'has' if len(llama) == 1 else 'have'} no model yet: "
        "`airpods models pull user/repo:Q4_K_M` fetches one, or declare it in the config "
        '([services.llamacpp.models.NAME] source = "user/repo:Q4_K_M") and `airpods start` fetches it'
    ]
