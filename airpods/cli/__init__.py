"""The `airpods` command. Command modules import only typer at load time; everything heavy is
imported inside the command that needs it, so `airpods --help` stays fast."""

from __future__ import annotations

import os
import signal
import sys
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from airpods import __version__
from airpods.cli.context import Options
from airpods.errors import AirpodsError

app = typer.Typer(
    name="airpods",
    help="Run a local AI stack (llama.cpp, Ollama, Open WebUI, ComfyUI) on Podman or Docker.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class EngineChoice(StrEnum):  # engine/choose.py's CHOICES (importing it here would slow --help)
    auto = "auto"
    podman = "podman"
    docker = "docker"


def _print_version(value: bool) -> None:
    if value:
        print(f"airpods {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Config file (else $AIRPODS_CONFIG, else $XDG_CONFIG_HOME/airpods/config.toml)."
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    engine: Annotated[
        EngineChoice | None,
        typer.Option(
            "--engine",
            help="Container engine (else [runtime] engine of the config, else auto: Podman if installed, else Docker).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_print_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    ctx.obj = Options(config=config, debug=debug, engine=engine.value if engine else None)


# Command modules, in help order, and the commands each one registers. Only the module of the
# command being run is imported and turned into click commands (typer builds them eagerly:
# ~15 ms for all of them); --help and unknown commands get every module.
COMMAND_MODULES = {
    "lifecycle_cmd": ("start", "stop", "restart", "status", "logs", "pull"),
    "top_cmd": ("top",),
    "autostart_cmd": ("autostart",),
    "env_cmd": ("env",),
    "gateway_cmd": ("gateway",),
    "models_cmd": ("models", "chat"),
    "export_cmd": ("export",),
    "backup_cmd": ("backup", "restore"),
    "maintenance_cmd": ("doctor", "clean"),
    "config_cmd": ("config",),
    "update_cmd": ("update", "rollback"),
}
ROOT_OPTIONS_WITH_VALUE = ("--config", "-c", "--engine")


def _command_of(args: list[str]) -> str | None:
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ROOT_OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


_registered: set[str] = set()


def register_commands(args: list[str]) -> None:
    import importlib

    command = _command_of(args)
    wanted = [m for m, names in COMMAND_MODULES.items() if command in names] or list(COMMAND_MODULES)
    for module in wanted:
        if module not in _registered:
            importlib.import_module(f"airpods.cli.{module}").register(app)
            _registered.add(module)


def _engine_flag(args: list[str]) -> str | None:
    """The --engine value typed before the command (`--engine docker`, `--engine=docker`)."""
    for i, arg in enumerate(args):
        if arg == "--engine" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--engine="):
            return arg.split("=", 1)[1]
        if arg == _command_of(args):
            return None
    return None


INTERRUPTED = 130  # 128 + SIGINT, as shells report a command Ctrl-C stopped
_interrupted: list[bool] = []  # set by the SIGINT handler: the command was interrupted
_said: list[bool] = []  # an error was printed (start says what its interrupt undid)


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C: remembered (whatever a command or typer then makes of the KeyboardInterrupt,
    the exit status is 130), then raised as Python does by default."""
    _interrupted.append(True)
    signal.default_int_handler(signum, frame)


def main(argv: list[str] | None = None) -> None:
    """Run the command; exit 2 for a config error, 1 for a runtime failure (said in one
    paragraph), 130 when Ctrl-C interrupted it (in every command, whatever it catches)."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when SIGINT is ignored
        signal.signal(signal.SIGINT, _on_interrupt)
    from airpods.redact import Redacting

    shown = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Redacting(shown[0]), Redacting(shown[1])
    _interrupted.clear()
    _said.clear()
    try:
        run(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:  # raised outside a command (while the commands were imported)
        _interrupted.append(True)
    except SystemExit:
        if not _interrupted:
            raise
        if not _said:
            print("airpods: interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED)
    finally:
        sys.stdout, sys.stderr = shown
    if _interrupted:
        print("airpods: interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED)


def run(args: list[str]) -> None:
    debug = "--debug" in args or os.environ.get("AIRPODS_DEBUG") == "1"
    register_commands(args)
    try:
        app(args=args, prog_name="airpods")
    except AirpodsError as exc:
        if debug:  # the traceback too, and still the error's own exit status (2 for the config)
            import traceback

            traceback.print_exc()
        from airpods.cli import output

        output.engine_flag = _engine_flag(args)
        output.print_error(exc)
        _said.append(True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001  (a bug: one clear line, the traceback with --debug)
        if debug:
            raise
        print(
            f"airpods: internal error: {type(exc).__name__}: {exc}\n"
            "  hint: run again with --debug for the traceback, and report it",
            file=sys.stderr,
        )
        sys.exit(1)
