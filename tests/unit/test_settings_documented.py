"""Every setting is in the README's configuration table: a setting added without its row
(five were, before this test) is a setting operators cannot find."""

from __future__ import annotations

import re

from app.settings import Settings
from tests.support import ROOT


def test_every_setting_has_a_row_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = " ".join(line for line in readme.splitlines() if line.startswith("| `"))
    named = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", rows))
    missing = sorted(n.upper() for n in Settings.model_fields if n.upper() not in named)
    assert missing == [], f"settings without a README row: {missing}"
