"""The README's table of settings, generated from the fields' descriptions so that it cannot
drift from the code: `flask settings readme` rewrites it, and a unit test fails while it is
out of date."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import click
from flask.cli import AppGroup
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from app.settings import PROJECT_ROOT, Settings
from app.settings.common import SHOWN_DEFAULT

README = PROJECT_ROOT / "README.md"
COMMAND = "flask --app app settings readme"
BEGIN = f"<!-- settings:begin (generated from app/settings/ by `{COMMAND}`: edit there) -->"
END = "<!-- settings:end -->"
#: Settings whose value is a credential: the table says whether one is built in, never what.
SECRET_SUFFIXES = ("_secret", "_key", "_token", "_password")


def areas() -> list[type[BaseSettings]]:
    """The mixins Settings composes, in the order the table shows them (deployment first)."""
    mixins = [base for base in reversed(Settings.__bases__) if issubclass(base, BaseSettings)]
    own = set(Settings.model_fields).difference(*(m.model_fields for m in mixins))
    if own:
        raise ValueError(f"settings outside any area mixin of app/settings/: {sorted(own)}")
    return mixins


def shown_default(name: str, field: FieldInfo) -> str:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if SHOWN_DEFAULT in extra:
        return str(extra[SHOWN_DEFAULT])
    value = field.get_default(call_default_factory=True)
    if name.endswith(SECRET_SUFFIXES):
        return "(set me)" if value else "(empty)"
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        return f"`{value.relative_to(PROJECT_ROOT).as_posix()}/`"
    if isinstance(value, dict):
        return f"`{json.dumps(value, ensure_ascii=False)}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, int) and name.endswith("_bytes"):
        return f"`{value}`" + _size(value)
    return f"`{value}`"


def _size(n: int) -> str:
    for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= size and n % size == 0:
            return f" ({n // size} {unit})"
    return ""


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def table() -> str:
    """The lines between the markers: a bold title and a table per area."""
    parts: list[str] = []
    for area in areas():
        title = (inspect.getdoc(area) or area.__name__).splitlines()[0].rstrip(".")
        rows = ["| Variable | Default | Description |", "| --- | --- | --- |"]
        for name, field in area.model_fields.items():
            rows.append(
                f"| `{name.upper()}` | {_cell(shown_default(name, field))} "
                f"| {_cell(field.description or '')} |"
            )
        where = area.__module__.replace(".", "/") + ".py"
        parts.append(f"**{title}** ({where})\n\n" + "\n".join(rows))
    return "\n\n".join(parts)


def rewrite(readme: str) -> str:
    """README text with the generated table between the markers (which must be there)."""
    head, begin, rest = readme.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"README.md lacks the markers {BEGIN!r} and {END!r}")
    return f"{head}{BEGIN}\n\n{table()}\n\n{END}{tail}"


settings_cli = AppGroup("settings", help="The settings: the README's table of them.")


@settings_cli.command("readme", with_appcontext=False)
@click.option("--check", is_flag=True, help="Only check; exit 1 if README.md is out of date.")
def readme_command(check: bool) -> None:
    """Rewrite the settings table in README.md from the fields' descriptions."""
    old = README.read_text(encoding="utf-8")
    new = rewrite(old)
    if check:
        if new != old:
            raise click.ClickException(f"the settings table in README.md is out of date: {COMMAND}")
        click.echo("README.md's settings table is up to date")
        return
    if new != old:
        README.write_text(new, encoding="utf-8")
    click.echo(f"README.md: settings table {'rewritten' if new != old else 'unchanged'}")
