"""`airpods start`: observe → plan every effect → preflight → execute (see `run_start`)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field, replace

from airpods.apply import Execution
from airpods.engine.base import Engine
from airpods.errors import RuntimeFailure
from airpods.health import Readiness
from airpods.models.router import DEFAULT_DRAIN_S
from airpods.plan import Observed, Plan, PullPolicy, build_start_plan, pull_plan
from airpods.preflight import observe_host, preflight
from airpods.secrets import stack_secret_values
from airpods.server_flags import checked_images, learn_tables
from airpods.stack.model import Stack
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
from airpods.usecases.placement import Verdict, observe_placements
from airpods.usecases.start_models import check_fit, model_notes, observe_for_start, run_model_steps


@dataclass
class StartResult:
    stack: Stack
    plan: Plan
    readiness: list[Readiness] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    kept_failed: bool = False
    notes: list[str] = field(default_factory=list)  # what the user should know once it is up
    reverted: list[str] = field(default_factory=list)  # failed on a new image, running again on the one before
    placements: list[Verdict] = field(default_factory=list)  # where each ready llama.cpp model runs

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
    drain_s: float = DEFAULT_DRAIN_S,
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
            drain_s=drain_s,
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
    drain_s: float = DEFAULT_DRAIN_S,
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
    it then runs again, and its failure is said as the update's.

    A llama.cpp router is never cut off mid-request by a change (models/router.py): a kept one
    rereads a preset file this start changed once the requests on the models that reread
    unloads have finished, and one about to be recreated first lets its requests finish; either
    waits at most `drain_s` seconds, and loads its models again afterwards."""
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
    run = Execution(engine, reporter, key, drain_s)
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
    result.placements, result.readiness = placed(engine, stack, result.readiness)
    if not keep_failed:  # a service rolled back to its previous image runs: its pods stay
        down = [r.service for r in result.readiness if not r.ready and r.service not in run.reverted]
        result.rolled_back = remove_run_pods(engine, [pod for name in down for pod in run.pods.get(name, [])])
    up = {r.service for r in result.readiness if r.ready}
    for step in (s for s in plan.steps if s.kind == "prune" and s.service in up):
        run.after_up(stack, step)
    result.notes += model_notes(stack, engine, observed, [r.service for r in result.readiness if r.ready])
    result.notes += list(observed.unseen_models)
    return result


def placed(engine: Engine, stack: Stack, readiness: list[Readiness]) -> tuple[list[Verdict], list[Readiness]]:
    """Where the ready llama.cpp services' models run, from their logs (an observation after
    readiness); a service that requires a GPU and ended on the CPU fails, with the cause."""
    ready = [stack.service(r.service) for r in readiness if r.ready and r.service in {s.name for s in stack.services}]
    verdicts = observe_placements(engine, ready)
    failed = {v.service: v.message for v in verdicts if v.level == "fail"}
    return verdicts, [
        replace(r, ready=False, detail=failed[r.service]) if r.service in failed else r for r in readiness
    ]


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
