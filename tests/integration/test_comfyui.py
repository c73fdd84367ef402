"""ComfyUI as airpods runs it, on both engines: started, ready, its model folders made in its
volume on first start, its API answering the calls Open WebUI and airpods make (the rig's
stand-in answers them as ComfyUI does), status, logs, stop, and Open WebUI wired to it."""

from __future__ import annotations

import json
import urllib.request

from tests.integration.conftest import eventually

COMFY = "http://127.0.0.1:8188"
MODELS = "/root/ComfyUI/models"
LAYOUT = {"checkpoints", "loras", "vae", "clip", "controlnet", "embeddings", "upscale_models", "text_encoders"}


def get(path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(COMFY + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def test_comfyui_starts_with_its_model_folders_answers_its_api_and_stops_keeping_them(airpods, engine):
    airpods.write_config("[services.comfyui]\nenabled = true\n")
    started = airpods("start", "comfyui")
    assert started.code == 0, started.err
    assert "comfyui: created 18 folders in airpods_comfyui_data: checkpoints, clip" in started.out + started.err
    listed = set(airpods.ctr("exec", "comfyui-0", "ls", MODELS).stdout.split())
    assert LAYOUT <= listed, listed

    # What Open WebUI asks: the checkpoints ComfyUI can load (from the volume), a prompt queued.
    airpods.ctr("exec", "comfyui-0", "sh", "-c", f"echo weights > {MODELS}/checkpoints/standin.safetensors")
    assert get("/system_stats")["system"]["os"]
    assert get("/object_info")["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == ["standin.safetensors"]
    queued = get("/prompt", {"prompt": {"9": {"class_type": "SaveImage", "inputs": {}}}, "client_id": "test"})
    assert queued["prompt_id"] and queued["node_errors"] == {}
    assert get("/queue") == {"queue_running": [], "queue_pending": []}

    rows = {row["name"]: row for row in airpods("status", "--json").json()["services"]}
    comfy = rows["comfyui"]
    assert comfy["state"] == "running" and comfy["health"] == "healthy" and comfy["url"] == COMFY
    logs = airpods("logs", "comfyui", "--lines", "50")
    assert logs.code == 0 and "standin: POST /prompt" in logs.out, logs.out + logs.err

    stopped = airpods("stop", "comfyui")
    assert stopped.code == 0, stopped.err
    assert "comfyui" not in airpods.pods() and "airpods_comfyui_data" in airpods.volumes()
    again = airpods("start", "comfyui")
    assert again.code == 0, again.err
    assert "created" not in again.out + again.err  # the layout is there: nothing to make
    kept = airpods.ctr("exec", "comfyui-0", "cat", f"{MODELS}/checkpoints/standin.safetensors").stdout
    assert kept.strip() == "weights"


def test_open_webui_is_wired_to_comfyui_for_image_generation_by_alias(airpods, engine):
    airpods.write_config("[services.comfyui]\nenabled = true\n")
    started = airpods("start", "open-webui", "comfyui")
    assert started.code == 0, started.err
    env = airpods.ctr("exec", "open-webui-0", "env").stdout.splitlines()
    assert {"ENABLE_IMAGE_GENERATION=True", "IMAGE_GENERATION_ENGINE=comfyui"} <= set(env)
    assert "COMFYUI_BASE_URL=http://comfyui:8188" in env
    # The URL it was handed answers from Open WebUI's pod, over the stack network.
    stats = eventually(
        lambda: airpods.ctr("exec", "open-webui-0", "wget", "-qO-", "http://comfyui:8188/system_stats").stdout
    )
    assert json.loads(stats)["system"]
