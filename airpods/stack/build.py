"""Config + host facts → Stack. Pure: the host's GPU is an input, never probed here."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from airpods.config.keys import key_path
from airpods.errors import ConfigError, UsageError
from airpods.gpu import GpuChoice, HostGpu, choose_gpu
from airpods.labels import default_container, default_pod, project_suffix
from airpods.secrets import key_source
from airpods.stack.args import check_server_env, command_flags, flat, sets_flag
from airpods.stack.flag_table import FlagTable, builtin_table
from airpods.stack.model import (
    PRESET_FILE,
    PRESETS_DIR,
    UNSET,
    USER_SECRET_PREFIX,
    HealthCheck,
    Mount,
    Preset,
    Publish,
    SecretDef,
    SecretUse,
    ServiceSpec,
    Settings,
    Stack,
)
from airpods.stack.presets import ROUTER_OWN, build_presets, preset_folder
from airpods.stack.wiring import (
    DEFAULT_LLAMA_PORT,
    GATEWAY,
    LLAMACPP,
    OPEN_WEBUI,
    api_key_secret,
    gateway_enabled,
    gateway_wiring,
    kind_of,
    listen_port,
    llama_extra_args,
    open_webui_wiring,
)
from airpods.state import state_path

if TYPE_CHECKING:
    from airpods.config.schema import Config, Service

MODEL_VOLUME_TARGET = "/models"
DEFAULT_CLAIM_SIZE = "10Gi"
# llama-server's log verbosity for its model-load lines (offloaded layers, buffers per device):
# its --log-verbosity (env LLAMA_ARG_LOG_VERBOSITY) 4; the default, 3, leaves them out (b11434).
LOG_VERBOSITY = ("LLAMA_ARG_LOG_VERBOSITY", "4")


# A single image string is taken to run on whatever GPU the service is given.
EVERY_VARIANT = ("cpu", "cuda", "rocm", "vulkan")


def select_image(service: Service, gpu: HostGpu, name: str = "service") -> tuple[str, GpuChoice]:
    """(image, GPU decision) for this host: gpu.choose_gpu over the image variants the service
    offers. Raises RuntimeFailure as choose_gpu does (a required GPU that cannot be used)."""
    variants = EVERY_VARIANT if isinstance(service.image, str) else dict(service.image)
    choice = choose_gpu(gpu, name, service.gpu.enabled, service.gpu.force_cpu, service.gpu.devices, variants)
    image = service.image if isinstance(service.image, str) else service.image[choice.key]
    return image, choice


def select_services(config: Config, only: Sequence[str] = ()) -> list[str]:
    """The named services (even if disabled: naming one asks for it), else every enabled one."""
    unknown = [name for name in only if name not in config.services]
    if unknown:
        from difflib import get_close_matches

        close = [m for n in unknown for m in get_close_matches(n, list(config.services), n=1)]
        raise UsageError(
            f"unknown service{'s' if len(unknown) > 1 else ''}: {', '.join(n or repr(n) for n in unknown)}",
            hint=(f"did you mean {', '.join(close)}? " if close else "")
            + "services are: "
            + ", ".join(config.services),
        )
    return list(dict.fromkeys(only)) if only else config.enabled_services()


def runs_llama_server(service: Service, kind: str) -> bool:
    """A llama.cpp service whose entrypoint is llama-server (the image's, or an override of it)."""
    entrypoint = service.entrypoint_override
    return kind == LLAMACPP and not (entrypoint and PurePosixPath(entrypoint[0]).name != "llama-server")


def flag_table_for(service: Service, kind: str, image: str, tables: Mapping[str, FlagTable]) -> FlagTable | None:
    """The flag table a service's command_args are checked against: its image's own (`tables`:
    image reference → table read from that image), else the built-in one; None for a service
    that does not run llama-server."""
    return (tables.get(image) or builtin_table()) if runs_llama_server(service, kind) else None


def _canonical(table: FlagTable, spelling: str) -> str:
    found = table.lookup(spelling)
    return found[0].name if found else spelling


def router_presets(
    config: Config, name: str, table: FlagTable | None, runs_server: bool
) -> tuple[tuple[Preset, ...], tuple[Mount, ...]]:
    """A llama-server router's declared presets and the read-only mount of its preset folder
    (every router gets one: airpods also writes sections for the models it recognises, such as
    embedding models). None for a single-model server (--model), one whose command_args name
    a preset file of their own, or another program. `table` None: flags not checked (pulling).
    Raises ConfigError for presets it cannot take."""
    service = config.services[name]
    where = key_path(("services", name, "models"))
    if not runs_server:
        return (), ()
    for flag, why in (
        ("model", "a single-model server (command_args.model) has no presets"),
        ("models_preset", "command_args.models_preset names a preset file of its own"),
    ):
        if sets_flag(service.command_args, table, flag):
            if service.models:
                raise ConfigError(f"model presets are for a router: {why}", key=where, hint="remove one of the two")
            return (), ()
    folder = preset_folder(state_path(), config.runtime.project, name)
    return build_presets(service.models, table, name), (Mount(str(folder), PRESETS_DIR, "ro", False),)


def server_images(config: Config, gpu: HostGpu) -> dict[str, tuple[str, ...] | None]:
    """Image → entrypoint of every configured service that runs llama-server on this host (the
    images whose flag tables decide whether the config is valid)."""
    images: dict[str, tuple[str, ...] | None] = {}
    for name, service in config.services.items():
        if runs_llama_server(service, kind_of(config, name)):
            entrypoint = service.entrypoint_override
            images[select_image(service, gpu, name)[0]] = tuple(entrypoint) if entrypoint else None
    return images


def build_service(
    config: Config,
    name: str,
    gpu: HostGpu,
    key_id: str | None = None,
    backends: Sequence[str] = (),
    flag_tables: Mapping[str, FlagTable] | None = None,
    check_flags: bool = True,
    user_wrote: Callable[[str], bool] | None = None,
    secret_ids: Mapping[str, str] | None = None,
) -> tuple[ServiceSpec, list[SecretDef]]:
    """One service's spec, and the secrets it needs created. `backends` are the stack's other
    instances (Open WebUI is wired to them); `flag_tables` see `flag_table_for`. Without
    `check_flags` (pulling images only) command_args are rendered by the plain rules, unchecked.
    `user_wrote` (key path → in the user's file?) lets a user's spelling of a flag replace a
    default's (args.command_flags). `secret_ids` name the value each user secret's source gives
    (source → id; see user_secrets).

    Raises ConfigError for command_args the service's llama-server does not take."""
    service = config.services[name]
    kind = kind_of(config, name)
    if service.models and kind != LLAMACPP:
        raise ConfigError(
            "model presets are for llama.cpp services (llamacpp and the ones that extend it)",
            key=key_path(("services", name, "models")),
            hint="remove the table",
        )
    image, choice = select_image(service, gpu, name)
    variant = choice.variant
    table = flag_table_for(service, kind, image, flag_tables or {}) if check_flags else None
    mounts = tuple(Mount(v.source, v.target, v.mode, v.named, tuple(v.folders)) for v in service.volumes)
    presets: tuple[Preset, ...] = ()
    listens_on = service.ports[0].container if service.ports else None
    flags = command_flags(
        service.command_args, table, key_path(("services", name, "command_args")), user_wrote, listens_on
    )
    args = flat(flags)
    if table:
        check_server_env(service.env, table, key_path(("services", name, "env")))
    env = list(service.env.items()) + [(k, v) for k, v in choice.env if k not in service.env]
    secrets: list[SecretUse] = []
    defs: list[SecretDef] = []
    key_args: list[str] = []
    if kind == LLAMACPP:
        # airpods owns where the server listens: every address inside its pod (the host sees only
        # bind_address), on the container port of `ports` (an inherited template cannot point it
        # elsewhere); the config refuses host and port in command_args.
        presets, preset_mounts = router_presets(config, name, table, runs_llama_server(service, kind))
        gpu_layers: list[tuple[str, str | None]] = []
        # A server with --fit (on by default) places as many layers on the GPU as its memory
        # holds when --n-gpu-layers is unset ("auto"); "all" would take that from it and fail on
        # a model bigger than the GPU. An older server, without --fit, offloads nothing unless told.
        server = table or flag_table_for(service, kind, image, flag_tables or {})
        fits_itself = server is not None and server.lookup("fit") is not None
        if variant != "cpu" and not fits_itself:
            if not sets_flag(service.command_args, table, "n_gpu_layers", "gpu_layers", "ngl"):
                gpu_layers = [("--n-gpu-layers", "all")]
        if preset_mounts and table:
            # llama-server's own command line beats a model's section, and changing it means a new
            # container: a router keeps there only what it serves with itself (ROUTER_OWN), and
            # every other flag goes to the preset file's [*] section, which each model's section
            # overrides, so that a per-model flag is a change of the file alone (issue 33 §1).
            shared = [f for f in flags + gpu_layers if _canonical(table, f[0]) not in ROUTER_OWN]
            flags = [f for f in flags if f not in shared]
            gpu_layers = [f for f in gpu_layers if f not in shared]
            presets = ((Preset("*", tuple(shared)),) if shared else ()) + presets
        args = ["--host", "0.0.0.0", "--port", str(listen_port(service, DEFAULT_LLAMA_PORT)), *flat(flags)]
        args += ["--models-preset", f"{PRESETS_DIR}/{PRESET_FILE}"] if preset_mounts else []
        args += flat(gpu_layers)
        if server is not None and server.lookup("metrics") and not sets_flag(service.command_args, table, "metrics"):
            args.append("--metrics")  # Prometheus /metrics (behind the API key) for `airpods top`
        if (
            server is not None
            and server.lookup("log-verbosity")
            and not sets_flag(service.command_args, table, "log_verbosity", "verbosity", "lv", "verbose", "v")
            and LOG_VERBOSITY[0] not in service.env
        ):
            # Where each model runs comes from the server's load lines (placement.py), which it
            # prints from verbosity 4 ("trace") only: as env, so a router's children inherit it.
            env.append(LOG_VERBOSITY)
        mounts += preset_mounts
        extra, key_args, secrets = llama_extra_args(service, table, key_id, config.runtime.project)
        args += extra
        defs += [api_key_secret(key_id, config.runtime.project)] if secrets and key_id else []
    elif kind == OPEN_WEBUI:
        wired_env, secrets, defs = open_webui_wiring(config, name, [(b, kind_of(config, b)) for b in backends], key_id)
        env += wired_env
    hosts: tuple[str, ...] = ()
    routes: tuple[tuple[str, str], ...] = ()
    entrypoint = tuple(service.entrypoint_override) if service.entrypoint_override else None
    if kind == GATEWAY:
        gateway = gateway_wiring(config, name, [(b, kind_of(config, b)) for b in backends if b != name], secret_ids)
        env += [(k, v) for k, v in gateway.env if k not in service.env]
        entrypoint = entrypoint or gateway.entrypoint
        secrets, defs, hosts, routes = gateway.secrets, gateway.defs, gateway.hosts, gateway.routes
    # With a gateway, it alone is published on bind_address: every other service stays on loopback.
    bind = config.runtime.bind_address if kind == GATEWAY or not gateway_enabled(config) else "127.0.0.1"
    mine, mine_defs = user_secrets(config, name, secret_ids)
    secrets, defs = [*secrets, *mine], [*defs, *mine_defs]
    return ServiceSpec(
        name=name,
        project=config.runtime.project,
        kind=kind,
        image=image,
        variant=variant,
        pod=service.pod or default_pod(config.runtime.project, name),
        container=service.container or default_container(config.runtime.project, name),
        aliases=tuple(service.network_aliases if service.network_aliases is not None else [name]),
        publish=tuple(Publish(bind, p.host, p.container) for p in service.ports if p.host),
        container_ports=tuple(p.container for p in service.ports),
        mounts=mounts,
        env=tuple(env),
        gpu_request=choice.request,
        entrypoint=entrypoint,
        args=tuple(args),
        key_args=tuple(key_args),
        memory=service.resources.memory,
        cpus=service.resources.cpus,
        restart_policy=config.runtime.restart_policy,
        network=config.runtime.network,
        secrets=tuple(secrets),
        health=HealthCheck(service.health.path, tuple(service.health.expected_status), service.health.timeout_s),
        flag_table=table.source if table else "",
        gpu_reason=choice.reason,
        gpu_warning=choice.warning or "",
        gpu_required=service.gpu.enabled == "required",
        presets=presets,
        cap_add=tuple(dict.fromkeys(service.security.cap_add)),
        read_only=service.security.read_only,
        tmpfs=tuple(dict.fromkeys(service.security.tmpfs)),
        fit="strict" if service.gpu.enabled == "required" and service.fit != "off" else service.fit,
        hosts=hosts,
        routes=routes,
    ), defs


def build_stack(
    config: Config,
    gpu: HostGpu,
    only: Sequence[str] = (),
    key_id: str | None = None,
    present: Sequence[str] = (),
    flag_tables: Mapping[str, FlagTable] | None = None,
    check_flags: bool = True,
    user_wrote: Callable[[str], bool] | None = None,
    secret_ids: Mapping[str, str] | None = None,
) -> Stack:
    """The named services (`only`), else every enabled one plus every configured one in
    `present` (services whose pods exist: a disabled service started by name stays part of the
    stack until it is stopped). Open WebUI is wired to every enabled, named or present backend.
    `key_id` names the stack's API key (None: no key, or `runtime.api_key = false`);
    `flag_tables` and `check_flags` see `build_service`."""
    present = [name for name in present if name in config.services]
    names = select_services(config, only) if only else list(dict.fromkeys([*config.enabled_services(), *present]))
    key_id = key_id if config.runtime.api_key else None
    backends = list(dict.fromkeys([*config.enabled_services(), *present, *names]))
    built = [
        build_service(config, name, gpu, key_id, backends, flag_tables, check_flags, user_wrote, secret_ids)
        for name in names
    ]
    services = tuple(spec for spec, _ in built)
    secrets = tuple(dict.fromkeys(d for _, defs in built for d in defs))
    cli = config.cli
    return Stack(
        network=config.runtime.network,
        gpu=gpu,
        services=services,
        warnings=tuple(stack_warnings(services))
        + tuple(env_secret_warnings(config, names))
        + tuple(
            f"{d.config_key}: {d.source} gives no value now; `start` refuses it until it does"
            for d in secrets
            if d.source in (secret_ids or {})
            and (secret_ids or {})[d.source] == UNSET
            and not d.source.startswith("state:")  # airpods' own files: `start` makes them
        ),
        settings=Settings(cli.stop_timeout_s, cli.max_concurrent_pulls, cli.lock_timeout_s),
        secrets=secrets,
        project=config.runtime.project,
        configured=tuple(config.services),
        enabled=tuple(config.enabled_services()),
        volume_sizes=volume_sizes(config, names),
        key_source=key_source(config.runtime.api_key),
        key_id=key_id or "",
        secret_ids=tuple(
            sorted(
                {(d.source, (secret_ids or {}).get(d.source, UNSET)) for d in secrets if d.source in (secret_ids or {})}
            )
        ),
    )


def user_secret_prefix(service: str, variable: str) -> str:
    """Every value's secret of one [services.X.secrets] entry starts so (the value's id follows)."""
    return f"{USER_SECRET_PREFIX}{service}-{variable.lower().replace('_', '-')}-"


def user_secrets(
    config: Config, name: str, secret_ids: Mapping[str, str] | None
) -> tuple[list[SecretUse], list[SecretDef]]:
    """The service's [services.X.secrets] as secrets handed over as env variables (never argv).
    A secret's name carries the id of its value (`secret_ids`: source → id, UNSET when it
    cannot be read now), so a new value makes a new secret and recreates the container."""
    service, project = config.services[name], config.runtime.project
    uses, defs = [], []
    for variable, source in service.secrets.items():
        key = key_path(("services", name, "secrets", variable))
        if variable in service.env:
            raise ConfigError(
                f"{variable} is set both here and in services.{name}.env", key=key, hint="keep it in secrets only"
            )
        sid = (secret_ids or {}).get(source, UNSET)
        secret = SecretDef(
            f"{user_secret_prefix(name, variable)}{sid}{project_suffix(project)}",
            purpose="user",
            source=source,
            config_key=key,
        )
        defs.append(secret)
        uses.append(SecretUse(secret.name, "env", variable, "user"))
    return uses, defs


def env_secret_warnings(config: Config, names: Sequence[str]) -> list[str]:
    """An env value whose name says it is a credential is on the engine's command line (and
    `podman inspect`): say so, with the way to hand it over as a secret instead."""
    from airpods.redact import secret_like

    return [
        f"services.{name}.env.{variable} looks like a secret: env values are on the engine's command line "
        f'and in `inspect`; move it to [services.{name}.secrets] as {variable} = "env:{variable}" '
        '(read from airpods\' environment) or "file:/path"'
        for name in names
        for variable in config.services[name].env
        if secret_like(variable)
    ]


def volume_sizes(config: Config, names: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Named volume → its claim size (`size` of the first service that mounts it; 10Gi if none)."""
    sizes: dict[str, str] = {}
    for name in names:
        for volume in config.services[name].volumes:
            if volume.named and (volume.source not in sizes or sizes[volume.source] == DEFAULT_CLAIM_SIZE):
                sizes[volume.source] = volume.size or sizes.get(volume.source, DEFAULT_CLAIM_SIZE)
    return tuple(sizes.items())


def stack_warnings(services: Sequence[ServiceSpec]) -> list[str]:
    warnings: list[str] = [s.gpu_warning for s in services if s.gpu_warning]
    llama = [s for s in services if s.kind == LLAMACPP]
    if len(llama) > 1:
        names = ", ".join(s.name for s in llama)
        warnings.append(
            f"{len(llama)} llama.cpp servers ({names}) each load their own copy of a model: "
            "mind the memory, or disable the ones you do not need"
        )
    model_volumes = {m.source for s in llama for m in s.mounts if m.target == MODEL_VOLUME_TARGET}
    for spec in services:
        for mount in spec.mounts:
            if mount.source in model_volumes and mount.mode == "rw":
                warnings.append(
                    f"{spec.name} mounts the model volume {mount.source} read-write; "
                    'only `airpods models` should write it (set mode = "ro")'
                )
    return warnings
