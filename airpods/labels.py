"""The labels airpods puts on every object it creates (network, volumes, secrets, pods,
containers), and the default names of pods and containers, in one place. A project label
scopes every listing and removal: airpods acts on objects of its own project only.

Objects made before projects existed carry only `io.airpods.managed=true`; they count as the
default project, so an upgrade keeps seeing (and can replace) them."""

from __future__ import annotations

from collections.abc import Mapping

MANAGED = "io.airpods.managed"
PROJECT = "io.airpods.project"
SERVICE = "io.airpods.service"
CONFIG_HASH = "io.airpods.config-hash"
ASIDE = "io.airpods.aside-of"  # a volume a restore set the earlier data aside in: which volume's
TOOL = "io.airpods.tool"  # a throwaway helper container (volume data, one-off tools): never a service
POD = "io.airpods.pod"  # Docker has no pods: a container names the pod it stands for
EXPORTED = "io.airpods.exported"  # a Quadlet unit's pod or container: systemd's, never airpods' to manage
DEFAULT_PROJECT = "airpods"
MANAGED_FILTER = f"label={MANAGED}=true"  # podman's --filter syntax


def object_labels(project: str) -> dict[str, str]:
    """Labels of every object a project creates."""
    return {MANAGED: "true", PROJECT: project}


def project_of(labels: Mapping[str, str] | None) -> str | None:
    """The airpods project an object belongs to, None when airpods did not make it."""
    labels = labels or {}
    if labels.get(MANAGED) != "true":
        return None
    return labels.get(PROJECT) or DEFAULT_PROJECT


def label_args(labels: Mapping[str, str]) -> list[str]:
    """`--label K=V` pairs, as podman's create commands take them."""
    return [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]


def project_suffix(project: str) -> str:
    """Appended to secret names of a project other than the default, so two projects never share
    (or remove) each other's podman secrets."""
    return "" if project == DEFAULT_PROJECT else f"-{project}"


def default_pod(project: str, service: str) -> str:
    """A service's pod when the config names none: the service's name in the default project,
    PROJECT-SERVICE in any other (two projects never want the same pod)."""
    return service if project == DEFAULT_PROJECT else f"{project}-{service}"


def default_container(project: str, service: str) -> str:
    """POD-0: podman lets a container not share its pod's name (one namespace for both)."""
    return f"{default_pod(project, service)}-0"
