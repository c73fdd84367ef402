"""`airpods top` on the rig: per service state, CPU and memory from one stats call, and the
llama.cpp router's loaded model with tokens/s > 0 while completions stream through it."""

from __future__ import annotations

import json
import threading

import openai

from tests.integration.conftest import openai_env


def stats_work(airpods) -> bool:
    """Whether the engine gives per-container figures: not rootless Podman on cgroup v1."""
    if airpods.engine == "docker":
        return True
    host = json.loads(airpods.ctr("info", "--format", "json").stdout)["host"]
    return not host["security"]["rootless"] or host.get("cgroupVersion") == "v2"


def test_top_once_json_shows_tokens_per_second_while_completions_stream(airpods, engine, model_volume):
    started = airpods("start", "llamacpp", "ollama")
    assert started.code == 0, started.err
    env = openai_env(airpods)
    api = openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"], timeout=120)
    streamed = []
    done = threading.Event()

    def stream() -> None:  # completions back to back until top has sampled
        while not done.is_set():
            for chunk in api.completions.create(
                model="tiny", prompt="the", max_tokens=400, stream=True, extra_body={"ignore_eos": True}
            ):
                streamed.append(chunk)

    worker = threading.Thread(target=stream, daemon=True)
    worker.start()
    try:
        top = airpods("top", "--once", "--json", "--interval", "1")
    finally:
        done.set()
        worker.join(timeout=120)
    assert top.code == 0, top.err
    data = top.json()
    rows = {row["name"]: row for row in data["services"]}
    assert rows["llamacpp"]["state"] == rows["ollama"]["state"] == "running"
    assert rows["open-webui"]["state"] == "absent" and rows["open-webui"]["memory"] is None
    if stats_work(airpods):
        assert rows["llamacpp"]["memory"] > 0 and rows["ollama"]["cpu_percent"] is not None
        assert not data["problems"]
    else:  # said, not left blank: rootless Podman without cgroup v2 has no figures
        assert rows["llamacpp"]["memory"] is None
        assert [p for p in data["problems"] if p.startswith("CPU and memory: podman stats")], data["problems"]
    (tiny,) = [s for s in data["llamacpp"] if s["model"] == "tiny"]
    assert tiny["service"] == "llamacpp" and tiny["generation_tps"] > 0 and tiny["kv_cells"] > 0, tiny
    assert streamed

    shown = airpods("top", "--once", "--interval", "0.2")
    assert shown.code == 0 and "llamacpp" in shown.out and "GEN T/S" in shown.out, shown.out


def test_ctrl_c_exits_130_in_a_command_that_catches_it(airpods):
    """Issue 34 §2: only `start` exited 130 on Ctrl-C; `top` (which quits on it) exited 0 and
    other commands said "Aborted!" with exit 1."""
    import signal
    import time

    for args in (("top", "--interval", "30"), ("top", "--json", "--interval", "30")):
        running = airpods.popen(*args)
        time.sleep(2)
        running.send_signal(signal.SIGINT)
        out, err = running.communicate(timeout=60)
        assert running.returncode == 130 and "airpods: interrupted" in err, (args, running.returncode, err)
        assert "Traceback" not in err and "Aborted" not in err
