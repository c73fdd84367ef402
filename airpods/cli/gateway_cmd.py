"""`airpods gateway trust`: how clients on other machines trust the stack's gateway."""

from __future__ import annotations

from typing import Annotated

import typer

from airpods.cli.context import options_of, stack

app = typer.Typer(help="The TLS gateway that other machines reach the stack through.", no_args_is_help=True)


@app.command()
def trust(
    ctx: typer.Context,
    pem: Annotated[
        bool, typer.Option("--pem", help="Print only the CA certificate (PEM), to save on a client.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False,
) -> None:
    """Where the stack's CA certificate is, its fingerprint, and how to trust it on Linux, macOS,
    Windows, Android and in Firefox."""
    from airpods.cli.output import print_json
    from airpods.gateway.clients import trust as find

    found = find(stack(options_of(ctx), None))
    if pem:
        print(found.pem, end="")
    elif as_json:
        print_json({"file": str(found.file), "sha256": found.sha256, "steps": dict(found.steps), "pem": found.pem})
    else:
        print(f"CA certificate: {found.file}\nSHA-256 fingerprint: {found.sha256}")
        print("copy it to each client (`airpods gateway trust --pem > airpods-ca.crt`), then trust it there:")
        width = max(len(system) for system, _ in found.steps)
        for system, how in found.steps:
            print(f"  {system.ljust(width)}  {how.replace(str(found.file), 'airpods-ca.crt')}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="gateway")
