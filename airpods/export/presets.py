"""The routers' preset files of an export, under the export's own folder: an export never
writes what a running router mounts (its live preset file would then serve a config that was
never started, after the next restart of its container)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from airpods.files import write_atomic
from airpods.stack.model import PRESET_FILE, PRESETS_DIR, Stack
from airpods.stack.presets import preset_ini


def exported_presets(stack: Stack, folder: Path) -> Stack:
    """`stack` with each router's preset folder moved to folder/presets/SERVICE, where its
    declared presets are written (models.ini, 0644; the router also finds every model of its
    volume by itself). Raises RuntimeFailure when the folder cannot be written."""
    services = []
    for spec in stack.services:
        mount = next((m for m in spec.mounts if m.target == PRESETS_DIR and not m.named), None)
        if mount is None:
            services.append(spec)
            continue
        own = (folder / "presets" / spec.name).absolute()
        own.mkdir(parents=True, exist_ok=True)
        write_atomic(own / PRESET_FILE, preset_ini(spec.presets).encode(), mode=0o644)
        mounts = tuple(replace(m, source=str(own)) if m is mount else m for m in spec.mounts)
        services.append(replace(spec, mounts=mounts))
    return replace(stack, services=tuple(services))
