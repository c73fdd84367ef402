"""The plan is data: golden dry-run renderings, and what observation changes in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from airpods.engine.podman_argv import step_argv
from airpods.plan import Observed, ObservedPod, build_start_plan, build_stop_plan, pull_plan
from tests.unit.helpers import KEY, NVIDIA, engine_steps, run_cli, stack_of
from tests.unit.helpers import check_golden as golden

pytestmark = pytest.mark.usefixtures("fixed_state_path")

GOLDEN = Path(__file__).parent / "golden"
TWO_INSTANCES = """
[variables]
default_model = "tiny.gguf"

[services.llamacpp.command_args]
model = "/models/{{default_model}}"

[services.llama-big]
extends = "llamacpp"
ports = [{ host = 8090, container = 8080 }]
command_args = { ctx_size = 32768, model = false }
resources = { memory = "8g", cpus = 2.5 }
"""


def check_golden(name: str, text: str) -> None:
    golden(GOLDEN / name, text + "\n")


def test_default_stack_plan(tmp_path):
    check_golden("default-start.txt", build_start_plan(stack_of(tmp_path), Observed(), api_key=KEY).render(step_argv))


def test_two_instance_llamacpp_plan_on_nvidia(tmp_path):
    stack = stack_of(tmp_path, TWO_INSTANCES, NVIDIA, ["llamacpp", "llama-big"])
    check_golden("two-llamacpp-nvidia-start.txt", build_start_plan(stack, Observed(), api_key=KEY).render(step_argv))


@pytest.fixture
def no_podman(monkeypatch, tmp_path):
    """Unit tests never run podman: dry-run then plans from an empty observation."""
    monkeypatch.setenv("AIRPODS_HOST_ROOT", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    from airpods.secrets import api_key_path

    api_key_path().write_text(KEY + "\n")


def test_default_dry_run_through_the_cli(capsys, no_podman):
    result = run_cli(capsys, "start", "--dry-run")
    assert result.code == 0, result.err
    checked = (
        "# command_args of llamacpp checked against airpods' built-in table (llama-server of llama.cpp b11434)\n"
        "# the flag table of ghcr.io/ggml-org/llama.cpp:server is not known yet: start reads it from the image "
        "(its --help) and checks command_args again\n"
        "# gpu: ollama: CPU image: no GPU was found\n# gpu: llamacpp: CPU image: no GPU was found\n"
        # the router's per-model flags are its preset file's shared section (issue 33 §1)
        "# llamacpp's preset file (plus sections for models found in the volume):\n"
        "#   ; written by airpods from the [services.*.models] tables and the model volume (declared: f7cfd8e935c8)\n"
        "#   version = 1\n#   \n"
        "#   ; every model's (a model's own section wins)\n#   [*]\n#   ctx-size = 4096\n"
    )
    assert result.out == "# no GPU found: CPU images\n" + checked + (GOLDEN / "default-start.txt").read_text()


def test_ports_are_published_on_loopback_by_default_and_on_the_configured_address(tmp_path):
    default = build_start_plan(stack_of(tmp_path), Observed())
    published = [a for s in default.steps for a in step_argv(s) if a.count(":") == 2 and a[0].isdigit()]
    assert published == ["127.0.0.1:11434:11434", "127.0.0.1:3000:8080", "127.0.0.1:8081:8080"]
    exposed = build_start_plan(stack_of(tmp_path, '[runtime]\nbind_address = "0.0.0.0"\nexpose = true'), Observed())
    assert "0.0.0.0:3000:8080" in [a for s in exposed.steps for a in step_argv(s)]


def test_named_services_only_and_unknown_names(tmp_path, capsys, no_podman):
    plan = build_start_plan(stack_of(tmp_path, only=["llamacpp-ui"]), Observed())
    assert [(s.kind, s.service) for s in plan.steps if s.service] == [
        ("pod", "llamacpp-ui"),
        ("container", "llamacpp-ui"),
        ("wait", "llamacpp-ui"),
    ]
    result = run_cli(capsys, "start", "--dry-run", "llama")
    assert result.code == 2
    assert "unknown service: llama" in result.err and "llamacpp-ui" in result.err
    typo = run_cli(capsys, "start", "--dry-run", "olama")
    assert typo.code == 2 and "did you mean ollama?" in typo.err


def test_running_unchanged_services_are_left_alone_and_changed_ones_recreated(tmp_path):
    stack = stack_of(tmp_path)
    hashes = {s.pod: s.config_hash for s in stack.services}
    observed = Observed(
        networks=frozenset({"airpods"}),
        volumes=frozenset(stack.volumes),
        images={image: "sha-1" for image in stack.images},
        secrets=frozenset(s.name for s in stack.secrets),
        pods={
            "ollama": ObservedPod("ollama", "ollama", hashes["ollama"], True, "airpods", "sha-1"),
            "open-webui": ObservedPod("open-webui", "open-webui", "stale", True, "airpods", "sha-1"),
            "llamacpp": ObservedPod("llamacpp", "llamacpp", hashes["llamacpp"], True, "airpods", "sha-1"),
        },
    )
    plan = build_start_plan(stack, observed)
    assert [(s.kind, s.target) for s in engine_steps(plan)] == [
        ("remove", "open-webui"),
        ("pod", "open-webui"),
        ("container", "open-webui-0"),
    ]
    assert "ollama: running and unchanged, left alone" in plan.notes
    assert "config changed" in engine_steps(plan)[0].why


def test_config_hash_changes_only_with_what_the_container_is_made_of(tmp_path):
    base = stack_of(tmp_path).service("llamacpp").config_hash
    assert stack_of(tmp_path, "[services.llamacpp.health]\ntimeout_s = 5").service("llamacpp").config_hash == base
    assert (
        stack_of(tmp_path, "[services.llamacpp.command_args]\nthreads_http = 2").service("llamacpp").config_hash != base
    )  # noqa: E501
    # A router's per-model flags live in its preset file, rewritten and reread while it runs
    # (issue 33 §1): a model added, or a flag of every model, needs no new container.
    assert stack_of(tmp_path, "[services.llamacpp.command_args]\nctx_size = 1").service("llamacpp").config_hash == base
    assert stack_of(tmp_path, "[services.llamacpp.models.big]\nctx_size = 8").service("llamacpp").config_hash == base


def test_pre_fetch_pulls_only_missing_images(tmp_path):
    stack = stack_of(tmp_path)
    plan = pull_plan(stack, Observed(images={"ghcr.io/open-webui/open-webui:main": "sha-1"}))
    assert [step_argv(s) for s in plan.steps] == [
        ("podman", "pull", "docker.io/ollama/ollama:latest"),
        ("podman", "pull", "ghcr.io/ggml-org/llama.cpp:server"),
    ]


def test_stop_plan_never_touches_volumes(tmp_path):
    stack = stack_of(tmp_path)
    plan = build_stop_plan(
        stack, Observed(pods={"llamacpp": ObservedPod("llamacpp", "llamacpp", "x", True, "airpods")}), 10
    )
    assert [" ".join(step_argv(s)) for s in plan.steps] == [
        "podman pod stop --time 10 llamacpp",
        "podman pod rm --force llamacpp",
    ]
    assert plan.notes == ("ollama: not running", "open-webui: not running")
    everything = build_stop_plan(stack, None, 3)
    assert not any("volume" in arg for s in everything.steps for arg in step_argv(s))


def test_two_llama_servers_warn_about_memory(tmp_path):
    stack = stack_of(tmp_path, only=["llamacpp", "llamacpp-ui"])
    assert any("each load their own copy" in w for w in stack.warnings)


def test_model_volume_mounted_rw_elsewhere_warns(tmp_path):
    stack = stack_of(
        tmp_path,
        """
        [services.ollama]
        volumes = [{ source = "airpods_llamacpp_models", target = "/gguf" }]
    """,
    )
    assert any("ollama mounts the model volume" in w for w in stack.warnings)


def test_dry_run_json(capsys, no_podman):
    import json

    result = run_cli(capsys, "start", "--dry-run", "--json", "llamacpp")
    data = json.loads(result.out)
    assert data["action"] == "start"
    assert [s["kind"] for s in data["steps"]][-3:] == ["pod", "container", "wait"]
    assert data["steps"][-2]["argv"][:3] == ["podman", "run", "--detach"] and data["steps"][-1]["argv"] == []
