"""The README's settings table is the one `flask settings readme` generates from the fields:
a setting added or changed without regenerating it (five once went missing from the
hand-written table) is a setting operators cannot find, or read wrongly."""

from __future__ import annotations

from app.settings import Settings
from app.settings.readme import BEGIN, COMMAND, END, README, rewrite, table


def test_every_setting_has_a_description() -> None:
    bare = sorted(n.upper() for n, f in Settings.model_fields.items() if not f.description)
    assert bare == [], f"settings without Field(description=...): {bare}"


def test_the_readme_table_is_the_generated_one() -> None:
    readme = README.read_text(encoding="utf-8")
    assert BEGIN in readme and END in readme, f"README.md lacks the markers {BEGIN} and {END}"
    assert rewrite(readme) == readme, (
        f"README.md's settings table is not what app/settings/ describes: run `{COMMAND}`"
    )


def test_the_table_names_every_setting_once_and_no_secret() -> None:
    rows = [line for line in table().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [n.upper() for n in Settings.model_fields]
    assert Settings.model_fields["secret_key"].default not in table()
