"""Fixtures of the unit tests."""

from __future__ import annotations

import pytest

from app.settings import Settings


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings as shipped: none of this machine's environment."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    return Settings(_env_file=None)  # type: ignore[call-arg]
