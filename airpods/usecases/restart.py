"""`airpods restart`: stop, then start the same services again, under one lock."""

from __future__ import annotations

from airpods.engine.base import Engine
from airpods.plan import Plan
from airpods.usecases.common import Reporter, StackFor, locked, stack_subset
from airpods.usecases.start import StartResult, run_start
from airpods.usecases.stop import stop_pods


def restart(
    stack_for: StackFor,
    engine: Engine,
    reporter: Reporter,
    timeout_s: int | None = None,
    *,
    keep_failed: bool = False,
    only_existing: bool = True,
) -> tuple[Plan, StartResult]:
    """Stop and remove the pods of the stack in use, then start those services again (with the
    current config and images), waiting for each to be healthy; under one lock. With
    `only_existing` (no service named) only services whose pods exist are restarted."""
    with locked(stack_for(())) as lock:
        stack, stopped = stop_pods(stack_for, engine, reporter, timeout_s, remove_orphans=False)
        if only_existing:
            stack = stack_subset(stack, [s.service for s in stopped.steps if s.service])
        again = run_start(
            lambda present: stack, engine, reporter, lock, keep_failed=keep_failed, pull="missing", remove_orphans=False
        )
        return stopped, again
