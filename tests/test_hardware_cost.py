"""`trainwright cost`: quotes from the rate table, and clear errors for what it cannot price."""

from __future__ import annotations

import json

import pytest

from helpers import assert_one_line_error, run_cli
from trainwright.hardware.cost import estimate_cost, load_rates


def test_quotes_are_rate_times_billed_hours_cheapest_first() -> None:
    d = estimate_cost("RTX 4090", 2.0)
    rates = load_rates()["providers"]
    assert [q["cost"] for q in d["quotes"]] == sorted(q["cost"] for q in d["quotes"])
    runpod = next(q for q in d["quotes"] if q["provider"] == "runpod" and q["tier"] == "secure")
    assert runpod["cost"] == round(rates["runpod"]["gpus"]["RTX 4090"]["secure"] * 2, 2)
    # Started minutes are billed: 61 seconds is 2 minutes.
    short = estimate_cost("RTX 4090", 61 / 3600, provider="runpod", gpus=2)
    rate = rates["runpod"]["gpus"]["RTX 4090"]["community"]
    assert short["quotes"][0]["cost"] == round(rate * 2 / 60 * 2, 2)


def test_names_are_matched_loosely() -> None:
    assert estimate_cost("nvidia geforce rtx 4090", 1)["quotes"]
    assert estimate_cost("a100-80gb", 1)["quotes"][0]["gpu"] == "A100 80GB"


def test_unverified_rates_say_so() -> None:
    proc = run_cli("cost", "--gpu", "H100 80GB", "--hours", "3", "--json")
    d = json.loads(proc.stdout)
    assert proc.returncode == 0 and d["as_of"] and "check the provider" in (d["note"] or "")


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--gpu", "RTX 9999", "--hours", "1"], "no rate for GPU"),
        (["--gpu", "A100", "--hours", "1"], "did you mean A100 80GB"),
        (["--gpu", "RTX 4090", "--hours", "0"], "positive"),
        (["--gpu", "RTX 4090", "--hours", "nan"], "positive"),
        (["--gpu", "RTX 4090", "--hours", "1", "--provider", "aws"], "unknown provider"),
        (["--gpu", "L40S", "--hours", "1", "--provider", "vast"], "no rate for GPU"),
        (["--gpu", "RTX 4090", "--hours", "1", "--gpus", "0"], "at least 1"),
    ],
)
def test_bad_input(args: list[str], fragment: str) -> None:
    assert_one_line_error(run_cli("cost", *args), fragment)
