"""The typed, validated configuration (pydantic v2). Frozen: nothing downstream edits it."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from airpods.config.syntax import MEMORY_RE, MODEL_NAME_RE, memory_bytes

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*\Z")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
# An image reference, after the grammar of github.com/distribution/reference (reference.go):
# [domain[:port]/]path-component[/path-component…][:tag][@algorithm:hex], path components
# lowercase alphanumerics joined by '.', '_', '__' or dashes, tags at most 128 word characters.
_DOMAIN = (
    r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
)
_HOST = rf"(?:{_DOMAIN}|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_RE = re.compile(
    rf"^(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?\Z"
)
# A named volume both engines accept: Podman allows [a-zA-Z0-9][a-zA-Z0-9_.-]*, Docker wants
# two characters or more (measured: docker rejects a one-character name).
VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+\Z")
VARIANTS = ("cpu", "cuda", "rocm", "vulkan")

Scalar = str | int | float | bool


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError("expected lowercase letters, digits, '-', '_' or '.', starting with a letter or digit")
    return value


Name = Annotated[str, AfterValidator(_check_name)]

# RFC 1035 label: what Kubernetes requires of Service names (and, within it, of Deployment,
# container and claim names), so the same names survive `airpods export kube`.
DNS_LABEL_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?\Z")
# A Kubernetes quantity for a claim's size (apimachinery resource.Quantity, binary or decimal).
QUANTITY_RE = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?\Z")


def check_dns_label(value: str) -> str:
    if not DNS_LABEL_RE.match(value):
        raise ValueError(
            "expected a DNS label as Kubernetes needs it (RFC 1035): lowercase letters, digits and '-', "
            f"starting with a letter, ending with a letter or digit, at most 63 characters; got '{value}'"
        )
    return value


DnsLabel = Annotated[str, AfterValidator(check_dns_label)]


class Port(_Model):
    container: int = Field(ge=1, le=65535)
    host: int | None = Field(default=None, ge=0, le=65535)

    @property
    def published(self) -> bool:
        return bool(self.host)


def _check_image(value: str) -> str:
    if not IMAGE_RE.match(value):
        shown = f"'{value}'" if value else "an empty string"
        raise ValueError(
            'expected an image reference such as "ghcr.io/ggml-org/llama.cpp:server" '
            f"(lowercase repository path, optional :tag or @sha256:digest), got {shown}"
        )
    return value


Image = Annotated[str, AfterValidator(_check_image)]


class Volume(_Model):
    source: str
    target: str
    mode: Literal["rw", "ro"] = "rw"
    size: str | None = None  # a named volume's claim size in `export kube` (e.g. "50Gi")
    # Sub-folders `start` creates in it when missing (ComfyUI's checkpoints/, loras/, vae/ …):
    # relative paths, never removed.
    folders: list[str] = []

    @field_validator("size")
    @classmethod
    def _quantity(cls, value: str | None) -> str | None:
        if value is not None and (not QUANTITY_RE.match(value) or float(value.rstrip("KMGTPEik")) <= 0):
            raise ValueError(f'expected a Kubernetes quantity above zero such as "50Gi" or "500Mi", got \'{value}\'')
        return value

    @field_validator("folders")
    @classmethod
    def _relative_folders(cls, value: list[str]) -> list[str]:
        for folder in value:
            parts = folder.split("/")
            if not all(MODEL_NAME_RE.match(part) for part in parts):
                raise ValueError(
                    "expected folders inside the volume: relative paths of names made of letters, digits, "
                    f"'.', '_' and '-', each starting with a letter or digit (no '..', no leading '/'), got '{folder}'"
                )
        return value

    @field_validator("source")
    @classmethod
    def _volume_or_folder(cls, value: str) -> str:
        """A host folder is absolute by now (config/paths.py resolved ./ and ~); anything else
        must be a volume name. ':' cannot be carried by podman's SOURCE:TARGET:MODE syntax."""
        if value.startswith("/") and ":" in value:
            raise ValueError(
                f"a host folder with ':' in its path cannot be mounted (podman's --volume syntax), got '{value}'"
            )
        if value.startswith("/") or VOLUME_NAME_RE.match(value):
            return value
        shown = f"'{value}'" if value else "an empty string"
        raise ValueError(
            "expected a named volume (letters, digits, '_', '.', '-', two or more, starting with a "
            "letter or digit) or a host folder (an absolute path, ./ or ../ relative to this config "
            f"file's folder, or ~/ under your home), got {shown}"
        )

    @field_validator("target")
    @classmethod
    def _absolute_target(cls, value: str) -> str:
        if not value.startswith("/") or ":" in value:
            raise ValueError(f"expected an absolute path inside the container (without ':'), got '{value}'")
        return value

    @property
    def named(self) -> bool:
        """A source that is not an absolute host path is a named Podman volume."""
        return not self.source.startswith("/")


class Gpu(_Model):
    # true: use the host's GPU when it can (else the CPU image, with a warning); "required":
    # an error instead of the CPU image; false: the CPU image.
    enabled: bool | Literal["required"] = False
    force_cpu: bool = False
    devices: list[Annotated[int, Field(ge=0)]] | None = None  # which GPUs (discrete first, from 0)


def _parse_statuses(value: Any) -> tuple[tuple[int, int], ...]:
    """200, [200, 204] or "200-299" -> ((lo, hi), ...), every code within 100-599."""
    items = value if isinstance(value, list) else [value]
    ranges: list[tuple[int, int]] = []
    for item in items:
        if isinstance(item, bool):
            raise ValueError('expected an HTTP status: 200, [200, 204] or "200-299"')
        if isinstance(item, int):
            lo = hi = item
        elif isinstance(item, str) and re.fullmatch(r"\s*\d{3}\s*(-\s*\d{3}\s*)?", item):
            lo_s, _, hi_s = item.partition("-")
            lo, hi = int(lo_s), int(hi_s or lo_s)
        else:
            raise ValueError(f'expected an HTTP status: 200, [200, 204] or "200-299", got {item!r}')
        if not (100 <= lo <= hi <= 599):
            raise ValueError(f"expected statuses within 100-599 with low <= high, got {item!r}")
        ranges.append((lo, hi))
    if not ranges:
        raise ValueError("expected at least one HTTP status")
    return tuple(ranges)


StatusRanges = Annotated[Any, AfterValidator(_parse_statuses)]


class Health(_Model):
    path: str | None = None
    expected_status: StatusRanges = Field(default="200-399", validate_default=True)
    timeout_s: float = Field(default=120, gt=0, le=86400)

    @field_validator("path")
    @classmethod
    def _path_starts_with_slash(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"expected a URL path starting with '/', got '{value}'")
        return value

    def accepts(self, status: int) -> bool:
        return any(lo <= status <= hi for lo, hi in self.expected_status)


# Linux capabilities (capabilities(7), as of Linux 6.x), without the CAP_ prefix.
CAPABILITIES = frozenset(
    "AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND BPF CHECKPOINT_RESTORE CHOWN DAC_OVERRIDE "
    "DAC_READ_SEARCH FOWNER FSETID IPC_LOCK IPC_OWNER KILL LEASE LINUX_IMMUTABLE MAC_ADMIN "
    "MAC_OVERRIDE MKNOD NET_ADMIN NET_BIND_SERVICE NET_BROADCAST NET_RAW PERFMON SETFCAP SETGID "
    "SETPCAP SETUID SYS_ADMIN SYS_BOOT SYS_CHROOT SYS_MODULE SYS_NICE SYS_PACCT SYS_PTRACE "
    "SYS_RAWIO SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG SYSLOG WAKE_ALARM".split()
)


def _check_capability(value: str) -> str:
    name = value.upper().removeprefix("CAP_")
    if name not in CAPABILITIES:
        raise ValueError(f'\'{value}\' is not a Linux capability (capabilities(7)), e.g. "CHOWN" or "NET_BIND_SERVICE"')
    return name


def _check_container_path(value: str) -> str:
    if not value.startswith("/") or value.rstrip("/") == "" or any(c in value for c in ":,"):
        raise ValueError(
            f"expected an absolute path inside the container other than /, without options (':', ','), got '{value}'"
        )
    return value.rstrip("/")


def is_secret_source(value: str) -> bool:
    """ "env:VARIABLE" or "file:/absolute/path" (or "file:~/path"): where airpods reads a secret."""
    kind, _, where = value.partition(":")
    return bool(kind == "env" and ENV_KEY_RE.match(where)) or (
        kind == "file" and (where.startswith("/") or where.startswith("~/"))
    )


def _check_secret_source(value: str) -> str:
    if not is_secret_source(value):
        raise ValueError(
            'expected "env:VARIABLE" (read from that variable of airpods\' environment when it starts the '
            'service) or "file:/absolute/path" (read from that file), not the secret itself (which this '
            "message does not repeat)"
        )
    return value


class GatewayTls(_Model):
    """A gateway's own certificate (PEM: the server certificate, then any intermediates) and
    its private key, each a secret source; instead of the certificate airpods' CA makes."""

    certificate: Annotated[str, AfterValidator(_check_secret_source)]
    key: Annotated[str, AfterValidator(_check_secret_source)]


class Security(_Model):
    """Least privilege: every container runs with no capabilities and no-new-privileges; a
    service adds back only what its image needs, and keeps a read-only root filesystem (with
    tmpfs at /tmp, /var/tmp, /run and the `tmpfs` paths) unless `read_only = false`."""

    cap_add: list[Annotated[str, AfterValidator(_check_capability)]] = []
    read_only: bool = True
    tmpfs: list[Annotated[str, AfterValidator(_check_container_path)]] = []


MAX_CPUS = 4096.0  # beyond any host; the engines take a count of CPUs, not an unbounded number
MAX_MEMORY = 1 << 50  # 1 PiB: beyond any host, far short of the int64 the engines store it in


class Resources(_Model):
    memory: str | None = None
    # a finite number of CPUs (TOML's inf and nan are floats); the host's own count is checked at
    # start (preflight: the engines refuse more CPUs than the host has)
    cpus: float | None = Field(default=None, gt=0, le=MAX_CPUS, allow_inf_nan=False)

    @field_validator("memory")
    @classmethod
    def _memory_size(cls, value: str | None) -> str | None:
        if value is not None and (not MEMORY_RE.match(value) or not 6 << 20 <= memory_bytes(value) <= MAX_MEMORY):
            raise ValueError(
                "expected a size from 6m (Podman's and Docker's smallest limit) to 1048576g (1 PiB) "
                f'such as "512m" or "8g", got \'{value}\''
            )
        return value


def _check_arg_value(value: Any) -> Any:
    def scalar(item: Any) -> bool:
        return isinstance(item, (str, int, float, bool))

    if scalar(value) or (isinstance(value, list) and all(scalar(i) and not isinstance(i, bool) for i in value)):
        return value
    if isinstance(value, dict):
        raise ValueError("a table is not a flag value; expected a string, number, boolean or an array of them")
    raise ValueError("expected a string, number, boolean or an array of strings and numbers")


ArgValue = Annotated[Any, AfterValidator(_check_arg_value)]


def _check_model_name(value: str) -> str:
    value = value.removesuffix(".gguf")
    if not MODEL_NAME_RE.match(value):
        raise ValueError(
            "expected a model's name as /v1/models lists it (the GGUF file's name without .gguf, or its "
            f"folder's): letters, digits, '.', '_' and '-', starting with a letter or digit; got '{value}'"
        )
    return value


# Where a declared model comes from: a Hugging Face reference, an http(s) URL, or a local file.
HF_SOURCE_RE = re.compile(
    r"^(?:(?:https?://)?(?:hf\.co|huggingface\.co)/)?[\w.-]+/[\w.-]+(?:/[\w./-]+)?(?::[\w.-]+)?\Z"
)


class ModelPreset(BaseModel):
    """[services.NAME.models.MODEL]: llama-server flags for one model of a router (any key but
    the three below is a flag, checked like command_args), whether it loads when the server
    starts (and whether its failing to load fails the start: `required`), and where it comes
    from when it is not in the model volume yet."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)
    source: str | None = None
    load_on_startup: bool | None = None
    required: bool = True

    @field_validator("source")
    @classmethod
    def _source(cls, value: str | None) -> str | None:
        if value is None or value.startswith(("/", "https://", "http://")) or HF_SOURCE_RE.match(value):
            return value
        raise ValueError(
            'expected a Hugging Face reference ("user/repo:Q4_K_M" or "user/repo/FILE.gguf"), an https:// URL, '
            f"or a local .gguf file (an absolute path, ./ relative to this config file, or ~/), got '{value}'"
        )

    @model_validator(mode="after")
    def _flag_values(self) -> ModelPreset:
        if not self.required and not self.load_on_startup:
            raise ValueError(
                "required = false is for a model with load_on_startup = true (the start waits for no other)"
            )
        for key, value in (self.model_extra or {}).items():
            try:
                _check_arg_value(value)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
            if isinstance(value, list):
                raise ValueError(f"{key}: a preset takes one value per flag, not an array")
            if isinstance(value, str) and "\n" in value:
                raise ValueError(f"{key}: a preset value is one line (an inline template: use chat_template_file)")
        return self

    @property
    def flags(self) -> dict[str, Any]:
        """The llama-server flags of this model, in TOML order."""
        return dict(self.model_extra or {})


VARIANT_RE = re.compile(r"^(cpu|cuda|rocm|vulkan|cuda-\d+\.\d+)\Z")


def _check_variant(key: str) -> str:
    if not VARIANT_RE.match(key):
        raise ValueError(
            f"expected an image variant: cpu, cuda, cuda-X.Y (e.g. cuda-12.8), rocm or vulkan; got '{key}'"
        )
    return key


def _check_env_key(key: str) -> str:
    if not ENV_KEY_RE.match(key):
        raise ValueError(f"'{key}' is not a valid environment variable name")
    return key


HOST_NAME_RE = re.compile(
    r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z"
)


def _check_host(host: str) -> str:
    """A DNS name (letters, digits, '-', dot-separated labels, the last not all digits: a
    browser reads "1.2.3" or "0x7f.1" as an IPv4 address, WHATWG URL "ends in a number") or an
    IP address a client can connect to (not unspecified, multicast or with an IPv6 zone)."""
    if "%" in host:
        raise ValueError(f"{host!r} carries an IPv6 zone, which means nothing to another machine")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if address.is_unspecified or address.is_multicast:
            raise ValueError(f"{host!r} is not an address a client connects to (give this machine's own)")
        return str(address)
    if not HOST_NAME_RE.match(host):
        raise ValueError(f"{host!r} is neither a host name (e.g. ai.home) nor an IP address")
    last = host.rsplit(".", 1)[-1].lower()
    if last.isdigit() or re.fullmatch(r"0x[0-9a-f]*", last):
        raise ValueError(f"{host!r} reads as an IPv4 address to a browser, and is not a valid one")
    return host.lower()


class Service(_Model):
    enabled: bool = True
    extends: str | None = None
    # One image, or variants by GPU: cpu (the fallback), cuda (or cuda-X.Y: built for CUDA X.Y,
    # picked only where the NVIDIA driver runs it), rocm, vulkan.
    image: Image | dict[Annotated[str, AfterValidator(_check_variant)], Image]
    pod: DnsLabel | None = None
    container: DnsLabel | None = None
    # At least one: other services (Open WebUI's wiring) reach a service by its first alias.
    network_aliases: Annotated[list[DnsLabel], Field(min_length=1)] | None = None
    ports: list[Port] = []
    volumes: list[Volume] = []
    gpu: Gpu = Gpu()
    health: Health = Health()
    env: dict[Annotated[str, AfterValidator(_check_env_key)], str] = {}
    resources: Resources = Resources()
    # Before a llama.cpp model loads, `start` estimates its memory against resources.memory and
    # the host's free memory: "warn" says so, "strict" refuses to start (also the case with
    # gpu.enabled = "required"), "off" does not check.
    fit: Literal["warn", "strict", "off"] = "warn"
    security: Security = Security()
    # Secrets handed to the container as env variables, never on a command line: NAME = where
    # airpods reads the value ("env:VAR" or "file:/path") when it starts the service.
    secrets: dict[
        Annotated[str, AfterValidator(_check_env_key)], Annotated[str, AfterValidator(_check_secret_source)]
    ] = {}
    command_args: dict[str, ArgValue] = {}
    # Per-model presets of a llama.cpp router (llama-server --models-preset), by model name.
    models: dict[Annotated[str, AfterValidator(_check_model_name)], ModelPreset] = {}
    entrypoint_override: list[str] | None = None
    # Open WebUI: who may use the stack's models. Connections from the environment are Open
    # WebUI's admins' alone unless access is granted, so a second user saw no model at all:
    # "everyone" (a home server's default) sets BYPASS_MODEL_ACCESS_CONTROL, "admins" does not.
    models_for: Literal["everyone", "admins"] = "everyone"
    # The gateway: the names and addresses clients reach it by, which its TLS certificate
    # carries (default: this machine's host name and the bind address).
    hosts: list[Annotated[str, AfterValidator(_check_host)]] = []
    tls: GatewayTls | None = None

    @field_validator("image")
    @classmethod
    def _image_has_cpu_fallback(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        if isinstance(value, dict) and "cpu" not in value:
            raise ValueError("a table of image variants needs a 'cpu' entry (the fallback)")
        return value

    @field_validator("volumes")
    @classmethod
    def _one_mount_per_target(cls, value: list[Volume]) -> list[Volume]:
        targets = [v.target.rstrip("/") or "/" for v in value]
        twice = sorted({t for t in targets if targets.count(t) > 1})
        if twice:
            raise ValueError(f"two volumes mount at {', '.join(twice)}: a container path takes one mount")
        return value

    @field_validator("entrypoint_override")
    @classmethod
    def _non_empty_entrypoint(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError('expected a non-empty argv list, e.g. ["/app/llama-server"]')
        return value


class Runtime(_Model):
    engine: Literal["podman", "docker", "auto"] = "auto"  # see engine/choose.py
    project: DnsLabel = "airpods"
    bind_address: str = "127.0.0.1"
    expose: bool = False  # required for a bind_address other than loopback (config/validation.py)
    network: Name = "airpods"
    restart_policy: Literal["no", "always", "on-failure", "unless-stopped"] = "unless-stopped"
    # true: a key airpods generates; false: none; "env:VARIABLE" or "file:/path": your own key.
    api_key: bool | str = True

    @field_validator("api_key")
    @classmethod
    def _key_source(cls, value: bool | str) -> bool | str:
        if isinstance(value, bool) or is_secret_source(value):
            return value
        raise ValueError(
            'expected true (a key airpods generates), false (no key), "env:VARIABLE" (your key, read from '
            'that environment variable) or "file:/absolute/path" (your key, read from that file)'
        )

    @field_validator("bind_address")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"expected an IP address such as \"127.0.0.1\", got '{value}'") from None
        return value


class Cli(_Model):
    stop_timeout_s: int = Field(default=10, ge=0, le=600)
    max_concurrent_pulls: int = Field(default=3, ge=1, le=16)
    lock_timeout_s: float = Field(default=30, ge=0, le=3600)


class Config(_Model):
    variables: dict[str, Scalar | list[Scalar]] = {}
    runtime: Runtime = Runtime()
    cli: Cli = Cli()
    services: dict[DnsLabel, Service] = {}

    def enabled_services(self) -> list[str]:
        return [name for name, svc in self.services.items() if svc.enabled]
