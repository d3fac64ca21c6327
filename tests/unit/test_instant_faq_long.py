"""A pasted page is no FAQ question: the callback's instant lookup leaves it to the worker
at once, without reading the FAQ table or embedding it (app/pipeline/instant.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import resources
from app.pipeline import instant as instant_faq
from app.settings import load_settings


def test_a_pasted_page_is_not_looked_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.instant_faq

    def no_table(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the FAQ table was read for a pasted page")

    monkeypatch.setattr(resources, "faq_matcher", no_table)
    page = "我上周买的空气炸锅用了几天就不加热了，" * 150 + "请问能退吗？"
    assert instant_faq.lookup(page, settings) is None
