"""Where a model comes from: a Hugging Face reference or a URL, and which repo files it means.
Pure: a repo listing in, the files to fetch out (a split GGUF is one set)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from airpods.errors import UsageError

QUANT_RE = re.compile(r"(?i)(?<![A-Za-z0-9])(I?Q\d(?:_[0-9A-Z]+)*|BF16|F16|F32|TQ\d_\d|MXFP4(?:_MOE)?)(?![A-Za-z0-9])")
SHARD_RE = re.compile(r"^(?P<base>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf\Z")


@dataclass(frozen=True)
class HfRef:
    repo: str
    file: str | None = None
    quant: str | None = None
    revision: str = "main"


@dataclass(frozen=True)
class UrlRef:
    url: str


@dataclass(frozen=True)
class RepoFile:
    path: str
    size: int | None
    sha256: str | None


def parse_source(source: str, file: str | None = None) -> HfRef | UrlRef:
    """`user/repo:Q4_K_M`, `user/repo/file.gguf`, `user/repo` (+ --file), `hf.co/...`, or a URL."""
    if source.startswith(("https://", "http://")):
        return UrlRef(source)
    ref = re.sub(r"^(https?://)?(hf\.co|huggingface\.co)/", "", source)
    quant = None
    if ":" in ref:
        ref, quant = ref.rsplit(":", 1)
    parts = [p for p in ref.split("/") if p]
    if len(parts) < 2:
        raise UsageError(
            f"{source!r} is not a model source",
            hint="use user/repo:Q4_K_M, user/repo/file.gguf, user/repo --file F, or an https:// URL",
        )
    repo = "/".join(parts[:2])
    in_path = "/".join(parts[2:]) or None
    if in_path and file:
        raise UsageError("name the file once: in the source or with --file, not both")
    return HfRef(repo, in_path or file, quant)


def quant_of(path: str) -> str | None:
    name = path.rsplit("/", 1)[-1]
    shard = SHARD_RE.match(name)
    stem = shard["base"] if shard else name.removesuffix(".gguf")
    found = QUANT_RE.findall(stem)
    return found[-1].upper() if found else None


# Files beside a model that are not models (llama.cpp common/download.cpp, gguf_filename_is_model).
SIDECARS = ("mmproj", "imatrix", "mtp-", "eagle3-", "dflash-", "dspark-")


def is_model_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.endswith(".gguf") and not any(marker in name for marker in SIDECARS)


def tag_matches(path: str, tag: str) -> bool:
    """Whether a repo path carries the quant tag: llama.cpp's `-hf` rule (find_best_model: the
    tag followed by '.' or '-', case-insensitive; so `UD-Q4_K_XL` and `q8_0` work as model cards
    write them), with a boundary before the tag so `Q4_K_M` is not found inside `IQ4_K_M`."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(tag)}[.\-/]", path, re.IGNORECASE) is not None


def _sets(files: list[RepoFile]) -> dict[str, list[RepoFile]]:
    """Model files grouped: a split model's shards form one set (keyed by its first shard)."""
    groups: dict[str, list[RepoFile]] = {}
    for f in sorted(files, key=lambda f: f.path):
        if not is_model_file(f.path):
            continue
        shard = SHARD_RE.match(f.path)
        key = f"{shard['base']}-00001-of-{shard['count']}.gguf" if shard else f.path
        groups.setdefault(key, []).append(f)
    return groups


def pick_files(ref: HfRef, listing: list[RepoFile]) -> list[RepoFile]:
    sets = _sets(listing)
    if ref.file:
        for key, members in sets.items():
            if ref.file in (key, key.rsplit("/", 1)[-1]) or any(ref.file == m.path for m in members):
                return members
        raise UsageError(
            f"{ref.repo} has no file {ref.file!r}", hint="GGUF files there: " + (", ".join(sets) or "none")
        )
    if not sets:
        raise UsageError(f"{ref.repo} has no GGUF files")
    if ref.quant:
        matches = [key for key in sets if tag_matches(key, ref.quant)]
        if len(matches) == 1:
            return sets[matches[0]]
        if not matches:
            raise UsageError(
                f"{ref.repo} has no {ref.quant} GGUF",
                hint="its models: " + ", ".join(sets) + " (the tag is the part before .gguf, e.g. UD-Q4_K_XL)",
            )
        raise UsageError(
            f"{ref.repo}:{ref.quant} matches {len(matches)} models: " + ", ".join(matches),
            hint="name the file: user/repo/FILE.gguf or --file FILE",
        )
    if len(sets) == 1:
        return next(iter(sets.values()))
    available = sorted({q for q in map(quant_of, sets) if q})
    raise UsageError(
        f"{ref.repo} has {len(sets)} GGUF models; say which",
        hint=f"add a quantization ({', '.join(available)}) as {ref.repo}:QUANT, or name the file",
    )


def pick_mmproj(listing: list[RepoFile], model: list[RepoFile]) -> list[RepoFile]:
    """The multimodal projector that goes with a model, as llama.cpp's `-hf` picks it
    (find_best_sibling): an mmproj-*.gguf in the model's folder or one above it, the deepest,
    then the one whose quant bits are closest to the model's; [] when there is none."""
    folder = model[0].path.rpartition("/")[0]
    bits = _bits(model[0].path)
    found = []
    for f in listing:
        name = f.path.rsplit("/", 1)[-1]
        where = f.path.rpartition("/")[0]
        if (
            name.endswith(".gguf")
            and "mmproj" in name
            and (not where or folder == where or folder.startswith(where + "/"))
        ):
            found.append((-len(where.split("/")) if where else 0, abs(_bits(f.path) - bits), f.path, f))
    return [min(found, key=lambda t: t[:3])[3]] if found else []


def _bits(path: str) -> int:
    """A quant's bits (Q4_K_M → 4, F16 → 16; llama.cpp extract_quant_bits), 0 when unknown."""
    quant = quant_of(path) or ""
    digits = re.search(r"\d+", quant)
    return int(digits.group()) if digits else 0


def folder_name(model: list[RepoFile]) -> str:
    """The model name of a multi-file model: a split set's name without its shard numbers, else
    the model file's name without .gguf."""
    name = model[0].path.rsplit("/", 1)[-1]
    shard = SHARD_RE.match(name)
    return shard["base"] if shard else name.removesuffix(".gguf")
