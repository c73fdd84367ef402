"""`folders` of a volume: made when missing, never touching what is there (no podman: a host
folder as the source)."""

from __future__ import annotations

import pytest

from airpods.models.store import ModelStore


def store(path) -> ModelStore:
    return ModelStore(None, str(path), {}, folder=True, service="comfyui")  # type: ignore[arg-type]


def test_missing_folders_are_made_and_existing_ones_kept_with_their_files(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "sd.safetensors").write_text("weights")
    made = store(tmp_path).make_folders(["checkpoints", "loras", "upscale/esrgan"])
    assert made == ["loras", "upscale/esrgan"]
    assert (tmp_path / "upscale" / "esrgan").is_dir()
    assert (tmp_path / "checkpoints" / "sd.safetensors").read_text() == "weights"
    assert store(tmp_path).make_folders(["checkpoints", "loras", "upscale/esrgan"]) == []


def test_a_file_where_a_folder_goes_is_an_error_and_is_left_alone(tmp_path):
    (tmp_path / "vae").write_text("not a folder")
    with pytest.raises(FileExistsError):
        store(tmp_path).make_folders(["vae"])
    assert (tmp_path / "vae").read_text() == "not a folder"
