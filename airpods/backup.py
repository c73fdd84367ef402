"""Backup and restore: the user config, the services' volumes (exported through the engine:
`podman volume export`, or a helper container that mounts the volume as a service does) and,
only when asked, the API key, in one tar with a manifest of every member's size and sha256.
Volumes are staged beside the archive (never in /tmp, often a tmpfs) or in the state folder.

Restore verifies the whole archive before it touches anything, and never deletes first: a volume
keeps its name, driver options and labels (it is never removed); one that holds data (asked of
the volume itself, through the engine) is replaced only with --force, and then its earlier files
are first copied into a volume set aside (NAME.before-restore-DATE, labelled io.airpods.aside-of),
which `clean` never removes."""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from airpods import __version__
from airpods.checksum import sha256_of, sha256_stream
from airpods.engine.base import Engine
from airpods.engine.errors import EngineError
from airpods.errors import RuntimeFailure, UsageError
from airpods.files import publish, sync_folder
from airpods.labels import ASIDE
from airpods.models.download import Progress
from airpods.models.manage import model_mount
from airpods.stack.model import Stack

MANIFEST = "manifest.json"
CONSISTENT_COPY = {"open-webui": "its SQLite database may be copied while it is written"}


class DamagedArchive(RuntimeFailure):
    pass


@dataclass(frozen=True)
class Member:
    name: str  # path inside the archive
    kind: str  # config | volume | secret
    target: str  # volume name, or the file it came from
    size: int
    sha256: str


def _tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def backup_volumes(stack: Stack, with_models: bool) -> list[tuple[str, list[str]]]:
    """(volume, services using it) for the stack's named volumes; the model volume only if asked."""
    models = model_mount(stack).source if any(s.kind == "llamacpp" for s in stack.services) else None
    users: dict[str, list[str]] = {}
    for spec in stack.services:
        for mount in spec.mounts:
            if mount.named and (with_models or mount.source != models):
                users.setdefault(mount.source, []).append(spec.name)
    return list(users.items())


def estimate(engine: Engine, volumes: Sequence[str]) -> int | None:
    """Bytes the volumes hold, from their folders where this user can read them; None when
    one cannot be read from here."""
    total = 0
    for volume in volumes:
        path = engine.readable_folder(volume)
        if path is None:
            return None
        total += _tree_size(path)
    return total


def tool_image(stack: Stack, engine: Engine) -> str:
    """The image a volume helper container runs (it needs tar, ls, find and sh): the
    AIRPODS_TOOL_IMAGE environment variable, else the first of the stack's images present here
    (llama.cpp's first). Raises RuntimeFailure when none is."""
    if chosen := os.environ.get("AIRPODS_TOOL_IMAGE"):
        return chosen
    ordered = sorted(stack.images, key=lambda image: "llama.cpp" not in image)
    present = engine.image_ids(ordered)
    for image in ordered:
        if image in present:
            return image
    raise RuntimeFailure(
        "no image of the stack is on this machine to reach the volumes with",
        hint="`airpods pull` fetches them (or set AIRPODS_TOOL_IMAGE to a local image that has tar)",
    )


def write_backup(
    engine: Engine,
    out: Path,
    stack: Stack,
    volumes: Sequence[str],
    config_file: Path | None,
    secret_file: Path | None,
    progress: Progress,
    image: str | None = None,
) -> list[Member]:
    """The archive `out`, written whole or not at all (a hidden partial file renamed into
    place); volumes are exported into a hidden folder beside it first."""
    members: list[Member] = []
    image = image or (tool_image(stack, engine) if volumes else "")
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.staging-", dir=out.absolute().parent) as tmp:
        staged: list[tuple[Path, Member]] = []
        if config_file:
            staged.append(_stage(config_file, "config/config.toml", "config", str(config_file)))
        for volume in volumes:
            exported = Path(tmp) / f"{volume}.tar"
            engine.export_volume(volume, exported, image)
            staged.append(_stage(exported, f"volumes/{volume}.tar", "volume", volume))
        if secret_file:
            staged.append(_stage(secret_file, "secrets/api-key", "secret", "api-key"))
        members = [m for _, m in staged]
        manifest = {
            "airpods": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "services": [s.name for s in stack.services],
            "members": [m.__dict__ for m in members],
        }
        partial = out.with_name(f".{out.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # volumes hold private data
        try:
            with os.fdopen(fd, "wb") as raw:
                with tarfile.open(fileobj=raw, mode="w") as tar:
                    data = json.dumps(manifest, indent=2).encode()
                    info = tarfile.TarInfo(MANIFEST)
                    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
                    tar.addfile(info, io.BytesIO(data))
                    for path, member in staged:
                        advance = progress(member.name, member.size)
                        info = tar.gettarinfo(str(path), member.name)
                        info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "", ""
                        with path.open("rb") as handle:
                            tar.addfile(info, _Counting(handle, advance))
                raw.flush()
                os.fsync(raw.fileno())  # on disk before it is published under its name
            os.replace(partial, out)
            sync_folder(out.parent)
        finally:
            Path(partial).unlink(missing_ok=True)
    return members


class _Counting(io.RawIOBase):
    def __init__(self, handle, advance: Callable[[int], None]) -> None:
        self.handle, self.advance = handle, advance

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        self.advance(len(chunk))
        return chunk


def _stage(path: Path, name: str, kind: str, target: str) -> tuple[Path, Member]:
    return path, Member(name, kind, target, path.stat().st_size, sha256_of(path))


def verify_archive(archive: Path) -> tuple[dict, list[Member]]:
    """Read the whole archive; every member must match the manifest's size and sha256."""
    try:
        with tarfile.open(archive, mode="r:") as tar:
            manifest_file = tar.extractfile(MANIFEST)
            if manifest_file is None:
                raise DamagedArchive(f"{archive} has no manifest: not an airpods backup")
            manifest = json.loads(manifest_file.read())
            members = [Member(**m) for m in manifest["members"]]
            for member in members:
                handle = tar.extractfile(member.name)
                if handle is None:
                    raise DamagedArchive(f"{archive}: {member.name} is missing")
                digest, size = sha256_stream(handle)
                if size != member.size or digest != member.sha256:
                    raise DamagedArchive(
                        f"{archive}: {member.name} does not match its manifest (size or sha256); nothing was restored"
                    )
    except (tarfile.TarError, EOFError, OSError, KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise UsageError(f"no such file: {archive}") from None
        raise DamagedArchive(
            f"{archive} is damaged or truncated ({exc}); nothing was restored", hint="use another copy of the backup"
        ) from None
    return manifest, members


def restore_archive(
    engine: Engine,
    archive: Path,
    stack: Stack,
    only: Sequence[str],
    force: bool,
    config_target: Path,
    secret_target: Path,
) -> list[str]:
    """Verify first, check every target second, change things last."""
    unknown = [name for name in only if name not in stack.configured]
    if unknown:
        raise UsageError(
            f"no service {', '.join(unknown)} in the config", hint=f"services: {', '.join(stack.configured)}"
        )
    manifest, members = verify_archive(archive)
    volume_users = {v: users for v, users in backup_volumes(stack, with_models=True)}
    volumes = [
        m for m in members if m.kind == "volume" and (not only or set(volume_users.get(m.target, [])) & set(only))
    ]
    running = {c.name for c in engine.containers() if c.running}
    busy = sorted(
        {
            s.name
            for s in stack.services
            if s.container in running and any(mount.source in {m.target for m in volumes} for mount in s.mounts)
        }
    )
    if busy:
        raise RuntimeFailure(
            f"{', '.join(busy)} {'is' if len(busy) == 1 else 'are'} running and use the volumes to restore",
            hint=f"`airpods stop {' '.join(busy)}` first, then restore, then `airpods start`",
        )
    image = tool_image(stack, engine) if volumes else ""
    holding = [m.target for m in volumes if engine.volume_exists(m.target) and engine.volume_has_data(m.target, image)]
    if holding and not force:
        raise RuntimeFailure(
            f"volume {', '.join(holding)} already {'holds' if len(holding) == 1 else 'hold'} data; "
            "nothing was restored",
            hint="pass --force to replace it with the backup's (its files are first set aside in a new volume)",
        )
    # `only` names services: their volumes alone (the config and the key belong to no service)
    config = None if only else next((m for m in members if m.kind == "config"), None)
    secret = None if only else next((m for m in members if m.kind == "secret"), None)
    if secret and secret_target.exists() and not force and secret_target.read_text().strip() != "":
        raise RuntimeFailure(
            "this machine already has an API key; nothing was restored",
            hint="pass --force to replace it with the backup's",
        )
    done: list[str] = []
    from airpods.state import state_dir

    with (
        tarfile.open(archive, mode="r:") as tar,
        tempfile.TemporaryDirectory(prefix="restore-", dir=state_dir()) as tmp,
    ):
        for member in volumes:
            source = Path(tmp) / "volume.tar"
            _extract_to(tar, member.name, source)
            done.append(restore_volume(engine, member.target, source, stack.labels, image, member.target in holding))
            source.unlink()
        if config:
            target = config_target
            if target.exists() and not force and target.read_bytes() != _read(tar, config.name):
                target = target.with_name(target.name + ".restored")
            target.parent.mkdir(parents=True, exist_ok=True)
            _extract_to(tar, config.name, target)
            done.append(f"config {target}")
        if secret:
            _extract_to(tar, secret.name, secret_target)
            os.chmod(secret_target, 0o600)
            done.append("API key")
    return done


def _read(tar: tarfile.TarFile, name: str) -> bytes:
    handle = tar.extractfile(name)
    return handle.read() if handle else b""


def _extract_to(tar: tarfile.TarFile, name: str, target: Path) -> None:
    """The member `name` published whole at `target` (0600; files.publish): a crash leaves the
    file it replaces, never an empty or half-written one."""
    handle = tar.extractfile(name)
    assert handle is not None
    publish(target, iter(lambda: handle.read(1 << 22), b""), 0o600)


def restore_volume(
    engine: Engine, volume: str, tar: Path, labels: dict[str, str], image: str, holding: bool, set_aside: bool = True
) -> str:
    """The archive `tar` into `volume`, which keeps its name, driver options and labels (it is
    made, with `labels`, only when absent). When it `holding` data, the backup goes into a
    staging volume first (a failed import leaves `volume` as it was), then `volume`'s files are
    copied into a volume set aside (unless not `set_aside`: a rollback replaces what a failed
    image wrote), and only then replaced by the staged ones. Returns what was done, in words."""
    if not engine.volume_exists(volume):
        engine.create_volume(volume, labels)
    if not holding:
        engine.import_volume(volume, tar, image)
        return f"volume {volume}"
    stamp = time.strftime("%Y%m%dT%H%M%S")
    staging, aside = f"{volume}.restoring-{stamp}", f"{volume}.before-restore-{stamp}"
    engine.create_volume(staging, labels)
    try:
        engine.import_volume(staging, tar, image)
        if set_aside:
            engine.create_volume(aside, {**labels, ASIDE: volume})
            engine.copy_volume(volume, aside, image)
        try:
            engine.copy_volume(staging, volume, image, replace=True)
        except EngineError as exc:  # e.g. the volume's disk is full: put back what it held
            why = (exc.stderr_tail or f"exit {exc.returncode}").strip().splitlines()[-1:]
            if not set_aside:
                raise
            try:
                engine.copy_volume(aside, volume, image, replace=True)
                back = f"its earlier files are back in it (and kept in volume {aside})"
            except EngineError:
                back = f"its earlier files are kept in volume {aside}"
            raise RuntimeFailure(
                f"could not restore volume {volume}: {' '.join(why)}; {back}",
                hint="free space where the volume keeps its files, then run the restore again",
            ) from None
    finally:
        engine.remove_volume(staging, force=True)
    return f"volume {volume} (what it held is kept in volume {aside})" if set_aside else f"volume {volume}"
