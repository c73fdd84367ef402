"""`folders` of a volume: made when missing, never touching what is there (no podman: a host
folder as the source)."""

from __future__ import annotations

from airpods.models.store import ModelStore


def store(path) -> ModelStore:
    return ModelStore(None, str(path), {}, folder=True, service="comfyui")  # type: ignore[arg-type]


def test_missing_folders_are_made_and_existing_ones_kept_with_their_files(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "sd.safetensors").write_text("weights")
    made, problems = store(tmp_path).make_folders(["checkpoints", "loras", "upscale/esrgan"])
    assert made == ["loras", "upscale/esrgan"] and problems == []
    assert (tmp_path / "upscale" / "esrgan").is_dir()
    assert (tmp_path / "checkpoints" / "sd.safetensors").read_text() == "weights"
    assert store(tmp_path).make_folders(["checkpoints", "loras", "upscale/esrgan"]) == ([], [])


def test_a_file_or_a_link_where_a_folder_goes_is_said_and_the_others_are_made(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "volume"
    root.mkdir()
    (root / "vae").write_text("not a folder")
    (root / "linkdir").symlink_to(outside)  # a container can plant one: never followed
    made, problems = store(root).make_folders(["vae", "linkdir/evil", "loras"])
    assert made == ["loras"]
    assert problems == ["vae: vae is a file", "linkdir/evil: linkdir is a symbolic link"]
    assert (root / "vae").read_text() == "not a folder" and list(outside.iterdir()) == []
