"""The derived stack: what runs on this host, fully decided (images, args, GPU, wiring), as
facts that every renderer (podman argv, Quadlet units, Kubernetes YAML) reads; no engine syntax."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import PurePosixPath
from typing import Literal

from airpods.gpu import GpuRequest, HostGpu
from airpods.labels import CONFIG_HASH, DEFAULT_PROJECT, SERVICE, object_labels


@dataclass(frozen=True)
class Publish:
    host_ip: str
    host: int
    container: int

    def address(self) -> str:
        """The host side as a socket address: "127.0.0.1:3000", an IPv6 one in brackets ("[::1]:8081")."""
        return f"{bracketed(self.host_ip)}:{self.host}"

    def reach(self) -> tuple[str, int]:
        """(address, port) a client on this host connects to: a wildcard bind is reached on loopback."""
        if self.host_ip in ("", "0.0.0.0"):
            return "127.0.0.1", self.host
        return ("::1" if self.host_ip == "::" else self.host_ip), self.host

    def url(self) -> str:
        address, port = self.reach()
        return f"http://{bracketed(address)}:{port}"


def bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    mode: str
    named: bool
    folders: tuple[str, ...] = ()  # sub-folders `start` creates in it (relative paths)


# What a secret holds: the stack's API key, or Open WebUI's list of keys (one per OpenAI URL).
SecretPurpose = Literal["api-key", "openai-api-keys", "user"]
UNSET = "unset"  # the id of a user secret whose source gives no value (yet): start then says why


@dataclass(frozen=True)
class SecretUse:
    """A secret handed to a container: a read-only file at `target` (type "mount"), or the env
    variable `target` (type "env")."""

    name: str
    type: Literal["mount", "env"]
    target: str
    purpose: SecretPurpose = "api-key"


@dataclass(frozen=True)
class SecretDef:
    """A secret to create: the stack's API key `repeat` times, joined by ';' (Open WebUI wants
    one key per OpenAI URL, aligned by index)."""

    name: str
    repeat: int = 1
    purpose: SecretPurpose = "api-key"
    source: str = ""  # a user's secret ([services.X.secrets]): where its value is read, "env:VAR" or "file:PATH"
    config_key: str = ""  # a user's secret: its key path (services.X.secrets.NAME), for errors

    def value(self, key: str) -> str:
        return ";".join([key] * self.repeat)


@dataclass(frozen=True)
class HealthCheck:
    path: str | None
    expected: tuple[tuple[int, int], ...]  # accepted status ranges, inclusive
    timeout_s: float

    def accepts(self, status: int) -> bool:
        return any(lo <= status <= hi for lo, hi in self.expected)


@dataclass(frozen=True)
class Settings:
    """The [cli] knobs the lifecycle needs."""

    stop_timeout_s: int = 10
    max_concurrent_pulls: int = 3
    lock_timeout_s: float = 30


@dataclass(frozen=True)
class Preset:
    """One model's section of a router's preset file (stack/presets.py)."""

    name: str  # the model's name in /v1/models
    flags: tuple[tuple[str, str | None], ...]  # (spelling, value; None for a switch), checked
    load_on_startup: bool | None = None
    source: str | None = None  # where `start` fetches it from when the volume lacks it
    required: bool = True  # a startup model that fails to load fails the start (else: a warning)


@dataclass(frozen=True)
class ServerSettings:
    """What a llama-server instance runs with, read once from the argv airpods rendered for it
    (long flag names, as stack/args.py renders them; `-m` too): the model file of a single-model
    server (None: a router), the context size (None: the model's own, as --ctx-size 0 asks), the
    KV cache types, the micro-batch, the GPU layers as given, the alias and the preset file (the
    key file is the engine's: a secret it mounts). `models fit`, `top`, `models` and the start
    fit check read these, never the argv."""

    model: str | None = None  # path in the container, e.g. /models/tiny.gguf
    ctx_size: int | None = None
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    ubatch_size: int | None = None  # None: llama-server's default
    n_gpu_layers: str | None = None  # as given: a number, "all", "auto" or "-1"
    alias: str | None = None
    models_preset: str | None = None

    @classmethod
    def from_args(cls, args: Sequence[str]) -> ServerSettings:
        """The settings of a llama-server command line; a later flag wins over an earlier one."""
        values: dict[str, str] = {}
        for flag, value in zip(args, [*args[1:], ""], strict=True):
            if flag.startswith("-"):
                values["--model" if flag == "-m" else flag] = value
        ctx, ubatch = values.get("--ctx-size", ""), values.get("--ubatch-size", "")
        return cls(
            model=values.get("--model") or None,
            ctx_size=int(ctx) if ctx.isdigit() and int(ctx) > 0 else None,
            cache_type_k=values.get("--cache-type-k", "f16"),
            cache_type_v=values.get("--cache-type-v", "f16"),
            ubatch_size=int(ubatch) if ubatch.isdigit() else None,
            n_gpu_layers=values.get("--n-gpu-layers"),
            alias=values.get("--alias"),
            models_preset=values.get("--models-preset"),
        )


PRESETS_DIR = "/presets"  # where a llama.cpp router reads its preset file, in the container
PRESET_FILE = "models.ini"
USER_SECRET_PREFIX = "airpods-secret-"  # every [services.X.secrets] value's secret name starts so
GATEWAY_SECRET_PREFIX = "airpods-gateway-"  # a gateway's certificate, key and password hash (wiring)

# Scratch folders a read-only container gets as tmpfs (what Podman's --read-only mounts by itself).
READ_ONLY_TMPFS = ("/tmp", "/var/tmp", "/run")


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    project: str
    kind: str  # the built-in service it is (root of its extends chain)
    image: str
    variant: str  # cpu | cuda | rocm | vulkan
    pod: str
    container: str
    aliases: tuple[str, ...]
    publish: tuple[Publish, ...]
    container_ports: tuple[int, ...]
    mounts: tuple[Mount, ...]
    env: tuple[tuple[str, str], ...]
    gpu_request: GpuRequest | None  # the host's GPU handed over (None: CPU image)
    entrypoint: tuple[str, ...] | None
    args: tuple[str, ...]  # rendered command_args, after the image
    key_args: tuple[str, ...]  # flags that point the server at its mounted API key file (none in kube: env)
    memory: str | None
    cpus: float | None
    restart_policy: str
    network: str
    secrets: tuple[SecretUse, ...]
    health: HealthCheck = field(compare=False)
    # Where the command_args were checked (a flag table's source; "" unchecked): said by
    # `config validate` and `start --dry-run`, no part of how the container is made.
    flag_table: str = field(default="", compare=False)
    presets: tuple[Preset, ...] = ()  # a router's model presets: its preset file (not in the config hash)
    # The GPU decision said by start, doctor and status (the variant and request above are what
    # counts for the container): why this image, and a warning when a GPU goes unused.
    gpu_reason: str = field(default="", compare=False)
    gpu_warning: str = field(default="", compare=False)
    gpu_required: bool = field(default=False, compare=False)  # gpu.enabled = "required": the CPU is a failure
    # Least privilege (issue 21): every container drops all capabilities and runs with
    # no-new-privileges; `cap_add` are the ones it gets back, `read_only` keeps its root
    # filesystem read-only with tmpfs at READ_ONLY_TMPFS and `tmpfs`.
    cap_add: tuple[str, ...] = ()
    read_only: bool = False
    tmpfs: tuple[str, ...] = ()
    fit: str = "warn"  # the memory fit check before start: warn | strict | off (models/fit.py)
    # What the container runs when not `image` itself: a rollback runs the image kept from before
    # an update (plan.kept_image) with the same config, so the same config hash.
    run_image: str | None = None
    # A gateway: the names and addresses its TLS certificate carries (the certificate is a
    # secret whose name changes with it: not part of the config hash), and the path prefix of
    # each service behind it ((service, "/NAME/"); its Caddyfile, in `env`, says the same).
    hosts: tuple[str, ...] = ()
    routes: tuple[tuple[str, str], ...] = ()

    @property
    def scratch(self) -> tuple[str, ...]:
        """The container paths that get a tmpfs: when read-only, the scratch folders and the
        folders of mounted secrets (measured: Podman 4.3 with runc cannot create a secret's
        mount point in a read-only root, "read-only file system", but can in a tmpfs); `tmpfs`."""
        folders = {str(PurePosixPath(use.target).parent) for use in self.secrets if use.type == "mount"}
        read_only = [*READ_ONLY_TMPFS, *sorted(folders)] if self.read_only else []
        return tuple(dict.fromkeys([*read_only, *self.tmpfs]))

    @property
    def config_hash(self) -> str:
        """Changes exactly when the pod or container would be created differently."""
        import hashlib
        import json

        data = asdict(self)
        data.pop("health")
        data.pop("flag_table")
        data.pop("gpu_reason")
        data.pop("gpu_warning")
        data.pop("gpu_required")
        if data["gpu_request"] and not data["gpu_request"]["groups"]:  # added later: old hashes hold
            data["gpu_request"].pop("groups")
        # A router's presets are its preset file, rewritten and reread while it runs (issue 33 §1)
        data.pop("presets")
        for mount in data["mounts"]:
            mount.pop("folders")  # made by `start` on the host: the container is the same
        data.pop("fit")  # a check before start, not part of the container
        data.pop("run_image")  # a rollback's image: the same config
        data.pop("hosts")
        data.pop("routes")
        if any(use["type"] == "env" for use in data["secrets"]):
            # Env secrets became files a wrapper reads (engine/env_handover, issue 34): a
            # container made before hands them over as env, which `inspect` shows.
            data["env_secrets"] = "files"
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        return digest[:16]

    @property
    def url(self) -> str | None:
        return self.publish[0].url() if self.publish else None

    @property
    def labels(self) -> dict[str, str]:
        """Labels of its pod and container: the project's, the service, the config hash."""
        return {**object_labels(self.project), SERVICE: self.name, CONFIG_HASH: self.config_hash}

    def model_args(self, model: str = "*") -> tuple[str, ...]:
        """The flags `model` of a router runs with, later ones winning: its command line, then
        the preset file's shared [*] section, then the model's own section ("*": any model)."""
        args = list(self.args)
        for preset in sorted(self.presets, key=lambda p: p.name != "*"):  # the shared section first
            if preset.name in ("*", model):
                args += [arg for spelling, value in preset.flags for arg in (f"--{spelling.lstrip('-')}", value) if arg]
        return tuple(args)

    @cached_property
    def server(self) -> ServerSettings:
        """Its llama-server settings (meaningful for a llama.cpp instance: kind llamacpp; a
        router's shared preset section included)."""
        return ServerSettings.from_args(self.model_args())


@dataclass(frozen=True)
class Stack:
    network: str
    gpu: HostGpu
    services: tuple[ServiceSpec, ...]
    warnings: tuple[str, ...] = ()
    settings: Settings = Settings()
    secrets: tuple[SecretDef, ...] = ()
    project: str = DEFAULT_PROJECT
    configured: tuple[str, ...] = ()  # every service the config defines (enabled or not)
    enabled: tuple[str, ...] = ()  # the services `start` runs when none are named
    volume_sizes: tuple[tuple[str, str], ...] = ()  # named volume → the size a cluster claim asks for
    key_source: str = "generated"  # runtime.api_key: generated | none | env:VAR | file:PATH (secrets.py)
    key_id: str = ""  # names the key the secrets were derived for ("" none): a cached stack checks it
    # (source, id) of each user secret's value the stack was derived for: a cached stack checks them
    secret_ids: tuple[tuple[str, str], ...] = ()

    @property
    def labels(self) -> dict[str, str]:
        """Labels of the stack's shared objects (network, volumes, secrets)."""
        return object_labels(self.project)

    @property
    def volumes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.source for s in self.services for m in s.mounts if m.named))

    @property
    def images(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.image for s in self.services))

    def service(self, name: str) -> ServiceSpec:
        return next(s for s in self.services if s.name == name)
