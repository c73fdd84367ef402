"""The flag tables of the llama-server images on this machine, read from each image itself
(`llama-server --help` in a throwaway container, about half a second) and kept per image ID in
the state directory, so command_args are checked against the server that will run. An image not
pulled yet is checked against the built-in table (stack/flag_table.py) until it is.

Store: $XDG_STATE_HOME/airpods/llama-server-flags.json =
  {"by_id": {IMAGE_ID: table JSON, or null for an image whose entrypoint is not llama-server},
   "refs": {IMAGE_REFERENCE: IMAGE_ID}}"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airpods.errors import ConfigError
from airpods.stack.flag_table import FlagTable
from airpods.state import state_dir, state_path

if TYPE_CHECKING:
    from airpods.engine.base import Engine
    from airpods.stack.model import Stack

# Image reference → the entrypoint that runs llama-server in it (None: the image's own).
ServerImages = Mapping[str, tuple[str, ...] | None]

STORE = "llama-server-flags.json"
KEEP_IMAGES = 16


def _store_path() -> Path:
    """Where learned tables are kept (reading it makes no folder: `learn_tables` does)."""
    return state_path() / STORE


def _read() -> dict[str, Any]:
    try:
        data = json.loads(_store_path().read_text())
        if isinstance(data.get("by_id"), dict) and isinstance(data.get("refs"), dict):
            return data
    except (OSError, ValueError, AttributeError):
        pass
    return {"by_id": {}, "refs": {}}


def store_stamp() -> str:
    """Changes whenever a table is learned (the stack cache keys on it); "" when none is."""
    try:
        stat = _store_path().stat()
    except OSError:
        return ""
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def known_tables() -> dict[str, FlagTable]:
    """Image reference → the flag table read from the image that reference last named here."""
    data = _read()
    tables: dict[str, FlagTable] = {}
    for ref, image_id in data["refs"].items():
        raw = data["by_id"].get(image_id)
        try:
            if raw:
                tables[ref] = FlagTable.from_json(raw)
        except (KeyError, TypeError, ValueError):
            continue  # a damaged entry: the built-in table serves until it is learned again
    return tables


def checked_images(stack: Stack) -> dict[str, tuple[str, ...] | None]:
    """The images whose services' command_args are checked against a flag table."""
    return {s.image: s.entrypoint for s in stack.services if s.flag_table}


def resolve_checked(
    resolve: Callable[[], Stack], config_images: Callable[[], ServerImages], engine: Engine | None
) -> Stack:
    """`resolve()` with command_args checked against the images that will run: the tables of
    present llama-server images not read yet are learned first, then the stack is resolved
    again. A config that fails against the tables known so far (the built-in one, say) is
    retried once the tables of its images (`config_images()`) are learned: a newer image may
    take a flag the built-in table lacks. Without podman (`engine` None) the known tables serve.

    Raises ConfigError as `resolve` does; podman errors while learning are ignored (the known
    tables serve)."""
    from airpods.engine.errors import EngineError

    try:
        stack = resolve()
    except ConfigError:
        try:
            learned = engine is not None and bool(learn_tables(engine, config_images()))
        except EngineError:
            learned = False
        if not learned:
            raise
        return resolve()
    try:
        if engine is not None and learn_tables(engine, checked_images(stack)):
            return resolve()
    except EngineError:
        pass
    return stack


def unlearned(images: Iterable[str]) -> list[str]:
    """The llama-server images among `images` whose own flag table this machine has not read."""
    learned = known_tables()
    return [image for image in images if image not in learned]


def learn_tables(engine: Engine, wanted: ServerImages) -> list[str]:
    """Read the flag table of every present image of `wanted` that is not known yet. Returns
    the images learned (empty: nothing changed). An image whose `--help` is not llama-server's
    is remembered as such (the built-in table keeps serving it); one whose container fails is
    tried again next time. Raises EngineError when podman cannot list images."""
    from airpods.engine.base import OneOff
    from airpods.files import write_atomic
    from airpods.stack.flag_table import parse_help

    if not wanted:
        return []
    ids = engine.image_ids(wanted)
    data = _read()
    learned: list[str] = []
    for ref, image_id in ids.items():
        if data["refs"].get(ref) == image_id and image_id in data["by_id"]:
            continue
        if image_id not in data["by_id"]:
            entrypoint = wanted[ref]
            done = engine.run_one_off(
                OneOff(
                    ref,
                    (*(entrypoint or ())[1:], "--help"),
                    entrypoint=entrypoint[0] if entrypoint else None,
                    tool="help",
                )
            )
            if done.returncode != 0:
                continue
            try:
                table: FlagTable | None = parse_help(
                    done.stdout, f"llama-server --help of {ref} (image {image_id[:12]})"
                )
            except ValueError:
                table = None
            data["by_id"][image_id] = table.to_json() if table else None
        data["refs"][ref] = image_id
        learned.append(ref)
    if learned:
        in_use = set(data["refs"].values())
        stale = [i for i in data["by_id"] if i not in in_use][: max(0, len(data["by_id"]) - KEEP_IMAGES)]
        for image_id in stale:
            del data["by_id"][image_id]
        write_atomic(state_dir() / STORE, json.dumps(data).encode())
    return learned
