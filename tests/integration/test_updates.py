"""Updates that cannot break the stack, on real Podman and the rig's registry: two services on
private tags, then an "update" pushed under the same tags that breaks each as users have seen
it happen (llama.cpp's loader error, exit 127; Open WebUI rewriting its database half way, exit
1). `airpods update` snapshots, recreates, sees them fail, and brings back the images they ran
and Open WebUI's data, byte for byte."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.integration.conftest import podman, podman_json

DB = "/app/backend/data/webui.db"


def _push(image: str, tag: str) -> None:
    podman("push", "--quiet", "--tls-verify=false", image, f"docker://{tag}", timeout=300)


def _build(base: str, revision: str, workdir: Path, entrypoint: str | None = None) -> str:
    """An image from `base` with one more label (a new image ID) and, to break it, an entrypoint."""
    context = workdir / f"ctx-{revision}"
    context.mkdir()
    lines = [f"FROM {base}", f"LABEL io.airpods.test.revision={revision}"]
    if entrypoint:
        lines.append(f'ENTRYPOINT ["/bin/sh", "-c", "{entrypoint}"]')
    (context / "Containerfile").write_text("\n".join(lines) + "\n")
    tag = f"localhost/airpods-test-build:{revision}"
    podman("build", "--quiet", "-t", tag, str(context), timeout=300)
    return tag


def _image_ids() -> dict[str, str]:
    rows = podman_json("ps", "-a", "--filter", "label=io.airpods.managed=true")
    return {c["Names"][0]: c["ImageID"] for c in rows if not c.get("IsInfra")}


def _db_digest() -> str:
    mount = podman("volume", "inspect", "--format", "{{.Mountpoint}}", "airpods_webui_data").stdout.strip()
    return hashlib.sha256(Path(mount, "webui.db").read_bytes()).hexdigest()


def test_a_broken_update_rolls_back_to_the_images_and_data_it_replaced(airpods, tmp_path):
    registry = os.environ["AIRPODS_RIG_REGISTRY"]
    webui, llama = f"{registry}/airpods-test/webui-updates:main", f"{registry}/airpods-test/llama-updates:server"
    podman("pull", "ghcr.io/open-webui/open-webui:main", timeout=300)
    _push(_build("ghcr.io/open-webui/open-webui:main", "w1", tmp_path), webui)
    _push(_build("ghcr.io/ggml-org/llama.cpp:server", "l1", tmp_path), llama)
    for name in (webui, llama):
        podman("rmi", "--force", name, check=False)
    airpods.write_config(f'[services.open-webui]\nimage = "{webui}"\n[services.llamacpp]\nimage = "{llama}"\n')
    assert airpods("start", "open-webui", "llamacpp").code == 0
    podman("exec", "open-webui-0", "sh", "-c", f"echo chats > {DB}")
    before, db = _image_ids(), _db_digest()

    # The broken "updates", under the same tags.
    _push(_build(webui, "w2", tmp_path, f"echo half-migrated > {DB}; exit 1"), webui)
    _push(_build(llama, "l2", tmp_path, "echo llama-server: error while loading shared libraries >&2; exit 127"), llama)
    pulled = airpods("pull")
    assert pulled.code == 0 and "open-webui" in pulled.out, pulled.err
    assert "snapshotting the data of open-webui (" in pulled.out  # said before it happens, with its size
    said = airpods("status")
    assert "new image pulled: `airpods start` applies it, snapshotting its data first" in said.out, said.out
    assert {r["name"]: r["snapshot"] for r in airpods("status", "--json").json()["services"]}["llamacpp"] is None
    updated = airpods("update", "open-webui", "llamacpp")
    assert updated.code == 1, updated.out + updated.err
    assert "the update of open-webui, llamacpp failed and was rolled back" in updated.err, updated.err
    assert f"rolled back open-webui to {before['open-webui-0'][:12]}" in updated.err.replace("sha256:", "")
    assert "your data was restored from the snapshot taken at" in updated.err
    assert _image_ids() == before  # both run again, on the images they ran
    assert _db_digest() == db  # Open WebUI's database as it was before the new image touched it
    rows = {r["name"]: r for r in airpods("status", "--json").json()["services"]}
    assert rows["open-webui"]["health"] == "healthy" and rows["llamacpp"]["health"] == "healthy"
    snapshots = Path(os.environ["XDG_STATE_HOME"], "airpods", "snapshots", "airpods", "open-webui")
    assert len(list(snapshots.glob("*.tar"))) == 1
    assert not Path(os.environ["XDG_STATE_HOME"], "airpods", "snapshots", "airpods", "llamacpp").exists()

    # A plain start leaves the failed images alone and says so.
    again = airpods("start", "open-webui", "llamacpp")
    assert again.code == 0, again.err
    assert _image_ids() == before and "airpods update open-webui" in again.out + again.err

    # A good update of one service: only it is recreated, snapshotted first.
    _push(_build("localhost/airpods-test-build:w1", "w3", tmp_path), webui)  # from the good one
    good = airpods("update", "open-webui", "llamacpp")
    assert good.code == 1, good.out + good.err  # llama.cpp's broken image is tried again, and rolled back
    after = _image_ids()
    assert after["open-webui-0"] != before["open-webui-0"] and after["llamacpp-0"] == before["llamacpp-0"]
    label = '{{index .Config.Labels "io.airpods.test.revision"}}'
    assert podman("inspect", "--format", label, "open-webui-0").stdout.strip() == "w3"
    assert len(list(snapshots.glob("*.tar"))) == 2 and _db_digest() == db

    # And back on request: the image it ran before, with its data from the snapshot taken then.
    podman("exec", "open-webui-0", "sh", "-c", f"echo written-by-w3 > {DB}")
    back = airpods("rollback", "open-webui", "--data")
    assert back.code == 0, back.out + back.err
    assert _image_ids()["open-webui-0"] == before["open-webui-0"] and _db_digest() == db
    kept = airpods("start", "open-webui", "llamacpp")  # a plain start keeps it there
    assert kept.code == 0 and _image_ids()["open-webui-0"] == before["open-webui-0"], kept.err
    podman("rmi", "--force", "localhost/airpods-kept/airpods-ollama:previous", check=False)  # another test's
    nothing = airpods("rollback", "ollama")
    assert nothing.code == 1 and "nothing to roll back" in nothing.err


def test_a_config_only_change_takes_no_snapshot(airpods):
    assert airpods("start", "open-webui").code == 0
    airpods.write_config('[services.open-webui.env]\nEXTRA = "1"\n')
    changed = airpods("start", "open-webui")
    assert changed.code == 0, changed.err
    assert not Path(os.environ["XDG_STATE_HOME"], "airpods", "snapshots").exists()


def test_a_digest_pinned_image_starts_pulls_unchanged_and_shows_its_digest(airpods, engine, tmp_path):
    """`image = "NAME@sha256:…"` pins what works today; pull and status --json carry the digest
    so a user can pin what runs now."""
    registry = os.environ["AIRPODS_RIG_REGISTRY"]
    tag = f"{registry}/airpods-test/pinned:main"
    digest_file = tmp_path / "digest"
    podman("pull", "ghcr.io/open-webui/open-webui:main", timeout=300)  # into this user's store too
    podman(
        "push",
        "--quiet",
        "--tls-verify=false",
        "--digestfile",
        str(digest_file),
        "ghcr.io/open-webui/open-webui:main",
        f"docker://{tag}",
        timeout=300,
    )
    digest = digest_file.read_text().strip()
    pinned = f"{registry}/airpods-test/pinned@{digest}"
    airpods.write_config(f'[services.open-webui]\nimage = "{pinned}"\n')
    assert airpods("start", "open-webui").code == 0
    before = airpods.container_ids()
    pulled = airpods("pull", "open-webui", "--json")
    assert pulled.code == 0, pulled.err
    (row,) = [i for i in pulled.json()["images"] if i["image"] == pinned]
    assert (row["outcome"], row["digest"]) == ("unchanged", digest)
    assert digest in airpods("pull", "open-webui").out  # the table names what was fetched
    rows = {r["name"]: r for r in airpods("status", "--json").json()["services"]}
    assert rows["open-webui"]["digest"] == digest and rows["open-webui"]["up_to_date"]
    assert airpods("start", "open-webui").code == 0 and airpods.container_ids() == before


def test_a_broken_update_rolls_back_the_same_on_either_engine(airpods, engine, tmp_path):
    registry = os.environ["AIRPODS_RIG_REGISTRY"]
    webui = f"{registry}/airpods-test/webui-either:main"
    podman("pull", "ghcr.io/open-webui/open-webui:main", timeout=300)
    _push(_build("ghcr.io/open-webui/open-webui:main", "e1", tmp_path), webui)
    airpods.ctr("rmi", "--force", webui, check=False)  # a broken one an earlier run left under this tag
    airpods.write_config(f'[services.open-webui]\nimage = "{webui}"\n')
    assert airpods("start", "open-webui").code == 0
    airpods.ctr("exec", "open-webui-0", "sh", "-c", f"echo chats > {DB}")

    def running() -> tuple[str, str]:
        image = airpods.ctr("inspect", "--format", "{{.Image}}", "open-webui-0").stdout.strip()
        return image, airpods.ctr("exec", "open-webui-0", "cat", DB).stdout

    before = running()
    _push(_build(webui, "e2", tmp_path, f"echo half-migrated > {DB}; exit 1"), webui)
    assert airpods("pull", "open-webui").code == 0
    updated = airpods("start", "open-webui")  # a plain start after pull takes the same care as update
    assert updated.code == 1 and "failed and was rolled back" in updated.err, updated.out + updated.err
    assert running() == before == (before[0], "chats\n")
