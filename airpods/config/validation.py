"""Turning pydantic's errors into ConfigErrors in TOML words, and the rules across services."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from airpods.config.keys import agrees_with_airpods, key_path, owned_flag_error
from airpods.config.schema import Config
from airpods.errors import ConfigError
from airpods.labels import default_container, default_pod

# A claim name (a DNS subdomain label as airpods maps volume names: '_' → '-', lowercase).
CLAIM_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?\Z")

EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "list_type": "an array",
}


def _describe(value: Any) -> str:
    kinds = {
        dict: "a table",
        list: "an array",
        bool: "a boolean",
        str: "a string",
        int: "an integer",
        float: "a number",
    }
    kind = kinds.get(type(value), type(value).__name__)
    return kind if isinstance(value, (dict, list)) else f"{kind} ({value!r})"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that validates the table at `loc` (used for 'did you mean')."""
    current: Any = Config
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) in (list, dict):
            current = typing.get_args(current)[-1]
        else:
            return None
        # Unwrap Optional / unions down to a single model if there is one.
        while typing.get_origin(current) in (typing.Union, types.UnionType):
            models = [a for a in typing.get_args(current) if a is not type(None)]
            current = (
                models[0]
                if len(models) == 1
                else next((a for a in models if isinstance(a, type) and issubclass(a, BaseModel)), None)
            )
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _clean_loc(loc: tuple[Any, ...], data: Any, kind: str) -> tuple[Any, ...]:
    """Drop pydantic's union-branch labels: keep the parts that are really in the input."""
    kept: list[Any] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
            kept.append(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            kept.append(part)
        elif kind == "missing" and i == len(loc) - 1:
            kept.append(part)
    return tuple(kept)


def _message(error: dict[str, Any], loc: tuple[Any, ...]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "this required key is missing"
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        names = list(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), names, n=1)
        known = ", ".join(names)
        return (
            "unknown key"
            + (f"; did you mean '{close[0]}'?" if close else "")
            + (f" (known keys: {known})" if known else "")
        )
    if kind in EXPECTED:
        return f"expected {EXPECTED[kind]}, got {_describe(error['input'])}"
    if kind == "literal_error":
        return f"expected one of {error['ctx']['expected']}, got {error['input']!r}"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Input should be "):
        if message.startswith(prefix):
            message = ("expected " if prefix.startswith("Input") else "") + message[len(prefix) :]
    return message


def config_error_from_validation(exc: ValidationError, data: dict[str, Any]) -> ConfigError:
    """One ConfigError for the first problem (union alternatives folded into one 'expected')."""
    by_path: dict[tuple[Any, ...], list[Any]] = {}  # pydantic's ErrorDetails (TypedDicts)
    for error in exc.errors(include_url=False):
        by_path.setdefault(_clean_loc(tuple(error["loc"]), data, error["type"]), []).append(error)
    # The most specific problem first: the deepest key path (union alternatives share one).
    loc = max(by_path, key=len)
    errors = by_path[loc]
    if len(errors) > 1 and all(e["type"] in EXPECTED for e in errors):
        wanted = " or ".join(dict.fromkeys(EXPECTED[e["type"]] for e in errors))
        detail = f"expected {wanted}, got {_describe(errors[0]['input'])}"
    else:
        detail = _message(errors[0], loc)

    def problem(path: tuple[Any, ...]) -> tuple[Any, ...]:
        """A problem as the user wrote it: one a service inherits (`extends`) is its parent's."""
        inner = path[2:] if len(path) > 2 and path[0] == "services" else path
        return (*inner, by_path[path][0]["msg"])

    # not counting union alternatives, nor the copies of the shown one in services that extend it
    more = len({problem(p) for p in by_path if loc[: len(p)] != p} - {problem(loc)})
    if more:
        detail += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(detail, key=key_path(loc) or None)


def check_owned_flags(config: Config) -> None:
    """host, port, api_key and api_key_file in a llama.cpp service's command_args are refused
    (by these spellings here; stack/args.py also catches the aliases its flag table knows)."""
    for name, service in config.services.items():
        root = name
        while config.services[root].extends is not None:
            root = config.services[root].extends or root
        if root != "llamacpp":
            continue
        listens_on = service.ports[0].container if service.ports else None
        for key, value in service.command_args.items():
            flag = "--" + key.lstrip("-").replace("_", "-")
            if agrees_with_airpods(flag, value, listens_on):
                continue
            error = owned_flag_error(flag, f"services.{name}.command_args.{key}", name)
            if error:
                raise error


def check_exposure(config: Config) -> None:
    """A bind address other than loopback publishes every service to the network: only when the
    config says so too (runtime.expose = true)."""
    import ipaddress

    from airpods.stack.wiring import gateway_enabled

    if not ipaddress.ip_address(config.runtime.bind_address).is_loopback and not config.runtime.expose:
        what = (
            "the gateway (TLS, a lock on every service)"
            if gateway_enabled(config)
            else "every service, Ollama and ComfyUI without any authentication,"
        )
        raise ConfigError(
            f"bind_address {config.runtime.bind_address} publishes {what} to the network; runtime.expose is not set",
            key="runtime.bind_address",
            hint="set runtime.expose = true to mean it (`airpods doctor` then lists what is reachable), "
            'or keep bind_address = "127.0.0.1"',
        )


def check_gateways(config: Config) -> None:
    """`hosts` and `tls` belong to a gateway; a stack has one enabled gateway (its files in the
    state folder are the project's), and it publishes a port."""
    from airpods.stack.wiring import GATEWAY, kind_of

    enabled = []
    for name, service in config.services.items():
        kind = kind_of(config, name)
        for field, value in (("hosts", service.hosts), ("tls", service.tls)):
            if value and kind != GATEWAY:
                raise ConfigError(
                    f"{field} is a gateway's setting; services.{name} is {kind}",
                    key=f"services.{name}.{field}",
                    hint="set it under [services.gateway]",
                )
        if kind == GATEWAY and name in config.enabled_services():
            enabled.append(name)
            if not service.ports:
                raise ConfigError(
                    "a gateway publishes one port (the one TLS port other machines use); it has none",
                    key=f"services.{name}.ports",
                    hint="ports = [{ host = 8443, container = 8443 }]",
                )
    if len(enabled) > 1:
        raise ConfigError(
            f"one gateway per stack: {enabled[0]} is enabled already",
            key=f"services.{enabled[1]}.enabled",
            hint=f"list every name clients use in services.{enabled[0]}.hosts instead",
        )


def check_stack_rules(config: Config, user_set: Callable[[str], bool] = lambda key: False) -> None:
    """Rules across enabled services: unique host ports, pods and containers. A clash is reported
    at the key the user wrote (`user_set`), since the defaults alone never clash."""
    check_owned_flags(config)
    check_exposure(config)
    check_gateways(config)
    owners: dict[tuple[str, Any], str] = {}
    sizes: dict[str, tuple[str, str]] = {}
    for name in config.enabled_services():
        service = config.services[name]
        # Pods and containers share one namespace in podman.
        pod = service.pod or default_pod(config.runtime.project, name)
        container = service.container or default_container(config.runtime.project, name)
        claims: list[tuple[str, Any, str]] = [
            ("pod/container name", pod, f"services.{name}.pod"),
            ("pod/container name", container, f"services.{name}.container"),
        ]
        for what, value, key in claims:  # derived from project and service: may outgrow a DNS label
            if len(value) > 63:
                explicit = service.pod if key.endswith(".pod") else service.container
                raise ConfigError(
                    f"the {what} {value} is longer than 63 characters (a DNS label, as Kubernetes names are)",
                    key=key
                    if explicit
                    else ("runtime.project" if config.runtime.project != "airpods" else f"services.{name}"),
                    hint=f"set services.{name}.{key.rsplit('.', 1)[1]} to a shorter name, or use a shorter project",
                )
        for i, volume in enumerate(service.volumes):
            claim = volume.source.replace("_", "-").lower()
            if volume.named and not CLAIM_RE.match(claim):
                raise ConfigError(
                    f"the named volume {volume.source} cannot be a Kubernetes claim ({claim}): at most 63 "
                    "characters, ending with a letter or digit",
                    key=f"services.{name}.volumes.{i}.source",
                )
            if volume.named and volume.size:
                sized = sizes.setdefault(volume.source, (volume.size, f"services.{name}.volumes.{i}.size"))
                if sized[0] != volume.size:
                    raise ConfigError(
                        f"volume {volume.source} is sized {volume.size} here and {sized[0]} at {sized[1]}",
                        key=f"services.{name}.volumes.{i}.size",
                        hint="one volume has one size: set it in one place",
                    )
        claims += [
            ("host port", port.host, f"services.{name}.ports.{i}.host")
            for i, port in enumerate(service.ports)
            if port.published
        ]
        # Two pods answering one alias would split other services' traffic between them.
        aliases = service.network_aliases if service.network_aliases is not None else [name]
        claims += [("network alias", alias, f"services.{name}.network_aliases.{i}") for i, alias in enumerate(aliases)]
        for what, value, key in claims:
            if (what, value) in owners:
                other = owners[(what, value)]
                if user_set(other) and not user_set(key):
                    key, other = other, key
                owner = key.split(".")[1]
                raise ConfigError(
                    f"{what} {value} is already used by {other}",
                    key=key,
                    hint=f"give services.{owner} its own {what}",
                )
            owners[(what, value)] = key
