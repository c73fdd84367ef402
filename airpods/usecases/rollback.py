"""`airpods rollback`: services back on the image they ran before their last update (kept by
`start` under plan.kept_image) and, with `data`, their volumes from the newest snapshot; the
image they leave is remembered as failed, so a plain `start` keeps them where they are."""

from __future__ import annotations

from airpods.apply import Execution
from airpods.engine.base import Engine
from airpods.health import Readiness
from airpods.plan import Plan, build_rollback_plan, kept_image
from airpods.snapshots import newest_snapshot, remember_failed
from airpods.usecases.common import Reporter, StackFor, locked, stack_in_use, stack_key, stack_subset


def rollback(stack_for: StackFor, engine: Engine, reporter: Reporter, *, data: bool) -> tuple[Plan, list[Readiness]]:
    """Plan and run the rollback of the stack in use (see the module docstring) under the
    lifecycle lock. Returns the plan and each rolled-back service's readiness."""
    with locked(stack_for(())):
        pods = engine.pods()
        stack = stack_in_use(stack_for, pods)
        kept = [kept_image(s) for s in stack.services]
        observed = engine.observe(stack.network, stack.volumes, [*stack.images, *kept])
        newest = {s.name: str(a) if (a := newest_snapshot(stack.project, s.name)) else None for s in stack.services}
        plan = build_rollback_plan(stack, observed, newest, data=data)
        going = stack_subset(stack, sorted({s.service for s in plan.steps if s.service}))
        if not going.services:
            return plan, []
        run = Execution(engine, reporter, stack_key(stack))
        results = run.services(going, plan)
        for spec, result in zip(going.services, results, strict=True):
            if (
                result.ready
                and (current := observed.images.get(spec.image))
                and current != observed.images.get(kept_image(spec))
            ):
                remember_failed(stack.project, spec.name, current)
        return plan, results
