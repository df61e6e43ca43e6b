"""Reading reports written by people and by the pack: tables, fields, headings, YAML, ncu."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from trainwright.retro import markdown
from trainwright.retro.collect import extract_text
from trainwright.retro.domains import focus, role_of_heading, status_failed
from trainwright.retro.experiment_report import Report
from trainwright.retro.extract import from_markdown, split_failure
from trainwright.retro.values import comparable, parse_number, unit_of_key


def _md(text: str, domain: str = "research", fmt: str = "markdown") -> Report:
    return from_markdown(markdown.parse(text), Report("r.md", fmt, "r.md"), focus(domain))


def test_pipe_tables_with_odd_spacing_alignment_rows_and_ragged_rows() -> None:
    doc = markdown.parse(
        "## Results\n\n|Heads | FFN  |Accuracy   |\n|:---:|---:|:--|\n|  8  | 3072 | 92.0 %|\n"
        "|4|3072|87 %| extra cell |\n| 12 | 3072 |\n"
    )
    table = doc.sections[-1].tables[0]
    assert table.header == ["Heads", "FFN", "Accuracy"]
    assert table.rows == [["8", "3072", "92.0 %"], ["4", "3072", "87 %"], ["12", "3072", ""]]
    assert any("different cell count" in n for n in doc.notes)


def test_table_without_outer_pipes_and_without_alignment_row() -> None:
    rep = _md("rank | alpha | tok/s | status\n---|---|---|---\n16 | 32 | 2,540 | ok\n", "unsloth")
    (run,) = rep.runs
    assert run.parameters == {"lora_rank": "16", "lora_alpha": "32"}
    assert run.metrics == {"throughput": "2,540 tok/s"}
    rep = _md("| rank | peak VRAM |\n| 8 | 14 GB |\n| 64 | OOM |\n", "unsloth")
    assert [r.failed for r in rep.runs] == [False, True]
    assert rep.failed[0].what == "rank=64" and rep.failed[0].why == "peak VRAM OOM"


def test_escaped_pipes_and_inline_markup_in_cells() -> None:
    doc = markdown.parse("| a | b |\n|---|---|\n| `x \\| y` | **bold** [link](http://z) |\n")
    assert doc.sections[0].tables[0].rows == [["x | y", "bold link"]]


def test_field_line_variants() -> None:
    rep = _md(
        "# T\n- **Learning rate**: 3e-4\n**Batch size:** 32\nwarmup = 500\n"
        "* epochs: 10\nNotes: fine\nFixed: lr=1e-4, weight_decay=0.1\n"
    )
    assert rep.parameters["learning_rate"] == "3e-4"
    assert rep.parameters["batch_size"] == "32"
    assert rep.parameters["warmup"] == "500"
    assert rep.parameters["epochs"] == "10"
    assert rep.parameters["weight_decay"] == "0.1"
    assert rep.setup["Fixed"] == "lr=1e-4, weight_decay=0.1"


def test_heading_styles_give_roles() -> None:
    text = (
        "Report\n======\n\nSetup\n-----\n- model: gpt2\n\n**What worked**\n- a thing\n\n"
        "What didn't work:\n- 12 heads: slower\n\n### Open questions\n- why?\n"
    )
    rep = _md(text)
    assert rep.title == "Report"
    assert rep.parameters["model"] == "gpt2"
    assert rep.worked == ["a thing"]
    assert [(f.what, f.why) for f in rep.failed] == [("12 heads", "slower")]
    assert rep.questions == ["why?"]


def test_roles_from_heading_words() -> None:
    assert role_of_heading("What didn't work") == "failed"
    assert role_of_heading("2. Failure Analysis") == "failed"
    assert role_of_heading("Pain points") == "failed"
    assert role_of_heading("Key findings") == "worked"
    assert role_of_heading("Lessons learned") == "lessons"
    assert role_of_heading("Gotchas") == "quirks"
    assert role_of_heading("Hardware") == "setup"
    assert role_of_heading("Appendix") is None


def test_failure_lines_split_into_what_and_why() -> None:
    assert split_failure("BLOCK_M=128: register spilling, 30% slowdown") == (
        "BLOCK_M=128",
        "register spilling, 30% slowdown",
    )
    assert split_failure("rank 64 - out of memory") == ("rank 64", "out of memory")
    assert split_failure("Naive reduction -> bank conflicts") == (
        "Naive reduction",
        "bank conflicts",
    )
    assert split_failure("lr 1e-3 diverged because warmup was 0") == (
        "lr 1e-3 diverged",
        "warmup was 0",
    )
    assert split_failure("rank 8 underfits (loss plateau)") == ("rank 8 underfits", "loss plateau")
    assert split_failure("it just broke") == ("it just broke", None)


def test_emoji_and_check_marks_count_anywhere() -> None:
    rep = _md("## Numbers\n- ✅ packing doubled throughput\n- ❌ seq 8192: OOM at step 12\n")
    assert rep.worked == ["packing doubled throughput"]
    assert [(f.what, f.why) for f in rep.failed] == [("seq 8192", "OOM at step 12")]


def test_failure_table_with_lessons_and_metric_table() -> None:
    rep = _md(
        "## Failures\n| What failed | Why | Lesson |\n|---|---|---|\n| fp16 Welford | underflow |"
        " use fp32 |\n\n## Results\n| Metric | Value |\n|---|---|\n| Bandwidth | 3.01 TB/s |\n",
        "cuda",
    )
    assert (rep.failed[0].what, rep.failed[0].why, rep.failed[0].lesson) == (
        "fp16 Welford",
        "underflow",
        "use fp32",
    )
    assert rep.metrics["bandwidth"] == "3.01 TB/s"


def test_transposed_table_makes_one_run_per_column() -> None:
    rep = _md("| metric | run A | run B |\n|---|---|---|\n| accuracy | 0.91 | 0.88 |\n")
    assert [(r.label, r.metrics) for r in rep.runs] == [
        ("run A", {"accuracy": "0.91"}),
        ("run B", {"accuracy": "0.88"}),
    ]


def test_domain_focus_decides_parameters_and_metrics() -> None:
    text = "- BLOCK_SIZE: 1024\n- lr: 3e-4\n- LoRA rank: 16\n- bandwidth: 2,900 GB/s\n"
    cuda, research, unsloth = (_md(text, d) for d in ("cuda", "research", "unsloth"))
    assert cuda.parameters == {"block_size": "1024"} and "bandwidth" in cuda.metrics
    assert research.parameters == {"learning_rate": "3e-4"}
    assert unsloth.parameters == {"learning_rate": "3e-4", "lora_rank": "16"}
    assert "BLOCK_SIZE" in research.setup and "BLOCK_SIZE" in unsloth.setup


def test_ncu_output_in_a_code_block() -> None:
    rep = _md(
        "```\n    Duration                      usecond       224.35\n"
        "    Memory Throughput                   %        41.27\n"
        "    Registers Per Thread  register/thread          168\n"
        "    Achieved Occupancy                  %        11.92\n```\n",
        "cuda",
    )
    assert rep.metrics == {
        "time": "224.35 usecond",
        "pct_peak": "41.27 %",
        "registers": "168 register/thread",
        "occupancy": "11.92 %",
    }


def test_decision_and_reason_of_a_validation_report() -> None:
    rep = _md("## Decision\n- **Decision**: Fail\n- **Reason**: perplexity 25 > 22\n")
    assert rep.decision == "Fail (perplexity 25 > 22)"
    assert rep.failed[0].what == "Decision: Fail" and rep.failed[0].why == "perplexity 25 > 22"


def test_grimoire_template_prose_is_not_taken_for_a_failure() -> None:
    text = (
        "# Training Progress: x\n\n- **Status**: FAILED\n- **Reason**: CUDA OOM\n\n## Anomalies\n"
    )
    text += "Loss plateaus, divergence or NaN, as the monitor saw them.\n"
    rep = _md(text, "unsloth", fmt="grimoire-progress")
    assert [(f.what, f.why) for f in rep.failed] == [("Status FAILED", "CUDA OOM")]


def test_runs_status_yaml_with_slurm_states() -> None:
    text = (
        "experiment: sweep\nruns:\n  r1: {status: COMPLETED, lr: 1e-4, metrics: {val_loss: 2.1}}\n"
        "  r2: {status: OUT_OF_MEMORY, lr: 1e-4, batch_size: 64, reason: 80GB not enough}\n"
        "  r3: {state: TIMEOUT, lr: 3e-4}\n"
    )
    from pathlib import Path

    rep = extract_text(text, Path("runs_status.yaml"), "runs_status.yaml", focus("research"))
    assert rep.format == "runs-status" and rep.title == "sweep"
    assert [r.failed for r in rep.runs] == [False, True, True]
    assert rep.runs[0].metrics == {"val_loss": "2.1"}
    assert rep.failed[0].why == "OUT_OF_MEMORY: 80GB not enough"
    assert rep.failed[1].why == "TIMEOUT"


def test_json_list_of_runs() -> None:
    from pathlib import Path

    text = json.dumps([{"name": "a", "tokens_per_second": 10, "status": "ok"}])
    rep = extract_text(text, Path("x.json"), "x.json", focus("unsloth"))
    assert rep.runs[0].label == "a" and rep.runs[0].metrics == {"throughput": "10"}


def test_numbers_and_units() -> None:
    assert parse_number("2,950 GB/s") == (2950.0, "GB/s")
    assert parse_number("~45k steps") == (45000.0, None)
    assert comparable("1.2 TB/s") == (1200.0, "bandwidth")
    assert comparable("41.3 us")[1] == comparable("0.2 ms")[1] == "time"
    assert comparable("n/a") is None
    assert unit_of_key("time (µs)") == "µs" and unit_of_key("TFLOPS") == "TFLOPS"


def test_status_words() -> None:
    assert status_failed("OUT_OF_MEMORY") and status_failed("❌") and status_failed("NaN loss")
    assert status_failed("COMPLETED") is False and status_failed("✅") is False
    assert status_failed("pending review") is None


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400))
def test_any_text_is_read_without_raising(text: str) -> None:
    for domain in ("research", "cuda"):
        rep = _md(text, domain)
        json.dumps(rep.as_dict())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["| a | b |", "|---|:-:|", "| 1 |", "# h", "- **k**: v", "```", "x: y", "", "***"]
        ),
        max_size=25,
    )
)
def test_markdown_fragments_are_read_without_raising(lines: list[str]) -> None:
    _md("\n".join(lines), "unsloth")
