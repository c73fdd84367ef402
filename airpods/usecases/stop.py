"""`airpods stop`: stop and remove the pods of the stack in use; volumes are never touched."""

from __future__ import annotations

from airpods.engine.base import Engine
from airpods.engine.errors import EngineError
from airpods.errors import RuntimeFailure
from airpods.plan import Observed, Plan, build_stop_plan
from airpods.stack.model import Stack
from airpods.usecases.common import Reporter, StackFor, locked, stack_in_use


def stop(
    stack_for: StackFor,
    engine: Engine,
    reporter: Reporter,
    timeout_s: int | None = None,
    *,
    remove_orphans: bool = False,
) -> Plan:
    with locked(stack_for(())):
        return stop_pods(stack_for, engine, reporter, timeout_s, remove_orphans=remove_orphans)[1]


def stop_pods(
    stack_for: StackFor, engine: Engine, reporter: Reporter, timeout_s: int | None, *, remove_orphans: bool
) -> tuple[Stack, Plan]:
    pods = engine.pods()
    stack = stack_in_use(stack_for, pods)
    plan = build_stop_plan(
        stack,
        Observed(pods=pods),
        stack.settings.stop_timeout_s if timeout_s is None else timeout_s,
        remove_orphans=remove_orphans,
    )
    failed: dict[str, str] = {}
    for step in plan.steps:  # one pod podman cannot stop does not keep the others running
        reporter.step(step)
        try:
            engine.execute(step)
        except EngineError as exc:
            failed[step.target] = exc.stderr_tail or exc.message
        else:
            if step.kind == "remove":
                failed.pop(step.target, None)  # a failed stop, then a successful removal: gone
    if failed:
        done = sorted({s.target for s in plan.steps if s.kind == "remove"} - set(failed))
        raise RuntimeFailure(
            "could not stop "
            + "; ".join(f"pod {pod}: {why}" for pod, why in failed.items())
            + (f" (stopped: {', '.join(done)})" if done else ""),
            hint="run the same command again; `podman pod ps` shows what is left",
        )
    return stack, plan
