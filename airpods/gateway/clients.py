"""What a client on another machine needs to reach the stack through its gateway: the URLs,
the credentials, and the CA certificate to trust (`airpods env --remote`, `airpods gateway
trust`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from airpods.errors import RuntimeFailure, UsageError
from airpods.gateway.caddy import GATEWAY, GATEWAY_USER, gateway_folder
from airpods.gateway.tls import CA_CERT

if TYPE_CHECKING:
    from airpods.stack.model import Stack

# How to trust a CA certificate file {file} on each system, from each system's own documentation:
# Debian/Ubuntu update-ca-certificates(8) (files ending .crt in /usr/local/share/ca-certificates);
# Fedora/RHEL update-ca-trust(8) (/etc/pki/ca-trust/source/anchors); macOS security(1)
# add-trusted-cert; Windows certutil -addstore Root; Android Settings ("Install a certificate",
# CA certificate; apps trust user CAs only where they opt in, browsers do); Firefox keeps its own
# store (Settings → Privacy & Security → Certificates → View Certificates → Authorities → Import).
TRUST_STEPS = (
    ("Debian, Ubuntu", "sudo cp {file} /usr/local/share/ca-certificates/{name}.crt && sudo update-ca-certificates"),
    ("Fedora, RHEL", "sudo cp {file} /etc/pki/ca-trust/source/anchors/{name}.crt && sudo update-ca-trust"),
    ("macOS", "sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {file}"),
    ("Windows", "certutil -addstore -f Root {file}   (in a terminal run as administrator)"),
    ("Android", "Settings → Security → Encryption & credentials → Install a certificate → CA certificate → {file}"),
    ("Firefox", "Settings → Privacy & Security → Certificates → View Certificates → Authorities → Import {file}"),
    ("one program", "SSL_CERT_FILE={file} (Python, curl, OpenSSL), NODE_EXTRA_CA_CERTS={file} (Node.js)"),
)


@dataclass(frozen=True)
class Trust:
    """The stack's CA certificate: its file on this host, its PEM text and SHA-256 fingerprint
    (colon-separated hex, as browsers show it), and the steps per system ({file}, {name} filled)."""

    file: Path
    pem: str
    sha256: str
    steps: tuple[tuple[str, str], ...]


def gateway_of(stack: Stack):
    """The stack's gateway spec; UsageError when no gateway is enabled."""
    for spec in stack.services:
        if spec.kind == GATEWAY:
            return spec
    raise UsageError(
        "no gateway is enabled",
        hint='set [services.gateway] enabled = true and hosts = ["NAME-OR-ADDRESS"] (README: "Remote access")',
    )


def own_certificate(stack: Stack) -> bool:
    """Whether the gateway serves the user's certificate (`tls`), not one of airpods' CA."""
    from airpods.stack.wiring import state_source

    ours = state_source(stack.project, "server-crt")
    return not any(d.source == ours for d in stack.secrets)


def trust(stack: Stack) -> Trust:
    """The CA certificate of `stack`'s gateway. RuntimeFailure before `start` made it;
    UsageError when the gateway serves the user's own certificate."""
    from airpods.state import state_dir

    gateway_of(stack)
    if own_certificate(stack):
        raise UsageError(
            "the gateway serves your own certificate (services.gateway.tls): trust the authority that signed it"
        )
    path = gateway_folder(state_dir(), stack.project) / CA_CERT
    try:
        pem = path.read_text()
    except (OSError, UnicodeDecodeError):
        raise RuntimeFailure(
            f"the gateway's certificate authority is not made yet ({path})", hint="`airpods start` makes it"
        ) from None
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        digest = x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex().upper()
    except ValueError:
        raise RuntimeFailure(
            f"the gateway's CA certificate {path} is damaged", hint="`airpods start` issues it again for the same key"
        ) from None
    name = f"airpods-{stack.project}"
    steps = tuple((system, how.format(file=path, name=name)) for system, how in TRUST_STEPS)
    return Trust(path, pem, ":".join(digest[i : i + 2] for i in range(0, len(digest), 2)), steps)


@dataclass(frozen=True)
class RemoteEnv:
    """What a client elsewhere sets: the llama.cpp base URL and key (None without an instance
    or key), the CA file (None with the user's own certificate), the gateway's basic
    credentials (Ollama, ComfyUI) and every service's URL."""

    base_url: str | None
    api_key: str | None
    ca_file: Path | None
    user: str
    password: str
    urls: dict[str, str]

    def to_json(self) -> dict[str, object]:
        return {**self.__dict__, "ca_file": str(self.ca_file) if self.ca_file else None}


def remote_env(stack: Stack, api_key: str | None) -> RemoteEnv:
    """`stack`'s gateway as a client on another machine reaches it (stack/exposure.gateway_urls)."""
    from airpods.gateway.prepare import password
    from airpods.stack.exposure import gateway_urls
    from airpods.state import state_dir

    spec = gateway_of(stack)
    urls = gateway_urls(stack)
    if not urls:
        raise UsageError(f"{spec.name} publishes no port", hint=f"set services.{spec.name}.ports")
    llama = next((s.name for s in stack.services if s.kind == "llamacpp" and s.name in urls), None)
    ca = None if own_certificate(stack) else gateway_folder(state_dir(), stack.project) / CA_CERT
    return RemoteEnv(urls[llama] + "v1" if llama else None, api_key, ca, GATEWAY_USER, password(stack.project), urls)
