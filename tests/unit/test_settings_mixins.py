"""Settings composes one mixin per area: a validator or property named alike in two mixins
is silently replaced by the other one (it happened to the URL checks while they moved), so
every name a mixin defines must be its own."""

from __future__ import annotations

from collections import Counter

from app.settings import Settings
from app.settings.readme import areas


def _own_names(mixin: type) -> list[str]:
    return [n for n in vars(mixin) if not n.startswith(("__", "_abc_", "model_"))]


def test_no_two_mixins_define_the_same_name() -> None:
    defined = Counter(name for mixin in areas() for name in _own_names(mixin))
    assert [name for name, count in defined.items() if count > 1] == []


def test_every_validator_of_every_mixin_runs_in_settings() -> None:
    def code(decorator):  # noqa: ANN001, ANN202 - the function under a bound classmethod
        return getattr(decorator.func, "__func__", decorator.func)

    for mixin in areas():
        for kind in ("field_validators", "model_validators"):
            composed = getattr(Settings.__pydantic_decorators__, kind)
            for name, decorator in getattr(mixin.__pydantic_decorators__, kind).items():
                assert code(composed[name]) is code(decorator), f"{mixin.__name__}.{name}"
