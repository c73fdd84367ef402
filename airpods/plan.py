"""The plan: ordered steps as data, engine-neutral. Pure — (stack, observed) → Plan.

`start --dry-run` prints it as the engine renders it (engine/podman_argv.py: the exact podman
argv); the engine runs it step by step and makes no decisions of its own.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

from airpods.errors import RuntimeFailure
from airpods.labels import DEFAULT_PROJECT, project_suffix
from airpods.redact import MASK, redact_argv
from airpods.stack.model import (
    GATEWAY_SECRET_PREFIX,
    PRESET_FILE,
    PRESETS_DIR,
    USER_SECRET_PREFIX,
    Preset,
    ServiceSpec,
    Stack,
)

EngineStepKind = Literal["network", "volume", "secret", "pull", "tag", "pod", "container", "stop", "remove"]
# What `start` does besides engine commands, in the plan too (so --dry-run shows it): make a
# volume's folders, fetch a declared model, write a router's preset file, wait for a service,
# ask a kept router to reread its presets (letting the requests on the models that unloads
# finish first), let a running router's requests finish before its pod goes and load its models
# again once the new one is up, remove the older values of rotated user secrets,
# snapshot a service's volumes before a new image touches them, and (only if the service then
# fails) roll it back to the image it ran and the snapshot.
HostStepKind = Literal[
    "folders", "fetch", "presets", "wait", "reload", "drain", "prune", "snapshot", "rollback", "restore"
]
StepKind = EngineStepKind | HostStepKind
HOST_STEPS: frozenset[str] = frozenset(get_args(HostStepKind))
PullPolicy = Literal["missing", "always", "never"]
DEFAULT_TIMEOUT_S = 120.0
PULL_TIMEOUT_S = 3600.0
# What each of `pending_changes`' answers means, in words.
CHANGE_REASONS = {
    "config": "config changed",
    "image": "new image pulled",
    "presets": "model presets changed",  # status only: start rewrites the file, the router rereads it
}
# Beyond what a step asks podman to wait (a stop's --time), the time podman itself may take.
ENGINE_MARGIN_S = 60.0


@dataclass(frozen=True)
class Step:
    """One thing to do, as data. For the engine: create the network/volume/secret `target`,
    pull the image `target`, create the pod or container of `spec`, stop (waiting `grace_s`) or
    remove the pod `target` (the engine renders it: engine/podman_argv.py for Podman). On the
    host (`on_host`, see HostStepKind): `target` names the volume, model, router, service or
    secrets it acts on, `names` what it acts on there (folders, a model's source, secrets)."""

    kind: StepKind
    target: str
    why: str
    service: str | None = None
    stdin: str | None = field(default=None, repr=False)  # a secret's value: never displayed
    timeout_s: float = DEFAULT_TIMEOUT_S  # how long the engine lets the command run
    spec: ServiceSpec | None = field(default=None, repr=False, compare=False)  # pod and container steps
    labels: tuple[tuple[str, str], ...] = ()  # network, volume and secret steps
    options: tuple[tuple[str, str], ...] = ()  # volume steps: driver options (--opt K=V)
    grace_s: int | None = None  # stop steps: seconds before the containers are killed
    names: tuple[str, ...] = ()  # host steps: the folders, the model's source, the secrets

    @property
    def on_host(self) -> bool:
        return self.kind in HOST_STEPS


# An engine's rendering of a step as the command it runs (for display and --json).
Render = Callable[[Step], Sequence[str]]


@dataclass(frozen=True)
class ObservedPod:
    name: str
    service: str | None
    config_hash: str | None
    running: bool
    project: str | None = None  # None: not made by airpods
    image_id: str | None = None  # the image its service container runs


@dataclass(frozen=True)
class Observed:
    """What exists before the plan runs (one snapshot taken by the engine). `pods` holds every
    pod on the engine, airpods' or not (a name clash must be seen); `images` maps each present
    image of the stack to its local image ID."""

    networks: frozenset[str] = frozenset()
    volumes: frozenset[str] = frozenset()
    images: Mapping[str, str] = field(default_factory=dict)
    pods: Mapping[str, ObservedPod] = field(default_factory=dict)
    secrets: frozenset[str] = frozenset()
    containers: Mapping[str, str | None] = field(default_factory=dict)  # every container → its project
    # What `start` also reads: the models in the stack's model store (None: it cannot be read
    # here), and each secret's project when the stack has user secrets (their older values).
    models: frozenset[str] | None = frozenset()
    unseen_models: tuple[str, ...] = ()  # "NAME: why the container cannot see it"
    # Every path in the model store, relative to it (top-level names, a folder's parts as
    # FOLDER/PART); None when it was not read (no router, or not readable here).
    store_files: frozenset[str] | None = None
    # Services whose new image failed and was rolled back: service → (that image's ID, when).
    failed_updates: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # Where volumes that airpods writes into from the host are bound, when the engine keeps its
    # own volumes where this user cannot read them (Docker's data root, as a docker-group user).
    user_volumes: str | None = None
    secret_projects: Mapping[str, str | None] = field(default_factory=dict)

    def project_pods(self, project: str) -> dict[str, ObservedPod]:
        return {name: pod for name, pod in self.pods.items() if pod.project == project}


def host_written_volumes(stack: Stack) -> set[str]:
    """The named volumes airpods writes into from this host: the llama.cpp model store."""
    from airpods.stack.build import MODEL_VOLUME_TARGET

    return {
        m.source
        for s in stack.services
        if s.kind == "llamacpp"
        for m in s.mounts
        if m.named and m.target == MODEL_VOLUME_TARGET
    }


def bind_options(home: str | None, volume: str) -> dict[str, str]:
    """Driver options that bind `volume` to the folder home/VOLUME ({} without a home): the
    local driver's bind (type=none, o=bind, device), as `docker volume create --opt` takes them."""
    return {"type": "none", "o": "bind", "device": f"{home}/{volume}"} if home else {}


def orphans(stack: Stack, observed: Observed) -> list[ObservedPod]:
    """Pods of this project whose service the config no longer defines (renamed or removed)."""
    return [pod for pod in observed.project_pods(stack.project).values() if pod.service not in stack.configured]


def pending_changes(spec: ServiceSpec, pod: ObservedPod, images: Mapping[str, str]) -> list[str]:
    """Why a service's existing pod differs from what `start` would create now: "config" when its
    config hash differs, "image" when a newer local image of its image name was pulled since."""
    changes = []
    if pod.config_hash != spec.config_hash:
        changes.append("config")
    current = images.get(spec.image)
    if current and pod.image_id and current != pod.image_id:
        changes.append("image")
    return changes


@dataclass(frozen=True)
class Plan:
    action: str
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = ()

    def render(self, argv_of: Render) -> str:
        lines = [f"# airpods {self.action}: {len(self.steps)} step{'s' if len(self.steps) != 1 else ''}"]
        lines += [f"# {note}" for note in self.notes]
        for step in self.steps:
            lines.append(f"# {step.why}")
            argv = () if step.on_host else argv_of(step)
            if argv:  # Docker runs no command for a pod (it has none) or a secret (a file it writes)
                lines.append(shlex.join(redact_argv(argv)) + (f" <<< '{MASK}'" if step.stdin is not None else ""))
        return "\n".join(lines)

    def to_json(self, argv_of: Render) -> dict[str, object]:
        return {
            "action": self.action,
            "notes": list(self.notes),
            "steps": [
                {
                    "kind": s.kind,
                    "target": s.target,
                    "service": s.service,
                    "why": s.why,
                    "argv": [] if s.on_host else redact_argv(argv_of(s)),
                }
                for s in self.steps
            ],
        }


def pull_steps(images: Iterable[str]) -> list[Step]:
    return [Step("pull", image, f"pull {image}", timeout_s=PULL_TIMEOUT_S) for image in images]


def images_to_pull(stack: Stack, observed: Observed, policy: PullPolicy) -> list[str]:
    """The images `start --pull POLICY` pulls, like podman's own --pull: missing (only absent
    ones), always (every one, to pick up a new image under the same tag), never (none: an absent
    image is an error)."""
    missing = [image for image in stack.images if image not in observed.images]
    if policy == "never" and missing:
        raise RuntimeFailure(
            f"image{'s' if len(missing) > 1 else ''} not present and --pull never was given: "
            f"{', '.join(missing)}; nothing was created",
            hint="`airpods pull` fetches them, or use --pull missing",
        )
    return list(stack.images) if policy == "always" else ([] if policy == "never" else missing)


def check_name_clashes(stack: Stack, observed: Observed) -> None:
    """A pod or container name the stack needs that another project (or something not airpods')
    holds is an error: airpods never replaces what is not its own. Pods and containers share
    one namespace in podman."""
    for spec in stack.services:
        for what, name, key in (("pod", spec.pod, "pod"), ("container", spec.container, "container")):
            holders = [p.project for p in (observed.pods.get(name),) if p] + (
                [observed.containers[name]] if name in observed.containers else []
            )
            foreign = [h for h in holders if h != stack.project]
            if not foreign:
                continue
            owner = f"airpods project '{foreign[0]}'" if foreign[0] else "something other than airpods"
            other = (
                ', or run this stack as another project ([runtime] project = "NAME": its pods and '
                "containers are then named after it)"
                if stack.project == DEFAULT_PROJECT
                else ""
            )
            raise RuntimeFailure(
                f"{spec.name}: the name {name} (its {what}) is already taken by {owner}; nothing was created",
                hint=f"give services.{spec.name}.{key} another name" + other,
            )


def remove_step(pod: str, why: str, service: str | None) -> Step:
    return Step("remove", pod, why, service)


def pull_plan(stack: Stack, observed: Observed, policy: PullPolicy = "missing") -> Plan:
    """`start --pre-fetch`: only the pulls."""
    pulls = images_to_pull(stack, observed, policy)
    notes = [f"{image}: already present" for image in stack.images if image not in pulls]
    return Plan("start --pre-fetch", tuple(pull_steps(pulls)), tuple(notes))


API_KEY_PURPOSE = "the stack's API key, kept out of argv and env"


def secret_purpose(stack: Stack, name: str, config_key: str) -> str:
    """What a user secret is to the containers that get it, for the plan: a file at a path, or
    a variable the env wrapper (engine/env_handover.py) exports from a secret file."""
    uses = {(use.type, use.target) for spec in stack.services for use in spec.secrets if use.name == name}
    shown = ", ".join(
        f"the file {target}" if how == "mount" else f"the variable {target}" for how, target in sorted(uses)
    )
    return f"{config_key}: {shown or 'unused'}, never in argv, env dumps or inspect"


def build_start_plan(
    stack: Stack,
    observed: Observed,
    *,
    api_key: str = "",
    values: Mapping[str, str] | None = None,
    pull: PullPolicy = "missing",
    remove_orphans: bool = False,
    snapshot: bool = True,
    rollback: bool = True,
) -> Plan:
    """Every effect of `start`, in the order it happens: the shared objects, the services'
    volume folders, pulls, model fetches, preset files, then per service its pod and container
    and the wait for it (a kept router first rereads its preset file; a running router about to
    be recreated first lets its requests finish), and last the pruning of rotated secrets' older
    values.

    A service recreated because its *image* changed (`update_steps`) first has the image it
    runs tagged under an airpods name, then, once stopped, its data volumes snapshotted
    (`snapshot`); should it then fail, its `rollback` step brings back that image and data. A
    new image that failed before (observed.failed_updates) is not tried again by `start`.

    `api_key` is the value behind stack.secrets, `values` the value of each user secret by
    name (secrets.stack_secret_values; only read for secrets that do not exist yet).
    A service's pod is left alone when it runs with the same config hash and image ID; it is
    recreated when either changed or it stopped. Raises RuntimeFailure on a pod name clash or
    (`pull="never"`) a missing image."""
    check_name_clashes(stack, observed)
    steps: list[Step] = []
    notes: list[str] = list(stack.warnings)
    labels = tuple(stack.labels.items())
    if stack.network not in observed.networks:
        steps.append(
            Step(
                "network",
                stack.network,
                f"network {stack.network}: pods reach each other by name and alias",
                labels=labels,
            )
        )
    written = host_written_volumes(stack)
    for volume in stack.volumes:
        if volume not in observed.volumes:
            options = bind_options(observed.user_volumes, volume) if volume in written else {}
            why = f"volume {volume}: kept by stop" + (f", its files in {options['device']}" if options else "")
            steps.append(Step("volume", volume, why, labels=labels, options=tuple(options.items())))
    for secret in stack.secrets:
        if secret.name not in observed.secrets:
            what = secret_purpose(stack, secret.name, secret.config_key) if secret.source else API_KEY_PURPOSE
            steps.append(
                Step(
                    "secret",
                    secret.name,
                    f"secret {secret.name}: {what}",
                    stdin=(values or {}).get(secret.name, secret.value(api_key)),
                    labels=labels,
                )
            )
    steps += folder_steps(stack)
    steps += pull_steps(images_to_pull(stack, observed, pull))
    steps += fetch_steps(stack, observed.models)
    steps += preset_steps(stack)
    left = orphans(stack, observed)
    if left and remove_orphans:
        steps += [
            remove_step(pod.name, f"orphan pod {pod.name}: service {pod.service} is no longer in the config", None)
            for pod in left
        ]
    elif left:
        notes.append(
            f"orphan pod{'s' if len(left) > 1 else ''} of services no longer in the config: "
            f"{', '.join(p.name for p in left)} (`airpods start --remove-orphans` removes them)"
        )
    for spec in stack.services:
        pod = observed.pods.get(spec.pod)
        changes = pending_changes(spec, pod, observed.images) if pod else []
        failed = observed.failed_updates.get(spec.name)
        if "image" in changes and failed and failed[0] == observed.images.get(spec.image):
            changes.remove("image")
            notes.append(
                f"{spec.name}: its new image {short_id(failed[0])} failed at {failed[1]} and was rolled back; "
                f"`airpods update {spec.name}` tries it again"
            )
        if pod and pod.running and not changes:
            notes.append(f"{spec.name}: running and unchanged, left alone")
            steps += [reload_step(spec)] if spec in routers([spec]) else []
            steps.append(wait_step(spec))  # start still says it is ready (it may be loading)
            continue
        updating = pod is not None and "image" in changes and bool(pod.image_id)
        if pod and pod.running and spec in routers([spec]):
            steps.append(drain_step(spec, " and ".join(CHANGE_REASONS[c] for c in changes)))
        if pod and updating:
            assert pod.image_id is not None
            steps += update_steps(stack, spec, pod.image_id, snapshot=snapshot)
        elif pod:
            why = " and ".join(CHANGE_REASONS[c] for c in changes) or "not running"
            steps.append(remove_step(spec.pod, f"{spec.name}: {why}, recreate its pod", spec.name))
        steps += service_steps(spec)
        if pod and updating and rollback:
            steps.append(rollback_step(spec, pod.image_id or "", snapshot=snapshot and bool(data_volumes(stack, spec))))
    steps += prune_steps(stack, observed)
    return Plan("start", tuple(steps), tuple(notes))


def short_id(image_id: str) -> str:
    """sha256:df72… as people quote image IDs (12 hex digits)."""
    return ("sha256:" + image_id.removeprefix("sha256:")[:12]) if image_id else "?"


def kept_image(spec: ServiceSpec) -> str:
    """The airpods name the image a service ran is kept under across an update (so neither
    `podman image prune` nor a pull drops it): what a rollback runs."""
    return f"localhost/airpods-kept/{spec.project}-{spec.name}:previous"


def data_volumes(stack: Stack, spec: ServiceSpec) -> tuple[str, ...]:
    """The named volumes a service writes its own data into (the shared model volume and
    read-only mounts left out): what an update snapshots."""
    shared = host_written_volumes(stack)
    return tuple(m.source for m in spec.mounts if m.named and m.mode != "ro" and m.source not in shared)


def update_steps(stack: Stack, spec: ServiceSpec, image_id: str, *, snapshot: bool) -> list[Step]:
    """A service recreated for a new image: keep the image it runs, stop and remove its pod,
    snapshot its data volumes (unless not `snapshot`)."""
    steps = [
        Step(
            "tag",
            image_id,
            f"{spec.name}: keep the image it runs ({short_id(image_id)}) as {kept_image(spec)}, to roll back to",
            spec.name,
            names=(kept_image(spec),),
        ),
        remove_step(spec.pod, f"{spec.name}: {CHANGE_REASONS['image']}, recreate its pod", spec.name),
    ]
    volumes = data_volumes(stack, spec)
    if snapshot and volumes:
        steps.append(
            Step(
                "snapshot",
                spec.name,
                f"{spec.name}: snapshot {', '.join(volumes)} before the new image touches them (state folder; "
                "`--no-snapshot` skips it)",
                spec.name,
                names=volumes,
            )
        )
    return steps


def rollback_step(spec: ServiceSpec, image_id: str, *, snapshot: bool) -> Step:
    """Only if the service fails on its new image: back to the kept image (and the snapshot)."""
    data = " and its data from the snapshot" if snapshot else ""
    return Step(
        "rollback",
        spec.name,
        f"{spec.name}: if it fails on the new image, roll back to {short_id(image_id)}{data} "
        "(`--no-rollback` skips it)",
        spec.name,
        timeout_s=spec.health.timeout_s,
        names=(kept_image(spec), image_id, "snapshot" if snapshot else ""),
    )


def build_rollback_plan(stack: Stack, observed: Observed, snapshots: Mapping[str, str | None], *, data: bool) -> Plan:
    """`airpods rollback`: each service back on the image kept from before its last update
    (observed in `observed.images` under plan.kept_image), and with `data` its volumes from its
    newest snapshot (`snapshots`: service → archive, None when it has none). A service with no
    kept image is a note, not a step."""
    steps: list[Step] = []
    notes: list[str] = []
    for spec in stack.services:
        kept = kept_image(spec)
        if kept not in observed.images:
            notes.append(f"{spec.name}: no image kept from before an update, nothing to roll back to")
            continue
        if spec.pod in observed.pods:
            steps.append(remove_step(spec.pod, f"{spec.name}: back to {short_id(observed.images[kept])}", spec.name))
        archive = snapshots.get(spec.name)
        if data and archive:
            steps.append(
                Step(
                    "restore",
                    spec.name,
                    f"{spec.name}: its data from the snapshot {archive}",
                    spec.name,
                    names=(archive,),
                )
            )
        elif data:
            notes.append(f"{spec.name}: no snapshot of its data, its volumes stay as they are")
        steps += service_steps(replace(spec, run_image=kept))
    return Plan("rollback", tuple(steps), tuple(notes))


def reload_step(spec: ServiceSpec) -> Step:
    """A kept router rereads its preset file if this start changed it (models/router.py:
    apply_presets), before the wait for its startup models."""
    return Step(
        "reload",
        spec.name,
        f"{spec.name}: if this start changed its preset file, reread it (GET /models?reload=1) once the requests "
        "on the loaded models whose flags changed have finished (up to --drain s), then load those models and "
        "its startup models again",
        spec.name,
    )


def drain_step(spec: ServiceSpec, reason: str) -> Step:
    """A running router about to be recreated (`reason`): its loaded models said, their
    requests let finish, and (once the new container is up) loaded again (models/router.py)."""
    return Step(
        "drain",
        spec.name,
        f"{spec.name}: say which models it has loaded and let running requests finish (up to --drain s) before "
        "its pod goes; load those models again once the new one is up",
        spec.name,
        names=(reason,),
    )


def wait_step(spec: ServiceSpec) -> Step:
    """The wait until the service is ready: its health path answers, else its container runs."""
    target = spec.publish[0].reach() if spec.publish else None
    why = (
        f"{spec.name}: wait until GET {spec.health.path} on port {target[1]} answers "
        f"(up to {spec.health.timeout_s:g} s)"
        if spec.health.path and target
        else f"{spec.name}: wait until its container runs (no health check)"
    )
    return Step("wait", spec.name, why, spec.name, timeout_s=spec.health.timeout_s)


def service_steps(spec: ServiceSpec) -> list[Step]:
    """A service's own steps: its pod, its container, the wait until it is ready."""
    published = ", ".join(f"{p.address()}:{p.container}" for p in spec.publish)
    return [
        Step(
            "pod",
            spec.pod,
            f"{spec.name}: pod {spec.pod}" + (f", published on {published}" if published else ", not published"),
            spec.name,
            spec=spec,
        ),
        Step(
            "container",
            spec.container,
            f"{spec.name}: container {spec.container} ({spec.variant} image {spec.image})",
            spec.name,
            spec=spec,
        ),
        wait_step(spec),
    ]


def routers(services: Iterable[ServiceSpec]) -> list[ServiceSpec]:
    """The llama.cpp routers among `services`: the ones that read a preset file airpods writes."""
    return [s for s in services if any(m.target == PRESETS_DIR for m in s.mounts)]


def folder_steps(stack: Stack) -> list[Step]:
    """Each volume's folders its service needs (ComfyUI's checkpoints/, loras/ …), the missing ones."""
    return [
        Step(
            "folders",
            mount.source,
            f"{spec.name}: make the folders it needs in {mount.source} that are missing ({', '.join(mount.folders)})",
            names=mount.folders,
        )
        for spec in stack.services
        for mount in spec.mounts
        if mount.folders
    ]


def fetch_steps(stack: Stack, present: frozenset[str] | None) -> list[Step]:
    """A fetch for each declared model (a preset with a `source`) the model store lacks, each
    name once; every declared one when the store cannot be read here (`present` None: the
    fetch then says why)."""
    return [
        Step(
            "fetch",
            preset.name,
            f"model {preset.name}: fetch {preset.source} into the model store (declared in services.{router}.models)",
            names=(router, preset.source),
            timeout_s=PULL_TIMEOUT_S,
        )
        for router, preset in declared_models(stack.services)
        if preset.source and (present is None or preset.name not in present)
    ]


def declared_models(services: Iterable[ServiceSpec]) -> list[tuple[str, Preset]]:
    """(router, preset) of every declared model with a source among the routers of
    `services`, each name once (the first router that declares it)."""
    seen: dict[str, tuple[str, Preset]] = {}
    for spec in routers(services):
        for preset in spec.presets:
            if preset.source:
                seen.setdefault(preset.name, (spec.name, preset))
    return list(seen.values())


def preset_steps(stack: Stack) -> list[Step]:
    return [
        Step(
            "presets",
            spec.name,
            f"{spec.name}: write its preset file {PRESET_FILE} if it changed (its declared models, and "
            "sections for the models found in the store)",
        )
        for spec in routers(stack.services)
    ]


def prune_steps(stack: Stack, observed: Observed) -> list[Step]:
    """Once a service runs with a user secret's new value (a new value is a new secret, named
    PREFIX-ID[-project] by stack.build.user_secrets), the older values of that secret go."""
    current = {d.name for d in stack.secrets}
    steps = []
    for spec in stack.services:
        prefixes = tuple(
            use.name.removesuffix(project_suffix(stack.project)).rsplit("-", 1)[0] + "-"
            for use in spec.secrets
            if use.purpose == "user" and use.name.startswith((USER_SECRET_PREFIX, GATEWAY_SECRET_PREFIX))
        )
        stale = sorted(
            name
            for name, project in observed.secret_projects.items()
            if prefixes and project == stack.project and name.startswith(prefixes) and name not in current
        )
        if stale:
            steps.append(
                Step(
                    "prune",
                    spec.name,
                    f"{spec.name}: once it runs with its secrets' new values, remove the older ones "
                    f"({', '.join(stale)})",
                    spec.name,
                    names=tuple(stale),
                )
            )
    return steps


def build_stop_plan(stack: Stack, observed: Observed | None, timeout_s: int, *, remove_orphans: bool = False) -> Plan:
    """Stop and remove the pods of this project's services; volumes are never touched.
    `observed=None` plans for all. A stop step may take `timeout_s` before podman kills the
    containers, so the engine gives it that long and a margin."""
    steps: list[Step] = []
    notes: list[str] = []
    own = observed.project_pods(stack.project) if observed is not None else None
    targets: list[tuple[str, str | None, str]] = []
    for spec in stack.services:
        if own is not None and spec.pod not in own:
            notes.append(f"{spec.name}: not running")
            continue
        targets.append((spec.pod, spec.name, spec.name))
    left = orphans(stack, observed) if observed is not None else []
    if remove_orphans:
        targets += [(pod.name, None, f"orphan {pod.name}") for pod in left]
    elif left:
        notes.append(
            f"left running: orphan pod{'s' if len(left) > 1 else ''} {', '.join(p.name for p in left)} "
            "(`airpods stop --remove-orphans` removes them)"
        )
    for pod, service, label in targets:
        steps.append(
            Step(
                "stop",
                pod,
                f"{label}: stop pod {pod}",
                service,
                timeout_s=timeout_s + ENGINE_MARGIN_S,
                grace_s=timeout_s,
            )
        )
        steps.append(remove_step(pod, f"{label}: remove pod {pod} (volumes are kept)", service))
    return Plan("stop", tuple(steps), tuple(notes))
