"""`airpods clean`: remove exactly what the flags name, for this project only."""

from __future__ import annotations

from airpods.engine.base import Engine
from airpods.plan import Observed
from airpods.secrets import forget_values
from airpods.stack.model import Stack
from airpods.usecases.common import locked


def named_volumes(stack: Stack, owners: dict[str, str | None]) -> list[str]:
    """The stack's volumes that exist, never one a restore set aside (NAME.before-restore-DATE),
    even when the config mounts one to look into it: those go only by their name, by the user."""
    return [v for v in stack.volumes if v in owners and ".before-restore-" not in v]


def clean(stack: Stack, engine: Engine, *, pods: bool, volumes: bool, images: bool) -> list[str]:
    """Remove exactly what was asked for, for this project only. Volumes only with `volumes`
    (and never one labelled as another project's)."""
    done: list[str] = []
    with locked(stack):
        if pods or volumes:  # a volume in use cannot be removed: its pod goes first
            for pod in Observed(pods=engine.pods()).project_pods(stack.project):
                if engine.remove_pod(pod):
                    done.append(f"removed pod {pod}")
            # The key's podman secrets go with the pods: start makes them again from the key file.
            secrets = [name for name, project in engine.secret_projects().items() if project == stack.project]
            if secrets:
                engine.remove_secrets(secrets)
                forget_values(secrets)
                done.append(f"removed {len(secrets)} {engine.name} secret{'s' if len(secrets) > 1 else ''}")
        if volumes:
            owners = engine.volume_projects()
            for volume in named_volumes(stack, owners):
                owner = owners[volume]
                if owner is None:
                    done.append(f"kept volume {volume}: airpods did not create it (it has no io.airpods labels)")
                elif owner != stack.project:
                    done.append(f"kept volume {volume}: it belongs to airpods project '{owner}'")
                else:  # no --force: a volume another container still uses stays, with podman's reason
                    device = (engine.volume_options(volume) or {}).get("device")
                    why = engine.remove_volume(volume)
                    kept = f" (its files stay in {device}, a folder of yours)" if device else ""
                    done.append(f"kept volume {volume}: {why}" if why else f"deleted volume {volume}{kept}")
            for name in sorted(owners):  # an interrupted restore's staging copy (the backup's, not the user's)
                if owners[name] == stack.project and any(name.startswith(f"{v}.restoring-") for v in stack.volumes):
                    why = engine.remove_volume(name, force=True)
                    done.append(
                        f"kept volume {name}: {why}" if why else f"deleted volume {name} (an interrupted restore's)"
                    )
            done += [  # what a restore replaced: removed only by name, by the user
                f"kept volume {name}: what a restore replaced, set aside (`{engine.name} volume rm {name}` removes it)"
                for name in sorted(owners)
                if any(name.startswith(f"{volume}.before-restore-") for volume in stack.volumes)
            ]
        if images:
            for image in stack.images:
                if engine.remove_image(image):
                    done.append(f"removed image {image}")
    return done or ["nothing to clean"]
