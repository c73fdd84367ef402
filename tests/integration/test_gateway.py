"""The gateway (issue 35): real Caddy in front of the whole stack, the one door from the network.

Through the gateway's published address, a non-loopback address of this host (the rig's veth
pair: AIRPODS_TEST_REMOTE_HOST; never a real network): TLS with the stack's CA, every service on
its path, the doors without a lock of their own behind the gateway's credentials, llama.cpp
behind its key; plain HTTP refused; a name the certificate does not carry fails verification;
the services' own ports closed on that address; the CA key private to airpods. As root, the same
from inside the rig's network namespace: a client on another machine. Podman (rootful and
rootless) and Docker."""

from __future__ import annotations

import base64
import json
import os
import shlex
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import eventually

PORT = 8443
SERVICE_PORTS = {"ollama": 11434, "open-webui": 3000, "comfyui": 8188, "llamacpp": 8081}


@pytest.fixture
def remote_host() -> str:
    host = os.environ.get("AIRPODS_TEST_REMOTE_HOST", "")
    assert host, "the rig exports AIRPODS_TEST_REMOTE_HOST (scripts/rig up, as root)"
    return host


def fetch(url: str, ca: Path, *, auth: tuple[str, str] | None = None, key: str | None = None, body: dict | None = None):
    """(status, body bytes) of a request verified against the stack's CA only."""
    context = ssl.create_default_context(cafile=str(ca))
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60, context=context) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def handshake(address: str, name: str, ca: Path) -> None:
    """A TLS handshake with `address`, checking the certificate is valid for `name`."""
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection((address, PORT), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name):
            pass


def refused(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=5).close()
    except OSError:
        return True
    return False


CLIENT = """
import base64, json, socket, ssl, sys, urllib.request, urllib.error
base, ca, user, password, host = sys.argv[1:6]
context = ssl.create_default_context(cafile=ca)
def status(auth):
    request = urllib.request.Request(base + "airpods/ollama/api/tags")
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        return urllib.request.urlopen(request, timeout=30, context=context).status
    except urllib.error.HTTPError as error:
        return error.code
def closed(port):
    try:
        socket.create_connection((host, port), timeout=5).close()
        return False
    except OSError:
        return True
print(json.dumps({"with": status(user + ":" + password), "without": status(""), "closed": closed(11434)}))
"""


def test_the_gateway_is_the_one_door_with_tls_and_a_lock_on_every_service(airpods, engine, model_volume, remote_host):
    airpods.write_config(
        f"""
        [runtime]
        bind_address = "{remote_host}"
        expose = true
        [services.comfyui]
        enabled = true
        [services.gateway]
        enabled = true
        hosts = ["{remote_host}", "ai.test"]
        """
    )
    started = airpods("start")
    assert started.code == 0, started.out + started.err
    assert f"https://{remote_host}:{PORT}/airpods/llamacpp/" in started.out  # start says where others reach it
    # Only the gateway is published beyond loopback.
    beyond = {(address, port) for address, port in airpods.published() if address not in ("127.0.0.1", "")}
    assert beyond == {(remote_host, PORT)}, airpods.published()

    remote = airpods("env", "--remote", "--json")
    assert remote.code == 0, remote.err
    found = remote.json()
    base, ca, key = f"https://{remote_host}:{PORT}/", Path(found["ca_file"]), found["api_key"]
    assert found["base_url"] == base + "airpods/llamacpp/v1"
    credentials = (found["user"], found["password"])
    rows = {row["name"]: row for row in airpods("status", "--json").json()["services"]}
    assert rows["ollama"]["remote_url"] == base + "airpods/ollama/" and rows["open-webui"]["remote_url"] == base

    # Each service answers on its path, with the CA file; the doors without a lock ask for one.
    assert eventually(lambda: fetch(base + "health", ca)[0] == 200, timeout=60)
    assert json.loads(fetch(base + "health", ca)[1]) == {"status": True}  # Open WebUI, at the root
    status, body = fetch(base + "airpods/ollama/api/tags", ca, auth=credentials)
    assert status == 200 and json.loads(body)["models"], body
    status, body = fetch(base + "airpods/comfyui/system_stats", ca, auth=credentials)
    assert status == 200 and json.loads(body)["system"], body
    chat = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "ignore_eos": True}
    status, body = fetch(base + "airpods/llamacpp/v1/chat/completions", ca, key=key, body=chat)
    assert status == 200 and json.loads(body)["usage"]["completion_tokens"] > 0, body
    assert fetch(base + "airpods/ollama/api/tags", ca)[0] == 401
    assert fetch(base + "ollama/api/tags", ca)[0] != 401  # Open WebUI's own path: it answers there, no lock
    assert fetch(base + "airpods/ollama/api/tags", ca, auth=(found["user"], "wrong-password"))[0] == 401
    assert fetch(base + "airpods/comfyui/system_stats", ca)[0] == 401
    assert fetch(base + "airpods/llamacpp/v1/chat/completions", ca, body=chat)[0] == 401
    assert fetch(base + "airpods/llamacpp/v1/chat/completions", ca, key="sk-wrong", body=chat)[0] == 401

    # Plain HTTP is refused; the certificate is valid for the listed names only.
    with pytest.raises(urllib.error.HTTPError) as plain:
        urllib.request.urlopen(f"http://{remote_host}:{PORT}/health", timeout=10)
    assert plain.value.code == 400
    handshake(remote_host, "ai.test", ca)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(remote_host, "unlisted.test", ca)
    with pytest.raises(ssl.SSLCertVerificationError):  # and only with the stack's CA
        with socket.create_connection((remote_host, PORT), timeout=10) as raw:
            ssl.create_default_context().wrap_socket(raw, server_hostname=remote_host)

    # The services' own ports are closed on that address (they listen on loopback alone).
    for name, port in SERVICE_PORTS.items():
        assert refused(remote_host, port), f"{name}'s port {port} answers on {remote_host}"

    # A failed login is logged (status 401), its credentials are not.
    logs = airpods("logs", "gateway", "--lines", "200")
    assert logs.code == 0 and '"status":401' in logs.out.replace(" ", ""), logs.out[-2000:]
    assert found["password"] not in logs.out and "wrong-password" not in logs.out

    # The CA key: 0600 in a 0700 folder, in no container's mounts, inspect, environment or log.
    ca_key = ca.parent / "ca.key"
    assert (ca_key.stat().st_mode & 0o777, ca.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    assert ca.parent.parent.stat().st_mode & 0o777 == 0o700
    marker = ca_key.read_text().splitlines()[1]  # a line of the key's base64 body
    for container in airpods.container_ids():
        shown = airpods.ctr("inspect", container).stdout + airpods.ctr("logs", container).stdout
        assert "ca.key" not in shown and marker not in shown and str(ca.parent) not in shown, container
    places = "/bin /etc /run /tmp /data /config /srv /usr"
    inside = airpods.ctr("exec", "gateway-0", "sh", "-c", f"grep -rlF {shlex.quote(marker)} {places}", check=False)
    assert inside.stdout.strip() == "", inside.stdout

    if os.geteuid() == 0 and (netns := os.environ.get("AIRPODS_TEST_REMOTE_NETNS")):
        # Another machine: a client in the rig's network namespace, the CA file copied to it.
        argv = ["ip", "netns", "exec", netns, sys.executable, "-c", CLIENT, base, str(ca), *credentials, remote_host]
        far = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout)
        assert far == {"with": 200, "without": 401, "closed": True}


def test_a_new_host_name_gets_a_new_certificate_and_the_ca_stays(airpods, engine, remote_host, tmp_path):
    def config(*hosts: str) -> None:
        listed = ", ".join(f'"{h}"' for h in hosts)
        airpods.write_config(
            f"""
            [runtime]
            bind_address = "{remote_host}"
            expose = true
            [services.gateway]
            enabled = true
            hosts = [{listed}]
            """
        )

    config(remote_host)
    assert airpods("start", "ollama", "gateway").code == 0
    trust = airpods("gateway", "trust", "--json").json()
    ca = Path(trust["file"])
    handshake(remote_host, remote_host, ca)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(remote_host, "ai.test", ca)
    config(remote_host, "ai.test")
    again = airpods("start", "ollama", "gateway")
    assert again.code == 0, again.err
    handshake(remote_host, "ai.test", ca)  # the new certificate, from the same CA
    assert airpods("gateway", "trust", "--json").json()["sha256"] == trust["sha256"]
    doctor = airpods("doctor", "--json")
    checks = {c["name"]: c for c in doctor.json()["checks"]}
    assert checks["certificate"]["level"] == "OK" and "ai.test" in checks["certificate"]["detail"]
