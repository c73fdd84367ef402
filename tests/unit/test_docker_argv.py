"""The Docker renderer of the same Stack: no pods, aliases and ports per container, secrets as
read-only files or env files, GPUs as device requests."""

from __future__ import annotations

from pathlib import Path

from airpods.engine.docker_argv import container_run_argv, gpu_options, step_argv
from airpods.gpu import GpuRequest
from airpods.plan import Observed, build_start_plan
from tests.unit.helpers import KEY, stack_of

SECRETS = Path("/state/secrets")


def test_the_default_stack_renders_without_pods(tmp_path):
    plan = build_start_plan(stack_of(tmp_path), Observed(), api_key=KEY)
    argvs = [step_argv(s, SECRETS) for s in plan.steps]
    assert not [a for a in argvs if "pod" in a[:3]]
    llama = next(a for a in argvs if a[:2] == ("docker", "run") and "llamacpp-0" in a)
    joined = " ".join(llama)
    assert "--network airpods --network-alias llamacpp --publish 127.0.0.1:8081:8080" in joined
    assert "--label io.airpods.pod=llamacpp" in joined and "--pull never" in joined
    secret = next(a for a in argvs if "--volume" in a and any(x.endswith(":/run/secrets/api_key:ro") for x in a))
    assert KEY not in " ".join(secret)  # the key is a file's content, never argv


def test_gpus_as_docker_device_requests():
    assert gpu_options(GpuRequest("nvidia", ("nvidia.com/gpu=all",))) == ["--gpus", "all"]
    assert gpu_options(GpuRequest("nvidia", ("nvidia.com/gpu=0", "nvidia.com/gpu=1"))) == ["--gpus", '"device=0,1"']
    amd = gpu_options(GpuRequest("amd", ("/dev/kfd", "/dev/dri"), keep_groups=True, groups=(993,)))
    assert amd == ["--device", "/dev/kfd", "--device", "/dev/dri", "--group-add", "993"]


def test_an_entrypoint_override_keeps_its_arguments(tmp_path):
    stack = stack_of(tmp_path, '[services.llamacpp]\nentrypoint_override = ["/app/tools.sh", "--server"]\n')
    argv = container_run_argv(stack.service("llamacpp"), SECRETS)
    i = argv.index("--entrypoint")
    assert argv[i + 1] == "/app/tools.sh" and argv[argv.index("ghcr.io/ggml-org/llama.cpp:server") + 1] == "--server"


def test_env_secrets_are_files_read_by_the_wrapper_never_env_options(tmp_path):
    """`docker inspect` shows every `--env`, and an env file carried one line a variable
    (issue 34 §1): env secrets are bound files the wrapper exports (env_handover)."""
    from airpods.engine.env_handover import ENV_FOLDER, SCRIPT, ImageConfig

    plan = build_start_plan(stack_of(tmp_path), Observed(), api_key=KEY)
    step = next(s for s in plan.steps if s.kind == "container" and s.spec is not None and s.spec.name == "open-webui")
    image = ImageConfig(("bash", "start.sh"), (), "")
    webui = container_run_argv(step.spec, SECRETS, image)
    assert not [webui[i + 1] for i, arg in enumerate(webui) if arg == "--env" and "=" not in webui[i + 1]]
    binds = [webui[i + 1] for i, arg in enumerate(webui) if arg == "--volume" and ENV_FOLDER in webui[i + 1]]
    assert sorted(b.rsplit(":", 2)[1] for b in binds) == [
        f"{ENV_FOLDER}/OPENAI_API_KEYS",
        f"{ENV_FOLDER}/WEBUI_SECRET_KEY",
    ]
    i = webui.index("--entrypoint")
    assert webui[i + 1] == "/bin/sh"
    tail = webui[webui.index(step.spec.image) + 1 :]
    assert tail == ("-c", SCRIPT, "airpods-env", "bash", "start.sh")
    assert KEY not in " ".join(webui)


def test_docker_hub_names_meet_the_configs_full_names():
    from airpods.engine.docker import full_image_name

    assert full_image_name("ollama/ollama:latest") == "docker.io/ollama/ollama:latest"
    assert full_image_name("docker.io/ollama/ollama:latest") == "docker.io/ollama/ollama:latest"
    assert full_image_name("busybox") == "docker.io/library/busybox:latest"
    assert full_image_name("ghcr.io/ggml-org/llama.cpp:server") == "ghcr.io/ggml-org/llama.cpp:server"
    assert full_image_name("127.0.0.1:5115/x/y") == "127.0.0.1:5115/x/y:latest"
    assert full_image_name("localhost/tool") == "localhost/tool:latest"
    assert full_image_name("ghcr.io/a/b@sha256:00") == "ghcr.io/a/b@sha256:00"
