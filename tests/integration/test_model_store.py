"""Models land where the containers see them (issue 18): a plain named volume, a named volume
bound to another disk, a tmpfs volume, a host folder. Each is read back through a container and
through the served /v1/models; a bad file in the store is one row in `models list`."""

from __future__ import annotations

import openai

from tests.integration.conftest import openai_env, podman

SERVER = "ghcr.io/ggml-org/llama.cpp:server"


def _seen_by_a_container(mount: str) -> str:
    podman("pull", "-q", SERVER)
    return podman("run", "--rm", "-v", f"{mount}:/m:ro", "--entrypoint", "ls", SERVER, "/m").stdout


def _served(airpods) -> list[str]:
    assert airpods("start", "llamacpp").code == 0
    env = openai_env(airpods)
    return [
        m.id for m in openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"]).models.list().data
    ]


def test_a_volume_bound_to_another_disk_gets_the_model(airpods, tiny_model, tmp_path):
    """`--opt type=none --opt o=bind --opt device=DIR`: models used to land in the volume's own
    folder under podman's storage, hidden from every container by the bind."""
    disk = tmp_path / "big-disk"
    disk.mkdir()
    podman(
        "volume",
        "create",
        "--opt",
        "type=none",
        "--opt",
        "o=bind",
        "--opt",
        f"device={disk}",
        "airpods_llamacpp_models",
    )
    imported = airpods("models", "import", str(tiny_model))
    assert imported.code == 0, imported.err
    assert (disk / "tiny.gguf").is_file()  # on the disk the user chose
    assert "tiny.gguf" in _seen_by_a_container("airpods_llamacpp_models")
    assert "tiny" in _served(airpods)
    assert [r["name"] for r in airpods("models", "list", "--json").json()["models"]] == ["tiny"]


def test_a_tmpfs_volume_is_refused_rather_than_losing_the_model(airpods, tiny_model):
    """Each mount of a tmpfs volume starts empty: an import used to say "imported" and the model
    was gone (seen in a trial)."""
    podman("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "airpods_llamacpp_models")
    imported = airpods("models", "import", str(tiny_model))
    assert imported.code == 1 and "is a tmpfs" in imported.err and "bind device" in imported.err, imported.err
    assert "internal error" not in imported.err
    started = airpods("start", "llamacpp")  # the server itself still starts (on an empty tmpfs)
    assert started.code == 0, started.err


def test_a_host_folder_is_a_model_store(airpods, tiny_model, tmp_path):
    """`volumes = [{source = "/srv/models", target = "/models"}]`: every models command used to
    say no llama.cpp service mounts a named model volume."""
    folder = tmp_path / "my-models"
    folder.mkdir()
    airpods.write_config(
        f'[services.llamacpp]\nvolumes = [{{ source = "{folder}", target = "/models", mode = "ro" }}]\n'
    )
    imported = airpods("models", "import", str(tiny_model), "--name", "mine")
    assert imported.code == 0, imported.err
    assert (folder / "mine.gguf").is_file()
    assert "mine.gguf" in _seen_by_a_container(str(folder))
    assert "mine" in _served(airpods)
    listed = airpods("models", "list", "--json")
    assert listed.code == 0 and [r["name"] for r in listed.json()["models"]] == ["mine"]
    assert airpods("models", "rm", "mine", "--yes").code == 0 and not (folder / "mine.gguf").exists()


def test_one_bad_file_is_one_row_and_the_rest_list(airpods, tiny_model, tmp_path):
    folder = tmp_path / "store"
    folder.mkdir()
    (folder / "tiny.gguf").write_bytes(tiny_model.read_bytes())
    (folder / "broken.gguf").write_text("not a model")
    (folder / "cut.gguf").write_bytes(tiny_model.read_bytes()[:300])
    airpods.write_config(
        f'[services.llamacpp]\nvolumes = [{{ source = "{folder}", target = "/models", mode = "ro" }}]\n'
    )
    listed = airpods("models", "list", "--json")
    assert listed.code == 0, listed.err
    rows = {r["name"]: r for r in listed.json()["models"]}
    assert rows["tiny"]["problem"] is None and rows["tiny"]["architecture"] == "llama"
    assert "not a GGUF model" in rows["broken"]["problem"] and "truncated" in rows["cut"]["problem"]
    table = airpods("models", "list")
    assert table.code == 0 and "broken [" in table.out and "tiny" in table.out


def test_a_link_leaving_a_host_folder_store_is_flagged_and_removed_as_a_link(airpods, tiny_model, tmp_path):
    """`models list` showed such a model as healthy, /v1/models listed neither it nor a reason,
    and `models rm` ended in "internal error: Cannot call rmtree on a symbolic link"."""
    folder, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (elsewhere / "model.gguf").write_bytes(tiny_model.read_bytes())
    (folder / "qwen").symlink_to(elsewhere)
    (folder / "tiny.gguf").write_bytes(tiny_model.read_bytes())
    airpods.write_config(f'[services.llamacpp]\nvolumes = [{{ source = "{folder}", target = "/models" }}]\n')
    started = airpods("start", "llamacpp")
    assert started.code == 0, started.err
    assert f"model qwen: not visible inside the container: qwen is a link to {elsewhere}" in started.out
    listed = {r["name"]: r for r in airpods("models", "list", "--json").json()["models"]}
    assert "a path the container lacks" in listed["qwen"]["problem"] and listed["qwen"]["served_by"] == []
    assert listed["tiny"]["problem"] is None
    removed = airpods("models", "rm", "qwen", "--yes")
    assert removed.code == 0 and "a link" in removed.out, removed.err
    assert not (folder / "qwen").exists() and (elsewhere / "model.gguf").is_file()
