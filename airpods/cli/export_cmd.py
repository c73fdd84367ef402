"""`airpods export kube | quadlet`: the stack for `podman kube play`, Kubernetes or systemd."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from airpods.cli.context import options_of

app = typer.Typer(help="The stack as Kubernetes YAML or Quadlet units (compose is not offered).", no_args_is_help=True)
Services = Annotated[
    list[str] | None, typer.Argument(help="Services (default: every enabled one).", show_default=False)
]


def _stack(ctx: typer.Context, services: list[str] | None, gpu: str | None):
    from airpods.gpu import GpuCard, HostGpu
    from airpods.gpu_facts import CUDA_MIN_DRIVER, driver_tuple
    from airpods.stack.resolve import resolve_stack

    # Another machine's GPU (--gpu): assumed current (a driver for the newest CUDA listed, a
    # ROCm-supported AMD GPU); the export's images follow from that.
    CLUSTER_DRIVER = max(CUDA_MIN_DRIVER.values(), key=driver_tuple)  # noqa: N806

    override = (
        None
        if gpu is None
        else {
            "nvidia": HostGpu("nvidia", cdi=True, driver=CLUSTER_DRIVER, cdi_names=("all",)),
            "amd": HostGpu(
                "amd", nodes=("/dev/kfd", "/dev/dri"), cards=(GpuCard("amd", "/dev/dri/renderD128", "gfx1100"),)
            ),
            "none": HostGpu("none"),
        }[gpu]
    )
    return resolve_stack(options_of(ctx).config, services or (), gpu=override, ensure_key=True)


@app.command()
def kube(
    ctx: typer.Context,
    services: Services = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    target: Annotated[str, typer.Option("--target", help="podman (kube play) or kubernetes.")] = "podman",
    gpu: Annotated[
        str | None, typer.Option("--gpu", help="The target's GPU: nvidia, amd or none (default: this host's).")
    ] = None,
    shared_models: Annotated[
        bool,
        typer.Option(
            "--shared-models",
            help="kubernetes: a ReadOnlyMany model claim the llama.cpp servers share (needs storage that offers "
            "it, e.g. NFS); default ReadWriteOnce, which every provisioner binds.",
        ),
    ] = False,
    gateway_class: Annotated[
        str | None,
        typer.Option(
            "--gateway-class",
            help="kubernetes, with the gateway enabled: the cluster's GatewayClass its Gateway API "
            "Gateway uses (`kubectl get gatewayclass`).",
        ),
    ] = None,
) -> None:
    """Multi-document YAML: Pods for `podman kube play`, or Deployments/Services/PVCs/Secret
    (and for the gateway a Gateway API Gateway and HTTPRoutes, the cluster's ingress)."""
    from airpods.errors import UsageError
    from airpods.export.kube import export_secret_json, kubernetes_documents, podman_documents, secret_name, to_yaml
    from airpods.export.presets import exported_presets
    from airpods.files import write_atomic
    from airpods.labels import label_args
    from airpods.secrets import stack_secret_values
    from airpods.usecases.common import stack_key

    if target not in ("podman", "kubernetes"):
        raise UsageError(f"unknown target {target!r}", hint="podman or kubernetes")
    if gpu not in (None, "nvidia", "amd", "none"):
        raise UsageError(f"unknown GPU {gpu!r}", hint="nvidia, amd or none")
    if shared_models and target != "kubernetes":
        raise UsageError("--shared-models is for --target kubernetes (podman mounts the volume itself)")
    stack = _stack(ctx, services, gpu)
    gateway = any(spec.kind == "gateway" for spec in stack.services)
    if gateway and target == "podman":
        raise UsageError(
            "the gateway exports to Quadlet (`airpods export quadlet`) and Kubernetes (--target kubernetes), "
            "not to `podman kube play`",
            hint="leave it out by naming the services to export, e.g. `airpods export kube ollama open-webui`",
        )
    if gateway and target == "kubernetes":
        from airpods.cli.context import load

        config = load(options_of(ctx)).config
        unnamed = [s.name for s in stack.services if s.kind == "gateway" and not config.services[s.name].hosts]
        if unnamed:
            raise UsageError(
                f"services.{unnamed[0]}.hosts is not set: its default (this machine's name and address) means "
                "nothing in a cluster",
                hint=f'set services.{unnamed[0]}.hosts = ["ai.example.org"], the names the cluster\'s clients use',
            )
    if gateway and not gateway_class:
        raise UsageError(
            "the gateway becomes a Gateway API Gateway in the cluster: name its GatewayClass",
            hint="--gateway-class NAME (`kubectl get gatewayclass` lists them)",
        )
    import re

    if gateway_class and not re.fullmatch(
        r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", gateway_class
    ):
        raise UsageError(
            f"--gateway-class {gateway_class!r} is not a Kubernetes object name",
            hint="lowercase letters, digits, '-' and '.' (a DNS subdomain), as `kubectl get gatewayclass` shows it",
        )
    key = stack_key(stack) or ""  # only a stack that hands a key over needs one
    values = stack_secret_values(stack)  # the user's [services.X.secrets]
    if target == "podman":
        header = (
            "# airpods stack for `podman kube play --network airpods FILE` (create the network first:\n"
            "# `podman network create airpods`); `podman kube down FILE` keeps the volumes.\n"
        )
        presets = (output or Path("airpods-kube")).absolute().with_suffix(".presets")
        stack = exported_presets(stack, presets)
        if any(m.source.startswith(str(presets)) for s in stack.services for m in s.mounts):
            header += f"# The routers' preset files are in {presets}/ (the Pods mount them from there).\n"
        name = secret_name(stack)
        if name:  # written for the user to create: an export creates no engine object
            content = (output or Path("airpods-kube")).absolute().with_suffix(".secret.json")
            write_atomic(content, export_secret_json(stack, key, values).encode(), mode=0o600)
            create = shlex.join(["podman", "secret", "create", *label_args(stack.labels), name, str(content)])
            header += (
                f"# The API key comes from the podman secret {name}; create it first (then delete the file):\n"
                f"#   {create}\n"
            )
            print(f"wrote {content} (mode 0600: the API key); create the secret with:\n  {create}", file=sys.stderr)
        text = to_yaml(podman_documents(stack), header)
    else:
        header = (
            "# airpods stack for Kubernetes: `kubectl apply -f FILE`. Fill the model claim first (e.g. a\n"
            "# Job that runs `airpods models pull`, or copy GGUF files in with a pod that mounts it).\n"
        )
        if stack.secrets:
            header += "# The Secret holds the API key and secrets: this file is private (0600).\n"
        if gateway:
            header += (
                f"# The gateway is a Gateway API Gateway (class {gateway_class}) with airpods' TLS certificate: Open\n"
                "# WebUI and llama.cpp get routes; Ollama and ComfyUI, which have no authentication, stay inside.\n"
            )
        documents = kubernetes_documents(
            stack, key, shared_models=shared_models, values=values, gateway_class=gateway_class or ""
        )
        text = to_yaml(documents, header)
    _write(text, output, private=bool(stack.secrets) and target == "kubernetes")


@app.command()
def quadlet(
    ctx: typer.Context,
    services: Services = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for the units (default: ./airpods-quadlet).")
    ] = None,
    pods: Annotated[
        bool, typer.Option("--pods/--no-pods", help="Pod units (Podman 5.0+), or lone containers (4.4+).")
    ] = True,
) -> None:
    """.network, .volume, .pod and .container units for systemd."""
    from airpods.errors import RuntimeFailure
    from airpods.export.presets import exported_presets
    from airpods.export.quadlet import HOW_TO, quadlet_units
    from airpods.files import write_atomic

    folder = output or Path("airpods-quadlet")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeFailure(
            f"cannot use {folder} as the units' folder: {exc.strerror or exc}",
            hint="name a folder you can write (-o DIR); an existing file is not one",
        ) from None
    stack = _stack(ctx, services, None)
    if not stack.services:
        from airpods.errors import UsageError

        raise UsageError(
            "no service to export: every service of the config is disabled",
            hint="name the services to export (`airpods export quadlet NAME`), or enable one in the config",
        )
    units = quadlet_units(exported_presets(stack, folder), pods)  # presets: its own
    for name, text in units.items():
        write_atomic(folder / name, text.encode(), mode=0o644)
    first = next(n for n in units if n.endswith(".pod" if pods else ".container"))
    service = first.rsplit(".", 1)[0] + ("-pod.service" if pods else ".service")
    print(f"wrote {len(units)} units to {folder}/")
    print(HOW_TO.format(count=len(units), first=service), file=sys.stderr)


def _write(text: str, output: Path | None, *, private: bool = False) -> None:
    """To stdout, or published whole to `output` (0600 when it holds the key)."""
    if output is None:  # the manifest itself, its Secret included: what the user asked for
        from airpods.redact import write_unmasked

        write_unmasked(text)
        return
    from airpods.errors import RuntimeFailure
    from airpods.files import write_atomic

    if not output.parent.is_dir():
        raise RuntimeFailure(
            f"cannot write {output}: {output.parent} is not a folder", hint="create it, or name another -o"
        )
    write_atomic(output, text.encode(), mode=0o600 if private else 0o644)
    print(f"wrote {output}" + (" (mode 0600: it holds the API key)" if private else ""), file=sys.stderr)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="export")
