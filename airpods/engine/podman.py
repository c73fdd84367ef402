"""The only code that runs podman: argv lists, `--format json` where podman has it, a timeout on
every call, podman's stderr carried in typed errors. Works with Podman 4.3 through 5.x."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from airpods.engine.base import ContainerState, OneOff, Usage
from airpods.engine.early import LISTINGS
from airpods.engine.podman_argv import container_run_argv, one_off_args, step_argv
from airpods.engine.process import LONG_TIMEOUT_S, EngineCli, make_device, option_pairs, parse_json
from airpods.errors import RuntimeFailure
from airpods.labels import CONFIG_HASH, PROJECT, SERVICE, label_args, project_of
from airpods.plan import DEFAULT_TIMEOUT_S, Observed, ObservedPod, Step


class Podman(EngineCli):
    """The Podman implementation of engine.base.Engine (4.3 through 5.x)."""

    name = "podman"
    install_hint = "install it (Debian/Ubuntu: sudo apt-get install podman), then run `airpods doctor`"

    # -- running commands ---------------------------------------------------------------------

    def json(self, args: Sequence[str], timeout: float = DEFAULT_TIMEOUT_S) -> Any:
        """What `podman ARGS` prints as JSON ([] for nothing; see process.parse_json)."""
        return parse_json(self.run(args, timeout).stdout, f"{self.binary} {' '.join(args)}", [])

    def execute(self, step: Step) -> None:
        if step.kind == "volume":
            make_device(dict(step.options))
        wrapped = self.handover(step)
        if wrapped is not None:
            self.run(container_run_argv(*wrapped), step.timeout_s)
            return
        self.run(step_argv(step), step.timeout_s, input_text=step.stdin)

    # -- observing ----------------------------------------------------------------------------

    def containers(self, project: str | None = None, *, everyone: bool = False) -> list[ContainerState]:
        """Every airpods container (not pod infra) of `project` (of any project when None; every
        container, airpods' or not, with `everyone`), in one call."""
        listing = LISTINGS["podman"]
        rows = self.json(listing[: listing.index("--filter")] if everyone else listing)
        states = []
        for row in rows:
            labels = row.get("Labels") or {}
            owner = project_of(labels)
            if row.get("IsInfra") or (project is not None and owner != project):
                continue
            ports = tuple(
                (p.get("host_ip") or "", int(p.get("host_port") or 0), int(p.get("container_port") or 0))
                for p in row.get("Ports") or []
            )
            states.append(
                ContainerState(
                    name=(row.get("Names") or ["?"])[0],
                    id=str(row.get("Id", "")),
                    service=labels.get(SERVICE),
                    config_hash=labels.get(CONFIG_HASH),
                    state=str(row.get("State", "")).lower(),
                    exit_code=int(row.get("ExitCode") or 0),
                    started_at=int(row.get("StartedAt") or 0),
                    image=str(row.get("Image", "")),
                    ports=ports,
                    project=owner,
                    image_id=str(row.get("ImageID") or ""),
                    pod=str(row.get("PodName") or ""),
                    legacy=bool(owner) and PROJECT not in labels,
                )
            )
        return states

    def pods(self) -> dict[str, ObservedPod]:
        """Every pod on this engine, airpods' or not (a name clash must be seen), by name."""
        pods = {}
        for row in self.json(["pod", "ps", "--format", "json"]):
            labels = row.get("Labels") or {}
            # A pod counts as running only when every container in it runs ("Degraded" does not).
            pods[row["Name"]] = ObservedPod(
                row["Name"],
                labels.get(SERVICE),
                labels.get(CONFIG_HASH),
                row.get("Status") == "Running",
                project_of(labels),
            )
        return pods

    def pods_and_containers(self) -> tuple[dict[str, ObservedPod], dict[str, str | None]]:
        """`pods()`, each airpods pod with the image ID its service container runs, and every
        container's name → its airpods project (None: not airpods'). Two calls at once."""
        from concurrent.futures import ThreadPoolExecutor
        from dataclasses import replace

        with ThreadPoolExecutor(max_workers=2) as pool:
            listed = pool.submit(self.containers, everyone=True)
            pods = self.pods()
        containers = listed.result()
        image_of = {(c.pod, c.service): c.image_id for c in containers if c.project}
        pods = {name: replace(pod, image_id=image_of.get((name, pod.service))) for name, pod in pods.items()}
        return pods, {c.name: c.project for c in containers}

    def published_ports(self) -> dict[int, str]:
        """host port → who publishes it, over every running container (airpods' or not)."""
        owners: dict[int, str] = {}
        for row in self.json(["ps", "--format", "json"]):
            labels = row.get("Labels") or {}
            name = (row.get("Names") or ["?"])[0]
            who = f"airpods service {labels[SERVICE]}" if SERVICE in labels else f"container {name}"
            for port in row.get("Ports") or []:
                owners[int(port.get("host_port") or 0)] = who
        return owners

    def stats(self, names: Iterable[str]) -> list[Usage]:
        """One sample of the running ones of `names`, in one call: Podman's template gives the
        raw numbers (its JSON output has only human-formatted sizes)."""
        wanted = list(names)
        if not wanted:
            return []
        template = "\t".join(
            f"{{{{.ContainerStats.{field}}}}}" for field in ("Name", "CPU", "MemUsage", "MemLimit", "CPUNano")
        )
        done = self.run(["stats", "--no-stream", "--no-reset", "--format", template, *wanted], check=False)
        if done.returncode != 0:  # e.g. rootless without cgroup v2: podman has no figures to give
            why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            raise RuntimeFailure(f"podman stats: {why}")
        usage = []
        for line in done.stdout.splitlines():
            name, cpu, memory, limit, cpu_ns = (line.split("\t") + [""] * 5)[:5]
            try:
                usage.append(Usage(name, float(cpu), int(memory), int(limit), int(cpu_ns)))
            except ValueError:
                continue
        return usage

    def observe(self, network: str, volumes: Iterable[str], images: Iterable[str]) -> Observed:
        """One snapshot of what exists: network, volumes, images (with their IDs), secrets and
        pods (six podman calls, run at once)."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=5) as pool:
            networks = pool.submit(self.json, ["network", "ls", "--format", "json"])
            secrets = pool.submit(self.run, ["secret", "ls", "--format", "{{.Name}}"])  # 4.3: no json
            volume_rows = pool.submit(self.json, ["volume", "ls", "--format", "json"])
            image_rows = pool.submit(self.image_rows, images)
            pods = pool.submit(self.pods_and_containers)
        existing_networks = {row.get("Name") or row.get("name") for row in networks.result()}
        self.remember_volumes(volume_rows.result())  # podman's listing has the inspect fields
        existing_volumes = {row.get("Name") for row in volume_rows.result()}
        return Observed(
            networks=frozenset(n for n in existing_networks if n == network),
            volumes=frozenset(v for v in volumes if v in existing_volumes),
            images=_present(images, image_rows.result()),
            pods=pods.result()[0],
            containers=pods.result()[1],
            secrets=frozenset(secrets.result().stdout.split()),
        )

    def observe_images(self, images: Iterable[str]) -> Observed:
        """Only what a pull-only plan needs: which images are present (one podman call)."""
        return Observed(images=_present(images, self.image_rows(images)))

    def image_rows(self, images: Iterable[str]) -> list[dict[str, Any]]:
        """`podman images` rows of just these images: sizing every local image (a big one takes
        milliseconds each) is the slow part of an unfiltered listing. Reference filters are OR'ed."""
        wanted = list(images)
        return self.json(["images", "--format", "json", *(f"--filter=reference={i}" for i in wanted)]) if wanted else []

    def image_ids(self, images: Iterable[str]) -> dict[str, str]:
        """Local image ID of each present image, from one `podman images` call."""
        wanted = list(images)
        return _present(wanted, self.image_rows(wanted))

    def image_digests(self, images: Iterable[str]) -> dict[str, str]:
        """The registry digest (sha256:…) each present image was pulled as, from one `podman
        images` call: what `image = "NAME@sha256:…"` pins."""
        wanted = list(images)
        digests = {
            name: str(row.get("Digest") or "") for row in self.image_rows(wanted) for name in row.get("Names") or []
        }
        return {image: digests[image] for image in wanted if digests.get(image)}

    def image_sizes(self, images: Iterable[str]) -> dict[str, int]:
        """Local size of each image, from one `podman images` call."""
        wanted = list(images)
        sizes = {name: int(row.get("Size") or 0) for row in self.image_rows(wanted) for name in row.get("Names") or []}
        return {image: sizes[image] for image in wanted if image in sizes}

    def last_exit(self, container_id: str) -> tuple[int | None, int]:
        """(exit code of its last run, restart count). A restarted container's inspect already
        shows the new run, so the code comes from its last `died` event when events are kept."""
        done = self.run(
            ["container", "inspect", "--format", "{{.State.ExitCode}} {{.RestartCount}}", container_id],
            check=False,
            timeout=30,
        )
        parts = done.stdout.split()
        code, restarts = (int(parts[0]), int(parts[1])) if done.returncode == 0 and len(parts) == 2 else (None, 0)
        if restarts:
            found = self.last_event_code(
                [
                    "events",
                    "--stream=false",
                    "--since",
                    "1h",
                    "--format",
                    "json",
                    "--filter",
                    f"container={container_id}",
                    "--filter",
                    "event=died",
                ],
                lambda event: event["ContainerExitCode"],
            )
            code = code if found is None else found
        return code, restarts

    def remove_pod(self, pod: str) -> bool:
        """Remove a pod and its containers; True only when podman says it removed it (it prints
        the pod's ID; --ignore makes an absent pod print nothing)."""
        done = self.run(["pod", "rm", "--force", "--ignore", pod], check=False)
        return done.returncode == 0 and bool(done.stdout.strip())

    # -- volumes, secrets, images ------------------------------------------------------------------

    def create_volume(self, name: str, labels: dict[str, str], options: dict[str, str] | None = None) -> None:
        self.forget_volume(name)
        make_device(options or {})
        self.run(["volume", "create", *label_args(labels), *option_pairs(options or {}), name])

    def user_volumes(self) -> str | None:
        """None: Podman's volumes are this user's own (rootless) or root's, read as root."""
        return None

    def mount_volume(self, name: str) -> Path:
        """Mount a volume on this host the way a container gets it (its driver options applied),
        counted: `unmount_volume` releases it. Returns where its files are."""
        return Path(self.run(["volume", "mount", name]).stdout.strip())

    def unmount_volume(self, name: str) -> None:
        self.run(["volume", "unmount", name], check=False)

    def export_volume(self, name: str, tar: Path, image: str) -> None:
        """The volume's files as a tar archive: `podman volume export` for a plain volume; one
        with driver options (a bind device) through a helper container, since podman exports
        only a volume mounted at its own _data folder."""
        if self.volume_options(name):
            self.tool_export(name, tar, image)
        else:
            self.run(["volume", "export", name, "--output", str(tar)], timeout=LONG_TIMEOUT_S)

    def import_volume(self, name: str, tar: Path, image: str) -> None:
        if self.volume_options(name):
            self.tool_import(name, tar, image)
        else:
            self.run(["volume", "import", name, str(tar)], timeout=LONG_TIMEOUT_S)

    def remove_volume(self, name: str, *, force: bool = False) -> str | None:
        """None when removed, else podman's reason (in use by a container, absent…). `force`
        also removes the containers that use it: only for a volume being replaced."""
        self.forget_volume(name)
        done = self.run(["volume", "rm", *(["--force"] if force else []), name], check=False)
        return None if done.returncode == 0 else ((done.stderr.strip().splitlines() or ["podman refused"])[-1])

    def create_secret(self, name: str, value: str, labels: dict[str, str]) -> None:
        """A podman secret whose value goes through stdin (never argv)."""
        self.run(["secret", "create", *label_args(labels), name, "-"], input_text=value)

    def remove_secrets(self, names: Iterable[str]) -> None:
        wanted = list(names)
        if wanted:
            self.run(["secret", "rm", *wanted], check=False)

    def remove_image(self, image: str) -> bool:
        return self.run(["rmi", image], check=False).returncode == 0

    def one_off_argv(self, job: OneOff, *, interactive: bool = False) -> list[str]:
        """The command that runs `job` (interactive: with a terminal, for llama-cli)."""
        return self.argv(one_off_args(job, interactive=interactive))

    def volume_projects(self) -> dict[str, str | None]:
        """Every volume's name → the airpods project it belongs to (None: not airpods')."""
        return {
            str(row.get("Name")): project_of(row.get("Labels"))
            for row in self.json(["volume", "ls", "--format", "json"])
        }

    def secret_projects(self, names: Iterable[str] | None = None) -> dict[str, str | None]:
        """Every podman secret's name (of `names`, when a listing was just taken) → the airpods
        project it belongs to (None: not airpods')."""
        names = list(names) if names is not None else self.run(["secret", "ls", "--format", "{{.Name}}"]).stdout.split()
        if not names:
            return {}
        rows = self.json(["secret", "inspect", *names])
        return {str(row.get("Spec", {}).get("Name")): project_of(row.get("Spec", {}).get("Labels")) for row in rows}

    def version(self) -> str:
        found = self.json(["version", "--format", "json"])
        client = found.get("Client") if isinstance(found, dict) else None
        return str(client.get("Version", "?")) if isinstance(client, dict) else "?"

    def info(self) -> dict[str, Any]:
        """`podman info` ({} when it prints nothing)."""
        found = self.json(["info", "--format", "json"])
        return found if isinstance(found, dict) else {}

    def rootless(self) -> bool:
        return bool(self.info().get("host", {}).get("security", {}).get("rootless"))

    def limits_problem(self) -> str | None:
        """Why this podman cannot apply --memory/--cpus, or None when it can. Rootless podman
        needs cgroup v2 with the memory and cpu controllers delegated to the user; without
        them it only warns and runs the container unlimited."""
        host = self.info().get("host", {})
        if not host.get("security", {}).get("rootless"):
            return None
        if host.get("cgroupVersion") != "v2":
            return "rootless Podman on cgroup v1 cannot apply memory or CPU limits"
        missing = {"memory", "cpu"} - set(host.get("cgroupControllers") or [])
        if missing:
            plural = "s are" if len(missing) > 1 else " is"
            return f"the {' and '.join(sorted(missing))} cgroup controller{plural} not delegated to this user"
        return None

    def logs_argv(self, container: str, *, follow: bool, lines: int | None, since: str | None) -> list[str]:
        argv = ["logs"]
        if follow:
            argv.append("--follow")
        if lines is not None:
            argv += ["--tail", str(lines)]
        if since:
            argv += ["--since", since]
        return self.argv([*argv, container])


def _present(images: Iterable[str], rows: list[dict[str, Any]]) -> dict[str, str]:
    """image name → local image ID, for the names present (a name without tag means :latest)."""
    local = {name: str(row.get("Id", "")) for row in rows for name in row.get("Names") or []}
    return {i: local.get(i) or local[f"{i}:latest"] for i in images if i in local or f"{i}:latest" in local}
