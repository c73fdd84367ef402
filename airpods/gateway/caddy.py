"""The gateway service: Caddy in front of every other service of the stack, on one TLS port.

One address per service, by path: Open WebUI at `/` (it assumes it is served from the root of
its address: its pages and API use absolute paths) and every other service at
`/airpods/NAME/` (BACKENDS), the prefix stripped before it reaches the service (`handle_path`), so
`https://HOST:8443/airpods/llamacpp/v1` is llama-server's `/v1` and
`https://HOST:8443/airpods/ollama/api/tags` is Ollama's `/api/tags`. One port
for everything: one firewall rule, one certificate, and URLs that say which service they reach.

Doors: Ollama and ComfyUI have no authentication of their own, so the gateway asks for HTTP basic
credentials (user GATEWAY_USER, a generated password kept 0600 in the state folder; Caddy's
config holds only its bcrypt hash, handed over as a secret); llama.cpp checks the stack's API key
itself and Open WebUI its own accounts, so their requests pass as they are. Caddy writes an access
line for every request (its `log` directive: a failed login is a 401 there), without the
request's headers (no credential of any kind reaches the log).

Caddyfile syntax and directives: caddyserver.com/docs/caddyfile (global options `admin`,
`auto_https`, `default_sni`, `persist_config`; directives `tls`, `handle`, `handle_path`,
`basic_auth`, `reverse_proxy`, `log`)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from airpods.stack.wiring import GATEWAY_FILES

GATEWAY = "gateway"
GATEWAY_USER = "airpods"
CERT_IN_CONTAINER = GATEWAY_FILES["server-crt"][2]
KEY_IN_CONTAINER = GATEWAY_FILES["server-key"][2]
AUTH_VARIABLE = GATEWAY_FILES["auth"][2]  # the bcrypt hash, from a secret (Caddyfile {$VAR})
CADDYFILE_VARIABLE = "AIRPODS_CADDYFILE"  # the Caddyfile itself: routes, no secret
# Caddy reads its config from a file: the entrypoint writes the Caddyfile from the environment
# into the container's tmpfs, then execs Caddy (the official image's command, with that file).
ENTRYPOINT = (
    "/bin/sh",
    "-c",
    f'printf "%s\\n" "${CADDYFILE_VARIABLE}" > /tmp/Caddyfile && '
    "exec caddy run --adapter caddyfile --config /tmp/Caddyfile",
    "airpods-gateway",
)
GUARDED_KINDS = ("ollama", "comfyui")  # no authentication of their own


@dataclass(frozen=True)
class Route:
    """One service behind the gateway: requests under `prefix` ("/" for the root) go to
    `upstream` ("alias:port" on the stack network), with basic credentials when `guarded`."""

    service: str
    kind: str
    prefix: str
    upstream: str
    guarded: bool


# Every service but Open WebUI lives under this prefix: Open WebUI, at the root, answers paths of
# its own under it (/api, /ws, /ollama and /openai, its proxies to the backends, /static, /oauth,
# /cache, /health: open_webui/main.py's routers and mounts), so a service at /ollama/ would take
# Open WebUI's Ollama proxy from it. It has no path under /airpods/.
BACKENDS = "/airpods/"


def routes(backends: list[tuple[str, str, str, int]]) -> list[Route]:
    """Routes for (name, kind, alias, port) backends, in order: the first Open WebUI at `/`,
    every other service at `/airpods/NAME/`. A second Open WebUI gets none: its pages use
    absolute paths, so it works at the root of an address only."""
    found: list[Route] = []
    root_taken = False
    for name, kind, alias, port in backends:
        if kind == "open-webui" and root_taken:
            continue
        at_root = kind == "open-webui"
        root_taken |= at_root
        prefix = "/" if at_root else f"{BACKENDS}{name}/"
        found.append(Route(name, kind, prefix, f"{alias}:{port}", kind in GUARDED_KINDS))
    return found


def caddyfile(found: list[Route], port: int, hosts: tuple[str, ...]) -> str:
    """The Caddyfile of a gateway listening on `port` (TLS only: a plain HTTP request gets Go's
    400 "Client sent an HTTP request to an HTTPS server") with the certificate at
    CERT_IN_CONTAINER. `hosts[0]` is the name a client that sends no SNI (one that connects to
    an address) is answered for."""
    lines = [
        "{",
        "\tadmin off",
        "\tauto_https off",  # the certificate is airpods'; no ACME, no port-80 redirect server
        "\tpersist_config off",
        f"\tdefault_sni {hosts[0]}",
        "\tservers {",
        "\t\tprotocols h1 h2",  # no HTTP/3: it would need the port on UDP too
        "\t}",
        "}",
        f":{port} {{",
        f"\ttls {CERT_IN_CONTAINER} {KEY_IN_CONTAINER}",
        # An access line per request (a failed login is a 401), without the request's headers:
        # Caddy hides Authorization and cookies itself, not X-Api-Key, which llama-server also
        # takes a key from (Caddyfile `log` directive, `format filter`).
        "\tlog {",
        "\t\tformat filter {",
        "\t\t\trequest>headers delete",
        "\t\t}",
        "\t}",
    ]
    root: Route | None = None
    for route in found:
        if route.prefix == "/":
            root = route
            continue
        lines += [f"\tredir {route.prefix.rstrip('/')} {route.prefix} 308", f"\thandle_path {route.prefix}* {{"]
        lines += _proxy(route, "\t\t")
        lines.append("\t}")
    lines.append("\thandle {")
    if root is not None:
        lines += _proxy(root, "\t\t")
    else:
        lines.append('\t\trespond "airpods gateway: no service here; see `airpods status` for the paths" 404')
    lines += ["\t}", "}"]
    return "\n".join(lines) + "\n"


def _proxy(route: Route, indent: str) -> list[str]:
    auth = [f"{indent}basic_auth {{", f"{indent}\t{GATEWAY_USER} {{${AUTH_VARIABLE}}}", f"{indent}}}"]
    return [*(auth if route.guarded else []), f"{indent}reverse_proxy {route.upstream}"]


def default_hosts(bind_address: str) -> tuple[str, ...]:
    """The names a certificate carries when `hosts` is not set: the bind address when it is
    one address (first: a client can reach it without a name service), then this machine's
    host name when it is a valid one (lowercased)."""
    import socket

    from airpods.config.schema import HOST_NAME_RE

    address = ipaddress.ip_address(bind_address)
    name = socket.gethostname().lower()
    named = (name,) if HOST_NAME_RE.match(name) and not name.rsplit(".", 1)[-1].isdigit() else ()
    return (*(() if address.is_unspecified else (str(address),)), *named) or ("localhost",)


def gateway_folder(state: Path, project: str) -> Path:
    """Where a project's gateway files live (tls.py): inside airpods' private state folder."""
    return state / "gateway" / project
