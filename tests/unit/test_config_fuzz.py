"""Issue 34 §2: generated TOML (random keys among airpods' own and others, values of every
kind: huge numbers, inf and nan, unicode and control characters, templates, deep nesting) fed to
`config validate` for a bounded time: exit 0 or 2, never a traceback or an internal error, and
never more than 200 MB. Seeded: a failure names the seed and document that reproduce it."""

from __future__ import annotations

import json
import random
import resource
import time

from tests.unit.helpers import run_cli

SECONDS = 8.0
MAX_GROWTH_KB = 200 * 1024  # ru_maxrss is in KiB on Linux
KEYS = [
    "services", "ollama", "open-webui", "llamacpp", "llama-x", "comfyui", "models", "tiny", "*",
    "command_args", "ctx_size", "n_gpu_layers", "parallel", "port", "host", "env", "HF_TOKEN",
    "ports", "container", "volumes", "source", "target", "resources", "memory", "cpus", "gpu",
    "enabled", "image", "health", "path", "timeout_s", "secrets", "variables", "runtime",
    "bind_address", "expose", "project", "extends", "load_on_startup", "required", "pod",
    "network_aliases", "entrypoint_override", "restart_policy", "api_key", "x", "ü", "a\nb", "",
]  # fmt: skip
STRINGS = [
    "", "x", "8g", "99999999999g", "inf", "/models/tiny.gguf", "{{x}}", "{{x}}{{x}}", "{{services}}",
    "{{{{ bos }}", "env:HOME", "file:/nonexistent", "a\nb", "tiny\n", "\x00", "ü" * 50, "💥", "0.0.0.0",
    "127.0.0.1", "user/repo:Q4_K_M", "../../etc", "a" * 5000,
]  # fmt: skip


def value(rng: random.Random, depth: int) -> object:
    kind = rng.randrange(9 if depth < 6 else 6)
    if kind == 0:
        return rng.choice([0, -1, 1, 8080, 2**31, 2**63 - 1, -(2**63), 10**18])
    if kind == 1:
        return rng.choice([0.5, -0.0, 1e308, float("inf"), float("-inf"), float("nan")])
    if kind == 2:
        return rng.choice([True, False])
    if kind in (3, 4, 5):
        return rng.choice(STRINGS)
    if kind == 6:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return table(rng, depth + 1)


def table(rng: random.Random, depth: int) -> dict[str, object]:
    return {rng.choice(KEYS): value(rng, depth) for _ in range(rng.randrange(1, 5))}


def toml_value(item: object) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(str(item), repr(item))
    if isinstance(item, int):
        return str(item)
    if isinstance(item, str):
        return json.dumps(item)  # a TOML basic string: the same escapes
    if isinstance(item, list):
        return "[" + ", ".join(toml_value(v) for v in item) + "]"
    assert isinstance(item, dict)
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in item.items()) + "}"


def document(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randrange(1, 4)):
        section = ".".join(json.dumps(rng.choice(KEYS)) for _ in range(rng.randrange(1, 4)))
        lines.append(f"[{section}]")
        lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in table(rng, 1).items()]
    if rng.random() < 0.1:
        lines.append(rng.choice(["[[", "x = ", "= 1", "[a]\n[a]", "x = [" * 40, '"\\u0000" = 1']))
    return "\n".join(lines) + "\n"


# Known fields with values that are right for them, so that documents also get past the schema
# into template expansion, stack building and the flag checks (random keys alone rarely do).
FIELDS: dict[str, list[object]] = {
    "enabled": [True, False],
    "ports": [[{"host": 9001, "container": 8080}], [], [{"host": 0, "container": 1}]],
    "network_aliases": [["a"], ["x-1", "y"]],
    "resources": [{"memory": "2g"}, {"cpus": 1.5}, {"memory": "512m", "cpus": 0.5}],
    # (gpu.enabled = "required" on a host without one is a runtime failure, exit 1: test_gpu)
    "gpu": [{"enabled": False}, {"enabled": True}, {"devices": [0, 1]}],
    "health": [{"path": "/health", "expected_status": [200, 204], "timeout_s": 5}, {"expected_status": "200-299"}],
    "env": [{"A": "b"}, {"X": "{{runtime.project}}"}],
    "secrets": [{"TOKEN": "env:HOME"}, {"KEY": "file:/etc/hostname"}],
    "command_args": [{"ctx_size": 2048}, {"parallel": 2, "jinja": False}, {"n_gpu_layers": 99}],
    "entrypoint_override": [["/bin/sh", "-c", "true"]],
    "security": [{"read_only": False}, {"cap_add": ["CHOWN"], "tmpfs": ["/cache"]}],
    "volumes": [[{"source": "data_x", "target": "/data"}]],
}
SERVICES = ["ollama", "llamacpp", "open-webui", "llamacpp-ui", "comfyui"]


def mutated_valid(rng: random.Random) -> str:
    """A document of known services and fields with fitting values, then one or two values
    swapped for anything (a wrong type, a huge number, a template, unicode)."""
    doc: dict[str, object] = {"runtime": {"project": rng.choice(["airpods", "p2", "x-y"])}}
    services: dict[str, dict[str, object]] = {}
    for name in rng.sample(SERVICES, rng.randrange(1, 4)):
        services[name] = {f: rng.choice(v) for f, v in rng.sample(list(FIELDS.items()), rng.randrange(1, 4))}
    if rng.random() < 0.3:
        services["llama-extra"] = {"extends": "llamacpp", "ports": [{"host": 8093, "container": 8080}]}
    if rng.random() < 0.3:
        services.setdefault("llamacpp", {})["models"] = {"tiny": {"ctx_size": 512, "load_on_startup": False}}
    doc["services"] = services
    for _ in range(rng.randrange(0, 3)):
        name = rng.choice(list(services))
        services[name][rng.choice(list(FIELDS) + KEYS)] = value(rng, 3)
    return "\n".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in doc.items()) + "\n"


def test_generated_configs_exit_0_or_2_never_a_traceback(tmp_path, capsys):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    path = tmp_path / "fuzz.toml"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    deadline, tried, valid = time.monotonic() + SECONDS, 0, 0
    while time.monotonic() < deadline:
        text = document(rng) if tried % 2 else mutated_valid(rng)
        path.write_text(text, encoding="utf-8")
        done = run_cli(capsys, "-c", str(path), "config", "validate")
        tried += 1
        where = f"seed {seed}, document {tried}:\n{text}\n{done.err}"
        assert done.code in (0, 2), where
        assert "Traceback" not in done.err and "internal error" not in done.err, where
        valid += done.code == 0
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < MAX_GROWTH_KB, f"seed {seed}: memory grew {grown} KiB over {tried} documents"
    assert tried > 20  # it did try
    assert valid > tried // 20, f"seed {seed}: only {valid} of {tried} documents were valid"  # past the schema too
