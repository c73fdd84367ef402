"""What a stack publishes beyond this machine (a bind_address other than loopback, allowed only
with runtime.expose = true), said out loud by `start` and `doctor`: each reachable service and
what, if anything, guards it. Facts: Ollama's and ComfyUI's HTTP APIs have no authentication;
Open WebUI's first account to sign up becomes its admin (Open WebUI docs, "Getting started")."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from airpods.stack.model import Stack, bracketed

UNGUARDED = {"ollama": "no authentication", "comfyui": "no authentication"}
GATEWAY_GUARD = (
    "TLS with {whose} certificate; Ollama and ComfyUI behind its credentials, llama.cpp its API key, "
    "Open WebUI its own accounts (`airpods env --remote`)"
)
FIRST_SIGNUP = "its own accounts: the first one to sign up becomes the admin"


@dataclass(frozen=True)
class Exposed:
    service: str
    address: str  # "0.0.0.0:11434"
    guard: str  # what protects it ("no authentication" when nothing does)

    @property
    def open(self) -> bool:
        return self.guard.startswith("no authentication")

    def describe(self) -> str:
        return f"{self.service} on {self.address} is reachable from the network: {self.guard}"


def exposed(stack: Stack) -> list[Exposed]:
    """Every published port of the stack that is not on a loopback address, with its guard."""
    found = []
    for spec in stack.services:
        for publish in spec.publish:
            if ipaddress.ip_address(publish.host_ip or "0.0.0.0").is_loopback:
                continue
            if spec.kind == "gateway":
                from airpods.gateway.clients import own_certificate

                guard = GATEWAY_GUARD.format(whose="your" if own_certificate(stack) else "the stack's CA's")
            elif spec.kind == "open-webui":
                guard = FIRST_SIGNUP
            elif spec.kind == "llamacpp":
                keyed = stack.key_source != "none"
                guard = "the stack's API key" if keyed else "no authentication (runtime.api_key = false)"
            else:
                guard = UNGUARDED.get(spec.kind, "whatever the service itself enforces")
            found.append(Exposed(spec.name, publish.address(), guard))
    return found


def gateway_urls(stack: Stack) -> dict[str, str]:
    """Service name → the https URL a client on another machine uses, through the stack's
    gateway (its first host and published port; the gateway's own name: its root). Empty
    without a published gateway."""
    for spec in stack.services:
        if spec.kind == "gateway" and spec.publish and spec.hosts:
            base = f"https://{bracketed(spec.hosts[0])}:{spec.publish[0].host}"
            return {spec.name: base + "/"} | {service: base + prefix for service, prefix in spec.routes}
    return {}
