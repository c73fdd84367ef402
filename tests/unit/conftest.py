"""Unit-test fixtures."""

from __future__ import annotations

import pytest

from tests.unit.helpers import GOLDEN_STATE


@pytest.fixture
def fixed_state_path(monkeypatch):
    """Stacks derived with the preset folder under GOLDEN_STATE (golden files do not depend on
    the run's temporary HOME)."""
    monkeypatch.setattr("airpods.stack.build.state_path", lambda: GOLDEN_STATE)


@pytest.fixture(autouse=True)
def fixed_names_key(isolated_home):
    """Secret names are keyed by this machine's random names key (secrets.key_id): a fixed one
    here, so golden files name the same secrets on every run."""
    from airpods.secrets import NAMES_KEY_FILE

    folder = isolated_home / ".local/state/airpods"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    (folder / NAMES_KEY_FILE).write_text("unit-test-names-key\n")
