"""The Markdown state format: fields under headings, prose kept verbatim on every write."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainwright.errors import StateFileError, TrainwrightError
from trainwright.state.document import parse_document, set_fields

SAMPLE = """# Dataset Report: cats

Some prose the artist wrote, with **bold** and a list:
- not a field, just a bullet

## Summary
- **Images**: 30
- **Captioned:** 28
* **Average resolution**: 1024x1024

```
- **Images**: 999
## Not a heading
```

## Gate 1 Decision
- **Decision**: PENDING

Trailing notes.
"""


def test_parse_fields_under_headings() -> None:
    doc = parse_document(SAMPLE)
    assert doc.title == "Dataset Report: cats"
    assert doc.get("Summary", "Images") == "30"
    assert doc.get("Summary", "Captioned") == "28"  # the `**Key:**` variant
    assert doc.get("Summary", "Average resolution") == "1024x1024"
    assert "Not a heading" not in doc.sections  # inside a code fence
    assert doc.sections["Summary"].fields["Images"].line == 7
    assert doc.get("Gate 1 Decision", "Decision") == "PENDING"


def test_set_fields_rewrites_only_values_and_keeps_prose() -> None:
    doc = parse_document(SAMPLE)
    new = set_fields(
        doc,
        {
            "Summary": {"Images": 31, "Quality issues": 2},
            "Gate 1 Decision": {"Decision": "GO"},
            "Brand New": {"Key": "v"},
        },
    )
    text = new.text()
    old_lines = SAMPLE.splitlines()
    new_lines = text.splitlines()
    # Every prose line survives, in order.
    prose = [ln for ln in old_lines if "**" not in ln or "bold" in ln]
    it = iter(new_lines)
    assert all(any(p == n for n in it) for p in prose)
    assert "- **Images**: 31" in new_lines
    assert "- **Captioned:** 28" in new_lines  # untouched line keeps its own style
    assert (
        new_lines.index("- **Quality issues**: 2")
        == new_lines.index("* **Average resolution**: 1024x1024") + 1
    )
    assert "- **Images**: 999" in new_lines  # code block untouched
    assert text.rstrip().endswith("## Brand New\n- **Key**: v")
    assert new.get("Gate 1 Decision", "Decision") == "GO"


def test_top_fields_under_title() -> None:
    doc = parse_document("# Training Intent: x\n\nIntro.\n\n- **Type**: style\n")
    assert doc.get("", "Type") == "style"
    new = set_fields(doc, {"": {"Trigger word": "xyz"}})
    assert (
        new.text()
        == "# Training Intent: x\n\nIntro.\n\n- **Type**: style\n- **Trigger word**: xyz\n"
    )


def test_duplicate_heading_is_an_error_with_line() -> None:
    with pytest.raises(StateFileError) as exc:
        parse_document("# T\n## A\n- **k**: 1\n## A\n")
    assert exc.value.line == 4 and "appears twice" in str(exc.value)


def test_duplicate_key_is_an_error_with_line() -> None:
    with pytest.raises(StateFileError) as exc:
        parse_document("# T\n## A\n- **k**: 1\n- **k**: 2\n")
    assert exc.value.line == 4


def test_unclosed_fence_is_reported() -> None:
    with pytest.raises(StateFileError, match="never closed"):
        parse_document("# T\n```\n- **k**: 1\n")


@pytest.mark.parametrize("bad", ["two\nlines", "cr\rhere", "bell\x07"])
def test_values_that_would_break_the_line_are_refused(bad: str) -> None:
    doc = parse_document("# T\n- **k**: 1\n")
    with pytest.raises(TrainwrightError):
        set_fields(doc, {"": {"k": bad}})


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40))
def test_any_one_line_value_round_trips(value: str) -> None:
    doc = parse_document("# T\n\n## S\n- **Key**: old\n\nprose\n")
    new = set_fields(doc, {"S": {"Key": value}})
    assert new.get("S", "Key") == value.strip(" \t")
    assert "prose" in new.text().splitlines()
