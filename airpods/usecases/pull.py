"""`airpods pull` and `start --pre-fetch`: images (and declared models) fetched ahead."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from airpods.engine.base import Engine
from airpods.errors import RuntimeFailure
from airpods.plan import Plan, PullPolicy, pull_plan, pull_steps
from airpods.stack.model import Stack
from airpods.usecases.common import Reporter, run_pulls


def pre_fetch(stack: Stack, engine: Engine, reporter: Reporter, pull: PullPolicy = "missing") -> Plan:
    """Only the pulls, and the declared models the volume lacks; every image is tried, then a
    RuntimeFailure names the ones that failed."""
    plan = pull_plan(stack, engine.observe_images(stack.images), pull)
    pulls = run_pulls(engine, plan.steps, reporter, stack.settings.max_concurrent_pulls)
    if pulls.failed:
        raise RuntimeFailure(
            f"could not pull {pulls.failure_text()}",
            hint="check the image names and the registry (`podman pull IMAGE` shows the same)",
        )
    from airpods.models.presets import fetch_declared

    fetched = fetch_declared(stack, engine, reporter.download, reporter.line)
    return replace(plan, notes=plan.notes + tuple(f"fetched model {name}" for name in fetched))


ImageOutcome = Literal["new", "updated", "unchanged", "failed"]


@dataclass(frozen=True)
class PulledImage:
    image: str
    outcome: ImageOutcome
    seconds: float
    size: int | None
    image_id: str
    services: tuple[str, ...]  # the stack's services that use it
    to_recreate: tuple[str, ...]  # of those, the ones running an older image: `start` recreates them
    error: str | None = None  # podman's words when the pull failed
    digest: str = ""  # the registry digest of what is local now: `image = "NAME@sha256:…"` pins it

    def to_json(self) -> dict[str, object]:
        return {**self.__dict__, "services": list(self.services), "to_recreate": list(self.to_recreate)}


def pull(stack: Stack, engine: Engine, reporter: Reporter) -> list[PulledImage]:
    """Pull every image of the stack again (concurrently) and say which changed: a new image
    under the same tag is what `start` then applies, recreating exactly the services that run
    an older one."""
    before = engine.image_ids(stack.images)
    pulls = run_pulls(engine, pull_steps(stack.images), reporter, stack.settings.max_concurrent_pulls)
    after = engine.image_ids(stack.images)
    digests = engine.image_digests(stack.images)
    running = {c.service: c for c in engine.containers(stack.project)}
    results = []
    for image in stack.images:
        users = [s for s in stack.services if s.image == image]
        outcome: ImageOutcome = (
            "failed"
            if image in pulls.failed
            else "new"
            if image not in before
            else "updated"
            if before[image] != after.get(image)
            else "unchanged"
        )
        stale = [
            s.name
            for s in users
            if s.name in running
            and running[s.name].image_id
            and after.get(image)
            and running[s.name].image_id != after.get(image)
        ]
        seconds, size = pulls.done.get(image, (0.0, None))
        results.append(
            PulledImage(
                image,
                outcome,
                seconds,
                size,
                after.get(image, ""),
                tuple(s.name for s in users),
                tuple(stale),
                pulls.failed.get(image),
                digests.get(image, ""),
            )
        )
    return results
