"""The shared model volume, written through podman: its mountpoint as podman reports it (rootful,
and rootless too, where the user owns it), never a guessed storage path. Files appear atomically:
written under a hidden temporary name in the same folder, then renamed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from airpods.config.syntax import MODEL_NAME_RE
from airpods.engine.base import Engine
from airpods.errors import RuntimeFailure, UsageError
from airpods.files import open_private
from airpods.models.sources import SHARD_RE
from airpods.stack.build import MODEL_VOLUME_TARGET as MODELS_DIR
from airpods.stack.model import Mount


def model_name(name: str) -> str:
    """The name a model has everywhere (/v1/models, `models list`, every models command): the
    file name without .gguf, or the folder name. Accepts either spelling."""
    return name.removesuffix(".gguf")


@dataclass(frozen=True)
class Partial:
    """A download that stopped part way (kept so that the same command resumes it): the hidden
    file or folder, how many bytes it holds, and the URL it came from when that was recorded."""

    name: str
    path: Path
    size: int
    url: str | None
    downloading: bool = False  # a pull is writing it now (it holds the model's write lock)


@dataclass(frozen=True)
class StoredModel:
    """One model in the volume: a GGUF file, or a folder of GGUF files that llama-server's
    router serves as one model (a split set's shards, a model with its mmproj projector)."""

    name: str
    path: Path  # the file, or the folder
    parts: tuple[Path, ...]  # every GGUF file of it, sorted
    unseen: str | None = None  # why the container cannot see it (a link leaving the store, a FIFO)

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.parts if p.is_file())

    @property
    def weights(self) -> tuple[Path, ...]:
        """The parts that hold the model (the projector left out), first shard first."""
        return tuple(p for p in self.parts if not p.name.startswith("mmproj")) or self.parts

    @property
    def problem(self) -> str | None:
        """Why the router cannot serve it (not visible in the container, an incomplete split
        set), else None."""
        if self.unseen:
            return self.unseen
        shards = [m for p in self.weights if (m := SHARD_RE.match(p.name))]
        if shards:
            count = int(shards[0]["count"])
            if len(shards) != count or len(self.weights) != count:
                return f"incomplete split set: {len(shards)} of {count} shards"
        elif len(self.weights) > 1:
            return f"{len(self.weights)} model files in one folder (a folder holds one model: shards or model + mmproj)"
        return None


class ModelStore:
    """The models llama.cpp's containers see at /models, read and written from this host at the
    place that *is* that data:
    - a host folder (`volumes = [{source = "/srv/models", target = "/models"}]`): the folder;
    - a plain named volume: its mountpoint;
    - a named volume bound to a device folder (`--opt type=none --opt o=bind --opt device=DIR`):
      DIR (the mountpoint's own folder is hidden from containers by the bind);
    - a named volume with other driver options (NFS): mounted on this host by podman the way a
      container gets it (`podman volume mount`, released when airpods exits); rootless Podman
      mounts it only in its own namespace, so that case is refused with the way out;
    - a tmpfs volume is refused: every mount of it starts empty."""

    def __init__(
        self, engine: Engine, volume: str, labels: dict[str, str], *, folder: bool = False, service: str = "llamacpp"
    ) -> None:
        """`volume`: the named volume, or with `folder` the host folder; `labels`: what the
        volume gets if this store creates it (the project's labels); `service`: the service whose
        volumes entry a hint names."""
        self.engine, self.volume, self.labels, self.folder = engine, volume, labels, folder
        self.service = service
        self._root: Path | None = None

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = self._folder_root() if self.folder else self._volume_root()
        return self._root

    def _folder_root(self) -> Path:
        path = Path(self.volume)
        if not path.is_dir():
            raise RuntimeFailure(
                f"the model folder {path} does not exist", hint=f"create it (mkdir -p {path}) or fix the volume source"
            )
        return path

    def _volume_root(self) -> Path:
        options = self.engine.volume_options(self.volume)
        if options is None:
            from airpods.plan import bind_options

            options = bind_options(self.engine.user_volumes(), self.volume)  # Docker as a docker-group user
            self.engine.create_volume(self.volume, self.labels, options)
        if not options:
            path = self.engine.volume_mountpoint(self.volume)
        elif "bind" in options.get("o", "").split(",") and options.get("device"):
            path = Path(options["device"])
        elif options.get("type") == "tmpfs":
            raise RuntimeFailure(
                f"the model volume {self.volume} is a tmpfs: it holds files only while a container has it "
                "mounted (each mount starts empty), so a model put into it would be lost",
                hint="use a bind device (podman volume create --opt type=none --opt o=bind --opt device=DIR) or a "
                f"host folder as the volume source of services.{self.service}",
            )
        elif self.engine.rootless():
            shown = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
            raise RuntimeFailure(
                f"the model volume {self.volume} has driver options ({shown}): rootless Podman mounts such a "
                "volume only inside its own namespace, so airpods cannot put models into it from here",
                hint="use a bind device (podman volume create --opt type=none --opt o=bind --opt device=DIR) or a "
                f"host folder as the volume source of services.{self.service}",
            )
        else:
            path = self.engine.mount_volume(self.volume)
            import atexit

            atexit.register(self.engine.unmount_volume, self.volume)
        home = self.engine.user_volumes() if not options else None
        if path is not None and home is not None and not os.access(path, os.R_OK | os.X_OK):  # Docker, as a user
            device = f"{home}/{self.volume}"
            raise RuntimeFailure(
                f"{self.engine.name} keeps the files of the model volume {self.volume} in {path}, where only root "
                "can read them, so airpods cannot put models into it as this user",
                hint=f"airpods binds a new model volume to {device} for this user: move the models there once "
                f"(mkdir -p {device} && docker run --rm -v {self.volume}:/from:ro -v {device}:/to --entrypoint cp "
                f"IMAGE -a /from/. /to/), then `docker volume rm {self.volume}` and `airpods start`; or declare a host "
                f"folder as the volume source of services.{self.service}",
            )
        if path is None or not path.is_dir():
            raise RuntimeFailure(
                f"the model volume {self.volume} is not reachable from this host ({path or 'no mountpoint'})",
                hint="airpods reads and writes models where the volume's data is; run it where podman runs",
            )
        return path

    def make_folders(self, folders: Iterable[str]) -> tuple[list[str], list[str]]:
        """Creates the missing ones of `folders` (paths relative to the store's root) with the
        root's owner: (the ones it created, a problem for each it could not). Each folder on its
        own; a file or a symbolic link where a folder goes is a problem and is left as it is (a
        link is never followed: a container could point one anywhere on the host). RuntimeFailure
        when the store cannot be reached (see `root`)."""
        root = self.root
        owner = root.stat()
        made, problems = [], []
        for folder in folders:
            try:
                created = _make_under(root, folder.split("/"), (owner.st_uid, owner.st_gid))
            except OSError as exc:
                problems.append(f"{folder}: {exc.args[0] if isinstance(exc, FileExistsError) else exc.strerror}")
                continue
            if created:
                made.append(folder)
        return made, problems

    def mount(self, mode: str = "rw") -> Mount:
        """The store as a container mounts it at /models (for one-off tools)."""
        return Mount(self.volume, MODELS_DIR, mode, not self.folder)

    def models(self) -> list[StoredModel]:
        """Every model in the volume as llama-server's router sees it: a top-level GGUF file, or
        a top-level folder of GGUF files (the shards of a split set, or a model and its
        mmproj-* projector) as one model. Hidden names (downloads in progress) are left out. A
        model the container cannot see (a symbolic link leaving the store, a part that is not a
        regular file) is listed with why (`unseen`); nothing of it is read."""
        found = []
        root = self.root
        for entry in sorted(root.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.name.endswith(".gguf") and not entry.is_dir():
                found.append(StoredModel(entry.name.removesuffix(".gguf"), entry, (entry,), _unseen(entry, root)))
            elif entry.is_dir():
                parts = tuple(sorted(p for p in entry.iterdir() if p.name.endswith(".gguf") and not p.is_dir()))
                if parts:
                    why = _unseen(entry, root) or next((w for p in parts if (w := _unseen(p, root))), None)
                    found.append(StoredModel(entry.name, entry, parts, why))
        return found

    def paths(self) -> list[str]:
        """Every visible name in the store and each folder's parts, relative to it (FOLDER/PART)."""
        found = []
        for entry in self.root.iterdir():
            if entry.name.startswith("."):
                continue
            found.append(entry.name)
            if entry.is_dir():
                found += [f"{entry.name}/{part.name}" for part in entry.iterdir() if not part.name.startswith(".")]
        return found

    def partials(self) -> list[Partial]:
        """The downloads kept part way (`.NAME.gguf.partial` files, `.NAME.partial` folders)."""
        found = []
        for entry in sorted(self.root.glob(".*.partial")):
            if entry.is_symlink():
                continue
            name = entry.name[1:].removesuffix(".partial").removesuffix(".gguf")
            files = [p for p in entry.iterdir() if p.is_file()] if entry.is_dir() else [entry]
            url = None
            for part in files:
                url = url or _recorded_url(part.with_name(part.name + ".source"))
            size = sum(p.lstat().st_size for p in files if not p.name.endswith(".source") and not p.is_symlink())
            found.append(Partial(name, entry, size, url, self._busy(name)))
        return found

    def _lock_path(self, name: str) -> Path:
        import hashlib

        from airpods.state import state_dir

        folder = state_dir() / "locks"
        folder.mkdir(exist_ok=True)
        where = hashlib.sha256(self.volume.encode()).hexdigest()[:12]  # a folder's path makes no file name
        return folder / f"model-{where}-{name}.lock"

    def _busy(self, name: str) -> bool:
        """Whether another command writes the model `name` now (holds its lock)."""
        from airpods.state import try_flock

        fd = try_flock(self._lock_path(name), 0)
        if fd is None:
            return True
        os.close(fd)
        return False

    def remove_partial(self, partial: Partial) -> None:
        """Delete a kept download (and the note of where it came from); RuntimeFailure while a
        pull still writes it."""
        if self._busy(partial.name):
            raise RuntimeFailure(
                f"{partial.name} is being downloaded right now: its partial file is in use",
                hint="stop that pull first (Ctrl-C keeps the partial to resume), then remove it",
            )
        if partial.path.is_dir() and not partial.path.is_symlink():
            shutil.rmtree(partial.path)
        else:
            partial.path.unlink(missing_ok=True)
            partial.path.with_name(partial.path.name + ".source").unlink(missing_ok=True)

    def model(self, name: str) -> StoredModel:
        """The model called `name` (its /v1/models id; a trailing .gguf is ignored); UsageError if absent."""
        wanted = model_name(name)
        for model in self.models():
            if model.name == wanted:
                return model
        known = ", ".join(m.name for m in self.models()) or "none yet"
        raise UsageError(f"no model {name!r} in {self.volume}", hint=f"models: {known}")

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

    def check_new(self, name: str, overwrite: bool) -> str:
        """A valid model name for something about to be written, free unless `overwrite`."""
        name = model_name(name)
        if not MODEL_NAME_RE.match(name):
            raise UsageError(
                f"{name!r} is not a model name: letters, digits, '.', '_' and '-', no folder part",
                hint="the name is what /v1/models lists (a trailing .gguf is optional)",
            )
        taken = [m for m in self.models() if m.name == name]
        if taken and not overwrite:
            raise UsageError(f"{name} is already in {self.volume}", hint="pass --force to replace it")
        return name

    @contextmanager
    def _writing(self, name: str) -> Iterator[None]:
        """One writer per model name and volume: a second pull of the same model says so."""
        from airpods.state import try_flock

        if not os.access(self.root, os.W_OK):
            raise RuntimeFailure(
                f"cannot write models into {self.root} (the model {'folder' if self.folder else 'volume'} "
                f"{self.volume}): permission denied",
                hint="give your user write access to it, or run airpods as the user that owns it",
            )

        fd = try_flock(self._lock_path(name), 0)
        if fd is None:
            raise RuntimeFailure(
                f"another airpods command is already writing the model {name} into {self.volume}",
                hint="wait for it to finish (or stop it), then run this again",
            )
        try:
            yield
        finally:
            os.close(fd)

    @contextmanager
    def incoming(self, name: str, *, overwrite: bool = False, keep_partial: bool = False) -> Iterator[Path]:
        """A hidden temporary file (the router lists no hidden names) for the model `name`
        (NAME.gguf); on success it is flushed to disk and renamed into place, atomically.
        `keep_partial` leaves an interrupted download there to resume."""
        name = self.check_new(name, overwrite)
        partial = self.root / f".{name}.gguf.partial"
        with self._writing(name):
            try:
                yield partial
            except BaseException:
                if not keep_partial:
                    partial.unlink(missing_ok=True)
                raise
            os.chmod(partial, 0o644)
            _fsync(partial)
            self._publish(partial, self.root / f"{name}.gguf")

    @contextmanager
    def incoming_folder(
        self, name: str, *, overwrite: bool = False, parts: set[str] | None = None, keep_partial: bool = False
    ) -> Iterator[Path]:
        """A hidden temporary folder for a multi-file model (shards, or a model and its mmproj);
        on success every file is flushed and the folder renamed into place as `name`, which the
        router serves as one model. `keep_partial` keeps an interrupted one to resume (then
        `parts`, the file names it must hold, drops anything else before it is published).

        The folder yielded is pinned: /proc/self/fd/N of the partial folder opened without
        following a link, so a link a container plants at its name, then or later, never
        redirects a write into it elsewhere (a link there already is a RuntimeFailure)."""
        name = self.check_new(name, overwrite)
        partial = self.root / f".{name}.partial"
        with self._writing(name):
            if not keep_partial:
                shutil.rmtree(partial, ignore_errors=True)
            try:
                partial.mkdir(mode=0o755)
            except FileExistsError:
                pass
            try:
                fd = os.open(partial, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as exc:
                raise RuntimeFailure(
                    f"cannot write {partial}: it is not a folder of airpods' ({exc.strerror or exc})",
                    hint=f"remove it (`airpods models rm {name} --partial`) and run the command again",
                ) from None
            pinned = Path(f"/proc/self/fd/{fd}")
            try:
                try:
                    yield pinned
                except BaseException:
                    if not keep_partial:
                        shutil.rmtree(partial, ignore_errors=True)
                    raise
                for entry in list(pinned.iterdir()):
                    if parts is not None and entry.name not in parts:
                        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                    else:
                        _fsync(entry, 0o644)
            finally:
                os.close(fd)
            self._publish(partial, self.root / name)

    def _publish(self, partial: Path, final: Path) -> None:
        """Rename a finished download into place; a model of the same name it replaces (as a
        file or as a folder) is moved aside first and removed after."""
        name = model_name(final.name)
        old = [m.path for m in self.models() if m.name == name]
        aside = []
        for path in old:
            hidden = path.with_name(f".{path.name}.replaced")
            os.replace(path, hidden)
            aside.append(hidden)
        os.replace(partial, final)
        for hidden in aside:
            shutil.rmtree(hidden) if hidden.is_dir() else hidden.unlink()

    def remove(self, model: StoredModel) -> None:
        """Delete one model: its file, or its folder with every part. A symbolic link is removed
        as a link (what it points to is left alone)."""
        if model.path.is_dir() and not model.path.is_symlink():
            shutil.rmtree(model.path)
        else:
            model.path.unlink()

    def copy_in(
        self, source: Path, name: str, *, overwrite: bool = False, progress: Callable[[int], None] | None = None
    ) -> Path:
        """A local GGUF file copied in as the model `name`. Returns its path in the volume."""
        size = source.stat().st_size
        self.require_space(size, name)
        with self.incoming(name, overwrite=overwrite) as partial:
            copy_file(source, partial, progress)
        return self.root / f"{model_name(name)}.gguf"


def _unseen(path: Path, root: Path) -> str | None:
    """Why a container that mounts `root` cannot read `path` (None when it can): a symbolic link
    that leaves the store (the container has only the store), a broken one, or something that is
    not a regular file or folder (a FIFO would block the reader)."""
    import stat

    if path.is_symlink():
        link = os.readlink(path)
        if os.path.isabs(link) and not Path(link).is_relative_to(MODELS_DIR):  # the container has /models only
            return f"not visible inside the container: {path.name} is a link to {link}, a path the container lacks"
        target = Path(os.path.realpath(path))
        if not target.is_relative_to(Path(os.path.realpath(root))):
            return f"not visible inside the container: {path.name} points outside {root} (to {target})"
    try:
        mode = path.stat().st_mode
    except OSError:
        return f"not visible inside the container: {path.name} is a broken link"
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return f"not a regular file: {path.name} (a FIFO, socket or device cannot be served)"
    return None


def _recorded_url(source: Path) -> str | None:
    """The URL a download's `.source` note names (models/download.py), None without one."""
    import json
    import stat

    try:
        if source.is_symlink() or not stat.S_ISREG(source.stat().st_mode):
            return None  # a FIFO or a device would block or never end
        with source.open("rb") as handle:
            url = json.loads(handle.read(65536)).get("url")
    except (OSError, ValueError, AttributeError):
        return None
    return url if isinstance(url, str) else None


def _make_under(root: Path, parts: list[str], owner: tuple[int, int]) -> bool:
    """The folder root/PARTS…, each part made (0755, given to `owner` when root runs this) or
    entered relative to the folder before it, through file descriptors: every name is looked
    up once, in a folder already open, and never through a symbolic link (O_NOFOLLOW), so a
    link a container swaps in between a check and a call can redirect neither the mkdir nor the
    chown. Returns whether it made any. Raises FileExistsError naming a link or a file in the
    way, OSError otherwise."""
    import errno
    import stat

    created = False
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            try:
                os.mkdir(part, 0o755, dir_fd=folder)  # never follows a link named `part`
                made = True
            except FileExistsError:
                made = False
            try:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                found = os.stat(part, dir_fd=folder, follow_symlinks=False)  # why: a link, or a file
                what = "a symbolic link" if stat.S_ISLNK(found.st_mode) else "a file"
                raise FileExistsError(f"{'/'.join(parts[: i + 1])} is {what}") from None
            os.close(folder)
            folder = inner
            if made:
                created = True
                if os.geteuid() == 0 and owner != (0, 0):
                    os.fchown(folder, *owner)  # the container's user writes into it
    finally:
        os.close(folder)
    return created


def _fsync(path: Path, mode: int | None = None) -> None:
    """Flush a file of the store to disk (with `mode`, its permissions first), through a file
    descriptor opened without following a symbolic link: a link a container planted there is
    an error (ELOOP), never a chmod of whatever it points to."""
    with open_private(path, "rb") as handle:
        if mode is not None:
            os.fchmod(handle.fileno(), mode)
        os.fsync(handle.fileno())


def copy_file(source: Path, target: Path, progress: Callable[[int], None] | None = None) -> None:
    """Copy in 4 MiB chunks, reporting each to `progress`, flushed to disk before returning."""
    with source.open("rb") as src, open_private(target, "wb") as dst:
        while chunk := src.read(1 << 22):
            dst.write(chunk)
            if progress:
                progress(len(chunk))
        dst.flush()
        os.fsync(dst.fileno())
