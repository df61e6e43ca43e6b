"""The settings data behind `trainwright config`: ranges, presets and optimizer mappings."""

from __future__ import annotations

from trainwright import backends
from trainwright.backends.common import check_ranges, data


def test_every_parameter_has_an_explanation_and_a_safe_range_inside_its_limits() -> None:
    params = data("parameters")["parameters"]
    assert {"learning_rate", "epochs", "batch_size", "rank", "alpha", "resolution"} <= set(params)
    for name, spec in params.items():
        text = " ".join(str(spec["explain"]).split())
        assert 20 < len(text) < 200 and "\n" not in text, name
        assert spec["min"] < spec["max"], name
        safe = spec.get("safe")
        if safe:
            assert spec["min"] <= safe[0] <= safe[1] <= spec["max"], name


def test_presets_are_quick_standard_thorough() -> None:
    presets = data("presets")["presets"]
    assert [presets[p]["image"]["epochs"] for p in ("quick", "standard", "thorough")] == [5, 15, 25]
    for preset in presets.values():
        assert check_ranges(dict(preset["image"]), "adamw").errors == []


def test_optimizers_map_to_every_backend_that_has_them() -> None:
    table = data("optimizers")["optimizers"]
    assert {"prodigy", "adamw", "adamw8bit", "lion"} <= set(table)
    assert table["prodigy"]["learning_rate"]["image"] == 1.0
    assert table["lion"]["learning_rate"]["image"] < table["adamw"]["learning_rate"]["image"]
    keys = {getattr(backends.get(n), "OPTIMIZER_KEY", None) for n in backends.names()}
    for name, entry in table.items():
        assert set(entry["backends"]) <= keys, name


def test_ranges_warn_with_the_reason_and_refuse_hard_limits() -> None:
    result = check_ranges({"learning_rate": 1e-3, "rank": 16}, "adamw")
    assert result.errors == [] and "burn in artefacts" in result.warnings[0]
    assert check_ranges({"learning_rate": 1.0}, "prodigy").warnings == []
    assert check_ranges({"learning_rate": 1.0}, "adamw").warnings
    assert check_ranges({"rank": 0}, "adamw").errors
    alpha = check_ranges({"rank": 8, "alpha": 64}, "adamw")
    assert "alpha=64" in alpha.warnings[0]
