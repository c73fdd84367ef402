"""Model sources: parsing references and choosing repo files (pure)."""

from __future__ import annotations

import pytest

from airpods.errors import UsageError
from airpods.models.manage import tool_image
from airpods.models.sources import HfRef, RepoFile, UrlRef, parse_source, pick_files, pick_mmproj, quant_of


@pytest.mark.parametrize(
    "source, file, expected",
    [
        ("acme/tiny-GGUF:Q4_K_M", None, HfRef("acme/tiny-GGUF", None, "Q4_K_M")),
        ("hf.co/acme/tiny-GGUF:q8_0", None, HfRef("acme/tiny-GGUF", None, "q8_0")),
        ("huggingface.co/acme/tiny-GGUF", "x.gguf", HfRef("acme/tiny-GGUF", "x.gguf")),
        ("acme/tiny-GGUF/sub/x.gguf", None, HfRef("acme/tiny-GGUF", "sub/x.gguf")),
        ("https://example.org/m.gguf", None, UrlRef("https://example.org/m.gguf")),
    ],
)
def test_parse(source, file, expected):
    assert parse_source(source, file) == expected


def test_parse_rejects_nonsense():
    with pytest.raises(UsageError):
        parse_source("justaname")


@pytest.mark.parametrize(
    "path, quant",
    [
        ("Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("model.IQ4_XS.gguf", "IQ4_XS"),
        ("llama-3-8b-f16.gguf", "F16"),
        ("big-Q8_0-00001-of-00003.gguf", "Q8_0"),
        ("readme.gguf", None),
    ],
)
def test_quant_of(path, quant):
    assert quant_of(path) == quant


LISTING = [
    RepoFile(p, 1, None)
    for p in (
        "m-Q4_K_M.gguf",
        "m-Q8_0.gguf",
        "mmproj-m-f16.gguf",
        "README.md",
        "big-Q2_K-00001-of-00002.gguf",
        "big-Q2_K-00002-of-00002.gguf",
    )
]


def test_pick_quant_and_split_sets():
    assert [f.path for f in pick_files(HfRef("a/m", quant="q8_0"), LISTING)] == ["m-Q8_0.gguf"]
    assert [f.path for f in pick_files(HfRef("a/m", quant="Q2_K"), LISTING)] == [
        "big-Q2_K-00001-of-00002.gguf",
        "big-Q2_K-00002-of-00002.gguf",
    ]
    assert [f.path for f in pick_files(HfRef("a/m", file="m-Q4_K_M.gguf"), LISTING)] == ["m-Q4_K_M.gguf"]


@pytest.mark.parametrize(
    "ref, words",
    [
        (HfRef("a/m", quant="Q5_K_M"), "its models: big-Q2_K-00001-of-00002.gguf, m-Q4_K_M.gguf, m-Q8_0.gguf"),
        (HfRef("a/m"), "say which"),
        (HfRef("a/m", file="nope.gguf"), "has no file"),
    ],
)
def test_pick_errors(ref, words):
    with pytest.raises(UsageError) as err:
        pick_files(ref, LISTING)
    assert words in err.value.message + (err.value.hint or "")


@pytest.mark.parametrize(
    "image, target, expected",
    [
        ("ghcr.io/ggml-org/llama.cpp:server", "full", "ghcr.io/ggml-org/llama.cpp:full"),
        ("ghcr.io/ggml-org/llama.cpp:server-cuda", "light", "ghcr.io/ggml-org/llama.cpp:light-cuda"),
        ("ghcr.io/ggml-org/llama.cpp:server-cuda-b7000", "full", "ghcr.io/ggml-org/llama.cpp:full-cuda-b7000"),
    ],
)
def test_tool_images(image, target, expected):
    assert tool_image(image, target) == expected


# A listing as model cards and llama.cpp's -hf see them (Unsloth's UD- quants, I- and Compact
# variants, a split set in a folder, projectors, an imatrix).
CARD = [
    RepoFile(p, 1, None)
    for p in (
        "Qwen3-8B-UD-Q4_K_XL.gguf",
        "Qwen3-8B-Q4_K_M.gguf",
        "Qwen3-8B-IQ4_K_M.gguf",
        "Qwen3-8B-Q5_K_M-Compact.gguf",
        "Qwen3-8B-Q5_K_M-I-Compact.gguf",
        "Qwen3-8B-F16.gguf",
        "BF16/Qwen3-8B-BF16-00001-of-00002.gguf",
        "BF16/Qwen3-8B-BF16-00002-of-00002.gguf",
        "mmproj-F16.gguf",
        "mmproj-Q8_0.gguf",
        "imatrix_unsloth.gguf",
    )
]


@pytest.mark.parametrize(
    "tag, picked",
    [
        ("UD-Q4_K_XL", ["Qwen3-8B-UD-Q4_K_XL.gguf"]),  # the prefix is kept (it used to find nothing)
        ("ud-q4_k_xl", ["Qwen3-8B-UD-Q4_K_XL.gguf"]),  # case-insensitive
        ("Q4_K_XL", ["Qwen3-8B-UD-Q4_K_XL.gguf"]),  # as llama.cpp: the tag before '.'
        ("Q4_K_M", ["Qwen3-8B-Q4_K_M.gguf"]),  # not IQ4_K_M
        ("f16", ["Qwen3-8B-F16.gguf"]),
        ("BF16", ["BF16/Qwen3-8B-BF16-00001-of-00002.gguf", "BF16/Qwen3-8B-BF16-00002-of-00002.gguf"]),
        ("Q5_K_M-I-Compact", ["Qwen3-8B-Q5_K_M-I-Compact.gguf"]),
    ],
)
def test_quant_tags_as_model_cards_write_them(tag, picked):
    assert [f.path for f in pick_files(HfRef("unsloth/Qwen3-8B-GGUF", quant=tag), CARD)] == picked


def test_a_tag_of_two_models_is_an_error_listing_both():
    with pytest.raises(UsageError) as err:
        pick_files(HfRef("unsloth/Qwen3-8B-GGUF", quant="Q5_K_M"), CARD)
    assert "Qwen3-8B-Q5_K_M-Compact.gguf" in err.value.message and "Qwen3-8B-Q5_K_M-I-Compact.gguf" in err.value.message


def test_the_projector_closest_to_the_model_goes_with_it():
    def model(tag):
        return pick_files(HfRef("r/m", quant=tag), CARD)

    assert [f.path for f in pick_mmproj(CARD, model("Q4_K_M"))] == ["mmproj-Q8_0.gguf"]  # 8 bits from 4, not 16
    assert [f.path for f in pick_mmproj(CARD, model("F16"))] == ["mmproj-F16.gguf"]
    assert pick_mmproj([f for f in CARD if "mmproj" not in f.path], model("F16")) == []
