"""Env secrets that no engine's `inspect` shows (issue 34 §1).

An engine that hands a secret over as an env variable writes it into the container's config:
Podman before 5.3 (podman PR 23959) and Docker (which has no secrets outside Swarm) print it in
`inspect`, which people paste into bug reports. So both engines hand every env secret over as a
read-only file under ENV_FOLDER, and the container starts a small POSIX sh wrapper that exports
each file's content as the variable named after it, then execs what the container would have run
without it: the service's entrypoint (its `entrypoint_override`, else the image's ENTRYPOINT) and
its arguments (its rendered `command_args`, else the image's CMD, which Podman and Docker drop
when the entrypoint is set: podman-run(1), docker run reference "ENTRYPOINT (default command)").
The values live only in that process's environment and its children's: `inspect`, `exec env` and
the engine's logs never see them.

The wrapper needs `/bin/sh` and `cat` in the image (every image airpods ships has both). The file
is 0400 and owned by the image's user when that user is numeric (root when unset); a user given by
name cannot be resolved outside the image, so its file is 0444 (readable inside that container
only; on the host it sits in the engine's private secret store)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from airpods.stack.model import SecretUse, ServiceSpec

ENV_FOLDER = "/run/airpods-env"
WRAPPER_NAME = "airpods-env"  # the wrapper's $0: what `ps` in the container shows until its exec


# Each file's content (trailing newlines dropped, as a secret's value is trimmed anyway) becomes
# the variable its name says; a file it cannot read stops the start (exit 126, cat's own message).
def script(folder: str = ENV_FOLDER) -> str:
    """The wrapper's sh program: exports every file of `folder`, then execs its arguments."""
    return (
        f'for f in {folder}/*; do [ -f "$f" ] || continue; v=$(cat "$f") || exit 126; '
        'export "${f##*/}=$v"; done; exec "$@"'
    )


SCRIPT = script()
UNKNOWN_PROGRAM = ("<the image's ENTRYPOINT and CMD>",)  # what a dry run shows before the image is read


@dataclass(frozen=True)
class ImageConfig:
    """What an image runs and as whom, from `image inspect`'s Config (Entrypoint, Cmd, User)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    user: str = ""

    @classmethod
    def from_inspect(cls, config: Any) -> ImageConfig:
        """From an `image inspect` Config object (either engine; null lists are empty)."""
        config = config if isinstance(config, dict) else {}

        def words(key: str) -> tuple[str, ...]:
            value = config.get(key)
            return tuple(str(w) for w in value) if isinstance(value, list) else ()

        return cls(words("Entrypoint"), words("Cmd"), str(config.get("User") or ""))

    @property
    def owner(self) -> tuple[int, int] | None:
        """(uid, gid) the container runs as: (0, 0) for an unset or root user, the numbers of a
        numeric `uid[:gid]`; None for a user given by name (known only inside the image)."""
        user, _, group = self.user.partition(":")
        if user in ("", "root", "0") and group in ("", "root", "0"):
            return (0, 0)
        if user.isdigit() and (group == "" or group.isdigit()):
            return (int(user), int(group or user))
        return None


def env_uses(spec: ServiceSpec) -> tuple[SecretUse, ...]:
    return tuple(use for use in spec.secrets if use.type == "env")


def program(spec: ServiceSpec, image: ImageConfig) -> tuple[str, ...]:
    """What the container runs without the wrapper: the entrypoint, then the service's arguments,
    or the image's CMD where it gives none and keeps the image's entrypoint."""
    entrypoint = spec.entrypoint if spec.entrypoint else image.entrypoint
    given = (*spec.args, *spec.key_args)
    return (*entrypoint, *(given if given or spec.entrypoint else image.cmd))


def handed_over(spec: ServiceSpec, image: ImageConfig | None) -> ServiceSpec:
    """`spec` with its env secrets as files under ENV_FOLDER and the wrapper as its entrypoint
    (unchanged when it has none). `image` None (a dry run, the image maybe not pulled yet): the
    program is shown as UNKNOWN_PROGRAM."""
    uses = env_uses(spec)
    if not uses:
        return spec
    files = tuple(replace(use, type="mount", target=f"{ENV_FOLDER}/{use.target}") for use in uses)
    kept = tuple(use for use in spec.secrets if use.type != "env")
    known = image is not None or spec.entrypoint  # an overridden entrypoint needs nothing of the image
    run = program(spec, image or ImageConfig()) if known else UNKNOWN_PROGRAM
    return replace(
        spec,
        secrets=kept + files,
        entrypoint=("/bin/sh", "-c", SCRIPT, WRAPPER_NAME),
        args=run,
        key_args=(),
    )
