"""Small helpers for unit tests: write a TOML file, load it, run the CLI in-process."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

from airpods.config.loader import LoadedConfig, load_config
from airpods.gpu import HostGpu

KEY = "sk-airpods-test"
NO_GPU = HostGpu("none")
# An NVIDIA host whose driver runs the CUDA 12.8 images, with a usable CDI spec.
NVIDIA = HostGpu("nvidia", cdi=True, driver="570.86.10", cdi_names=("0", "all"))


GOLDEN = Path(__file__).parent / "golden"


# Golden files show a router's preset folder (and config hashes derived from it) under this
# state folder, whatever the temporary HOME of the run (tests pin it with `fixed_state_path`).
GOLDEN_STATE = Path("/home/user/.local/state/airpods")


def check_golden(path: Path, text: str) -> None:
    """`text` equals the golden file `path` (AIRPODS_UPDATE_GOLDEN=1 rewrites it)."""
    import os

    if os.environ.get("AIRPODS_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"differs from {path} (AIRPODS_UPDATE_GOLDEN=1 rewrites it)"


def write_toml(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> LoadedConfig:
    return load_config(write_toml(tmp_path, text))


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(capsys, *args: str) -> Result:
    from airpods.cli import main

    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def engine_steps(plan) -> list:
    """The plan's steps the engine runs (not the ones airpods does on the host)."""
    return [step for step in plan.steps if not step.on_host]


def stack_of(tmp_path: Path, text: str = "", gpu: HostGpu = NO_GPU, only=()):
    """The stack for a config text, with the test API key."""
    from airpods.secrets import key_id
    from airpods.stack.build import build_stack

    return build_stack(load_text(tmp_path, text).config, gpu, only, key_id(KEY))


def single_model_toml(model: str) -> str:
    """The seed's single-model shape: command_args.model from [variables] default_model."""
    return (
        f'[variables]\ndefault_model = "{model}"\n'
        '[services.llamacpp.command_args]\nmodel = "/models/{{default_model}}"\n'
    )


# The command_args the plan airpods was built from lists (issue 33 §6): port and host included.
SEED_COMMAND_ARGS = """
[variables]
default_model = "tiny.gguf"
[services.llamacpp.command_args]
model = "/models/{{default_model}}"
ctx_size = 4096
threads = 2
n_gpu_layers = 0
batch_size = 256
port = 8080
host = "0.0.0.0"
"""
