"""Health probes and port checks against local sockets (no podman)."""

from __future__ import annotations

import http.server
import socket
import threading
from dataclasses import replace

import pytest

from airpods.config.schema import Health
from airpods.health import probe
from airpods.ports import port_holder, port_is_free
from airpods.stack.model import Publish, ServiceSpec


def spec_on(port: int, path: str = "/health", expected="200") -> ServiceSpec:
    return ServiceSpec(
        name="svc",
        project="airpods",
        kind="svc",
        image="i",
        variant="cpu",
        pod="p",
        container="c",
        aliases=(),
        publish=(Publish("127.0.0.1", port, 80),),
        container_ports=(80,),
        mounts=(),
        env=(),
        gpu_request=None,
        entrypoint=None,
        args=(),
        key_args=(),
        memory=None,
        cpus=None,
        restart_policy="no",
        network="n",
        secrets=(),
        health=Health(path=path, expected_status=expected),
    )


@pytest.fixture
def server():
    seen = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen["accept-encoding"] = self.headers.get("Accept-Encoding")
            seen["authorization"] = self.headers.get("Authorization")
            code = {"/health": 200, "/loading": 503}.get(self.path, 404)
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], seen
    httpd.shutdown()


def test_probe_statuses(server):
    port, seen = server
    assert probe(spec_on(port)).ok and probe(spec_on(port)).status == 200
    assert seen["accept-encoding"] == "gzip"  # llama.cpp's UI answers 415 otherwise
    loading = probe(spec_on(port, "/loading"))
    assert not loading.ok and loading.describe() == "HTTP 503"
    assert probe(spec_on(port, "/loading", expected="200-599")).ok


def test_probe_connection_refused():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = probe(spec_on(port))
    assert not result.ok and result.error == "connection refused"


def test_no_health_path_means_no_probe():
    assert probe(spec_on(1, path=None)) is None


def test_port_in_use_names_this_process():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
        holder = port_holder(port)
        assert holder is not None and "python" in holder
    assert port_is_free("127.0.0.1", port)


def test_container_watch_never_answers_from_a_snapshot_older_than_the_container():
    """Regression: a snapshot taken by another service's wait, before this container existed,
    made start report 'container disappeared'."""
    import time

    from airpods.engine.podman import ContainerState
    from airpods.health import ContainerWatch

    class Snapshots:
        def __init__(self):
            self.calls = 0
            self.existing: list[ContainerState] = []

        def containers(self, project=None):
            self.calls += 1
            return list(self.existing)

    engine = Snapshots()
    watch = ContainerWatch(engine, interval=60)
    assert watch.get("b") is None and engine.calls == 1
    engine.existing = [ContainerState("b", "id", "b", "h", "running", 0, 1, "img")]
    created = time.monotonic()
    assert watch.get("b") is None  # cached: fine for callers that predate b
    assert watch.get("b", not_before=created).running  # b's own wait refreshes
    assert engine.calls == 2


def test_container_watch_dates_a_snapshot_from_when_podman_ps_began():
    """Regression (8 instances started at once): a `podman ps` that began before container b
    existed and returned after b's wait began was taken as fresh: 'container disappeared'."""
    import time

    from airpods.engine.podman import ContainerState
    from airpods.health import ContainerWatch

    b = ContainerState("b", "id", "b", "h", "running", 0, 1, "img")
    waits_began: list[float] = []

    class SlowPs:
        def __init__(self):
            self.existing: list[ContainerState] = []
            self.while_listing = True

        def containers(self, project=None):
            seen = list(self.existing)  # podman reads its state as the call starts
            if self.while_listing:  # meanwhile b is created and its wait begins
                self.while_listing = False
                self.existing.append(b)
                waits_began.append(time.monotonic())
            return seen

    watch = ContainerWatch(SlowPs(), interval=60)
    assert watch.get("a") is None
    assert watch.get("b", not_before=waits_began[0]) == b


def test_the_key_goes_only_to_services_that_check_it(server):
    from airpods.stack.model import SecretUse

    port, seen = server
    plain = spec_on(port, "/health")
    keyed = replace(plain, secrets=(SecretUse("s", "mount", "/run/secrets/api_key", "api-key"),))
    assert probe(plain, key="sk-1").ok and seen["authorization"] is None
    assert probe(keyed, key="sk-1").ok and seen["authorization"] == "Bearer sk-1"


def test_a_routers_startup_models_and_their_states_as_it_reports_them():
    """The router's GET /models (llama.cpp server-models.cpp): status.value, and failed with
    its exit code once a model's process ended in error."""
    import json

    from airpods.health import router_states, startup_models
    from airpods.stack.model import Preset

    body = json.dumps(
        {
            "data": [
                {"id": "tiny", "status": {"value": "loaded"}},
                {"id": "bogus", "status": {"value": "unloaded", "failed": True, "exit_code": 1}},
            ]
        }
    ).encode()
    seen = {}

    class Models(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen["authorization"] = self.headers.get("Authorization")
            self.send_response(200 if self.path == "/models" else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Models)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        spec = replace(
            spec_on(httpd.server_address[1]),
            presets=(Preset("*", ()), Preset("tiny", (), True), Preset("bogus", (), True), Preset("later", (), False)),
        )
        assert startup_models(spec) == ["tiny", "bogus"]
        states = router_states(spec, "k")
        assert states["tiny"].value == "loaded" and states["bogus"].failed and states["bogus"].exit_code == 1
        assert seen["authorization"] == "Bearer k"
    finally:
        httpd.shutdown()
    assert router_states(spec, "k") == {}  # no answer: the wait goes on
