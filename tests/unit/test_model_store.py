"""The model store on a host folder, on real files: what the container cannot see is said (and
never read), partial downloads are listed and removable, a link is removed as a link, and a
folder import refuses a part that is not a regular file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from airpods.errors import RuntimeFailure, UsageError
from airpods.models.manage import import_model, list_models
from airpods.models.store import ModelStore
from tests.memory_engine import MemoryEngine
from tests.rig.tiny_gguf import write_tiny_model
from tests.unit.helpers import stack_of


@pytest.fixture
def store(tmp_path) -> ModelStore:
    (tmp_path / "models").mkdir()
    return ModelStore(MemoryEngine(tmp_path / "volumes"), str(tmp_path / "models"), {}, folder=True)


def test_links_leaving_the_store_and_fifos_are_flagged_and_never_read(tmp_path, store):
    elsewhere = write_tiny_model(tmp_path / "elsewhere.gguf")
    root = store.root
    write_tiny_model(root / "tiny.gguf")
    (root / "outside.gguf").symlink_to(elsewhere)  # the container has only the store
    (root / "inside.gguf").symlink_to("tiny.gguf")  # a relative link within it is fine
    (root / "absolute.gguf").symlink_to(root / "tiny.gguf")  # into the store, but by its host path
    (root / "up").mkdir()
    (root / "up" / "model.gguf").symlink_to("../../elsewhere.gguf")  # relative, and out
    os.mkfifo(root / "pipe.gguf")  # opening it to read a header would block
    (root / "vision").mkdir()
    write_tiny_model(root / "vision" / "model.gguf")
    os.mkfifo(root / "vision" / "mmproj-model.gguf")
    (root / "broken.gguf").symlink_to("gone.gguf")
    seen = {m.name: m.unseen for m in store.models()}
    assert seen["tiny"] is None and seen["inside"] is None
    assert f"is a link to {elsewhere}, a path the container lacks" in str(seen["outside"])
    assert "a path the container lacks" in str(seen["absolute"])
    assert f"points outside {root}" in str(seen["up"])
    assert "not a regular file: pipe.gguf" in str(seen["pipe"])
    assert "not a regular file: mmproj-model.gguf" in str(seen["vision"])
    assert "broken link" in str(seen["broken"])
    rows = {r["name"]: r for r in list_models(store, stack_of(tmp_path, ""), set())}  # returns: no FIFO read
    assert rows["outside"]["problem"] == seen["outside"] and rows["outside"]["served_by"] == []
    assert rows["tiny"]["problem"] is None and rows["tiny"]["architecture"] == "llama"


def test_removing_a_linked_model_removes_the_link_only(tmp_path, store):
    elsewhere = tmp_path / "keep"
    elsewhere.mkdir()
    write_tiny_model(elsewhere / "model.gguf")
    (store.root / "linked").symlink_to(elsewhere)
    (model,) = store.models()
    store.remove(model)
    assert not (store.root / "linked").exists() and (elsewhere / "model.gguf").is_file()


def test_partial_downloads_are_listed_with_their_source_and_removable(tmp_path, store):
    root = store.root
    (root / ".big.gguf.partial").write_bytes(b"x" * 1000)
    url = "https://hub.example/user/repo/resolve/main/big.gguf"
    (root / ".big.gguf.partial.source").write_text(json.dumps({"url": url, "validator": None, "size": 5000}))
    (root / ".shards.partial").mkdir()
    (root / ".shards.partial" / "a-00001-of-00002.gguf").write_bytes(b"y" * 300)
    (root / ".odd.gguf.partial").write_bytes(b"z")
    os.mkfifo(root / ".odd.gguf.partial.source")  # read, it would block
    (partial_file, odd, partial_folder) = sorted(store.partials(), key=lambda p: p.name)
    assert (odd.name, odd.url) == ("odd", None)
    store.remove_partial(odd)
    assert (partial_file.name, partial_file.size, partial_file.url) == ("big", 1000, url)
    assert (partial_folder.name, partial_folder.size, partial_folder.url) == ("shards", 300, None)
    rows = {r["name"]: r for r in list_models(store, stack_of(tmp_path, ""), set())}
    assert rows["big"]["partial"] and f"airpods models pull {url}" in str(rows["big"]["problem"])
    assert "airpods models rm big" in str(rows["big"]["problem"]) and rows["big"]["size"] == 1000
    assert store.models() == []  # not a model: nothing serves it
    store.remove_partial(partial_file)
    store.remove_partial(partial_folder)
    assert sorted(p.name for p in root.iterdir()) == []


def test_a_folder_import_refuses_a_part_that_is_not_a_regular_file(tmp_path, store):
    source = tmp_path / "vision"
    source.mkdir()
    write_tiny_model(source / "model.gguf")
    os.mkfifo(source / "mmproj-model.gguf")
    with pytest.raises(UsageError, match="mmproj-model.gguf is not a regular file; nothing was imported"):
        import_model(store, source, None, False, lambda name, size: lambda done: None)
    assert list(Path(store.root).iterdir()) == []


def test_a_download_in_progress_is_said_and_kept_and_the_resume_hint_pastes(tmp_path, store):
    from airpods.models.manage import resume_hint
    from airpods.state import try_flock

    root = store.root
    (root / ".mine.gguf.partial").write_bytes(b"x" * 10)
    url = "https://files.example/dl/real.gguf?sig=abc&exp=1"
    (root / ".mine.gguf.partial.source").write_text(json.dumps({"url": url}))
    held = try_flock(store._lock_path("mine"), 0)  # what a running pull holds
    assert held is not None
    try:
        (partial,) = store.partials()
        assert partial.downloading
        rows = {r["name"]: r for r in list_models(store, stack_of(tmp_path, ""), set())}
        assert rows["mine"]["problem"] == "downloading now"
        with pytest.raises(RuntimeFailure, match="being downloaded right now"):
            store.remove_partial(partial)
    finally:
        os.close(held)
    (partial,) = store.partials()
    assert not partial.downloading
    assert resume_hint(partial) == f"`airpods models pull '{url}' --name mine` resumes it"
