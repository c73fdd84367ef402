"""Snapshots of a service's data volumes before an update, and the memory of updates that failed.

Before `start` recreates a service because its image changed, its data volumes (plan.data_volumes:
Open WebUI's, Ollama's, ComfyUI's; never the shared model volume) are written as one archive in
the backup format (backup.write_backup: a manifest with each member's size and sha256) to
$XDG_STATE_HOME/airpods/snapshots/PROJECT/SERVICE/YYYYmmddTHHMMSSZ.tar (0600, in the 0700 state
folder); the newest KEEP of each service are kept. When the service then fails on its new image,
the snapshot is restored into the same volumes (backup.restore_volume, which keeps each volume's
name, options and labels) and the new image's ID is remembered in failed-updates.json, so that
the next plain `start` does not try the same image again (`airpods update` does)."""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from airpods.engine.base import Engine
from airpods.errors import RuntimeFailure
from airpods.files import write_atomic
from airpods.stack.model import Stack
from airpods.state import state_dir, state_path

KEEP = 2
FAILED = "failed-updates.json"


def snapshot_folder(project: str, service: str) -> Path:
    return state_path() / "snapshots" / project / service


def needs_room(engine: Engine, volumes: list[str]) -> tuple[int | None, int]:
    """(bytes the volumes hold, None when not readable here; bytes free in the state folder)."""
    from airpods.backup import estimate

    folder = state_dir()
    return estimate(engine, volumes), shutil.disk_usage(folder).free


def snapshot_sizes(engine: Engine, stack: Stack, services: list[str]) -> dict[str, int | None]:
    """What the next update would snapshot of each named service that has data volumes: its
    bytes (None when they cannot be read from here)."""
    from airpods.backup import estimate
    from airpods.plan import data_volumes

    sizes: dict[str, int | None] = {}
    for spec in (s for s in stack.services if s.name in services):
        if volumes := data_volumes(stack, spec):
            sizes[spec.name] = estimate(engine, list(volumes))
    return sizes


def take_snapshot(engine: Engine, stack: Stack, service: str, volumes: list[str], image: str) -> Path:
    """The volumes of `service` as one verified archive in its snapshot folder; older ones
    beyond KEEP removed. Returns the archive. Raises RuntimeFailure (the volumes untouched)."""
    from airpods.backup import write_backup

    state_dir()
    folder = snapshot_folder(stack.project, service)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    out = folder / time.strftime("%Y%m%dT%H%M%SZ.tar", time.gmtime())
    write_backup(engine, out, stack, volumes, None, None, lambda name, total: lambda done: None, image=image)
    for old in sorted(folder.glob("*.tar"))[:-KEEP]:
        old.unlink(missing_ok=True)
    return out


def newest_snapshot(project: str, service: str) -> Path | None:
    """The service's newest snapshot, None when it has none."""
    folder = snapshot_folder(project, service)
    return max(folder.glob("*.tar"), default=None) if folder.is_dir() else None


def taken_at(archive: Path) -> str:
    """When a snapshot was taken, as its file name says (UTC)."""
    stamp = archive.stem
    return f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]} UTC"


def restore_snapshot(engine: Engine, archive: Path, labels: dict[str, str], image: str) -> list[str]:
    """Every volume of a snapshot put back as it was (the whole archive verified first; what
    the failed image left in a volume is replaced, not kept aside). Returns the volumes."""
    from airpods.backup import restore_volume, verify_archive

    _, members = verify_archive(archive)
    volumes = [m for m in members if m.kind == "volume"]
    with (
        tarfile.open(archive, mode="r:") as tar,
        tempfile.TemporaryDirectory(prefix="rollback-", dir=state_dir()) as tmp,
    ):
        for member in volumes:
            source = Path(tmp) / "volume.tar"
            handle = tar.extractfile(member.name)
            if handle is None:
                raise RuntimeFailure(f"snapshot {archive} lacks {member.name}")
            with source.open("wb") as out:
                shutil.copyfileobj(handle, out, 1 << 22)
            restore_volume(engine, member.target, source, labels, image, holding=True, set_aside=False)
            source.unlink()
    return [m.target for m in volumes]


def failed_updates(project: str) -> dict[str, tuple[str, str]]:
    """Service → (the image ID that failed and was rolled back, when), for this project."""
    try:
        data = json.loads((state_path() / FAILED).read_text())
        rows = data.get(project, {})
        return {str(s): (str(r["image"]), str(r["at"])) for s, r in rows.items()}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return {}


def _write_failed(project: str, rows: dict[str, tuple[str, str]]) -> None:
    path = state_dir() / FAILED
    try:
        data = json.loads(path.read_text())
        data = data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        data = {}
    data[project] = {service: {"image": image, "at": at} for service, (image, at) in rows.items()}
    write_atomic(path, json.dumps(data, indent=2).encode())


def remember_failed(project: str, service: str, image_id: str) -> str:
    """Record that `image_id` failed for `service` (plain `start` leaves it); returns when."""
    at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    _write_failed(project, {**failed_updates(project), service: (image_id, at)})
    return at


def forget_failed(project: str, services: list[str]) -> None:
    """`airpods update` tries these services' new images again."""
    rows = failed_updates(project)
    if any(s in rows for s in services):
        _write_failed(project, {s: r for s, r in rows.items() if s not in services})
