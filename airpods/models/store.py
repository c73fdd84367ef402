"""The shared model volume, written through podman: its mountpoint as podman reports it (rootful,
and rootless too, where the user owns it), never a guessed storage path. Files appear atomically:
written under a hidden temporary name in the same folder, then renamed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from airpods.engine.base import Engine
from airpods.errors import RuntimeFailure, UsageError


class ModelStore:
    def __init__(self, engine: Engine, volume: str, labels: dict[str, str]) -> None:
        """`labels`: what the volume gets if this store creates it (the project's labels)."""
        self.engine, self.volume, self.labels = engine, volume, labels
        self._root: Path | None = None

    @property
    def root(self) -> Path:
        if self._root is None:
            if not self.engine.volume_exists(self.volume):
                self.engine.create_volume(self.volume, self.labels)
            path = self.engine.volume_mountpoint(self.volume)
            if path is None or not path.is_dir() or not os.access(path, os.W_OK):
                raise RuntimeFailure(
                    f"the model volume {self.volume} is not reachable from this host ({path or 'no mountpoint'})",
                    hint="airpods writes models through the volume's mountpoint; run it where podman runs",
                )
            self._root = path
        return self._root

    def files(self) -> list[Path]:
        return sorted(
            p
            for p in self.root.rglob("*.gguf")
            if not any(part.startswith(".") for part in p.relative_to(self.root).parts)
        )

    def path(self, name: str) -> Path:
        """The model called `name` (file name, with or without .gguf); UsageError if absent."""
        candidate = self.root / (name if name.endswith(".gguf") else name + ".gguf")
        if "/" in name or name.startswith(".") or not candidate.is_file():
            known = ", ".join(p.name for p in self.files()) or "none yet"
            raise UsageError(f"no model {name!r} in {self.volume}", hint=f"models: {known}")
        return candidate

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def require_space(self, needed: int, what: str) -> None:
        free = self.free_bytes()
        limit = os.environ.get("AIRPODS_MODELS_MAX_FREE")  # tests simulate a small disk
        if limit:
            free = min(free, int(limit))
        if needed > free:
            raise RuntimeFailure(
                f"not enough space for {what}: needs {needed / 1e9:.2f} GB, {free / 1e9:.2f} GB free in {self.volume}",
                hint="free some space (`airpods models rm NAME`) and try again",
            )

    @contextmanager
    def incoming(self, name: str, *, overwrite: bool = False, keep_partial: bool = False) -> Iterator[Path]:
        """A hidden temporary path (llama-server lists only *.gguf); on success it is renamed to
        `name`, atomically. `keep_partial` leaves an interrupted download there to resume."""
        final = self.root / name
        if Path(name).name != name or not name.endswith(".gguf"):
            raise UsageError(f"model file names end in .gguf and have no folder part: {name!r}")
        if final.exists() and not overwrite:
            raise UsageError(f"{name} is already in {self.volume}", hint="pass --force to replace it")
        partial = self.root / f".{name}.partial"
        try:
            yield partial
        except BaseException:
            if not keep_partial:
                partial.unlink(missing_ok=True)
            raise
        os.chmod(partial, 0o644)
        os.replace(partial, final)

    def copy_in(
        self, source: Path, name: str, *, overwrite: bool = False, progress: Callable[[int], None] | None = None
    ) -> Path:
        size = source.stat().st_size
        self.require_space(size, name)
        with self.incoming(name, overwrite=overwrite) as partial, source.open("rb") as src, partial.open("wb") as dst:
            while chunk := src.read(1 << 22):
                dst.write(chunk)
                if progress:
                    progress(len(chunk))
        return self.root / name
