"""The stack as Kubernetes documents, from the same Stack `start` uses (no second model).

- target "podman": one Pod per service for `podman kube play`: ports bound like `start` (hostIP =
  bind address), volumes by claimName = airpods' volume names (kube play mounts the existing
  named volume, so data is shared with `airpods start`), the API key from a podman secret via
  secretKeyRef (Podman 4.3 reads such a secret as JSON of base64 values; see export_secret_json).
- target "kubernetes": Deployments, Services (named by network alias, so the wiring's URLs
  resolve), PersistentVolumeClaims, one Secret, a ConfigMap per llama.cpp router (its model
  presets); health becomes startup/readiness/liveness
  probes, resources become requests/limits, GPU services request the vendor's device.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from airpods.labels import MANAGED, SERVICE
from airpods.stack.model import PRESET_FILE, PRESETS_DIR, Mount, ServiceSpec, Stack
from airpods.stack.presets import preset_ini
from airpods.stack.wiring import GATEWAY, LLAMACPP

PROBE_PERIOD_S = 5
GPU_RESOURCE = {"cuda": "nvidia.com/gpu", "rocm": "amd.com/gpu"}
KEY_ENV_IN_KUBE = "LLAMA_API_KEY"  # llama-server's env for the key (kube has no podman secret files)


def secret_name(stack: Stack) -> str | None:
    """One Secret per exported stack whenever a service reads a secret (Open WebUI alone too),
    named after the project; None when nothing needs one."""
    return f"{stack.project}-api-keys" if stack.secrets else None


def data_key(purpose: str, name: str) -> str:
    """A secret's key in the Secret: its purpose (`api-key`, `openai-api-keys`: a stack has one
    of each at most, every Open WebUI instance gets the same list of keys), a user secret's name."""
    return name if purpose == "user" else purpose


def secret_values(stack: Stack, api_key: str, values: Mapping[str, str] | None = None) -> dict[str, str]:
    """Secret data key → value; `values`: the user secrets' values by name."""
    return {data_key(s.purpose, s.name): (values or {}).get(s.name, s.value(api_key)) for s in stack.secrets}


def export_secret_json(stack: Stack, api_key: str, values: Mapping[str, str] | None = None) -> str:
    """The podman secret content that Podman's kube play reads for secretKeyRef."""
    data = secret_values(stack, api_key, values)
    return json.dumps({k: base64.b64encode(v.encode()).decode() for k, v in data.items()})


def memory_quantity(value: str) -> str:
    """airpods' "8g" → Kubernetes' "8Gi"."""
    units = {"b": "", "k": "Ki", "m": "Mi", "g": "Gi"}
    return value[:-1] + units[value[-1].lower()]


def _secret_env(spec: ServiceSpec, name: str | None) -> list[dict[str, Any]]:
    env = []
    for use in spec.secrets:
        variable = use.target if use.type == "env" else KEY_ENV_IN_KUBE
        key = data_key(use.purpose, use.name)
        env.append({"name": variable, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}})
    return env


def _container(spec: ServiceSpec, secret: str | None, target: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": spec.container, "image": spec.image}
    if spec.entrypoint:
        container["command"] = list(spec.entrypoint)
    if spec.args:
        container["args"] = list(spec.args)  # the key comes from LLAMA_API_KEY (env), not key_args
    env = [{"name": k, "value": v} for k, v in spec.env] + _secret_env(spec, secret)
    if env:
        container["env"] = env
    ports = []
    for port in spec.container_ports:
        entry: dict[str, Any] = {"containerPort": port}
        published = next((p for p in spec.publish if p.container == port), None)
        if target == "podman" and published:
            entry.update(hostPort=published.host, hostIP=published.host_ip)
        ports.append(entry)
    if ports:
        container["ports"] = ports
    mounts = [
        {"name": _mount_name(m), "mountPath": m.target, **({"readOnly": True} if m.mode == "ro" else {})}
        for m in spec.mounts
    ] + [{"name": _scratch_name(path), "mountPath": path} for path in spec.scratch]
    container["securityContext"] = {
        "capabilities": {"drop": ["ALL"], **({"add": list(spec.cap_add)} if spec.cap_add else {})},
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": spec.read_only,
    }
    if mounts:
        container["volumeMounts"] = mounts
    if target == "kubernetes":
        container.update(_probes(spec))
        resources = _resources(spec)
        if resources:
            container["resources"] = resources
    return container


def _scratch_name(path: str) -> str:
    """The memory-backed emptyDir standing for a tmpfs scratch folder."""
    return ("scratch-" + re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-"))[:63].rstrip("-")


def _volume_name(source: str) -> str:
    return source.replace("_", "-").lower()  # checked at config load (config/validation.py)


def _mount_name(mount: Mount) -> str:
    """A pod volume's name: the claim's for a named volume, "presets" for a router's preset
    folder, else one made of the host path (a DNS label)."""
    if mount.named:
        return _volume_name(mount.source)
    if mount.target == PRESETS_DIR:
        return "presets"
    return ("host-" + re.sub(r"[^a-z0-9]+", "-", mount.source.lower()).strip("-"))[:63].rstrip("-")


def _volumes(spec: ServiceSpec, claim_name, target: str) -> list[dict[str, Any]]:
    """Named volumes as claims (`claim_name` maps airpods' name), host paths as hostPath; on a
    cluster a router's preset folder is its ConfigMap (`preset_config_map`)."""
    volumes = []
    for m in spec.mounts:
        if m.named:
            claim = {"claimName": claim_name(m.source), **({"readOnly": True} if m.mode == "ro" else {})}
            volumes.append({"name": _mount_name(m), "persistentVolumeClaim": claim})
        elif m.target == PRESETS_DIR and target == "kubernetes":
            volumes.append({"name": _mount_name(m), "configMap": {"name": f"{spec.pod}-presets"}})
        else:
            volumes.append({"name": _mount_name(m), "hostPath": {"path": m.source}})
    volumes += [{"name": _scratch_name(path), "emptyDir": {"medium": "Memory"}} for path in spec.scratch]
    return volumes


def preset_config_map(spec: ServiceSpec) -> dict[str, Any]:
    """A router's preset file as a ConfigMap: its declared presets (the sections airpods adds
    for models it recognises in the volume are written by `airpods start` on this host only)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{spec.pod}-presets", "labels": _labels(spec)},
        "data": {PRESET_FILE: preset_ini(spec.presets)},
    }


def _probes(spec: ServiceSpec) -> dict[str, Any]:
    if spec.health.path is None or not spec.container_ports:
        return {}
    get = {"path": spec.health.path, "port": spec.container_ports[0]}
    if spec.health.path == "/":
        get["httpHeaders"] = [{"name": "Accept-Encoding", "value": "gzip"}]
    startup = {
        "httpGet": get,
        "periodSeconds": PROBE_PERIOD_S,
        "failureThreshold": max(1, math.ceil(spec.health.timeout_s / PROBE_PERIOD_S)),
    }
    return {
        "startupProbe": startup,
        "readinessProbe": {"httpGet": get, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {"httpGet": get, "periodSeconds": 30, "failureThreshold": 3, "timeoutSeconds": 5},
    }


def _resources(spec: ServiceSpec) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    requests: dict[str, Any] = {}
    if spec.memory:
        limits["memory"] = requests["memory"] = memory_quantity(spec.memory)
    if spec.cpus:
        limits["cpu"] = requests["cpu"] = f"{spec.cpus:g}"
    if spec.variant in GPU_RESOURCE:
        limits[GPU_RESOURCE[spec.variant]] = "1"
    return {k: v for k, v in (("limits", limits), ("requests", requests)) if v}


def _labels(spec: ServiceSpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": spec.name,
        "app.kubernetes.io/part-of": "airpods",
        SERVICE: spec.name,
        MANAGED: "true",
    }


def podman_documents(stack: Stack) -> list[dict[str, Any]]:
    secret = secret_name(stack)
    return [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": spec.pod, "labels": _labels(spec)},
            "spec": {
                "restartPolicy": _restart(spec),
                "containers": [_container(spec, secret, "podman")],
                # claimName = airpods' own volume name: kube play mounts that very volume.
                **({"volumes": _volumes(spec, str, "podman")} if spec.mounts else {}),
            },
        }
        for spec in stack.services
    ]


def _restart(spec: ServiceSpec) -> str:
    return {"no": "Never", "on-failure": "OnFailure"}.get(spec.restart_policy, "Always")


def kubernetes_documents(
    stack: Stack,
    api_key: str,
    *,
    shared_models: bool = False,
    values: Mapping[str, str] | None = None,
    gateway_class: str = "",
) -> list[dict[str, Any]]:
    """Deployments, Services and PVCs per service, one Secret. Build `stack` for the cluster's
    GPU (not this host's): images and device requests follow each service's variant. Claims are
    ReadWriteOnce, which every provisioner binds (the local-path ones of kind, k3s and k3d take
    only RWO/RWOP); `shared_models` asks ReadOnlyMany for a model volume the llama.cpp servers
    mount read-only (needs storage that offers it, e.g. NFS). Sizes: the volumes' `size`."""
    docs: list[dict[str, Any]] = []
    gateways = [spec for spec in stack.services if spec.kind == GATEWAY]
    if gateways:  # the cluster's own ingress instead of Caddy (gateway_documents)
        docs += gateway_documents(stack, gateways[0], values or {}, gateway_class)
        gone = {use.name for use in gateways[0].secrets}
        stack = replace(
            stack,
            services=tuple(s for s in stack.services if s.kind != GATEWAY),
            secrets=tuple(d for d in stack.secrets if d.name not in gone),
        )
    secret = secret_name(stack)
    if secret:
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret},
                "type": "Opaque",
                "stringData": secret_values(stack, api_key, values),
            }
        )
    sizes = dict(stack.volume_sizes)
    claims: dict[str, tuple[str, str]] = {}
    for spec in stack.services:
        for mount in spec.mounts:
            if mount.named:
                shared = shared_models and spec.kind == LLAMACPP and mount.mode == "ro"
                claims.setdefault(
                    _volume_name(mount.source), ("ReadOnlyMany" if shared else "ReadWriteOnce", sizes[mount.source])
                )
    for claim, (mode, size) in claims.items():
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "labels": {"app.kubernetes.io/part-of": stack.project}},
                "spec": {"accessModes": [mode], "resources": {"requests": {"storage": size}}},
            }
        )
    for spec in stack.services:
        labels = _labels(spec)
        pod_spec: dict[str, Any] = {"containers": [_container(spec, secret, "kubernetes")]}
        if spec.mounts:
            pod_spec["volumes"] = _volumes(spec, _volume_name, "kubernetes")
        if any(m.target == PRESETS_DIR for m in spec.mounts):
            docs.append(preset_config_map(spec))
        docs.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": spec.pod, "labels": labels},
                "spec": {
                    "replicas": 1,
                    "strategy": {"type": "Recreate"},
                    "selector": {"matchLabels": {"app.kubernetes.io/name": spec.name}},
                    "template": {"metadata": {"labels": labels}, "spec": pod_spec},
                },
            }
        )
        if spec.container_ports:
            for alias in spec.aliases:
                docs.append(
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "metadata": {"name": alias, "labels": labels},
                        "spec": {
                            "selector": {"app.kubernetes.io/name": spec.name},
                            "ports": [
                                {"name": f"p{port}", "port": port, "targetPort": port} for port in spec.container_ports
                            ],
                        },
                    }
                )
    return docs


GATEWAY_API = "gateway.networking.k8s.io/v1"


def gateway_documents(
    stack: Stack, gateway: ServiceSpec, values: Mapping[str, str], gateway_class: str
) -> list[dict[str, Any]]:
    """The gateway as a cluster has it (Gateway API v1, gateway-api.sigs.k8s.io: a Gateway with
    an HTTPS listener on the gateway's port whose certificate is a kubernetes.io/tls Secret, and
    one HTTPRoute per service whose `URLRewrite` filter strips its path prefix as Caddy's
    handle_path does). Services without authentication of their own (Ollama, ComfyUI) get no
    route: Gateway API has no standard basic auth, so they stay inside the cluster. The
    certificate and key are the gateway's (airpods' CA's, or the user's `tls`); `gateway_class`
    names the cluster's GatewayClass (`kubectl get gatewayclass`)."""
    from airpods.gateway.caddy import GUARDED_KINDS
    from airpods.stack.wiring import GATEWAY_FILES

    by_target = {use.target: values.get(use.name, "") for use in gateway.secrets}
    tls_secret = f"{stack.project}-gateway-tls"
    name = f"{stack.project}-gateway"
    kinds = {spec.name: spec for spec in stack.services}
    port = gateway.container_ports[0] if gateway.container_ports else 8443
    names = [host for host in gateway.hosts if not _is_address(host)]
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": tls_secret},
            "type": "kubernetes.io/tls",
            "stringData": {
                "tls.crt": by_target[GATEWAY_FILES["server-crt"][2]],
                "tls.key": by_target[GATEWAY_FILES["server-key"][2]],
            },
        },
        {
            "apiVersion": GATEWAY_API,
            "kind": "Gateway",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": stack.project}},
            "spec": {
                "gatewayClassName": gateway_class,
                "listeners": [
                    {
                        "name": "https",
                        "protocol": "HTTPS",
                        "port": port,
                        **({"hostname": names[0]} if len(names) == 1 else {}),
                        "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": tls_secret}]},
                    }
                ],
            },
        },
    ]
    for service, prefix in gateway.routes:
        spec = kinds.get(service)
        if spec is None or spec.kind in GUARDED_KINDS or not spec.container_ports:
            continue
        rule: dict[str, Any] = {
            "matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
            "backendRefs": [{"name": spec.aliases[0], "port": spec.container_ports[0]}],
        }
        if prefix != "/":
            rule["filters"] = [
                {
                    "type": "URLRewrite",
                    "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
                }
            ]
        docs.append(
            {
                "apiVersion": GATEWAY_API,
                "kind": "HTTPRoute",
                "metadata": {"name": f"{name}-{service}", "labels": _labels(spec)},
                "spec": {"parentRefs": [{"name": name}], **({"hostnames": names} if names else {}), "rules": [rule]},
            }
        )
    return docs


def _is_address(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def to_yaml(documents: list[dict[str, Any]], header: str) -> str:
    import yaml

    body = yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False)
    return header + body
