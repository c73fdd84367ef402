"""Fetching models: Hugging Face through huggingface_hub (its cache, resume, HF_TOKEN and
HF_ENDPOINT), plain URLs with HTTP range resume. Every file is checked (sha256 when known) and
lands in the volume atomically."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from airpods.checksum import sha256_of
from airpods.errors import RuntimeFailure
from airpods.models.sources import HfRef, RepoFile, UrlRef, folder_name, pick_files, pick_mmproj
from airpods.models.store import ModelStore, copy_file, model_name

Progress = Callable[[str, int | None], Callable[[int], None]]  # (name, total) -> advance(bytes)


class ChecksumMismatch(RuntimeFailure):
    pass


@dataclass(frozen=True)
class Fetched:
    name: str
    size: int
    sha256: str | None


def verify(path: Path, expected: str | None, what: str) -> str:
    actual = sha256_of(path)
    if expected and actual != expected.lower():
        path.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"{what}: sha256 mismatch (expected {expected}, got {actual}); the file was removed",
            hint="pull it again; if it keeps failing the source is damaged",
        )
    return actual


def hf_listing(ref: HfRef) -> list[RepoFile]:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        entries = HfApi().list_repo_tree(ref.repo, recursive=True, revision=ref.revision)
        return [
            RepoFile(e.path, getattr(e, "size", None), lfs.sha256 if (lfs := getattr(e, "lfs", None)) else None)
            for e in entries
            if hasattr(e, "size")
        ]
    except HfHubHTTPError as exc:
        raise RuntimeFailure(
            f"cannot list {ref.repo}: {exc}", hint="check the name; private repos need HF_TOKEN"
        ) from None
    except OSError as exc:
        raise RuntimeFailure(
            f"cannot reach the Hugging Face hub: {exc}", hint="check the network, or HF_ENDPOINT if you use a mirror"
        ) from None


def pull_hf(
    store: ModelStore,
    ref: HfRef,
    name: str | None,
    progress: Progress,
    announce: Callable[[str], None],
    overwrite: bool = False,
) -> list[Fetched]:
    listing = hf_listing(ref)
    model = pick_files(ref, listing)
    files = model + pick_mmproj(listing, model)
    total = sum(f.size or 0 for f in files)
    announce(f"{ref.repo}: {len(files)} file{'s' if len(files) > 1 else ''}, {total / 1e9:.2f} GB")
    store.require_space(total, ref.repo)
    if len(files) == 1:  # one file: the model NAME.gguf
        target = name or files[0].path.rsplit("/", 1)[-1]
        cached, digest = _hf_file(ref, files[0])
        store.copy_in(
            cached, target, overwrite=overwrite, progress=progress(f"copying {target}", cached.stat().st_size)
        )
        return [Fetched(model_name(target), cached.stat().st_size, digest)]
    # Shards, or a model and its projector: one folder, which the router serves as one model.
    target = name or folder_name(model)
    fetched = []
    with store.incoming_folder(target, overwrite=overwrite) as folder:
        for f in files:
            cached, digest = _hf_file(ref, f)
            part = f.path.rsplit("/", 1)[-1]
            copy_file(cached, folder / part, progress(f"copying {target}/{part}", cached.stat().st_size))
            fetched.append(Fetched(f"{model_name(target)}/{part}", cached.stat().st_size, digest))
    return fetched


def _hf_file(ref: HfRef, file: RepoFile) -> tuple[Path, str]:
    """One repo file through huggingface_hub's cache, checked: (cached path, sha256)."""
    from huggingface_hub import hf_hub_download

    cached = Path(hf_hub_download(ref.repo, file.path, revision=ref.revision))
    return cached, verify(cached, file.sha256, file.path)


def pull_url(
    store: ModelStore,
    ref: UrlRef,
    name: str | None,
    progress: Progress,
    announce: Callable[[str], None],
    sha256: str | None = None,
    overwrite: bool = False,
) -> list[Fetched]:
    """Download straight into the volume's hidden partial file; a rerun resumes it with Range."""
    target = name or ref.url.rsplit("/", 1)[-1].split("?", 1)[0]
    size = _content_length(ref.url)
    announce(f"{target}: {size / 1e9:.2f} GB" if size else f"{target}: size unknown")
    with store.incoming(target, overwrite=overwrite, keep_partial=True) as partial:
        have = partial.stat().st_size if partial.exists() else 0
        if size:
            store.require_space(size - have, target)
        if not size or have < size:
            _fetch(ref.url, partial, have, progress(target, size))
        digest = verify(partial, sha256, target)
        from airpods.models.gguf_meta import check_magic

        check_magic(partial)
    return [Fetched(model_name(target), (store.root / f"{model_name(target)}.gguf").stat().st_size, digest)]


def _content_length(url: str) -> int | None:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=30) as answer:
            length = answer.headers.get("Content-Length")
            return int(length) if length and length.isdigit() else None
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeFailure(f"cannot reach {url}: {exc}") from None


def _fetch(url: str, partial: Path, have: int, advance: Callable[[int], None]) -> None:
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        answer = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
    except urllib.error.HTTPError as exc:
        raise RuntimeFailure(f"downloading {url} failed: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeFailure(f"cannot reach {url}: {exc}") from None
    with answer:
        resumed = have and answer.status == 206
        mode = "ab" if resumed else "wb"
        if have and resumed:
            advance(have)
        with partial.open(mode) as out:
            while chunk := answer.read(1 << 20):
                out.write(chunk)
                advance(len(chunk))
