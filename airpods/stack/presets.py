"""Per-model presets of a llama.cpp router: `[services.NAME.models.MODEL]` tables become the
sections of the INI file llama-server reads with `--models-preset` (tools/server/README.md,
"Model presets": a section per model, keys are flag names without dashes, `load-on-startup`
decides whether the model loads when the server starts; command-line flags win over a model's
section). airpods writes the file into a folder of its state directory that is mounted
read-only into the router's container (so a rewrite reaches the running server, which rereads
it on `GET /models?reload=1`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from airpods.config.keys import key_path
from airpods.errors import ConfigError
from airpods.stack.args import FlagArg, command_flags
from airpods.stack.flag_table import FlagTable
from airpods.stack.model import Preset

if TYPE_CHECKING:
    from airpods.config.schema import ModelPreset

# Flags the router decides for each model itself (server README): refused in a preset.
ROUTER_FLAGS = {
    "--alias": "the section's name is the model's name",
    "--hf-repo": 'use source = "user/repo:QUANT": airpods fetches it into the model volume',
    "--hf-file": 'use source = "user/repo/FILE.gguf"',
}


# The flags (by their flag table name) a router keeps on its own command line; the rest of its
# command_args go to the preset file's [*] section. These are what the router process serves
# with itself: llama.cpp's tools/server/server-models.cpp (unset_reserved_args) keeps the TLS
# files, the API key and the models-* settings from its children; the address, path, prefix,
# timeouts, HTTP threads, Web UI, endpoint switches and log are the router's own HTTP server's.
ROUTER_OWN = frozenset(
    {
        *("--host", "--port", "--path", "--api-prefix", "--timeout", "--threads-http"),
        *("--ssl-key-file", "--ssl-cert-file", "--api-key", "--api-key-file", "--offline"),
        *("--models-dir", "--models-max", "--models-preset", "--models-autoload"),
        *("--ui", "--ui-config", "--ui-config-file", "--metrics", "--props", "--slots"),
        *("--log-file", "--log-colors", "--verbose", "--verbosity", "--log-prefix", "--log-timestamps"),
    }
)


def _key(spelling: str) -> str:
    return spelling.lstrip("-").replace("_", "-")


def preset_folder(state: Path, project: str, service: str) -> Path:
    """The host folder holding a router's preset file."""
    return state / "presets" / project / service


def build_presets(models: Mapping[str, ModelPreset], table: FlagTable | None, service: str) -> tuple[Preset, ...]:
    """The declared presets of one router, their flags checked against its flag table (None:
    unchecked, for commands that only fetch). Raises ConfigError naming
    services.SERVICE.models.MODEL.KEY."""
    presets = []
    for name, model in models.items():
        where = key_path(("services", service, "models", name))
        flags = command_flags(model.flags, table, where)
        for key in model.flags:
            found = table.lookup(key) if table else None  # known: command_flags checked every key
            if found and found[0].name in ROUTER_FLAGS:
                flag = found[0].name
                raise ConfigError(f"the router sets {flag} for each model: {ROUTER_FLAGS[flag]}", key=f"{where}.{key}")
        presets.append(Preset(name, tuple(flags), model.load_on_startup, model.source, model.required))
    return tuple(presets)


HEADER = "; written by airpods from the [services.*.models] tables and the model volume"


def declared_digest(presets: Sequence[Preset]) -> str:
    """12 hex digits that change exactly when the declared presets do: written in the file's
    first line, so that `status` sees a config whose presets the running router has not reread
    by reading one line (`presets_pending`)."""
    import hashlib
    import json

    data = [[p.name, list(p.flags), p.load_on_startup] for p in presets]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:12]


def presets_pending(presets: Sequence[Preset], path: Path) -> bool:
    """Whether the preset file at `path` was written for other declared presets than these
    (or is missing): `start` would rewrite it and have the router reread it."""
    try:
        with path.open(encoding="utf-8") as file:
            first = file.readline()
    except (OSError, ValueError):
        return True
    return f"(declared: {declared_digest(presets)})" not in first


def preset_ini(presets: Sequence[Preset], detected: Mapping[str, Sequence[FlagArg]] = {}) -> str:  # noqa: B006
    """The INI file: a section per declared preset, and one per `detected` model (flags airpods
    derived from a model's own metadata, e.g. an embedding model's pooling); a declared preset
    for a detected model keeps the detected flags it does not set itself (tuning one flag of an
    embedding model must not turn its embeddings off)."""
    declared = {p.name for p in presets}
    lines = [f"{HEADER} (declared: {declared_digest(presets)})", "version = 1"]
    sections: list[tuple[str, Sequence[FlagArg], bool | None, str]] = [
        (name, flags, None, "detected from the model's metadata")
        for name, flags in sorted(detected.items())
        if name not in declared
    ]
    shared = [(p.name, p.flags, None, "every model's (a model's own section wins)") for p in presets if p.name == "*"]
    sections = shared + sections
    for p in presets:
        if p.name != "*":
            own = {_key(s) for s, _ in p.flags}
            found = [f for f in detected.get(p.name, ()) if _key(f[0]) not in own]
            sections.append((p.name, (*p.flags, *found), p.load_on_startup, "declared in the config"))
    for name, flags, load, why in sections:
        lines += ["", f"; {why}", f"[{name}]"]
        lines += [f"{spelling.lstrip('-')} = {'true' if value is None else value}" for spelling, value in flags]
        if load is not None:
            lines.append(f"load-on-startup = {'true' if load else 'false'}")
    return "\n".join(lines) + "\n"
