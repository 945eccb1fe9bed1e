"""Hyper-parameter declarations reject bad input with one message naming key and allowed values."""

from __future__ import annotations

import pytest

from ml2bench.core.params import ConfigError, Param, spec
from ml2bench.core.registry import Registry

SPEC = spec(
    Param("lr", float, 0.1, "learning rate", low=0.0, low_inclusive=False),
    Param("steps", int, 3, "steps", low=1, high=10),
    Param("kind", str, "a", "kind", choices=("a", "b")),
    Param("flag", bool, False, "flag"),
    Param("cap", float, None, "optional cap", low=0.0, nullable=True),
)


def test_defaults_and_overrides():
    assert SPEC.validate({}, "m") == {"lr": 0.1, "steps": 3, "kind": "a", "flag": False, "cap": None}
    out = SPEC.validate({"lr": 1, "kind": "b", "cap": 2}, "m")
    assert out["lr"] == 1.0 and isinstance(out["lr"], float) and out["cap"] == 2.0


@pytest.mark.parametrize(
    "given, fragment",
    [
        ({"lrr": 1.0}, "unknown parameter(s) 'lrr'; allowed: lr, steps, kind, flag, cap"),
        ({"lr": 0.0}, "parameter 'lr' = 0.0 is out of range; allowed: float > 0.0"),
        ({"lr": "fast"}, "parameter 'lr' = 'fast' has the wrong type (str); allowed: float > 0.0"),
        ({"steps": 11}, "parameter 'steps' = 11 is out of range; allowed: int >= 1 and <= 10"),
        ({"steps": 2.5}, "parameter 'steps' = 2.5 has the wrong type"),
        ({"steps": True}, "parameter 'steps' = True has the wrong type (bool)"),
        ({"kind": "c"}, "parameter 'kind' = 'c' is not allowed; allowed: one of 'a', 'b'"),
        ({"lr": None}, "parameter 'lr' must not be null"),
    ],
)
def test_bad_values_are_named(given, fragment):
    with pytest.raises(ConfigError) as err:
        SPEC.validate(given, "method 'x'")
    assert fragment in str(err.value)
    assert str(err.value).startswith("method 'x'")


def test_registry_lookup_lists_allowed_names():
    reg = Registry("method")

    @reg.register
    class A:
        name = "alpha"

    assert reg.get("alpha") is A
    with pytest.raises(ConfigError, match=r"unknown method 'beta'; allowed: alpha"):
        reg.get("beta")
    with pytest.raises(TypeError):

        @reg.register
        class B:
            name = "alpha"
