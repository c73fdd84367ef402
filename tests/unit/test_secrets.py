"""The stack's API key file: private, stable, and one key even when commands race."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor

from airpods.secrets import api_key, api_key_path, key_id


def test_key_is_private_and_stable():
    first = api_key()
    assert first.startswith("sk-airpods-") and api_key() == first
    mode = stat.S_IMODE(api_key_path().stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(api_key_path().parent.stat().st_mode) == 0o700
    assert len(key_id(first)) == 12 and first not in key_id(first)


def test_racing_commands_agree_on_one_key():
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: api_key(), range(32)))
    assert len(keys) == 1
    assert not [p for p in api_key_path().parent.iterdir() if p.name.startswith(".api-key.")]
