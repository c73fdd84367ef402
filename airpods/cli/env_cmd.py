"""`airpods env [NAME]`: shell exports that point any OpenAI client at a llama.cpp instance."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from airpods.cli.context import options_of, stack


def env(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="A llama.cpp instance (default: the first enabled one).")] = None,
) -> None:
    """Print `export OPENAI_BASE_URL=… OPENAI_API_KEY=…` for an instance: eval "$(airpods env)"."""
    from airpods.errors import UsageError
    from airpods.stack.wiring import LLAMACPP
    from airpods.usecases.common import stack_key

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
    from airpods.redact import print_secret

    print(f"export OPENAI_BASE_URL={shlex.quote(spec.url + '/v1')}")
    print_secret(f"export OPENAI_API_KEY={shlex.quote((stack_key(wanted) if spec.secrets else None) or 'none')}")


def register(app: typer.Typer) -> None:
    app.command()(env)
