"""`airpods env [NAME]`: shell exports that point any OpenAI client at a llama.cpp instance, on
this machine or (`--remote`) on another one through the stack's gateway."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from airpods.cli.context import options_of, stack


def env(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="A llama.cpp instance (default: the first enabled one).")] = None,
    remote: Annotated[
        bool, typer.Option("--remote", help="For a client on another machine: the gateway's URLs, key and CA file.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False,
) -> None:
    """Print `export OPENAI_BASE_URL=… OPENAI_API_KEY=…` for an instance: eval "$(airpods env)"."""
    from airpods.errors import UsageError
    from airpods.redact import print_secret
    from airpods.stack.wiring import LLAMACPP
    from airpods.usecases.common import stack_key

    if remote:
        return _remote(ctx, name, as_json)
    wanted = stack(options_of(ctx), [name] if name else None, ensure_key=True)
    instances = [s for s in wanted.services if s.kind == LLAMACPP]
    if not instances:
        raise UsageError(
            f"{name} is not a llama.cpp instance" if name else "no llama.cpp instance is enabled",
            hint="instances are llamacpp and every service that extends it",
        )
    spec = instances[0]
    if spec.url is None:
        raise UsageError(f"{spec.name} publishes no host port", hint=f"set services.{spec.name}.ports")
    key = (stack_key(wanted) if spec.secrets else None) or "none"
    if as_json:
        import json

        print_secret(json.dumps({"base_url": spec.url + "/v1", "api_key": key}, indent=2))
        return
    print(f"export OPENAI_BASE_URL={shlex.quote(spec.url + '/v1')}")
    print_secret(f"export OPENAI_API_KEY={shlex.quote(key)}")


def _remote(ctx: typer.Context, name: str | None, as_json: bool) -> None:
    """The gateway's side of `env`: every URL, the llama.cpp key, the gateway's credentials."""
    from airpods.errors import UsageError
    from airpods.gateway.clients import remote_env
    from airpods.redact import print_secret
    from airpods.usecases.common import stack_key

    wanted = stack(options_of(ctx), None, ensure_key=True)
    found = remote_env(wanted, stack_key(wanted))
    base = found.base_url
    if name:
        if name not in found.urls or not any(s.name == name and s.kind == "llamacpp" for s in wanted.services):
            raise UsageError(
                f"{name} is not a llama.cpp instance behind the gateway", hint="`airpods status` lists them"
            )
        base = found.urls[name] + "v1"
    if as_json:
        import json

        print_secret(json.dumps({**found.to_json(), "base_url": base}, indent=2))
        return
    if found.ca_file:
        print(f"# the stack's CA certificate is {found.ca_file} here: copy it to the client as ~/airpods-ca.crt")
        print("# (`airpods gateway trust` says how to trust it system-wide instead)")
    if base:
        print(f"export OPENAI_BASE_URL={shlex.quote(base)}")
        print_secret(f"export OPENAI_API_KEY={shlex.quote(found.api_key or 'none')}")
    if found.ca_file:
        print('export SSL_CERT_FILE="$HOME/airpods-ca.crt" NODE_EXTRA_CA_CERTS="$HOME/airpods-ca.crt"')
    print(f"export AIRPODS_GATEWAY_USER={found.user}")
    print_secret(f"export AIRPODS_GATEWAY_PASSWORD={shlex.quote(found.password)}")
    for service, url in found.urls.items():
        print(f"# {service}: {url}")


def register(app: typer.Typer) -> None:
    app.command()(env)
