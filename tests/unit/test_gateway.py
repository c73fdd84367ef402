"""The gateway's pure parts (issue 35): routes and Caddyfile, the stack's CA and server
certificate (made, kept, renewed), what clients are told, the config fields and the wiring."""

from __future__ import annotations

import datetime
import ssl
import stat

import pytest

from airpods.gateway import tls
from airpods.gateway.caddy import caddyfile, routes
from tests.unit.helpers import run_cli, stack_of, write_toml

GATEWAY_ON = """
[runtime]
bind_address = "192.0.2.10"
expose = true
[services.comfyui]
enabled = true
[services.gateway]
enabled = true
hosts = ["ai.home", "192.0.2.10"]
"""


def test_open_webui_takes_the_root_and_every_other_service_its_own_path_with_a_lock_where_it_has_none():
    found = routes(
        [
            ("ollama", "ollama", "ollama", 11434),
            ("open-webui", "open-webui", "open-webui", 8080),
            ("webui-2", "open-webui", "webui-2", 8080),
            ("llamacpp", "llamacpp", "llamacpp", 8080),
            ("comfyui", "comfyui", "comfyui", 8188),
        ]
    )
    assert [(r.service, r.prefix, r.guarded) for r in found] == [
        ("ollama", "/ollama/", True),
        ("open-webui", "/", False),
        ("webui-2", "/webui-2/", False),
        ("llamacpp", "/llamacpp/", False),
        ("comfyui", "/comfyui/", True),
    ]
    text = caddyfile(found, 8443, ("ai.home",))
    assert "default_sni ai.home" in text and "auto_https off" in text and "admin off" in text
    assert "protocols h1 h2" in text  # no HTTP/3 on a UDP port nobody published
    blocks = {block.split(" ")[0]: block for block in text.split("\thandle_path ")[1:]}
    assert "basic_auth" in blocks["/ollama/*"] and "reverse_proxy ollama:11434" in blocks["/ollama/*"]
    assert "basic_auth" in blocks["/comfyui/*"]
    assert "basic_auth" not in blocks["/llamacpp/*"] and "reverse_proxy llamacpp:8080" in blocks["/llamacpp/*"]
    assert "redir /ollama /ollama/ 308" in text
    assert "{$AIRPODS_GATEWAY_AUTH}" in text  # the hash comes from a secret, never the file itself


def test_a_gateway_with_nothing_at_its_root_says_so():
    text = caddyfile(routes([("ollama", "ollama", "ollama", 11434)]), 8443, ("ai.home",))
    assert 'respond "airpods gateway: no service here' in text and "404" in text


def verify(folder, name: str) -> None:
    """Verify the server certificate's chain against the CA and `name`, as a client does."""
    context = ssl.create_default_context(cafile=str(folder / tls.CA_CERT))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname=name)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(folder / tls.SERVER_CERT, folder / tls.SERVER_KEY)
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_context.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(outgoing.read())
        incoming.write(s_out.read())
    client.do_handshake()


def test_the_ca_signs_a_certificate_for_exactly_the_listed_names_and_keeps_its_keys_private(tmp_path):
    folder = tmp_path / "gateway"
    made = tls.ensure(folder, "airpods", ("ai.home", "192.0.2.10"))
    assert made.made and made.hosts == ("ai.home", "192.0.2.10")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / tls.CA_KEY).stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / tls.SERVER_KEY).stat().st_mode) == 0o600
    verify(folder, "ai.home")
    verify(folder, "192.0.2.10")
    with pytest.raises(ssl.SSLCertVerificationError):
        verify(folder, "other.home")
    days = (made.not_after - datetime.datetime.now(datetime.UTC)).days
    assert tls.SERVER_DAYS - 1 <= days <= tls.SERVER_DAYS


def test_the_certificate_is_kept_while_it_holds_and_made_again_for_new_names_a_near_end_or_a_new_ca(
    tmp_path, monkeypatch
):
    folder = tmp_path / "gateway"
    first = tls.ensure(folder, "airpods", ("ai.home",))
    ca = (folder / tls.CA_CERT).read_bytes()
    assert not tls.ensure(folder, "airpods", ("ai.home",)).made
    assert tls.ensure(folder, "airpods", ("ai.home", "ai.lan")).made  # a new name
    assert (folder / tls.CA_CERT).read_bytes() == ca  # the CA clients trust stays
    later = first.not_after - datetime.timedelta(days=tls.RENEW_BEFORE_DAYS - 1)
    monkeypatch.setattr(tls, "_now", lambda: later)
    renewed = tls.ensure(folder, "airpods", ("ai.home", "ai.lan"))
    assert renewed.made and renewed.not_after > first.not_after
    monkeypatch.undo()
    (folder / tls.CA_KEY).unlink()  # a CA made again signs anew: the old certificate is not its
    (folder / tls.CA_CERT).unlink()
    assert tls.ensure(folder, "airpods", ("ai.home", "ai.lan")).made
    verify(folder, "ai.lan")


def test_only_the_gateway_is_published_beyond_loopback_and_it_gets_its_files_as_secrets(tmp_path):
    stack = stack_of(tmp_path, GATEWAY_ON)
    published = {spec.name: {p.host_ip for p in spec.publish} for spec in stack.services}
    assert published.pop("gateway") == {"192.0.2.10"}
    assert set().union(*published.values()) == {"127.0.0.1"}
    gateway = next(spec for spec in stack.services if spec.name == "gateway")
    assert gateway.hosts == ("ai.home", "192.0.2.10")
    paths = {"ollama": "/ollama/", "open-webui": "/", "llamacpp": "/llamacpp/", "comfyui": "/comfyui/"}
    assert dict(gateway.routes) == paths
    uses = {(use.type, use.target) for use in gateway.secrets}
    assert uses == {
        ("mount", "/run/airpods-gateway/server.crt"),
        ("mount", "/run/airpods-gateway/server.key"),
        ("env", "AIRPODS_GATEWAY_AUTH"),
    }
    env = dict(gateway.env)
    assert "AIRPODS_GATEWAY_AUTH" not in env and "BEGIN" not in env["AIRPODS_CADDYFILE"]
    from airpods.stack.exposure import exposed, gateway_urls

    assert [(e.service, e.open) for e in exposed(stack)] == [("gateway", False)]
    assert gateway_urls(stack)["llamacpp"] == "https://ai.home:8443/llamacpp/"


def test_users_own_certificate_replaces_the_cas(tmp_path):
    text = GATEWAY_ON + 'tls = { certificate = "file:/etc/ssl/ai.crt", key = "env:AI_KEY" }\n'
    stack = stack_of(tmp_path, text)
    sources = {d.source for d in stack.secrets}
    assert {"file:/etc/ssl/ai.crt", "env:AI_KEY"} <= sources
    assert not any(s.endswith(("server.crt", "server.key")) and s.startswith("state:") for s in sources)
    from airpods.gateway.clients import own_certificate

    assert own_certificate(stack)


@pytest.mark.parametrize(
    "text, where",
    [
        ('[services.gateway]\nhosts = ["ai home"]\n', "services.gateway.hosts"),
        ('[services.gateway]\nhosts = ["-bad.home"]\n', "services.gateway.hosts"),
        ('[services.gateway]\nhosts = ["a..b"]\n', "services.gateway.hosts"),
        ('[services.gateway]\ntls = { certificate = "/etc/ssl/a.crt", key = "file:/k" }\n', "services.gateway.tls"),
        ('[services.gateway]\ntls = { certificate = "file:/etc/ssl/a.crt" }\n', "services.gateway.tls"),
    ],
)
def test_bad_hosts_and_tls_sources_are_config_errors(tmp_path, capsys, text, where):
    done = run_cli(capsys, "-c", str(write_toml(tmp_path, text)), "config", "validate")
    assert done.code == 2 and where in done.err and "Traceback" not in done.err, done.err


def test_trust_before_start_says_start_makes_the_ca(tmp_path, capsys):
    config = write_toml(tmp_path, GATEWAY_ON)
    done = run_cli(capsys, "-c", str(config), "gateway", "trust")
    assert done.code == 1 and "not made yet" in done.err and "airpods start" in done.err


def test_env_remote_without_a_gateway_says_how_to_enable_it(tmp_path, capsys):
    done = run_cli(capsys, "-c", str(write_toml(tmp_path, "")), "env", "--remote")
    assert done.code == 2 and "no gateway is enabled" in done.err and "services.gateway" in done.err


def test_env_remote_and_trust_tell_a_client_everything_and_the_state_folder_stays_private(tmp_path, capsys):
    import json

    config = write_toml(tmp_path, GATEWAY_ON)
    done = run_cli(capsys, "-c", str(config), "env", "--remote", "--json")
    assert done.code == 0, done.err
    found = json.loads(done.out)
    assert found["base_url"] == "https://ai.home:8443/llamacpp/v1" and found["api_key"].startswith("sk-")
    assert found["urls"]["ollama"] == "https://ai.home:8443/ollama/" and found["user"] == "airpods"
    from pathlib import Path

    ca = Path(found["ca_file"])
    assert stat.S_IMODE(ca.parent.stat().st_mode) == 0o700 == stat.S_IMODE(ca.parent.parent.stat().st_mode)
    assert stat.S_IMODE((ca.parent / "password").stat().st_mode) == 0o600
    shell = run_cli(capsys, "-c", str(config), "env", "--remote")
    assert f"export AIRPODS_GATEWAY_PASSWORD={found['password']}" in shell.out
    assert "export OPENAI_BASE_URL=https://ai.home:8443/llamacpp/v1" in shell.out
    trust = run_cli(capsys, "-c", str(config), "gateway", "trust")
    assert trust.code == 0 and "update-ca-certificates" in trust.out and "certutil" in trust.out
    assert "SSL_CERT_FILE=airpods-ca.crt" in trust.out
    pem = run_cli(capsys, "-c", str(config), "gateway", "trust", "--pem")
    assert pem.out == ca.read_text()


def test_a_network_address_without_expose_is_refused_and_names_what_it_would_publish(tmp_path, capsys):
    text = GATEWAY_ON.replace("expose = true\n", "")
    done = run_cli(capsys, "-c", str(write_toml(tmp_path, text)), "config", "validate")
    assert done.code == 2 and "runtime.bind_address" in done.err and "publishes the gateway" in done.err, done.err
    bare = run_cli(
        capsys, "-c", str(write_toml(tmp_path, '[runtime]\nbind_address = "192.0.2.10"\n')), "config", "validate"
    )
    assert bare.code == 2 and "every service, Ollama and ComfyUI without any authentication" in bare.err


def test_start_renews_a_certificate_near_its_end_and_the_gateway_gets_it_as_a_new_secret(tmp_path, monkeypatch):
    from airpods.gpu import HostGpu
    from airpods.stack.resolve import resolve_stack

    config = write_toml(tmp_path, GATEWAY_ON)

    def certificate_secret() -> str:
        stack = resolve_stack(config, (), gpu=HostGpu("none"), ensure_key=True)
        gateway = next(spec for spec in stack.services if spec.name == "gateway")
        return next(use.name for use in gateway.secrets if use.target.endswith("server.crt"))

    first = certificate_secret()
    assert certificate_secret() == first  # nothing to renew: the same secret, no recreation
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=tls.SERVER_DAYS - tls.RENEW_BEFORE_DAYS + 1)
    monkeypatch.setattr(tls, "_now", lambda: later)
    assert certificate_secret() != first
