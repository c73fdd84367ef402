"""The Docker Engine implementation of engine.base.Engine (`--engine docker`, engine/choose.py).
Runs the `docker` CLI (DOCKER_HOST honoured) with a timeout on every call and carries docker's
stderr in the same typed errors as Podman. See docker_argv.py for how the Stack maps onto an
engine without pods or secrets."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from airpods.engine.base import ContainerState, OneOff, Usage
from airpods.engine.docker_argv import (
    container_run_argv,
    gpu_options,
    project_secrets,
    secrets_folder,
    step_argv,
    volume_option,
)
from airpods.engine.early import LISTINGS
from airpods.engine.env_handover import env_uses
from airpods.engine.errors import EngineError
from airpods.engine.process import (
    EngineCli,
    make_device,
    option_pairs,
    parse_json,
    parse_json_lines,
)
from airpods.engine.run_options import one_off_args
from airpods.labels import CONFIG_HASH, PROJECT, SERVICE, label_args, project_of
from airpods.labels import POD as POD_LABEL
from airpods.plan import Observed, ObservedPod, Step
from airpods.stack.model import ServiceSpec


class Docker(EngineCli):
    """Docker Engine 20.10 and newer, through its CLI."""

    name = "docker"
    install_hint = "install Docker Engine (Debian/Ubuntu: sudo apt-get install docker.io), then `airpods doctor`"

    def __init__(self, binary: str | None = None, secrets: Path | None = None) -> None:
        super().__init__(binary)
        self.secrets = secrets or secrets_folder()

    def hint(self, stderr: str) -> str | None:
        return daemon_hint(stderr)

    def lines_json(self, args: Sequence[str]) -> list[dict[str, Any]]:
        """`--format '{{json .}}'` output: one JSON object a line."""
        out = self.run([*args, "--format", "{{json .}}"]).stdout
        return parse_json_lines(out, f"docker {' '.join(args)}")

    def inspect(self, kind: str, names: Sequence[str]) -> list[dict[str, Any]]:
        if not names:
            return []
        done = self.run([kind, "inspect", *names], check=False)
        return parse_json(done.stdout, f"docker {kind} inspect", [])

    # -- running the plan -------------------------------------------------------------------------

    def execute(self, step: Step) -> None:
        if step.kind == "secret":
            self.create_secret(step.target, step.stdin or "", dict(step.labels))
            return
        if step.kind in ("stop", "remove"):
            names = self._pod_containers(step.target)
            if not names:
                return
            if step.kind == "stop":
                self.run(["stop", "--time", str(step.grace_s or 0), *names], step.timeout_s)
            else:
                self.run(["rm", "--force", *names], step.timeout_s)
            return
        if step.kind == "volume":
            make_device(dict(step.options))
        wrapped = self.handover(step)
        if wrapped is not None:
            spec, image = wrapped
            self._readable_by(spec, image.owner)
            self.run(container_run_argv(spec, self.secrets, image), step.timeout_s)
            return
        argv = step_argv(step, self.secrets)
        if argv:
            self.run(argv, step.timeout_s, input_text=step.stdin)

    def _readable_by(self, spec: ServiceSpec, owner: tuple[int, int] | None) -> None:
        """Let the container's user read the files of its env secrets: Docker binds a file with
        its host owner and mode (no uid option as Podman's secrets have). Owned by a numeric
        non-root user (as root); 0444 for a user known by name only (env_handover); a
        docker-group user's files are 0444 already (create_secret)."""
        if owner == (0, 0) or os.geteuid() != 0:
            return
        folder = project_secrets(self.secrets, spec.labels)
        for use in env_uses(spec):
            path = folder / use.name
            if owner is None:
                path.chmod(0o444)
            else:
                os.chown(path, *owner)

    def _pod_containers(self, pod: str) -> list[str]:
        return self.run(["ps", "-aq", "--filter", f"label={POD_LABEL}={pod}"]).stdout.split()

    def remove_pod(self, pod: str) -> bool:
        names = self._pod_containers(pod)
        return bool(names) and self.run(["rm", "--force", *names], check=False).returncode == 0

    # -- observing --------------------------------------------------------------------------------

    def _inspected(self, everyone: bool) -> list[dict[str, Any]]:
        listing = LISTINGS["docker"]
        ids = self.run(listing[: listing.index("--filter")] if everyone else listing).stdout.split()
        return self.inspect("container", ids)

    def containers(self, project: str | None = None, *, everyone: bool = False) -> list[ContainerState]:
        states = []
        for row in self._inspected(everyone):
            labels = (row.get("Config") or {}).get("Labels") or {}
            owner = project_of(labels)
            if project is not None and owner != project:
                continue
            state = row.get("State") or {}
            ports = tuple(
                (b.get("HostIp") or "", int(b.get("HostPort") or 0), int(port.split("/")[0]))
                for port, binds in ((row.get("NetworkSettings") or {}).get("Ports") or {}).items()
                for b in binds or []
            )
            states.append(
                ContainerState(
                    name=str(row.get("Name", "?")).lstrip("/"),
                    id=str(row.get("Id", "")),
                    service=labels.get(SERVICE),
                    config_hash=labels.get(CONFIG_HASH),
                    state=str(state.get("Status", "")).lower(),
                    exit_code=int(state.get("ExitCode") or 0),
                    started_at=_unix(state.get("StartedAt")),
                    image=str((row.get("Config") or {}).get("Image", "")),
                    ports=ports,
                    project=owner,
                    image_id=str(row.get("Image") or ""),
                    pod=labels.get(POD_LABEL, ""),
                    legacy=bool(owner) and PROJECT not in labels,
                )
            )
        return states

    def pods(self, containers: list[ContainerState] | None = None) -> dict[str, ObservedPod]:
        """Docker has no pods: each airpods container stands for its pod (by its pod label)."""
        pods = {}
        for c in self.containers(everyone=True) if containers is None else containers:
            if c.pod:
                pods[c.pod] = ObservedPod(c.pod, c.service, c.config_hash, c.running, c.project, c.image_id)
        return pods

    def published_ports(self) -> dict[int, str]:
        owners: dict[int, str] = {}
        for c in self.containers(everyone=True):
            if c.running:
                for _, host, _ in c.ports:
                    owners[host] = f"airpods service {c.service}" if c.service else f"container {c.name}"
        return owners

    def stats(self, names: Iterable[str]) -> list[Usage]:
        """One sample of the running ones of `names`, in one call (Docker's template has only the
        formatted figures: "12.5%", "1.5MiB / 7.6GiB")."""
        wanted = list(names)
        if not wanted:
            return []
        usage = []
        for row in self.lines_json(["stats", "--no-stream", *wanted]):
            used, _, limit = str(row.get("MemUsage", "")).partition(" / ")
            try:
                cpu = float(str(row.get("CPUPerc", "")).rstrip("%"))
                usage.append(Usage(str(row.get("Name", "")), cpu, size_bytes(used), size_bytes(limit)))
            except ValueError:
                continue
        return usage

    def user_volumes(self) -> str | None:
        """Where this user's host-written volumes go: None as root, or with a rootless daemon
        (its volumes are the user's), or when the daemon's volumes folder can be read; else
        $XDG_DATA_HOME/airpods/volumes (default ~/.local/share/airpods/volumes). A user in the
        `docker` group talks to a root daemon whose data root (/var/lib/docker) only root may
        enter: a model volume there could not be read or written by airpods."""
        if os.geteuid() == 0:
            return None
        info = self.info()
        root = str(info.get("DockerRootDir") or "/var/lib/docker")
        if rootless_daemon(info) or os.access(os.path.join(root, "volumes"), os.R_OK | os.X_OK):
            return None
        data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
        return os.path.join(data, "airpods", "volumes")

    def observe(self, network: str, volumes: Iterable[str], images: Iterable[str]) -> Observed:
        networks = {row.get("Name") for row in self.lines_json(["network", "ls"])}
        existing = {row.get("Name") for row in self.lines_json(["volume", "ls"])}
        containers = self.containers(everyone=True)
        return Observed(
            user_volumes=self.user_volumes(),
            networks=frozenset(n for n in networks if n == network),
            volumes=frozenset(v for v in volumes if v in existing),
            images=self.image_ids(images),
            pods=self.pods(containers),
            containers={c.name: c.project for c in containers},
            secrets=frozenset(self.secret_projects()),
        )

    def observe_images(self, images: Iterable[str]) -> Observed:
        return Observed(images=self.image_ids(images))

    def _tagged_images(self) -> dict[str, str]:
        """Every tagged local image's ID by its full name ("docker.io/library/…"), from one
        `docker images` call (docker lists docker.io names short: "ollama/ollama")."""
        rows = {}
        for row in self.lines_json(["images", "--no-trunc"]):
            repo, tag = str(row.get("Repository", "")), str(row.get("Tag", ""))
            if repo != "<none>" and tag != "<none>":
                rows[full_image_name(f"{repo}:{tag}")] = str(row.get("ID", ""))
        return rows

    def image_ids(self, images: Iterable[str]) -> dict[str, str]:
        """Local image ID of each present image (tags from one listing; digests inspected)."""
        wanted = list(images)
        rows = self._tagged_images() if any("@" not in image for image in wanted) else {}
        found = {image: rows[full_image_name(image)] for image in wanted if full_image_name(image) in rows}
        for image in (i for i in wanted if "@" in i):
            done = self.run(["image", "inspect", "--format", "{{.Id}}", image], check=False)
            if done.returncode == 0 and done.stdout.strip():
                found[image] = done.stdout.strip()
        return found

    def image_digests(self, images: Iterable[str]) -> dict[str, str]:
        """The registry digest each present image was pulled as (its RepoDigests entry for its
        own repository), what `image = "NAME@sha256:…"` pins."""
        found = {}
        for image in images:
            done = self.run(["image", "inspect", "--format", "{{json .RepoDigests}}", image], check=False)
            try:
                repo_digests = json.loads(done.stdout) if done.returncode == 0 else []
            except ValueError:
                repo_digests = []
            for entry in repo_digests or []:
                name, _, digest = str(entry).partition("@")
                if _repository(full_image_name(name)) == _repository(full_image_name(image)) and digest:
                    found[image] = digest
        return found

    def image_sizes(self, images: Iterable[str]) -> dict[str, int]:
        sizes = {}
        for image in images:
            done = self.run(["image", "inspect", "--format", "{{.Size}}", image], check=False)
            if done.returncode == 0 and done.stdout.strip().isdigit():
                sizes[image] = int(done.stdout.strip())
        return sizes

    def last_exit(self, container_id: str) -> tuple[int | None, int]:
        """(exit code of its last run, restart count). Docker resets the exit code when its
        restart policy starts the container again, so a restarted one's code comes from its last
        `die` event (the daemon keeps its last 256 events); None when a running one's is gone.

        `--until` is now to the nanosecond: the CLI turns a duration such as `0s` into whole
        Unix seconds (docker/cli opts.GetTimestamp), which left out an exit in the current second
        and read the restarted run's 0 instead."""
        rows = self.inspect("container", [container_id])
        if not rows:
            return None, 0
        state, restarts = rows[0].get("State") or {}, int(rows[0].get("RestartCount") or 0)
        code: int | None = int(state.get("ExitCode") or 0)
        if restarts:
            found = self.last_event_code(
                ["events", "--since", "1h", "--until", "{}.{:09d}".format(*divmod(time.time_ns(), 10**9))]
                + ["--filter", f"container={container_id}", "--filter", "event=die", "--format", "{{json .}}"],
                lambda event: event["Actor"]["Attributes"]["exitCode"],
            )
            code = found if found is not None else None if state.get("Running") else code
        return code, restarts

    def logs_argv(self, container: str, *, follow: bool, lines: int | None, since: str | None) -> list[str]:
        argv = ["logs", *(["--follow"] if follow else []), *(["--tail", str(lines)] if lines is not None else [])]
        return self.argv([*argv, *(["--since", since] if since else []), container])

    def rootless(self) -> bool:
        return rootless_daemon(self.info())

    def limits_problem(self) -> str | None:
        return None

    def version(self) -> str:
        return self.run(["version", "--format", "{{.Server.Version}}"]).stdout.strip()

    def info(self) -> dict[str, Any]:
        found = parse_json(self.run(["info", "--format", "{{json .}}"]).stdout, "docker info", {})
        return found if isinstance(found, dict) else {}

    # -- volumes, secrets, images -------------------------------------------------------------------

    def create_volume(self, name: str, labels: dict[str, str], options: dict[str, str] | None = None) -> None:
        self.forget_volume(name)
        make_device(options or {})
        self.run(["volume", "create", *label_args(labels), *option_pairs(options or {}), name])

    def mount_volume(self, name: str) -> Path:
        raise EngineError(["docker", "volume", "mount", name], 1, "Docker cannot mount a volume outside a container")

    def unmount_volume(self, name: str) -> None:
        return None

    def export_volume(self, name: str, tar: Path, image: str) -> None:
        """The volume's files as a tar archive (Docker has no `volume export`: a helper container)."""
        self.tool_export(name, tar, image)

    def import_volume(self, name: str, tar: Path, image: str) -> None:
        self.tool_import(name, tar, image)

    def remove_volume(self, name: str, *, force: bool = False) -> str | None:
        self.forget_volume(name)
        done = self.run(["volume", "rm", *(["--force"] if force else []), name], check=False)
        return None if done.returncode == 0 else ((done.stderr.strip().splitlines() or ["docker refused"])[-1])

    def volume_projects(self) -> dict[str, str | None]:
        names = [str(row.get("Name")) for row in self.lines_json(["volume", "ls"])]
        return {str(r.get("Name")): project_of(r.get("Labels")) for r in self.inspect("volume", names)}

    def create_secret(self, name: str, value: str, labels: dict[str, str]) -> None:
        """A file in airpods' private state folder (0700: no other user of this host reaches
        it), mounted read-only where the stack wants it (an env secret under env_handover's
        folder, which its wrapper reads into the environment). 0400 as root;
        0444 as a docker-group user, whose files a container's root (every capability dropped,
        so no DAC override) reads only
        through the "other" bits: with 0400 llama-server could not open its key file."""
        from airpods.files import write_atomic
        from airpods.state import state_dir

        state_dir()  # the parent: private (0700)
        folder = project_secrets(self.secrets, labels)
        for made in (self.secrets, folder):
            made.mkdir(exist_ok=True, mode=0o700)
        write_atomic(folder / name, value.encode(), mode=0o400 if os.geteuid() == 0 else 0o444)

    def remove_secrets(self, names: Iterable[str]) -> None:
        for folder in self._project_folders():
            for name in names:
                for path in (folder / name, *folder.glob(f"{name}.*.env")):
                    path.unlink(missing_ok=True)

    def secret_projects(self, names: Iterable[str] | None = None) -> dict[str, str | None]:
        """Every secret file's name → the project whose folder holds it (files are read, so
        `names` is not needed)."""
        return {
            p.name: folder.name
            for folder in self._project_folders()
            for p in folder.iterdir()
            if not p.name.endswith(".env")
        }

    def _project_folders(self) -> list[Path]:
        return [p for p in self.secrets.iterdir() if p.is_dir()] if self.secrets.is_dir() else []

    def remove_image(self, image: str) -> bool:
        return self.run(["rmi", image], check=False).returncode == 0

    def one_off_argv(self, job: OneOff, *, interactive: bool = False) -> list[str]:
        return self.argv(one_off_args(job, volume_option, gpu_options, interactive=interactive))


def rootless_daemon(info: dict[str, Any]) -> bool:
    """Whether `docker info` describes a rootless daemon (its security options say so)."""
    return any("rootless" in str(o) for o in info.get("SecurityOptions") or [])


def _repository(reference: str) -> str:
    """A reference without its digest and tag ("127.0.0.1:5000/a/b:t@sha256:…" -> "127.0.0.1:5000/a/b")."""
    name = reference.partition("@")[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.partition(':')[0]}" if head else last.partition(":")[0]


def full_image_name(image: str) -> str:
    """An image reference as Podman writes it: registry and, for Docker Hub, library/ spelled out
    ("ollama/ollama:latest" -> "docker.io/ollama/ollama:latest", "busybox" ->
    "docker.io/library/busybox:latest"), so names from the config and from `docker images` meet."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + ("library/" + name if "/" not in name else name)
    return name + (f"@{digest}" if digest else "")


def daemon_hint(stderr: str) -> str | None:
    """The next step when docker's client could not reach its daemon (its own words)."""
    if "permission denied while trying to connect to the Docker daemon" in stderr:
        return "this user may not use the Docker socket: `airpods --engine docker doctor` gives the exact fix"
    if "Cannot connect to the Docker daemon" in stderr:
        if os.environ.get("DOCKER_HOST"):
            return (
                f"nothing answers at DOCKER_HOST={os.environ['DOCKER_HOST']}: start that daemon, or unset DOCKER_HOST"
            )
        from airpods.engine.choose import docker_start_hint
        from airpods.host.engines import DockerService

        return f"{docker_start_hint(DockerService.observe())}; `airpods doctor` checks it"
    return None


def _unix(stamp: str | None) -> int:
    """Docker's RFC 3339 time (with nanoseconds) as unix seconds; 0 for its zero time."""
    from datetime import datetime

    if not stamp or stamp.startswith("0001-"):
        return 0
    try:
        return int(datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00").timestamp())
    except ValueError:
        return 0


SIZE_RE = re.compile(r"^\s*([\d.]+)\s*([kKMGTP]?)(i?)B\s*\Z")


def size_bytes(text: str) -> int:
    """A size as Docker prints it (go-units: "1.5MiB" binary, "12kB" decimal) in bytes; ValueError
    otherwise. Two fixed formats of one tool: a regex, not a library."""
    match = SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    number, prefix, binary = match.groups()
    base = 1024 if binary else 1000
    return int(float(number) * base ** (" KMGTP".index(prefix.upper()) if prefix else 0))
