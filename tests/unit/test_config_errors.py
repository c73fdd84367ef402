"""Every config problem is one ConfigError: file, key path, what was expected; exit 2, no traceback."""

from __future__ import annotations

import pytest

from tests.unit.helpers import run_cli, write_toml

CASES = [
    pytest.param(
        '[services.ollama.resources]\nmemory = "0m"',
        "services.ollama.resources.memory",
        "a size from 6m",
        id="memory-zero",
    ),
    pytest.param(
        '[[services.comfyui.volumes]]\nsource = "cv"\ntarget = "/m"\nfolders = ["../escape"]',
        "services.comfyui.volumes.0.folders",
        "expected folders inside the volume",
        id="volume-folder-escapes",
    ),
    pytest.param(
        '[[services.comfyui.volumes]]\nsource = "cv"\ntarget = "/m"\nfolders = ["/abs"]',
        "services.comfyui.volumes.0.folders",
        "no leading '/'",
        id="volume-folder-absolute",
    ),
    pytest.param('[services.llamacpp\nimage = "x"', "line 1", "invalid TOML", id="toml-syntax-with-line"),
    pytest.param(
        "[services.ollama]\nimage = 5", "services.ollama.image", "expected a string or a table", id="wrong-type"
    ),
    pytest.param(
        "[services.ollama]\nportz = []", "services.ollama.portz", "did you mean 'ports'", id="unknown-key-did-you-mean"
    ),
    pytest.param(
        '[runtime]\nbind_adress = "0.0.0.0"',
        "runtime.bind_adress",
        "did you mean 'bind_address'",
        id="unknown-runtime-key",
    ),
    pytest.param(
        '[services.ollama.env]\nX = "{{nope}}"',
        "services.ollama.env.X",
        "unknown template name '{{nope}}'",
        id="unknown-template",
    ),
    pytest.param(
        '[services.ollama.env]\nX = "{{services.ollama.ports.7.host}}"',
        "services.ollama.env.X",
        "unknown template name",
        id="unknown-dotted-index",
    ),
    pytest.param('[variables]\na = "{{b}}"\nb = "{{a}}"', "variables.", "template cycle", id="template-cycle"),
    pytest.param(
        '[services.fast]\nextends = "llamacpp"',
        "services.fast.ports.0.host",
        "host port 8081 is already used by services.llamacpp",
        id="duplicate-host-port",
    ),
    pytest.param(
        '[services.fast]\nextends = "llama"\nimage = "x"',
        "services.fast.extends",
        "unknown service 'llama'",
        id="extends-unknown",
    ),
    pytest.param(
        '[services.a]\nextends = "b"\n[services.b]\nextends = "a"', "extends", "extends cycle", id="extends-cycle"
    ),
    pytest.param(
        "[services.llamacpp.command_args]\nrope = { a = 1 }",
        "services.llamacpp.command_args.rope",
        "a table is not a flag value",
        id="command-args-table",
    ),
    pytest.param(
        '[services.ollama.health]\nexpected_status = "2xx"',
        "services.ollama.health.expected_status",
        "200-299",
        id="bad-status",
    ),
    pytest.param(
        '[services.ollama]\nvolumes = [{ source = "vol", target = "data" }]',
        "services.ollama.volumes.0.target",
        "absolute path",
        id="relative-target",
    ),
    pytest.param(
        '[runtime]\nbind_address = "localhost:80"', "runtime.bind_address", "IP address", id="bad-bind-address"
    ),
    pytest.param("[services.x]\nports = []", "services.x.image", "missing", id="missing-image"),
    pytest.param(
        '[services.ollama]\nresources = { memory = "lots" }', "services.ollama.resources.memory", "8g", id="bad-memory"
    ),
    pytest.param(
        '[services.ollama.image]\ntpu = "x"',
        "services.ollama.image.tpu",
        "expected an image variant: cpu, cuda, cuda-X.Y",
        id="unknown-variant",
    ),
    pytest.param(
        "[services.ollama]\nports = [{ host = 80000, container = 1 }]",
        "services.ollama.ports.0.host",
        "65535",
        id="port-range",
    ),
    pytest.param('[services.x]\nimage = { cuda = "a" }', "services.x.image", "'cpu' entry", id="variants-need-cpu"),
    # Found by a corpus of bad configs: an empty image was accepted and failed inside podman.
    pytest.param(
        '[services.ollama]\nimage = ""', "services.ollama.image", "expected an image reference", id="empty-image"
    ),
    pytest.param(
        '[services.ollama]\nimage = "Ollama/Ollama:latest"',
        "services.ollama.image",
        "got 'Ollama/Ollama:latest'",
        id="uppercase-image",
    ),
    pytest.param(
        '[services.ollama]\nimage = "ollama/ollama latest"',
        "services.ollama.image",
        "image reference",
        id="image-with-space",
    ),
    pytest.param(
        '[services.ollama.image]\ncpu = "ok/ok"\ncuda = ""',
        "services.ollama.image.cuda",
        "image reference",
        id="empty-variant-image",
    ),
    pytest.param(
        '[services.ollama]\nvolumes = [{ source = "", target = "/d" }]',
        "services.ollama.volumes.0.source",
        "named volume",
        id="empty-volume-source",
    ),
    pytest.param(
        '[services.ollama]\nvolumes = [{ source = "data/models", target = "/d" }]',
        "services.ollama.volumes.0.source",
        "./ or ../ relative",
        id="relative-folder-without-dot",
    ),
    pytest.param(
        '[services.ollama]\nvolumes = [{ source = "x", target = "/d" }]',
        "services.ollama.volumes.0.source",
        "two or more",
        id="one-letter-volume",
    ),
    pytest.param(
        '[services.ollama]\nvolumes = [{ source = "my volume", target = "/d" }]',
        "services.ollama.volumes.0.source",
        "named volume",
        id="volume-with-space",
    ),
    pytest.param('[runtime]\nproject = "My Stack"', "runtime.project", "DNS label", id="bad-project"),
    pytest.param(f'[runtime]\nproject = "{"p" * 60}"', "runtime.project", "longer than 63", id="long-project"),
    pytest.param(
        "[services.ollama]\nnetwork_aliases = []", "services.ollama.network_aliases", "at least 1", id="no-alias"
    ),
    pytest.param(
        '[services.ollama]\nvolumes = [{ source = "aa", target = "/x", size = "0" }]',
        "services.ollama.volumes.0.size",
        "above zero",
        id="zero-size",
    ),
    pytest.param(
        '[services.llama-big]\nextends = "llamacpp"\nports = [{ host = 8090, container = 8080 }]\n'
        'volumes = [{ source = "airpods_llamacpp_models", target = "/models", mode = "ro", size = "200Gi" }]',
        "services.llama-big.volumes.0.size",
        "sized 200Gi here and 50Gi",
        id="conflicting-sizes",
    ),
    # Valid for podman, rejected by kubectl: names are DNS labels from the start (RFC 1035).
    pytest.param(
        '[services.llama_big]\nextends = "llamacpp"\nports = []',
        "services.llama_big",
        "DNS label",
        id="underscore-name",
    ),
    pytest.param(
        '[services.7b]\nextends = "llamacpp"\nports = []', "services.7b", "starting with a letter", id="digit-name"
    ),
    pytest.param(
        '[services."llama.fast"]\nextends = "llamacpp"\nports = []',
        'services."llama.fast"',  # quoted as TOML writes it; attributed to the user's file
        "DNS label",
        id="dotted-name",
    ),
    pytest.param(
        '[services.ollama]\nnetwork_aliases = ["My-Ollama"]',
        "services.ollama.network_aliases.0",
        "DNS label",
        id="alias-uppercase",
    ),
    pytest.param(
        '[services.ollama]\nvolumes = [{ source = "aa", target = "/x" }, { source = "bb", target = "/x/" }]',
        "services.ollama.volumes",
        "two volumes mount at /x",
        id="duplicate-mount-target",
    ),
    pytest.param(
        '[services.ollama]\nvolumes = [{ source = "/tmp/q:/root", target = "/x" }]',
        "services.ollama.volumes.0.source",
        "':'",
        id="colon-in-host-path",
    ),
    pytest.param(
        '[services.ollama]\nvolumes = [{ source = "aa", target = "/x:ro" }]',
        "services.ollama.volumes.0.target",
        "without ':'",
        id="colon-in-target",
    ),
    pytest.param(
        '[services.ollama]\nnetwork_aliases = ["llamacpp"]',
        "services.",
        "network alias llamacpp is already used",
        id="duplicate-alias",
    ),
    pytest.param(
        '[services.ollama]\ncontainer = "open-webui-0"',
        "services.",
        "pod/container name open-webui-0 is already used",
        id="duplicate-container",
    ),
]


@pytest.mark.parametrize("text, key, words", CASES)
def test_config_errors_exit_2_with_file_key_and_expectation(tmp_path, capsys, text, key, words):
    path = write_toml(tmp_path, text)
    result = run_cli(capsys, "config", "validate", str(path))
    assert result.code == 2, result
    assert result.out == ""
    assert str(path) in result.err
    assert key in result.err
    assert words in result.err
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) <= 3


def test_same_error_through_start_dry_run_and_global_config_flag(tmp_path, capsys):
    path = write_toml(tmp_path, "[services.ollama]\nportz = []")
    result = run_cli(capsys, "--config", str(path), "start", "--dry-run")
    assert result.code == 2 and "services.ollama.portz" in result.err


def test_debug_shows_the_traceback_and_keeps_the_config_errors_exit_status(tmp_path, capsys):
    from tests.unit.helpers import run_cli, write_toml

    config = write_toml(tmp_path, "[services.ollama]\nenabled = 3\n")
    done = run_cli(capsys, "--debug", "-c", str(config), "config", "validate")
    assert done.code == 2 and "Traceback" in done.err and "services.ollama.enabled" in done.err, done.err
