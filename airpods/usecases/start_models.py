"""What `start` reads of and does to the model store: the store observed once (its models,
its files, what a container cannot see), the fit check, the declared models' fetches and the
routers' preset files, and the closing note of a server with no model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from airpods.apply import Execution
from airpods.engine.base import Engine
from airpods.errors import AirpodsError, RuntimeFailure
from airpods.health import Readiness
from airpods.plan import Observed, Plan, declared_models
from airpods.preflight import new_containers
from airpods.stack.model import USER_SECRET_PREFIX, Stack


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
