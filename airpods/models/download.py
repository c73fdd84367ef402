"""Fetching models over HTTP into the model store, for Hugging Face references (the repo
listing through huggingface_hub, which honours HF_TOKEN and HF_ENDPOINT) and plain URLs alike:
one downloader, straight into the store (no second copy in a hub cache), resumable, and never
installing a wrong file.

- A download writes a hidden partial file beside a small `.source` file naming the URL and the
  server's ETag / Last-Modified; a rerun resumes with `Range` and `If-Range`, and throws the
  partial away when the source changed (a 200 instead of 206, or another ETag).
- The finished size must equal what the server said (Content-Length or the Content-Range total)
  and the sha256 must match when one is known (the hub's, or `--sha256`); a file that can be
  checked by neither is refused. A wrong file is removed.
- Resets, timeouts, HTTP errors and a full disk are runtime failures naming the URL or path and
  the next step; the partial is kept for the rerun.
- The data is flushed to disk (fsync) before the rename that publishes it (store.py)."""

from __future__ import annotations

import errno
import http.client
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from airpods.checksum import sha256_of
from airpods.errors import RuntimeFailure
from airpods.files import open_private
from airpods.models.sources import HfRef, RepoFile, UrlRef, folder_name, pick_files, pick_mmproj
from airpods.models.store import ModelStore, model_name

Progress = Callable[[str, int | None], Callable[[int], None]]  # (name, total) -> advance(bytes)
TIMEOUT_S = 60  # per connection attempt and per read: a stalled server fails instead of hanging
CHUNK = 1 << 20


class ChecksumMismatch(RuntimeFailure):
    pass


@dataclass(frozen=True)
class Fetched:
    name: str
    size: int
    sha256: str | None


@dataclass(frozen=True)
class Remote:
    """What a server says of a file before it is fetched."""

    size: int | None
    etag: str | None
    last_modified: str | None

    def validator(self) -> str | None:
        """The If-Range value that ties a resumed request to this version of the file."""
        return self.etag if self.etag and not self.etag.startswith("W/") else self.last_modified


def verify(path: Path, expected: str | None, what: str) -> str:
    """The file's sha256; when it is not `expected`, the file is removed and ChecksumMismatch raised."""
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
    except Exception as exc:  # noqa: BLE001  (huggingface_hub's transport errors: httpx's or requests')
        raise RuntimeFailure(
            f"cannot reach the Hugging Face hub to list {ref.repo}: {exc}",
            hint="check the network, or HF_ENDPOINT if you use a mirror",
        ) from None


def pull_hf(
    store: ModelStore,
    ref: HfRef,
    name: str | None,
    progress: Progress,
    announce: Callable[[str], None],
    overwrite: bool = False,
) -> list[Fetched]:
    """The model `ref` names (a split set or a model with its projector as one folder), each
    file checked against the size and sha256 of the hub's listing."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    listing = hf_listing(ref)
    model = pick_files(ref, listing)
    files = model + pick_mmproj(listing, model)
    total = sum(f.size or 0 for f in files)
    announce(f"{ref.repo}: {len(files)} file{'s' if len(files) > 1 else ''}, {total / 1e9:.2f} GB")
    store.require_space(total, ref.repo)
    headers = build_hf_headers()  # the token, when there is one; never logged

    def fetch(file: RepoFile, partial: Path, label: str) -> str:
        url = hf_hub_url(ref.repo, file.path, revision=ref.revision)
        return download(url, partial, progress(label, file.size), headers=headers, size=file.size, sha256=file.sha256)

    if len(files) == 1:  # one file: the model NAME.gguf
        target = name or files[0].path.rsplit("/", 1)[-1]
        with store.incoming(target, overwrite=overwrite, keep_partial=True) as partial:
            digest = fetch(files[0], partial, target)
        return [Fetched(model_name(target), files[0].size or 0, digest)]
    # Shards, or a model and its projector: one folder, which the router serves as one model.
    target = name or folder_name(model)
    fetched = []
    parts = {f.path.rsplit("/", 1)[-1] for f in files}
    with store.incoming_folder(target, overwrite=overwrite, parts=parts, keep_partial=True) as folder:
        for f in files:
            part = f.path.rsplit("/", 1)[-1]
            fetched.append(Fetched(f"{model_name(target)}/{part}", f.size or 0, fetch(f, folder / part, part)))
    return fetched


def pull_url(
    store: ModelStore,
    ref: UrlRef,
    name: str | None,
    progress: Progress,
    announce: Callable[[str], None],
    sha256: str | None = None,
    overwrite: bool = False,
) -> list[Fetched]:
    """A GGUF file from a URL, into the store under `name` (default: the URL's file name)."""
    target = name or ref.url.rsplit("/", 1)[-1].split("?", 1)[0]
    remote = probe(ref.url, {})
    announce(f"{target}: {remote.size / 1e9:.2f} GB" if remote.size else f"{target}: size unknown")
    with store.incoming(target, overwrite=overwrite, keep_partial=True) as partial:
        have = partial.stat().st_size if partial.exists() else 0
        if remote.size:
            store.require_space(remote.size - have, target)
        digest = download(ref.url, partial, progress(target, remote.size), sha256=sha256, remote=remote)
        from airpods.models.gguf_meta import NotGguf, read_header

        try:
            read_header(partial)  # a GGUF with a whole header, or refused before it is published
        except NotGguf:
            partial.unlink()
            raise
    return [Fetched(model_name(target), (store.root / f"{model_name(target)}.gguf").stat().st_size, digest)]


class SameOriginCredentials(urllib.request.HTTPRedirectHandler):
    """Redirects as urllib follows them, but the credentials (Authorization, Cookie) go only to
    the origin they were given for: urllib copies every header to the new URL, so a Hugging Face
    token would reach the CDN or presigned storage a file redirects to (which refuses a request
    that carries both). Browsers and `requests` drop them the same way on a cross-origin redirect
    (the Fetch standard; requests' rebuild_auth)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(req.full_url) != _origin(new.full_url):
            for name in ("Authorization", "Cookie"):
                new.remove_header(name)
        return new


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port made explicit (80, 443)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)


_opener: list[urllib.request.OpenerDirector] = []


def _read(path: Path) -> str:
    """A small text file of the store, never through a symbolic link (files.open_private)."""
    with open_private(path, "rb") as handle:
        return handle.read(65536).decode("utf-8", "replace")


def _open(url: str, headers: Mapping[str, str], method: str = "GET") -> http.client.HTTPResponse:
    """`url` opened with `headers` (credentials kept to its own origin across redirects).
    Raises RuntimeFailure for an error answer (but 416, raised as is) or no answer."""
    request = urllib.request.Request(url, headers=dict(headers), method=method)
    if not _opener:
        _opener.append(urllib.request.build_opener(SameOriginCredentials))
    try:
        return _opener[0].open(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416:
            raise
        raise RuntimeFailure(
            f"{url} answered HTTP {exc.code} {exc.reason}",
            hint="check the address (and HF_TOKEN for a private repo); a 5xx is the server's: try again later",
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise RuntimeFailure(f"cannot reach {url}: {reason}", hint="check the network and the address") from None


def probe(url: str, headers: Mapping[str, str]) -> Remote:
    """HEAD: the size, ETag and Last-Modified the server gives (None where it gives none)."""
    with _open(url, headers, "HEAD") as answer:
        length = answer.headers.get("Content-Length")
        return Remote(
            int(length) if length and length.isdigit() else None,
            answer.headers.get("ETag"),
            answer.headers.get("Last-Modified"),
        )


def download(
    url: str,
    partial: Path,
    advance: Callable[[int], None],
    *,
    headers: Mapping[str, str] | None = None,
    size: int | None = None,
    sha256: str | None = None,
    remote: Remote | None = None,
) -> str:
    """Fetch `url` into `partial`, resuming what an earlier run left if the source is unchanged.
    `size` and `sha256` are what the file must be (from a listing); the server's own size is
    checked too. Returns the sha256. Raises RuntimeFailure (partial kept to resume) for network
    and disk faults, an early end or an unverifiable file; ChecksumMismatch (partial removed)."""
    headers = dict(headers or {})
    remote = remote or probe(url, headers)
    expected = size or remote.size
    source = partial.with_name(partial.name + ".source")
    tie = json.dumps({"url": url, "validator": remote.validator(), "size": expected})
    try:
        if partial.exists() and (not source.exists() or _read(source) != tie):
            partial.unlink()  # another URL or another version of the file: start over
        with open_private(source, "wb") as out:
            out.write(tie.encode())
    except OSError as exc:
        raise _disk_failure(exc, partial) from None
    have = partial.stat().st_size if partial.exists() else 0
    if expected is not None and have > expected:
        partial.unlink()
        have = 0
    if expected is None or have < expected:
        have = _transfer(url, partial, have, headers, remote, advance)
    else:
        advance(have)
    if expected is not None and have != expected:
        raise RuntimeFailure(
            f"the download of {url} ended early: {have} of {expected} bytes",
            hint="run the same command again: it resumes where it stopped",
        )
    if expected is None and not sha256:
        partial.unlink()
        source.unlink(missing_ok=True)
        raise RuntimeFailure(
            f"{url} gives no size and no checksum was stated, so the download cannot be checked; nothing was kept",
            hint="pass --sha256 with the file's checksum",
        )
    try:
        return verify(partial, sha256, partial.name.removeprefix(".").removesuffix(".partial"))
    finally:
        source.unlink(missing_ok=True)  # a verified file, or a removed wrong one: nothing to resume


def _transfer(
    url: str, partial: Path, have: int, headers: dict[str, str], remote: Remote, advance: Callable[[int], None]
) -> int:
    """GET from `have` on (Range + If-Range); a 200 answer starts the file over. Returns the size."""
    ranged = dict(headers)
    if have:
        ranged["Range"] = f"bytes={have}-"
        if remote.validator():
            ranged["If-Range"] = remote.validator() or ""
    try:
        answer = _open(url, ranged)
    except urllib.error.HTTPError:  # 416: the partial does not fit this file any more
        partial.unlink()
        return _transfer(url, partial, 0, headers, remote, advance)
    with answer:
        total = _content_range_total(answer.headers.get("Content-Range"))
        if answer.status != 206:
            have = 0  # the server sends the whole file (it changed, or it ignores ranges)
        if total is not None and remote.size is not None and total != remote.size:
            raise RuntimeFailure(
                f"{url} changed while it was fetched ({remote.size} then {total} bytes)",
                hint="run the same command again",
            )
        advance(have)
        try:
            with open_private(partial, "ab" if have else "wb") as out:
                while chunk := answer.read(CHUNK):
                    out.write(chunk)
                    have += len(chunk)
                    advance(len(chunk))
                out.flush()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
                raise _disk_failure(exc, partial) from None
            raise RuntimeFailure(
                f"the download of {url} broke off after {have} bytes: {exc.strerror or exc}",
                hint="run the same command again: it resumes where it stopped",
            ) from None
        except http.client.HTTPException as exc:
            raise RuntimeFailure(
                f"the download of {url} broke off after {have} bytes: {exc!r}",
                hint="run the same command again: it resumes where it stopped",
            ) from None
    return have


def _content_range_total(value: str | None) -> int | None:
    found = re.match(r"bytes \d+-\d+/(\d+)", value or "")
    return int(found.group(1)) if found else None


def _disk_failure(exc: OSError, path: Path) -> RuntimeFailure:
    """A write into the store failed: what the kept partial holds, and how to resume or drop it."""
    try:
        kept = path.stat().st_size if path.is_file() else 0
    except OSError:
        kept = 0
    path = Path(os.path.realpath(path.parent)) / path.name  # a folder model's pinned /proc/self/fd/N: its name
    hidden = path.parent if path.parent.name.endswith(".partial") else path  # a folder model's part
    name = hidden.name.lstrip(".").removesuffix(".partial").removesuffix(".gguf")
    held = f"; the partial download kept holds {kept / 1e9:.2f} GB" if kept else ""
    return RuntimeFailure(
        f"cannot write {path}: {exc.strerror or exc}{held}",
        hint="free some space (other models: `airpods models rm NAME`) or fix the folder's permissions, then run "
        f"the same command again: it resumes (`airpods models rm {name} --partial` drops the partial instead)",
    )
