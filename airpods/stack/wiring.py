"""How services find each other: Open WebUI → Ollama and every llama.cpp instance (chat), and
→ ComfyUI (image generation), by network alias, with the stack's API key handed over as podman
secrets (never on a command line)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Literal

from airpods.labels import DEFAULT_PROJECT, project_suffix
from airpods.stack.args import sets_flag
from airpods.stack.flag_table import FlagTable
from airpods.stack.model import GATEWAY_SECRET_PREFIX, UNSET, SecretDef, SecretUse

if TYPE_CHECKING:
    from airpods.config.schema import Config, Service

OLLAMA, LLAMACPP, OPEN_WEBUI, COMFYUI, GATEWAY = "ollama", "llamacpp", "open-webui", "comfyui", "gateway"
# The port each kind listens on inside its pod when its `ports` say none.
DEFAULT_PORTS = {OLLAMA: 11434, LLAMACPP: 8080, OPEN_WEBUI: 8080, COMFYUI: 8188, GATEWAY: 8443}
KEY_FILE_IN_CONTAINER = "/run/secrets/api_key"
DEFAULT_LLAMA_PORT = DEFAULT_PORTS[LLAMACPP]


def api_key_secret(key_id: str, project: str = DEFAULT_PROJECT) -> SecretDef:
    return SecretDef(f"airpods-api-key-{key_id}{project_suffix(project)}")


def listen_port(service: Service, default_port: int) -> int:
    """The port a service listens on inside its pod: the container side of its first `ports`
    entry (airpods passes it to llama-server as --port), else the server's default."""
    return service.ports[0].container if service.ports else default_port


def _in_network(config: Config, name: str, default_port: int) -> tuple[str, int]:
    """(alias, container port) other pods use to reach a service."""
    service = config.services[name]
    return (service.network_aliases or [name])[0], listen_port(service, default_port)


def llama_extra_args(
    service: Service, table: FlagTable | None, key_id: str | None, project: str = DEFAULT_PROJECT
) -> tuple[list[str], list[str], list[SecretUse]]:
    """(args, key args, secrets): an --alias for the single-model shape (else the model's API id
    would be its path); --api-key-file pointing at the key mounted from a secret (kept apart:
    a renderer that hands the key over as env leaves these out)."""
    args: list[str] = []
    key_args: list[str] = []
    secrets: list[SecretUse] = []
    if key_id:  # the config refuses api_key and api_key_file in command_args
        secrets.append(SecretUse(api_key_secret(key_id, project).name, "mount", KEY_FILE_IN_CONTAINER))
        key_args = ["--api-key-file", KEY_FILE_IN_CONTAINER]
    model = next((v for k, v in service.command_args.items() if sets_flag({k: v}, table, "model")), None)
    if isinstance(model, str) and model and not sets_flag(service.command_args, table, "alias"):
        args += ["--alias", PurePosixPath(model).name.removesuffix(".gguf")]
    return args, key_args, secrets


def open_webui_wiring(
    config: Config, name: str, backends: Iterable[tuple[str, str]], key_id: str | None
) -> tuple[list[tuple[str, str]], list[SecretUse], list[SecretDef]]:
    """Env (and the key list as an env secret) pointing Open WebUI service `name` at every
    backend, and its session key (WEBUI_SECRET_KEY, generated once per stack) as an env secret.
    `backends` are (name, kind) of the stack's instances; what the user set in env or secrets
    wins, variable by variable. Variable names are Open WebUI's documented env
    (docs.openwebui.com/getting-started/env-configuration): OLLAMA_BASE_URLS,
    OPENAI_API_BASE_URLS/OPENAI_API_KEYS (';'-separated, aligned), and for image generation
    ENABLE_IMAGE_GENERATION, IMAGE_GENERATION_ENGINE=comfyui and COMFYUI_BASE_URL (one engine:
    the first ComfyUI instance)."""
    user_env, user_secrets = config.services[name].env, config.services[name].secrets
    project = config.runtime.project
    backends = list(backends)
    ollamas = [_in_network(config, n, DEFAULT_PORTS[OLLAMA]) for n, kind in backends if kind == OLLAMA]
    llamas = [_in_network(config, n, DEFAULT_LLAMA_PORT) for n, kind in backends if kind == LLAMACPP]
    comfyuis = [_in_network(config, n, DEFAULT_PORTS[COMFYUI]) for n, kind in backends if kind == COMFYUI]
    env: list[tuple[str, str]] = []
    secrets: list[SecretUse] = []
    defs: list[SecretDef] = []

    def add(name: str, value: str) -> None:
        if name not in user_env:
            env.append((name, value))

    if "WEBUI_SECRET_KEY" not in user_env and "WEBUI_SECRET_KEY" not in user_secrets:
        # Open WebUI signs sessions with it and makes one in its container when unset (a new
        # one whenever the container is recreated, logging everyone out): one per stack instead.
        session = SecretDef(
            f"airpods-webui-secret-key{project_suffix(project)}",
            purpose="user",
            source=f"generated:webui-secret-key{project_suffix(project)}",
            config_key=f"services.{name}.secrets.WEBUI_SECRET_KEY",
        )
        defs.append(session)
        secrets.append(SecretUse(session.name, "env", "WEBUI_SECRET_KEY", "user"))
    if ollamas and not {"OLLAMA_BASE_URL", "OLLAMA_BASE_URLS"} & set(user_env):
        add("OLLAMA_BASE_URLS", ";".join(f"http://{alias}:{port}" for alias, port in ollamas))
    if llamas and not {"OPENAI_API_BASE_URL", "OPENAI_API_BASE_URLS"} & set(user_env):
        add("ENABLE_OPENAI_API", "True")
        add("OPENAI_API_BASE_URLS", ";".join(f"http://{alias}:{port}/v1" for alias, port in llamas))
        # Each connection as the llama.cpp router it is, indexed as the URLs are: Open WebUI then
        # shows each model's load state and offers load/unload (a plain OpenAI connection
        # answers those 400 "Provider default does not support model management"; measured
        # with Open WebUI 0.12.4, issue 33).
        configs = {str(i): {"provider": "llama.cpp"} for i in range(len(llamas))}
        add("OPENAI_API_CONFIGS", json.dumps(configs, separators=(",", ":")))
        if not {"OPENAI_API_KEY", "OPENAI_API_KEYS"} & set(user_env):
            if key_id:
                keys = SecretDef(
                    f"airpods-openai-keys-{key_id}-x{len(llamas)}{project_suffix(project)}",
                    repeat=len(llamas),
                    purpose="openai-api-keys",
                )
                defs.append(keys)
                secrets.append(SecretUse(keys.name, "env", "OPENAI_API_KEYS", "openai-api-keys"))
            else:
                add("OPENAI_API_KEYS", ";".join(["none"] * len(llamas)))
    if config.services[name].models_for == "everyone" and (ollamas or llamas):
        add("BYPASS_MODEL_ACCESS_CONTROL", "True")
    if comfyuis and user_env.get("IMAGE_GENERATION_ENGINE", "comfyui") == "comfyui":  # another engine: none of it
        alias, port = comfyuis[0]
        add("ENABLE_IMAGE_GENERATION", "True")
        add("IMAGE_GENERATION_ENGINE", "comfyui")
        add("COMFYUI_BASE_URL", f"http://{alias}:{port}")
        if "COMFYUI_WORKFLOW" not in user_env:  # a workflow of the user's has its own node ids
            add("COMFYUI_WORKFLOW_NODES", DEFAULT_WORKFLOW_NODES)
    return env, secrets, defs


# Where Open WebUI's default ComfyUI workflow (open_webui/config.py COMFYUI_DEFAULT_WORKFLOW:
# 3 KSampler, 4 CheckpointLoaderSimple, 5 EmptyLatentImage, 6 the prompt's CLIPTextEncode) takes
# each request's values. Open WebUI's admin page asks for these node ids; set by env alone they
# are empty, and every image would be drawn from the workflow's placeholder text "Prompt".
# The model is IMAGE_GENERATION_MODEL (a file in ComfyUI's checkpoints/).
DEFAULT_WORKFLOW_NODES = json.dumps(
    [
        {"type": "prompt", "key": "text", "node_ids": ["6"]},
        {"type": "model", "key": "ckpt_name", "node_ids": ["4"]},
        {"type": "width", "key": "width", "node_ids": ["5"]},
        {"type": "height", "key": "height", "node_ids": ["5"]},
        {"type": "n", "key": "batch_size", "node_ids": ["5"]},
        {"type": "steps", "key": "steps", "node_ids": ["3"]},
        {"type": "seed", "key": "seed", "node_ids": ["3"]},
    ],
    separators=(",", ":"),
)


# The gateway's files a container gets (gateway/tls.py, gateway/prepare.py): label → (file in
# its state folder, how it is handed over, where in the container).
GATEWAY_FILES: dict[str, tuple[str, Literal["mount", "env"], str]] = {
    "server-crt": ("server.crt", "mount", "/run/airpods-gateway/server.crt"),
    "server-key": ("server.key", "mount", "/run/airpods-gateway/server.key"),
    "auth": ("auth.bcrypt", "env", "AIRPODS_GATEWAY_AUTH"),
}


def gateway_file_sources(config: Config, name: str) -> dict[str, str]:
    """Label (GATEWAY_FILES) → secret source of gateway `name`'s files: airpods' own in its
    state folder ("state:gateway/PROJECT/FILE"), the certificate and key the user's when its
    `tls` names them."""
    own = config.services[name].tls
    mine = {"server-crt": own.certificate, "server-key": own.key} if own else {}
    return {label: mine.get(label) or state_source(config.runtime.project, label) for label in GATEWAY_FILES}


def state_source(project: str, label: str) -> str:
    """The secret source of a gateway file airpods keeps (GATEWAY_FILES label) for `project`."""
    return f"state:gateway/{project}/{GATEWAY_FILES[label][0]}"


def gateway_sources(config: Config) -> list[str]:
    """The secret sources of every gateway of the config."""
    return [
        source
        for name in config.services
        if kind_of(config, name) == GATEWAY
        for source in gateway_file_sources(config, name).values()
    ]


def kind_of(config: Config, name: str) -> str:
    """The root of a service's extends chain: `llama-fast` extending `llamacpp` is a llamacpp."""
    while (parent := config.services[name].extends) is not None:
        name = parent
    return name


def gateway_enabled(config: Config) -> bool:
    """Whether an enabled service of the config is a gateway (every other service then
    publishes on loopback only)."""
    return any(kind_of(config, name) == GATEWAY for name in config.enabled_services())


@dataclass(frozen=True)
class GatewayWiring:
    """What gateway wiring gives its service: the Caddyfile (env), the entrypoint that writes
    and runs it, the certificate, key and password hash as secrets, the hosts its certificate
    names and each backend's path prefix ((service, "/NAME/"))."""

    env: list[tuple[str, str]]
    entrypoint: tuple[str, ...]
    secrets: list[SecretUse]
    defs: list[SecretDef]
    hosts: tuple[str, ...]
    routes: tuple[tuple[str, str], ...]


def gateway_wiring(
    config: Config, name: str, backends: Iterable[tuple[str, str]], secret_ids: Mapping[str, str] | None
) -> GatewayWiring:
    """Gateway `name` in front of every backend (name, kind) but gateways (gateway/caddy.py)."""
    from airpods.gateway.caddy import CADDYFILE_VARIABLE, ENTRYPOINT, caddyfile, default_hosts, routes

    service = config.services[name]
    hosts = tuple(dict.fromkeys(service.hosts)) or default_hosts(config.runtime.bind_address)
    reached = [
        (b, kind, *_in_network(config, b, DEFAULT_PORTS.get(kind, 80))) for b, kind in backends if kind != GATEWAY
    ]
    found = routes(reached)
    text = caddyfile(found, listen_port(service, DEFAULT_PORTS[GATEWAY]), hosts)
    secrets, defs = [], []
    for label, source in gateway_file_sources(config, name).items():
        _, how, target = GATEWAY_FILES[label]
        sid = (secret_ids or {}).get(source, UNSET)
        secret = SecretDef(
            f"{GATEWAY_SECRET_PREFIX}{label}-{sid}{project_suffix(config.runtime.project)}",
            purpose="user",
            source=source,
            config_key=f"services.{name}.tls" if source.startswith(("file:", "env:")) else f"services.{name}",
        )
        defs.append(secret)
        secrets.append(SecretUse(secret.name, how, target, "user"))
    return GatewayWiring(
        [(CADDYFILE_VARIABLE, text)], ENTRYPOINT, secrets, defs, hosts, tuple((r.service, r.prefix) for r in found)
    )
