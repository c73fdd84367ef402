"""Unit-test fixtures."""

from __future__ import annotations

import pytest

from tests.unit.helpers import GOLDEN_STATE


@pytest.fixture
def fixed_state_path(monkeypatch):
    """Stacks derived with the preset folder under GOLDEN_STATE (golden files do not depend on
    the run's temporary HOME)."""
    monkeypatch.setattr("airpods.stack.build.state_path", lambda: GOLDEN_STATE)
