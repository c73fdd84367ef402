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
        ("ollama", "/airpods/ollama/", True),  # not /ollama/: Open WebUI's own Ollama proxy is there
        ("open-webui", "/", False),
        ("llamacpp", "/airpods/llamacpp/", False),
        ("comfyui", "/airpods/comfyui/", True),
    ]  # a second Open WebUI works at the root of an address only: no route
    text = caddyfile(found, 8443, ("ai.home",))
    assert "default_sni ai.home" in text and "auto_https off" in text and "admin off" in text
    assert "protocols h1 h2" in text  # no HTTP/3 on a UDP port nobody published
    blocks = {block.split(" ")[0]: block for block in text.split("\thandle_path ")[1:]}
    ollama, comfy, llama = (blocks[f"/airpods/{name}/*"] for name in ("ollama", "comfyui", "llamacpp"))
    assert "basic_auth" in ollama and "reverse_proxy ollama:11434" in ollama and "basic_auth" in comfy
    assert "basic_auth" not in llama and "reverse_proxy llamacpp:8080" in llama
    assert "redir /airpods/ollama /airpods/ollama/ 308" in text
    assert "{$AIRPODS_GATEWAY_AUTH}" in text  # the hash comes from a secret, never the file itself
    assert "request>headers delete" in text  # no credential reaches the access log (X-Api-Key included)


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
    paths = {name: f"/airpods/{name}/" for name in ("ollama", "llamacpp", "comfyui")} | {"open-webui": "/"}
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
    assert gateway_urls(stack)["llamacpp"] == "https://ai.home:8443/airpods/llamacpp/"


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
    assert found["base_url"] == "https://ai.home:8443/airpods/llamacpp/v1" and found["api_key"].startswith("sk-")
    assert found["urls"]["ollama"] == "https://ai.home:8443/airpods/ollama/" and found["user"] == "airpods"
    from pathlib import Path

    ca = Path(found["ca_file"])
    assert stat.S_IMODE(ca.parent.stat().st_mode) == 0o700 == stat.S_IMODE(ca.parent.parent.stat().st_mode)
    assert stat.S_IMODE((ca.parent / "password").stat().st_mode) == 0o600
    shell = run_cli(capsys, "-c", str(config), "env", "--remote")
    assert f"export AIRPODS_GATEWAY_PASSWORD={found['password']}" in shell.out
    assert "export OPENAI_BASE_URL=https://ai.home:8443/airpods/llamacpp/v1" in shell.out
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


# What a reviewer broke (issue 35's fault hunt): each case a test.


def gateway_files(tmp_path, capsys, text: str = GATEWAY_ON):
    """Make the gateway's files (as `start` does, through `env --remote`); (config, folder)."""
    import json
    from pathlib import Path

    config = str(write_toml(tmp_path, text))
    done = run_cli(capsys, "-c", config, "env", "--remote", "--json")
    assert done.code == 0, done.err
    return config, Path(json.loads(done.out)["ca_file"]).parent


def test_an_empty_password_file_gets_a_new_password_never_an_empty_one(tmp_path, capsys):
    import bcrypt

    config, folder = gateway_files(tmp_path, capsys)
    (folder / "password").write_text("  \n")
    again = run_cli(capsys, "-c", config, "env", "--remote")
    assert again.code == 0, again.err
    made = (folder / "password").read_text().strip()
    assert len(made) >= 40 and "AIRPODS_GATEWAY_PASSWORD=''" not in again.out
    assert not bcrypt.checkpw(b"", (folder / "auth.bcrypt").read_bytes().strip())
    (folder / "password").write_text("short\n")
    refused = run_cli(capsys, "-c", config, "env", "--remote")
    assert refused.code == 1 and "shorter than 16" in refused.err and "Traceback" not in refused.err


@pytest.mark.parametrize("damage", ["empty", "garbage", "folder"])
@pytest.mark.parametrize("name", ["server.crt", "server.key", "auth.bcrypt", "ca.crt"])
def test_a_damaged_derived_file_is_made_again_and_the_ca_key_kept(tmp_path, capsys, name, damage):
    import shutil

    config, folder = gateway_files(tmp_path, capsys)
    ca_key = (folder / "ca.key").read_bytes()
    path = folder / name
    path.unlink()
    if damage == "folder":
        path.mkdir()
    else:
        path.write_text(
            "" if damage == "empty" else "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
        )
    again = run_cli(capsys, "-c", config, "env", "--remote")
    if damage == "folder":  # a folder where a file goes: said with the next step, never an internal error
        assert again.code == 1 and name in again.err and "internal error" not in again.err, again.err
        shutil.rmtree(path)
        again = run_cli(capsys, "-c", config, "env", "--remote")
    assert again.code == 0, again.err
    assert (folder / "ca.key").read_bytes() == ca_key  # the CA clients trust is kept
    verify(folder, "ai.home")
    doctor = run_cli(capsys, "-c", config, "doctor", "--json")
    assert "internal error" not in doctor.err


def test_a_damaged_ca_key_is_never_replaced_and_says_what_to_do(tmp_path, capsys):
    config, folder = gateway_files(tmp_path, capsys)
    (folder / "ca.key").write_text("garbage\n")
    done = run_cli(capsys, "-c", config, "env", "--remote")
    assert done.code == 1 and "CA key" in done.err and "restore it" in done.err, done.err
    assert (folder / "ca.key").read_text() == "garbage\n"
    trust = run_cli(capsys, "-c", config, "gateway", "trust")
    assert trust.code in (0, 1) and "internal error" not in trust.err


def test_a_lost_ca_certificate_is_issued_again_for_the_same_key_so_clients_keep_trusting(tmp_path, capsys):
    config, folder = gateway_files(tmp_path, capsys)
    old_ca = (folder / "ca.crt").read_text()
    (folder / "ca.crt").unlink()
    ca_key = (folder / "ca.key").read_bytes()
    from airpods.gpu import HostGpu
    from airpods.stack.resolve import resolve_stack

    stack = resolve_stack(config, (), gpu=HostGpu("none"), ensure_key=True)
    assert any("issued the gateway's CA certificate again" in w for w in stack.warnings), stack.warnings
    assert (folder / "ca.key").read_bytes() == ca_key and (folder / "ca.crt").read_text() != old_ca
    (folder / "ca.crt").write_text(old_ca)  # a client that trusted the CA before verifies the server
    verify(folder, "ai.home")


def test_the_gateway_folder_is_no_link_and_its_private_files_stay_0600(tmp_path, capsys):
    config, folder = gateway_files(tmp_path, capsys)
    (folder / "ca.key").chmod(0o644)
    assert run_cli(capsys, "-c", config, "env", "--remote").code == 0
    assert stat.S_IMODE((folder / "ca.key").stat().st_mode) == 0o600
    elsewhere = tmp_path / "shared"
    elsewhere.mkdir()
    elsewhere.chmod(0o777)
    folder.rename(tmp_path / "moved")
    folder.symlink_to(elsewhere)
    done = run_cli(capsys, "-c", config, "env", "--remote")
    assert done.code == 1 and "symbolic link" in done.err
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o777 and not (elsewhere / "ca.key").exists()


def own_pki(tmp_path, hosts=("ai.home",), days=30):
    """A CA of the user's and a certificate for `hosts` valid `days` (negative: expired)."""
    folder = tmp_path / "pki"
    made = tls.ensure(folder, "mine", tuple(hosts))
    if days < 0:
        import datetime as dt

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization

        key = serialization.load_pem_private_key((folder / tls.CA_KEY).read_bytes(), None)
        server_key = serialization.load_pem_private_key((folder / tls.SERVER_KEY).read_bytes(), None)
        now = dt.datetime.now(dt.UTC)
        old = (
            x509.CertificateBuilder()
            .subject_name(x509.load_pem_x509_certificate((folder / tls.SERVER_CERT).read_bytes()).subject)
            .issuer_name(x509.load_pem_x509_certificate((folder / tls.CA_CERT).read_bytes()).subject)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=400))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(tls.san_entries(tuple(hosts))), critical=False)
            .sign(key, hashes.SHA256())
        )
        (folder / tls.SERVER_CERT).write_bytes(old.public_bytes(serialization.Encoding.PEM))
    assert made.made
    return folder / tls.SERVER_CERT, folder / tls.SERVER_KEY


@pytest.mark.parametrize(
    "case, field, said",
    [
        ("not-pem", "certificate", "not a PEM certificate"),
        ("swapped", "certificate", "swapped"),
        ("other-key", "key", "not the key of the certificate"),
        ("expired", "certificate", "expired"),
        ("other-host", "certificate", "does not name ai.home"),
        ("key-not-pem", "key", "not an unencrypted PEM private key"),
    ],
)
def test_your_own_certificate_is_checked_before_caddy_gets_it(tmp_path, capsys, case, field, said):
    cert, key = own_pki(
        tmp_path, hosts=("other.home",) if case == "other-host" else ("ai.home",), days=-1 if case == "expired" else 30
    )
    if case == "not-pem":
        cert.write_text("garbage\n")
    elif case == "swapped":
        cert, key = key, cert
    elif case == "other-key":
        key.write_bytes((tmp_path / "pki" / tls.CA_KEY).read_bytes())
    elif case == "key-not-pem":
        key.write_text("garbage\n")
    text = GATEWAY_ON + f'tls = {{ certificate = "file:{cert}", key = "file:{key}" }}\n'
    config = str(write_toml(tmp_path, text))
    done = run_cli(capsys, "-c", config, "env", "--remote")
    assert done.code == 2 and f"services.gateway.tls.{field}" in done.err and said in done.err, done.err
    assert "Traceback" not in done.err
    doctor = run_cli(capsys, "-c", config, "doctor", "--json")
    assert said in doctor.out


def test_your_own_certificate_that_serves_passes_and_covers_a_wildcard(tmp_path, capsys):
    cert, key = own_pki(tmp_path, hosts=("*.home", "192.0.2.10"))
    text = GATEWAY_ON + f'tls = {{ certificate = "file:{cert}", key = "file:{key}" }}\n'
    done = run_cli(capsys, "-c", str(write_toml(tmp_path, text)), "env", "--remote", "--json")
    assert done.code == 0, done.err
    import json

    assert json.loads(done.out)["ca_file"] is None  # the user's own CA: nothing of airpods' to trust


@pytest.mark.parametrize(
    "text, where, said",
    [
        ('[services.gateway]\nhosts = ["fe80::1%eth0"]\n', "services.gateway.hosts", "IPv6 zone"),
        ('[services.gateway]\nhosts = ["1.2.3"]\n', "services.gateway.hosts", "IPv4 address"),
        ('[services.gateway]\nhosts = ["192.0.2.010"]\n', "services.gateway.hosts", "IPv4 address"),
        ('[services.gateway]\nhosts = ["0.0.0.0"]\n', "services.gateway.hosts", "not an address a client"),
        ('[services.ollama]\nhosts = ["ai.home"]\n', "services.ollama.hosts", "gateway's setting"),
        ("[services.gateway]\nenabled = true\nports = []\n", "services.gateway.ports", "publishes one port"),
        (
            '[services.gateway]\nenabled = true\n[services.gw2]\nextends = "gateway"\nenabled = true\n'
            "ports = [{ host = 9443, container = 9443 }]\n",
            "services.gw2.enabled",
            "one gateway per stack",
        ),
    ],
)
def test_gateway_settings_that_cannot_work_are_config_errors(tmp_path, capsys, text, where, said):
    done = run_cli(capsys, "-c", str(write_toml(tmp_path, text)), "config", "validate")
    assert done.code == 2 and where in done.err and said in done.err and "Traceback" not in done.err, done.err


def test_a_bad_gateway_class_is_a_usage_error(tmp_path, capsys):
    config = str(write_toml(tmp_path, GATEWAY_ON))
    out = str(tmp_path / "k.yaml")
    done = run_cli(
        capsys, "-c", config, "export", "kube", "--target", "kubernetes", "--gateway-class", "Bad Class!", "-o", out
    )
    assert done.code == 2 and "not a Kubernetes object name" in done.err


def test_old_gateway_secrets_are_pruned_once_it_runs_with_new_ones(tmp_path):
    from airpods.plan import Observed, prune_steps

    stack = stack_of(tmp_path, GATEWAY_ON)
    gateway = next(spec for spec in stack.services if spec.name == "gateway")
    current = next(use.name for use in gateway.secrets if use.target.endswith("server.key"))
    stale = current.rsplit("-", 1)[0] + "-0123456789ab"
    observed = Observed(secrets=frozenset({current, stale}), secret_projects={current: "airpods", stale: "airpods"})
    steps = [step for step in prune_steps(stack, observed) if step.target == "gateway"]
    assert steps and stale in str(steps[0]) and current not in str(steps[0]).replace(stale, "")


def test_the_quadlet_gateway_is_healthy_on_the_answer_its_tls_port_gives_plain_http(tmp_path):
    from airpods.export.quadlet import quadlet_units

    units = quadlet_units(stack_of(tmp_path, GATEWAY_ON))
    unit = units["gateway-0.container"]
    assert "http://127.0.0.1:8443/" in unit and "HTTP/1.[01] (400) " in unit


def test_doctor_checks_each_port_where_it_is_published_ipv6_in_brackets(tmp_path, capsys):
    import json

    text = '[runtime]\nbind_address = "::1"\n[services.gateway]\nenabled = true\nhosts = ["::1"]\n'
    done = run_cli(capsys, "-c", str(write_toml(tmp_path, text)), "doctor", "--json")
    ports = [c["detail"] for c in json.loads(done.out)["checks"] if c["name"] == "port"]
    assert any(d.startswith("[::1]:8443 (gateway)") for d in ports), ports
    assert any(d.startswith("127.0.0.1:11434 (ollama)") for d in ports), ports


def test_a_kubernetes_gateway_needs_the_names_its_clients_use(tmp_path, capsys):
    text = GATEWAY_ON.replace('hosts = ["ai.home", "192.0.2.10"]\n', "")
    out = str(tmp_path / "k.yaml")
    args = ("export", "kube", "--target", "kubernetes", "--gateway-class", "nginx", "-o", out)
    done = run_cli(capsys, "-c", str(write_toml(tmp_path, text)), *args)
    assert done.code == 2 and "services.gateway.hosts is not set" in done.err, done.err
