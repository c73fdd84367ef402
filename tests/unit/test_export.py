"""Exports from the same Stack as start: golden Kubernetes YAML checked field by field against
the official kubernetes client's models, golden Quadlet units, and podman's own quadlet
generator where this Podman ships one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from airpods.export.kube import export_secret_json, kubernetes_documents, podman_documents, to_yaml
from airpods.export.quadlet import quadlet_units
from airpods.gpu import GpuCard, HostGpu
from airpods.secrets import key_id
from tests.unit.helpers import KEY, NVIDIA, check_golden, stack_of
from tests.unit.test_gateway import GATEWAY_ON

pytestmark = pytest.mark.usefixtures("fixed_state_path")

GOLDEN = Path(__file__).parent / "golden"
TWO_GPU = """
[services.llama-big]
extends = "llamacpp"
ports = [{ host = 8090, container = 8080 }]
command_args = { ctx_size = 32768 }
resources = { memory = "16g", cpus = 4.0 }
"""


def _convert(value, typ: str, path: str):
    import kubernetes.client.models as models

    lowered = typ[:5].lower() + typ[5:]  # the client spells list[X]/List[X], dict(a, X)/Dict[a, X]
    if lowered.startswith("list["):
        assert isinstance(value, list), f"{path}: expected a list"
        return [_convert(v, typ[5:-1], f"{path}[{i}]") for i, v in enumerate(value)]
    if lowered.startswith(("dict(", "dict[")):
        assert isinstance(value, dict), f"{path}: expected a mapping"
        inner = typ[typ.index(",") + 1 : -1].strip()
        return {k: _convert(v, inner, f"{path}.{k}") for k, v in value.items()}
    if typ in ("str", "int", "bool", "float", "object", "datetime", "Any", "IntOrString"):
        expected = {"str": str, "int": int, "bool": bool, "float": (int, float)}.get(typ)
        assert expected is None or isinstance(value, expected), f"{path}: expected {typ}, got {value!r}"
        return value
    return _model(value, getattr(models, typ), path)


def _model(data: dict, cls, path: str):
    """Build the client model from `data`: unknown fields fail; missing required ones raise."""
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    kwargs = {}
    for key, value in data.items():
        assert key in by_json, f"{path}.{key}: not a field of {cls.__name__}"
        kwargs[by_json[key]] = _convert(value, cls.openapi_types[by_json[key]], f"{path}.{key}")
    return cls(**kwargs)


KUBERNETES_VERSION = "1.37.0"  # the schemas kubernetes-validate ships for a current release


def validate(documents: list[dict]) -> None:
    """Each document against the official client's models and, strictly (no unknown field),
    against the JSON schemas of a current Kubernetes (the PyPI package kubernetes-validate)."""
    import kubernetes.client.models as models
    import kubernetes_validate

    for doc in documents:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)

    kinds = {
        ("v1", "Pod"): "V1Pod",
        ("v1", "Service"): "V1Service",
        ("v1", "Secret"): "V1Secret",
        ("v1", "ConfigMap"): "V1ConfigMap",
        ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
        ("apps/v1", "Deployment"): "V1Deployment",
    }
    for doc in documents:
        name = kinds[(doc["apiVersion"], doc["kind"])]
        _model(doc, getattr(models, name), f"{doc['kind']}/{doc['metadata']['name']}")


def test_kubernetes_default_stack_golden_and_valid(tmp_path):
    docs = kubernetes_documents(stack_of(tmp_path), KEY)
    validate(docs)
    check_golden(GOLDEN / "kube-kubernetes-default.yaml", to_yaml(docs, ""))
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert ("Service", "llamacpp") in kinds and ("Service", "webui") in kinds
    webui = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "open-webui")
    env = {e["name"]: e for e in webui["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["OPENAI_API_BASE_URLS"]["value"] == "http://llamacpp:8080/v1"
    assert env["OPENAI_API_KEYS"]["valueFrom"]["secretKeyRef"]["key"] == "openai-api-keys"
    assert KEY not in yaml.safe_dump_all([d for d in docs if d["kind"] != "Secret"])


def test_kubernetes_two_instance_gpu_stack_golden_and_valid(tmp_path):
    stack = stack_of(tmp_path, TWO_GPU, NVIDIA, ["llamacpp", "llama-big", "open-webui"])
    docs = kubernetes_documents(stack, KEY)
    validate(docs)
    check_golden(GOLDEN / "kube-kubernetes-two-gpu.yaml", to_yaml(docs, ""))
    big = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "llama-big")
    container = big["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/ggml-org/llama.cpp:server-cuda"
    assert container["resources"]["limits"] == {"memory": "16Gi", "cpu": "4", "nvidia.com/gpu": "1"}
    assert container["startupProbe"]["failureThreshold"] == 120  # 600 s of model load / 5 s

    def model_claim(documents):
        return next(d for d in documents if d["kind"] == "PersistentVolumeClaim" and "models" in d["metadata"]["name"])

    # ReadWriteOnce by default: the local-path provisioners of kind, k3s and k3d bind nothing else.
    assert model_claim(docs)["spec"]["accessModes"] == ["ReadWriteOnce"]
    shared = kubernetes_documents(stack, KEY, shared_models=True)
    validate(shared)
    assert model_claim(shared)["spec"]["accessModes"] == ["ReadOnlyMany"]


def test_podman_target_binds_like_start_and_keeps_the_key_out(tmp_path):
    stack = stack_of(tmp_path)
    docs = podman_documents(stack)
    validate(docs)
    llama = next(d for d in docs if d["metadata"]["name"] == "llamacpp")["spec"]
    port = llama["containers"][0]["ports"][0]
    assert (port["hostIP"], port["hostPort"], port["containerPort"]) == ("127.0.0.1", 8081, 8080)
    assert llama["volumes"][0]["persistentVolumeClaim"]["claimName"] == "airpods_llamacpp_models"
    assert KEY not in to_yaml(docs, "")
    import base64
    import json

    assert base64.b64decode(json.loads(export_secret_json(stack, KEY))["api-key"]).decode() == KEY


def test_quadlet_units_golden(tmp_path):
    units = quadlet_units(stack_of(tmp_path))
    assert sorted(units) == sorted(
        [
            "airpods.network",
            "airpods_ollama_data.volume",
            "airpods_webui_data.volume",
            "airpods_llamacpp_models.volume",
            "ollama.pod",
            "ollama-0.container",
            "open-webui.pod",
            "open-webui-0.container",
            "llamacpp.pod",
            "llamacpp-0.container",
        ]
    )
    for name, text in units.items():
        check_golden(GOLDEN / "quadlet-default" / name, text)
    llama = units["llamacpp-0.container"]
    assert "Exec=--host 0.0.0.0 --port 8080 --models-dir /models" in llama
    assert f"Secret=airpods-api-key-{key_id(KEY)},type=mount,target=/run/secrets/api_key,mode=0400" in llama
    assert "PublishPort=127.0.0.1:8081:8080" in units["llamacpp.pod"]


def test_quadlet_without_pods_publishes_on_the_containers(tmp_path):
    units = quadlet_units(stack_of(tmp_path), pods=False)
    assert not [n for n in units if n.endswith(".pod")]
    assert "PublishPort=127.0.0.1:3000:8080" in units["open-webui-0.container"]
    assert "Network=airpods.network" in units["open-webui-0.container"]


def quadlet_generator() -> str:
    """Podman 5.x's Quadlet generator: $AIRPODS_QUADLET (scripts/test sets it from
    scripts/quadlet-generator, which takes it from Debian 13's podman package on Debian 12)."""
    found = os.environ.get("AIRPODS_QUADLET")
    if not found or not os.access(found, os.X_OK):
        pytest.skip("needs Podman 5's quadlet generator: run ./scripts/test (scripts/quadlet-generator)")
    return found


@pytest.mark.parametrize(
    "toml, gpu, only, pods",
    [
        pytest.param("", HostGpu("none"), (), True, id="default-pods"),
        pytest.param("", HostGpu("none"), (), False, id="default-no-pods"),
        pytest.param(TWO_GPU, NVIDIA, ("llamacpp", "llama-big", "open-webui"), True, id="two-gpu"),
        pytest.param(
            TWO_GPU,
            HostGpu("amd", nodes=("/dev/kfd", "/dev/dri"), cards=(GpuCard("amd", "/dev/dri/renderD128", "gfx1100"),)),
            ("llama-big",),
            False,
            id="amd-no-pods",
        ),
        pytest.param(
            '[services.ollama.env]\nPROMPT = "100% of $HOME"\n', HostGpu("none"), ("ollama",), True, id="escaping"
        ),
        pytest.param(
            "[services.ollama.env]\nW = 'C:\\new\\path'\nR = '^\\d+$'\nD = 'tail\\'\nN = \"line1\\nline2\"\n",
            HostGpu("none"),
            ("ollama",),
            True,
            id="backslashes-and-newline",
        ),
        pytest.param(GATEWAY_ON, HostGpu("none"), (), True, id="gateway"),
    ],
)
def test_the_quadlet_generator_accepts_every_export(tmp_path, toml, gpu, only, pods):
    generator = quadlet_generator()
    folder = tmp_path / "units"
    folder.mkdir()
    units = quadlet_units(stack_of(tmp_path, toml, gpu, list(only)), pods=pods)
    for name, text in units.items():
        (folder / name).write_text(text)
    done = subprocess.run(
        [generator, "-dryrun"],
        env={**os.environ, "QUADLET_UNIT_DIRS": str(folder)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [line for line in done.stderr.splitlines() if "Loading source unit file" not in line]
    assert done.returncode == 0 and not problems, done.stderr
    services = {block.split("\n", 1)[0] for block in done.stdout.split("---")}
    for name in units:
        if name.endswith(".container"):
            assert any(name.removesuffix(".container") in header for header in services), name
    if not pods:  # aliases survive without pods (Open WebUI's wiring resolves them)
        assert "--network-alias llamacpp" in done.stdout or "--network-alias llama-big" in done.stdout
    if "W = " in toml:  # every value reaches ExecStart (a backslash once dropped or mangled them)
        assert all(f"{name}=" in done.stdout for name in ("W", "R", "D", "N")), done.stdout
    if "PROMPT" in toml:  # systemd gets the value back literally: no specifier, no variable
        assert "--env 'PROMPT=100%% of $$HOME'" in done.stdout or "PROMPT=100%% of $$HOME" in done.stdout
    if gpu.vendor == "amd":
        assert "--device /dev/kfd" in done.stdout and "--group-add keep-groups" in done.stdout


def test_ollama_health_asks_the_server_not_curl(tmp_path):
    units = quadlet_units(stack_of(tmp_path))
    assert "HealthCmd=ollama list" in units["ollama-0.container"]  # the image has neither curl nor wget


def test_claim_sizes_come_from_the_config(tmp_path):
    stack = stack_of(
        tmp_path, '[services.ollama]\nvolumes = [{ source = "big_store", target = "/root/.ollama", size = "200Gi" }]'
    )
    docs = kubernetes_documents(stack, KEY)
    validate(docs)
    sizes = {
        d["metadata"]["name"]: d["spec"]["resources"]["requests"]["storage"]
        for d in docs
        if d["kind"] == "PersistentVolumeClaim"
    }
    assert sizes == {"big-store": "200Gi", "airpods-webui-data": "5Gi", "airpods-llamacpp-models": "50Gi"}


def test_a_service_that_reads_a_secret_always_gets_the_secret_emitted(tmp_path):
    """`export kube open-webui` used to reference `secretKeyRef.name: null`."""
    docs = kubernetes_documents(stack_of(tmp_path, only=["open-webui"]), KEY)
    validate(docs)
    secrets = [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"]
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for d in docs
        if d["kind"] == "Deployment"
        for e in d["spec"]["template"]["spec"]["containers"][0].get("env", [])
        if "valueFrom" in e
    }
    assert secrets == ["airpods-api-keys"] and refs == {"airpods-api-keys"}


def test_the_kubernetes_file_holding_the_key_is_private(tmp_path, capsys, monkeypatch):
    from tests.unit.helpers import run_cli

    monkeypatch.setenv("PATH", str(tmp_path))
    out = tmp_path / "k8s.yaml"
    done = run_cli(capsys, "export", "kube", "--target", "kubernetes", "--gpu", "none", "-o", str(out))
    assert done.code == 0, done.err
    assert out.stat().st_mode & 0o777 == 0o600 and "kind: Secret" in out.read_text()


def test_the_gateway_is_the_clusters_gateway_api_with_its_certificate_and_no_route_to_an_unlocked_door(tmp_path):
    from airpods.secrets import stack_secret_values
    from airpods.stack.resolve import resolve_stack

    config = tmp_path / "gw.toml"
    config.write_text(GATEWAY_ON)
    stack = resolve_stack(config, (), gpu=HostGpu("none"), ensure_key=True)  # makes the CA and certificate
    docs = kubernetes_documents(stack, KEY, values=stack_secret_values(stack), gateway_class="traefik")
    validate([d for d in docs if not d["apiVersion"].startswith("gateway.networking.k8s.io/")])
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Deployment", "gateway") not in kinds  # the cluster's ingress, not Caddy
    tls_secret = next(d for d in docs if d.get("type") == "kubernetes.io/tls")
    assert tls_secret["stringData"]["tls.crt"].startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" in tls_secret["stringData"]["tls.key"]
    opaque = next(d for d in docs if d.get("type") == "Opaque")
    assert not any("PRIVATE KEY" in value or "$2" in value for value in opaque["stringData"].values())
    gateway = next(d for d in docs if d["kind"] == "Gateway")
    listener = gateway["spec"]["listeners"][0]
    assert gateway["spec"]["gatewayClassName"] == "traefik" and listener["protocol"] == "HTTPS"
    assert listener["tls"]["certificateRefs"] == [{"kind": "Secret", "name": tls_secret["metadata"]["name"]}]
    routes = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "HTTPRoute"}
    assert set(routes) == {"airpods-gateway-open-webui", "airpods-gateway-llamacpp"}  # no Ollama, no ComfyUI
    llama = routes["airpods-gateway-llamacpp"]["rules"][0]
    assert llama["matches"] == [{"path": {"type": "PathPrefix", "value": "/airpods/llamacpp/"}}]
    assert llama["filters"][0]["urlRewrite"]["path"] == {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}
    assert llama["backendRefs"] == [{"name": "llamacpp", "port": 8080}]
    assert routes["airpods-gateway-open-webui"]["hostnames"] == ["ai.home"]


def test_exporting_the_gateway_says_where_it_can_go(tmp_path, capsys):
    from tests.unit.helpers import run_cli, write_toml

    config = str(write_toml(tmp_path, GATEWAY_ON))
    play = run_cli(capsys, "-c", config, "export", "kube", "-o", str(tmp_path / "k.yaml"))
    assert play.code == 2 and "not to `podman kube play`" in play.err
    classless = run_cli(
        capsys, "-c", config, "export", "kube", "--target", "kubernetes", "-o", str(tmp_path / "k.yaml")
    )
    assert classless.code == 2 and "--gateway-class" in classless.err
    done = run_cli(
        capsys,
        "-c",
        config,
        "export",
        "kube",
        "--target",
        "kubernetes",
        "--gateway-class",
        "nginx",
        "-o",
        str(tmp_path / "k.yaml"),
    )
    assert done.code == 0, done.err
    assert "kind: HTTPRoute" in (tmp_path / "k.yaml").read_text()
