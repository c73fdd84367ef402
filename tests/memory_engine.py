"""An engine held in memory: the `Engine` protocol over plain state (networks, volumes with a
folder each, secrets, local and pullable images, pods and their containers), with failures
injected per step. Orchestration tests run the real use cases against it and assert on the
state they leave, not on the calls they made.

Its containers do what they are told: run, or exit with a code once started (`exits`). A
published port is never listened on, so tests give services no published port (readiness is
then "running"), and the health probes of the real stack stay the end-to-end tests' business.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airpods.engine.base import ContainerState, OneOff, Usage
from airpods.engine.errors import EngineError
from airpods.labels import PROJECT
from airpods.plan import Observed, ObservedPod, Step


@dataclass
class Pod:
    name: str
    service: str | None
    project: str | None
    config_hash: str | None
    containers: list[str] = field(default_factory=list)


@dataclass
class Container:
    name: str
    id: str
    pod: str
    service: str | None
    project: str | None
    config_hash: str | None
    image: str
    image_id: str
    state: str = "running"
    exit_code: int = 0
    started_at: int = 0


@dataclass
class MemoryEngine:
    """`root` holds each volume's folder. `registry` maps an image name to the ID a pull of it
    gets (change it to publish a new image under the same name). `failures` maps (step kind,
    target) to the exception its next execution raises (once); `exits` maps a container name to
    the code it exits with as soon as it starts, `bad_images` an image ID to the code every
    container of that image exits with (a broken update); `prints` maps a container name to the
    lines its process prints once it runs (what logs_tail reads). A volume's data is its folder: export,
    import and copy are tar and file copies of it."""

    root: Path
    registry: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)  # local image name -> ID
    networks: dict[str, dict[str, str]] = field(default_factory=dict)
    volumes: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> labels
    secrets: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)  # name -> (value, labels)
    pods_by_name: dict[str, Pod] = field(default_factory=dict)
    containers_by_name: dict[str, Container] = field(default_factory=dict)
    failures: dict[tuple[str, str], BaseException] = field(default_factory=dict)
    exits: dict[str, int] = field(default_factory=dict)
    bad_images: dict[str, int] = field(default_factory=dict)
    prints: dict[str, list[str]] = field(default_factory=dict)  # container name -> its log lines
    on_execute: Callable[[Step], None] | None = None  # called before each step runs
    limits: str | None = None  # why it cannot apply resource limits (None: it can)
    name: str = "podman"
    binary: str = "podman"
    _ids: Any = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what tests read -----------------------------------------------------------------------

    def state(self) -> dict[str, object]:
        """Everything there is, as plain sorted data (what a test compares)."""
        return {
            "networks": sorted(self.networks),
            "volumes": sorted(self.volumes),
            "secrets": sorted(self.secrets),
            "images": dict(sorted(self.images.items())),
            "pods": sorted(self.pods_by_name),
            "containers": {c.name: (c.state, c.image_id) for c in sorted(self.containers_by_name.values(), key=str)},
        }

    # -- running the plan ----------------------------------------------------------------------

    def execute(self, step: Step) -> None:
        if self.on_execute:
            self.on_execute(step)
        failure = self.failures.pop((step.kind, step.target), None)
        if failure is not None:
            raise failure
        with self._lock:
            getattr(self, f"_{step.kind}")(step)

    def _refuse(self, step: Step, why: str) -> None:
        raise EngineError(["podman", step.kind, step.target], 125, why)

    def _network(self, step: Step) -> None:
        self.networks[step.target] = dict(step.labels)

    def _volume(self, step: Step) -> None:
        self.create_volume(step.target, dict(step.labels))

    def _secret(self, step: Step) -> None:
        if step.target in self.secrets:
            self._refuse(step, f"Error: {step.target}: secret name in use")
        self.secrets[step.target] = (step.stdin or "", dict(step.labels))

    def _pull(self, step: Step) -> None:
        if step.target not in self.registry:
            self._refuse(step, f"Error: initializing source docker://{step.target}: manifest unknown")
        self.images[step.target] = self.registry[step.target]

    def _tag(self, step: Step) -> None:  # an image ID stays in the store after a pull moves its name
        self.images[step.names[0]] = step.target

    def _pod(self, step: Step) -> None:
        assert step.spec is not None
        if step.target in self.pods_by_name or step.target in self.containers_by_name:
            self._refuse(step, f"Error: {step.target}: name already in use")
        spec = step.spec
        self.pods_by_name[step.target] = Pod(step.target, spec.name, spec.labels.get(PROJECT), spec.config_hash)

    def _container(self, step: Step) -> None:
        spec = step.spec
        assert spec is not None
        pod = self.pods_by_name.get(spec.pod)
        if pod is None:
            self._refuse(step, f"Error: no pod with name or ID {spec.pod} found")
        image = spec.run_image or spec.image
        if image not in self.images:
            self._refuse(step, f"Error: {image}: image not known")
        code = self.exits.get(step.target, self.bad_images.get(self.images[image]))
        container = Container(
            step.target,
            f"{next(self._ids):064x}",
            spec.pod,
            spec.name,
            pod.project,
            spec.config_hash,
            image,
            self.images[image],
            "exited" if code is not None else "running",
            code or 0,
            started_at=1,
        )
        self.containers_by_name[step.target] = container
        pod.containers.append(step.target)

    def _stop(self, step: Step) -> None:
        for name in self.pods_by_name[step.target].containers if step.target in self.pods_by_name else []:
            self.containers_by_name[name].state = "exited"

    def _remove(self, step: Step) -> None:
        self.remove_pod(step.target)

    def remove_pod(self, pod: str) -> bool:
        found = self.pods_by_name.pop(pod, None)
        for name in found.containers if found else []:
            self.containers_by_name.pop(name, None)
        return found is not None

    # -- observing -----------------------------------------------------------------------------

    def observe(self, network: str, volumes: Iterable[str], images: Iterable[str]) -> Observed:
        return Observed(
            networks=frozenset({network} & set(self.networks)),
            volumes=frozenset(set(volumes) & set(self.volumes)),
            images=self.image_ids(images),
            pods=self.pod_rows(),
            secrets=frozenset(self.secrets),
            containers={c.name: c.project for c in self.containers_by_name.values()},
        )

    def observe_images(self, images: Iterable[str]) -> Observed:
        return Observed(images=self.image_ids(images))

    def pod_rows(self) -> dict[str, ObservedPod]:
        rows = {}
        for pod in self.pods_by_name.values():
            members = [self.containers_by_name[n] for n in pod.containers]
            running = bool(members) and all(c.state == "running" for c in members)
            image_id = members[0].image_id if members else None
            rows[pod.name] = ObservedPod(pod.name, pod.service, pod.config_hash, running, pod.project, image_id)
        return rows

    def pods(self) -> dict[str, ObservedPod]:
        return self.pod_rows()

    def containers(self, project: str | None = None, *, everyone: bool = False) -> list[ContainerState]:
        return [
            ContainerState(
                c.name,
                c.id,
                c.service,
                c.config_hash,
                c.state,
                c.exit_code,
                c.started_at,
                c.image,
                project=c.project,
                image_id=c.image_id,
                pod=c.pod,
            )
            for c in list(self.containers_by_name.values())
            if everyone or project is None or c.project == project
        ]

    def image_ids(self, images: Iterable[str]) -> dict[str, str]:
        return {image: self.images[image] for image in images if image in self.images}

    def image_digests(self, images: Iterable[str]) -> dict[str, str]:
        return {
            image: "sha256:" + self.images[image].removeprefix("sha256:") for image in images if image in self.images
        }

    def image_sizes(self, images: Iterable[str]) -> dict[str, int]:
        return {image: 1_000_000 for image in images if image in self.images}

    def published_ports(self) -> dict[int, str]:
        return {}

    def stats(self, names: Iterable[str]) -> list[Usage]:
        return []

    def last_exit(self, container_id: str) -> tuple[int | None, int]:
        found = next((c for c in self.containers_by_name.values() if c.id == container_id), None)
        return (found.exit_code, 0) if found else (None, 0)

    def logs_tail(self, container: str, lines: int = 20) -> list[str]:
        if container not in self.containers_by_name:
            return []
        return self.prints.get(container, [])[-lines:]

    def logs_argv(self, container: str, *, follow: bool, lines: int | None, since: str | None) -> list[str]:
        return ["podman", "logs", container]

    def rootless(self) -> bool:
        return False

    def limits_problem(self) -> str | None:
        return self.limits

    def version(self) -> str:
        return "5.4.2"

    def info(self) -> dict[str, Any]:
        return {}

    # -- volumes, secrets, images --------------------------------------------------------------

    def user_volumes(self) -> str | None:
        return None

    def create_volume(self, name: str, labels: dict[str, str], options: dict[str, str] | None = None) -> None:
        self.volumes.setdefault(name, labels)
        (self.root / name).mkdir(parents=True, exist_ok=True)

    def volume_exists(self, name: str) -> bool:
        return name in self.volumes

    def volume_mountpoint(self, name: str) -> Path | None:
        return self.root / name if name in self.volumes else None

    def volume_options(self, name: str) -> dict[str, str] | None:
        return {} if name in self.volumes else None

    def mount_volume(self, name: str) -> Path:
        return self.root / name

    def unmount_volume(self, name: str) -> None:
        pass

    def export_volume(self, name: str, tar: Path, image: str) -> None:
        with tarfile.open(tar, "w") as archive:
            archive.add(self.root / name, arcname=".")

    def import_volume(self, name: str, tar: Path, image: str) -> None:
        with tarfile.open(tar) as archive:
            # The "data" filter is in Python 3.12 and 3.11.4+, not in Debian 12's 3.11.2: a suite
            # launched with the system Python must pass too (these are the engine's own archives).
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(self.root / name, **safe)  # type: ignore[arg-type]

    def readable_folder(self, name: str) -> Path | None:
        return self.root / name if name in self.volumes else None

    def volume_has_data(self, name: str, image: str) -> bool:
        return any((self.root / name).iterdir())

    def copy_volume(self, source: str, target: str, image: str, *, replace: bool = False) -> None:
        if replace:
            shutil.rmtree(self.root / target)
        shutil.copytree(self.root / source, self.root / target, dirs_exist_ok=True)

    def remove_volume(self, name: str, *, force: bool = False) -> str | None:
        self.volumes.pop(name, None)
        shutil.rmtree(self.root / name, ignore_errors=True)
        return None

    def volume_projects(self) -> dict[str, str | None]:
        return {name: labels.get(PROJECT) for name, labels in self.volumes.items()}

    def secret_projects(self, names: Iterable[str] | None = None) -> dict[str, str | None]:
        return {name: labels.get(PROJECT) for name, (_, labels) in self.secrets.items()}

    def create_secret(self, name: str, value: str, labels: dict[str, str]) -> None:
        self.secrets[name] = (value, labels)

    def remove_secrets(self, names: Iterable[str]) -> None:
        for name in names:
            self.secrets.pop(name, None)

    def remove_image(self, image: str) -> bool:
        return self.images.pop(image, None) is not None

    # -- one-off tool containers ---------------------------------------------------------------

    def one_off_argv(self, job: OneOff, *, interactive: bool = False) -> list[str]:
        return ["podman", "run", "--rm", job.image, *job.args]

    def run_interactive(self, job: OneOff) -> int:
        return 1

    def run_one_off(
        self, job: OneOff, *, on_line: Callable[[str], None] | None = None, timeout_s: float = 0
    ) -> subprocess.CompletedProcess[str]:
        """No tool runs here: a failed container (a flag table is then not learned)."""
        return subprocess.CompletedProcess(self.one_off_argv(job), 1, "", "no tools in memory")
