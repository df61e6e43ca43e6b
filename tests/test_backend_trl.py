"""The trl backend: TRL's own YAML for SFT / DPO with LoRA, QLoRA or a full fine-tune, the
unsloth flavour, the checks before TRL sees a file, its log, its launch lines, and real runs of
`trl sft` / `trl dpo` on the CPU with a tiny random-init Qwen2 built here (slow)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from trainwright import backends
from trainwright.backends import trl
from trainwright.backends.training_plan import build_plan
from trainwright.errors import TrainwrightError
from trainwright.hardware import catalog

LOGS = Path(__file__).parent / "data" / "logs" / "trl"
HAS_TRL = importlib.util.find_spec("trl") is not None and importlib.util.find_spec("peft")
needs_trl = pytest.mark.skipif(not HAS_TRL, reason="trl is not installed (pip install '.[trl]')")
NO_NVIDIA = not trl._nvidia_gpu()


def plan(optimizer: str = "adamw", **overrides: object):
    """A quick-preset plan for the tiny model; the dataset is a hub name (not checked offline)
    unless a test gives a file."""
    model = catalog.load().get("tiny-qwen2")
    values = {"base_model_path": "/models/tiny", "dataset_dir": "org/sft-data", **overrides}
    backend = backends.get("trl")
    return build_plan(
        backend, model, "demo", preset="quick", optimizer=optimizer, overrides=values
    ).plan


def rendered(**overrides: object) -> tuple[str, dict]:
    text = trl.render(plan(**overrides))[trl.CONFIG_FILE]
    return text, yaml.safe_load(text)


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / trl.CONFIG_FILE
    path.write_text(text)
    return path


# --- writing and checking configs --------------------------------------------------------------


def test_sft_lora_config_is_trl_names_only(tmp_path: Path) -> None:
    data = _rows(tmp_path / "sft.jsonl", [{"messages": []}])
    text, cfg = rendered(dataset_dir=str(data))
    assert text.startswith("# trl sft config for 'demo'")
    assert cfg["model_name_or_path"] == "/models/tiny"
    assert cfg["datasets"] == [{"path": "json", "data_files": str(data), "split": "train"}]
    assert cfg["use_peft"] is True and cfg["lora_r"] == 8 and cfg["lora_alpha"] == 16
    assert cfg["lora_target_modules"] == "all-linear"
    assert cfg["per_device_train_batch_size"] == 4 and cfg["optim"] == "adamw_torch"
    assert "beta" not in cfg and "load_in_4bit" not in cfg
    assert set(cfg) <= trl.keys_for("sft")
    assert trl.check_keys({trl.CONFIG_FILE: text}) == []


@needs_trl
def test_every_rendered_key_is_a_field_of_the_installed_trl() -> None:
    import dataclasses

    import trl as trl_lib

    def fields(*classes: type) -> set[str]:
        return {f.name for c in classes for f in dataclasses.fields(c)}

    shared = fields(trl_lib.ScriptArguments, trl_lib.ModelConfig, trl_lib.DatasetMixtureConfig)
    for trainer, config_cls in (("sft", trl_lib.SFTConfig), ("dpo", trl_lib.DPOConfig)):
        for method in ("lora", "qlora", "full"):
            _, cfg = rendered(trainer=trainer, method=method)
            assert set(cfg) <= shared | fields(config_cls), (trainer, method)


@needs_trl
def test_names_file_is_what_the_installed_trl_says() -> None:
    kept = yaml.safe_load((Path(trl.__file__).parents[3] / "resources/backends/trl-names.yaml")
                          .read_text())  # fmt: skip
    live = trl.names_from_installed()
    if live["trl_version"] != kept["trl_version"]:
        pytest.skip(f"names file is for TRL {kept['trl_version']}, {live['trl_version']} here")
    kept.pop("generated")
    assert kept == live


def test_dpo_qlora_and_full_configs() -> None:
    text, dpo = rendered(trainer="dpo", dataset_dir="org/prefs")
    assert text.startswith("# trl dpo config") and dpo["beta"] == 0.1
    assert trl.kind_of(text) == ("dpo", "hf")
    _, qlora = rendered(method="qlora")
    assert qlora["load_in_4bit"] is True and qlora["bnb_4bit_quant_type"] == "nf4"
    assert qlora["use_peft"] is True
    _, full = rendered(method="full")
    assert not any(k.startswith("lora_") or k == "use_peft" for k in full)
    _, hub = rendered(dataset_dir="trl-lib/Capybara", optimizer="adamw8bit")
    assert hub["dataset_name"] == "trl-lib/Capybara" and "datasets" not in hub
    assert hub["optim"] == "adamw_8bit"


def test_qlora_and_8bit_optimizers_need_a_gpu(tmp_path: Path) -> None:
    text, _ = rendered(method="qlora")
    assert trl.runs_on_cpu(write(tmp_path / "q", text)) is False
    assert trl.runs_on_cpu(write(tmp_path / "l", rendered()[0])) is True
    assert trl.runs_on_cpu(write(tmp_path / "o", rendered(optimizer="adamw8bit")[0])) is False
    if NO_NVIDIA:
        ok, why = trl.installed(tmp_path / "q" / trl.CONFIG_FILE)
        assert not ok and "NVIDIA GPU" in why and "method=lora" in why


def test_unsloth_flavour_renders_and_checks_without_unsloth(tmp_path: Path) -> None:
    before = "unsloth" in sys.modules
    text, cfg = rendered(flavour="unsloth")
    assert text.startswith("# trl sft (unsloth) config")
    assert trl.check_keys({trl.CONFIG_FILE: text}) == []
    path = write(tmp_path, text)
    assert trl.config_kind(path) == ("sft", "unsloth")
    assert trl.command(path)[1:] == [
        "-u", "-m", "trainwright.backends.trl", "unsloth", "sft", "--config", str(path),
    ]  # fmt: skip
    assert trl.framework(plan(flavour="unsloth")) == "unsloth"
    assert trl.framework(plan()) == "trl" == trl.FRAMEWORK
    assert trl.framework(plan(use_liger_kernel=True)) == "trl"  # TRL turns Liger's CE off
    assert trl.runs_on_cpu(path) is False
    assert ("unsloth" in sys.modules) == before  # nothing imported it
    if NO_NVIDIA:
        ok, why = trl.installed(path)
        assert not ok and why.startswith("the unsloth flavour needs an NVIDIA GPU")


def test_bad_choices_and_unknown_override_are_refused() -> None:
    with pytest.raises(TrainwrightError, match="trainer must be one of sft, dpo, not 'ppo'"):
        rendered(trainer="ppo")
    with pytest.raises(TrainwrightError, match="flavour must be one of hf, unsloth"):
        rendered(flavour="axolotl")
    with pytest.raises(TrainwrightError, match=r"'lora_rnk' \(did you mean 'lora_r'\?\)"):
        rendered(lora_rnk=4)
    _, cfg = rendered(packing=True, trainer="sft")  # a real TRL key passes through
    assert cfg["packing"] is True
    with pytest.raises(TrainwrightError, match="'packing'.*dpo config"):
        rendered(packing=True, trainer="dpo")  # an SFT key is not a DPO key


def test_unknown_key_in_the_file_is_one_clear_problem() -> None:
    text, _ = rendered(trainer="dpo", dataset_dir="hub/prefs")
    problems = trl.check_keys({trl.CONFIG_FILE: text + "betta: 0.2\n"})
    assert problems == [
        "trl.yaml: 'betta' (did you mean 'beta'?) is not a key that TRL 1.16.0's dpo config "
        "knows (its dataclasses' fields)"
    ]
    bad_entry = text.replace("dataset_name: hub/prefs", "datasets:\n- path: json\n  file: x")
    assert "datasets entry" in " ".join(trl.check_keys({trl.CONFIG_FILE: bad_entry}))
    assert trl.check_keys({trl.CONFIG_FILE: "- a list"}) == [
        "trl.yaml: a TRL config is a mapping of TRL's argument names"
    ]


def _rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_dpo_dataset_without_preference_columns(tmp_path: Path) -> None:
    bad = _rows(tmp_path / "pairs.jsonl", [{"prompt": "q", "answer": "a"}] * 3)
    text, _ = rendered(trainer="dpo", dataset_dir=str(bad))
    assert trl.check_keys({trl.CONFIG_FILE: text}) == [
        f"trl.yaml: the dpo dataset {bad} lacks chosen, rejected: dpo needs preference columns "
        "prompt / chosen / rejected (or chosen / rejected holding whole conversations); its "
        "columns are answer, prompt"
    ]
    good = _rows(tmp_path / "good.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    assert trl.check_keys({trl.CONFIG_FILE: rendered(trainer="dpo", dataset_dir=str(good))[0]})\
        == []  # fmt: skip
    implicit = tmp_path / "implicit.json"  # a JSON array, conversational, no prompt column
    implicit.write_text(json.dumps([{"chosen": [{"role": "user"}], "rejected": []}]))
    assert trl.check_keys({trl.CONFIG_FILE: rendered(trainer="dpo", dataset_dir=str(implicit))[0]})\
        == []  # fmt: skip
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "train.csv").write_text("prompt,chosen\nq,a\n")
    problems = trl.check_keys(
        {trl.CONFIG_FILE: rendered(trainer="dpo", dataset_dir=str(folder))[0]}
    )
    assert (
        problems and "lacks rejected" in problems[0] and "columns are chosen, prompt" in problems[0]
    )


def test_sft_dataset_columns_missing_file_and_hub_names(tmp_path: Path) -> None:
    bad = _rows(tmp_path / "chat.jsonl", [{"question": "q", "reply": "a"}])
    problems = trl.check_keys({trl.CONFIG_FILE: rendered(dataset_dir=str(bad))[0]})
    assert problems and "lacks text (or messages)" in problems[0]
    assert "its columns are question, reply" in problems[0]
    half = _rows(tmp_path / "pc.jsonl", [{"prompt": "q"}])
    assert (
        "lacks completion"
        in trl.check_keys({trl.CONFIG_FILE: rendered(dataset_dir=str(half))[0]})[0]
    )
    gone = tmp_path / "gone.jsonl"
    assert trl.check_keys({trl.CONFIG_FILE: rendered(dataset_dir=str(gone))[0]}) == [
        f"trl.yaml: the dataset {gone} does not exist"
    ]
    assert trl.check_keys({trl.CONFIG_FILE: rendered(dataset_dir="org/name")[0]}) == []
    # a path relative to the folder the trainer runs in: unknown to Gate 2, known on a cluster
    text = rendered(dataset_dir=str(bad))[0].replace(str(bad), "chat.jsonl")
    assert trl.check_keys({trl.CONFIG_FILE: text}) == []
    config = write(tmp_path, text)
    problems = trl.cluster_problems(yaml.safe_load(text), config)
    assert len(problems) == 1 and "lacks text (or messages)" in problems[0]


# --- running ---------------------------------------------------------------------------------


def test_command_line(tmp_path: Path) -> None:
    path = write(tmp_path / "p", rendered()[0])
    base = trl.command(path)
    assert Path(base[0]).name == "trl" and base[1:] == ["sft", "--config", str(path)]
    dry = trl.command(path, max_steps=5, batch_size=2, accumulation=8, save=False)
    assert dry[4:] == [
        "--max_steps", "5", "--per_device_train_batch_size", "2",
        "--gradient_accumulation_steps", "8",
        "--output_dir", str(tmp_path / "p" / "dry-run"), "--save_strategy", "no",
    ]  # fmt: skip
    assert "--resume_from_checkpoint" not in trl.command(path, resume=True)  # nothing saved yet
    for step in (9, 10):
        (tmp_path / "p" / "output" / f"checkpoint-{step}").mkdir(parents=True)
        (tmp_path / "p" / "output" / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "p" / "output" / "checkpoint-11").mkdir()  # cut off before its state was written
    resumed = trl.command(path, resume=True)
    assert resumed[-2:] == ["--resume_from_checkpoint", str(tmp_path / "p/output/checkpoint-10")]
    assert backends.checkpoint_dir(trl, path) == tmp_path / "p" / "output"
    assert backends.batch_settings(trl, path) == (4, 1)
    dpo = write(tmp_path / "d", rendered(trainer="dpo")[0])
    assert trl.command(dpo)[1] == "dpo"


def test_recorded_console_logs_parse() -> None:
    """Recorded from real runs here (TRL 1.16, the tiny model, 36 rows at batch 4: 9 steps an
    epoch; saving every 5 steps) the way `launch` writes train.log: stdout and stderr in one
    file, unbuffered, behind the supervisor's attempt lines. The SFT log stops at step 7 and
    resumes from checkpoint-7 in a second attempt."""
    from trainwright.run.logs import detect_text, parse_text

    for name in ("sft", "dpo"):
        text = (LOGS / f"{name}-console.log").read_text()
        assert detect_text(text) == "trl"
        st = parse_text(text)
        assert [p.step for p in st.curve()] == list(range(1, 13)), name
        assert all(0 < p.loss < 10 for p in st.curve())
        assert st.steps == 12 and st.steps_per_epoch == 9 and st.epochs == 2
        assert st.finished and st.errors == []
        assert [p.epoch for p in st.curve()] == [1] * 9 + [2] * 3
    sft = parse_text((LOGS / "sft-console.log").read_text())
    assert sft.attempts == 2 and sft.loss_start == 5.922 and sft.loss == 5.821
    assert [c["step"] for c in sft.checkpoints] == [5, 7, 10, 12]
    assert sft.checkpoints[1] == {
        "path": "output/checkpoint-7", "epoch": 1, "step": 7, "loss": 5.853
    }  # fmt: skip


def test_trainer_state_json_and_steps_without_a_count() -> None:
    state_text = (LOGS / "trainer_state.json").read_text()
    st = trl.parse_log(state_text)
    exact = {e["step"]: e["loss"] for e in json.loads(state_text)["log_history"] if "loss" in e}
    assert {p.step: p.loss for p in st.curve()} == exact and st.steps == 12
    assert list(exact) == list(range(1, 13)) and st.finished
    # logging_steps 10 (a person's edit): the fraction of epochs done gives the step
    every_ten = (
        "[transformers]   Num update steps per epoch = 100\n"
        "{'loss': '2.5', 'epoch': '0.1'}\n{'loss': 'nan', 'epoch': '0.2'}\n"
        "ValueError: bad thing\nValueError: bad thing\n"
    )
    st = trl.parse_log(every_ten)
    assert [p.step for p in st.curve()] == [10, 20] and st.loss != st.loss  # NaN kept
    assert st.errors == ["ValueError: bad thing"]


def test_failure_texts_classify() -> None:
    from trainwright.run import failures

    cases = {
        "Accelerate launch command: error: unrecognized arguments: --betta": "config",
        "Traceback ...\nKeyError: 'chosen'\n": "dataset",
        "ValueError: Either `datasets` or `dataset_name` must be provided.": "dataset",
    }
    for text, kind in cases.items():
        assert failures.classify(text, 1, 4).kind == kind, text


def test_peft_that_refuses_the_installed_torchao(monkeypatch: pytest.MonkeyPatch) -> None:
    found = {"trl": "1.16.0", "peft": "0.21.2", "torchao": "0.10.0"}
    monkeypatch.setattr(trl, "_version", lambda dist: found.get(dist))
    ok, why = trl.installed()
    assert not ok and "peft 0.21.2 refuses torchao 0.10.0" in why and "peft<0.19" in why
    found["peft"] = "0.18.1"
    assert trl.installed() == (True, "trl 1.16.0, peft 0.18.1")


# --- on a cluster ----------------------------------------------------------------------------


def _run(**kw: object) -> SimpleNamespace:
    values = {"name": "r1", "model": "tiny-qwen2", "method": "lora", "dataset": "data/sft.jsonl",
              "gpus": 1, "nodes": 1, "params": {}, "extra": {}}  # fmt: skip
    values.update(kw)
    run = SimpleNamespace(**values)
    run.gpus_per_node = (run.gpus or 0) // run.nodes
    run.extra_value = lambda *names: next(
        (v for k, v in run.extra.items() if k.lower() in names), None
    )
    return run


def test_cluster_config_and_launch_lines(tmp_path: Path) -> None:
    from trainwright.cluster.render import words

    run = _run(params={"max_steps": 3, "learning_rate": 0.001}, extra={"model path": "m"})
    text = trl.cluster_config(run, tmp_path)
    cfg = yaml.safe_load(text)
    assert cfg["model_name_or_path"] == str(tmp_path / "m") and cfg["max_steps"] == 3
    assert cfg["datasets"][0]["data_files"] == str(tmp_path / "data/sft.jsonl")
    (tmp_path / "finetune.yaml").write_text(text)
    one = trl.cluster_launch(run, tmp_path, cfg, "/venv/bin/python", None)
    assert Path(str(one.words[0])).name == "env" and one.words[1] == "PYTHONUNBUFFERED=1"
    assert [str(w) for w in one.words][3:] == ["sft", "--config", "finetune.yaml"]
    assert one.checkpoint_dir == tmp_path / "output"
    assert words(one.resume) == (
        f'--resume_from_checkpoint "$(/venv/bin/python -m trainwright.backends.trl latest '
        f'{tmp_path / "output"})"'
    )
    assert trl.main(["latest", str(tmp_path / "output")]) == 1  # none yet: prints nothing
    four = trl.cluster_launch(_run(gpus=4), tmp_path, cfg, "/venv/bin/python", None)
    assert words(four.words).endswith(
        "launch --num_processes 4 --num_machines 1 --multi_gpu -m trl.scripts.sft "
        "--config finetune.yaml"
    )
    multi = words(trl.cluster_launch(_run(gpus=8, nodes=2), tmp_path, cfg, "python", None).words)
    assert multi.startswith("srun --kill-on-bad-exit=1 --ntasks-per-node=1 /")
    assert "/env PYTHONUNBUFFERED=1 bash -c " in multi
    assert """'exec "$0" launch --machine_rank "$SLURM_NODEID" "$@"' accelerate""" in multi
    assert '--main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT"' in multi
    dpo = _run(extra={"trainer": "dpo", "flavour": "unsloth"})
    (tmp_path / "finetune.yaml").write_text(trl.cluster_config(dpo, tmp_path))
    with pytest.raises(TrainwrightError, match="unsloth flavour trains on one GPU"):
        trl.cluster_launch(_run(gpus=2), tmp_path, cfg, "python", None)
    assert trl.model_problem("qwen2.5-0.5b") is None and trl.model_problem("org/x") is None
    assert "language models" in trl.model_problem("sdxl")
    assert "neither a catalog model" in trl.model_problem("nonsense")


# --- real runs on the CPU ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HAS_TRL:
        pytest.skip("trl is not installed")
    ok, why = trl.installed()
    assert ok, why
    from trainwright.demo import tiny_llm as maker

    root = tmp_path_factory.mktemp("tiny-llm")
    maker.make_model(root / "model")
    maker.make_datasets(root / "data")
    return root


def train(folder: Path, **kw: object) -> tuple[subprocess.CompletedProcess[str], float]:
    """The command as `launch` runs it: in the config's folder, output unbuffered, stdout and
    stderr in one stream."""
    path = folder / trl.CONFIG_FILE
    start = time.monotonic()
    proc = subprocess.run(
        trl.command(path, **kw), cwd=folder, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    print(f"{trl.command(path, **kw)[1]} {kw}: {elapsed:.1f} s")
    return proc, elapsed


FAST = {"precision": "fp32", "learning_rate": 0.003, "gradient_checkpointing": False}


@pytest.mark.slow
def test_real_sft_lora_run_saves_resumes_and_parses(tiny_llm: Path, tmp_path: Path) -> None:
    text, _ = rendered(
        base_model_path=str(tiny_llm / "model"), dataset_dir=str(tiny_llm / "data/sft.jsonl"),
        save_strategy="steps", save_steps=3, **FAST,
    )  # fmt: skip
    path = write(tmp_path / "sft", text)
    assert trl.check_keys({trl.CONFIG_FILE: text}) == []
    proc, _ = train(path.parent, max_steps=6)
    assert proc.returncode == 0, proc.stdout[-3000:]
    out = trl.checkpoint_dir(path)
    assert (out / "adapter_model.safetensors").is_file()
    assert (out / "checkpoint-6" / "adapter_model.safetensors").is_file()
    st = trl.parse_log(proc.stdout)
    assert [p.step for p in st.curve()] == [1, 2, 3, 4, 5, 6] and st.finished
    assert all(0 < p.loss < 10 for p in st.curve())
    again, _ = train(path.parent, max_steps=9, resume=True)
    assert again.returncode == 0, again.stdout[-3000:]
    st = trl.parse_log(again.stdout)
    assert [p.step for p in st.curve()] == [7, 8, 9]  # went on from checkpoint-6
    exact = trl.parse_log((out / "checkpoint-9" / "trainer_state.json").read_text())
    assert [p.step for p in exact.curve()] == list(range(1, 10))
    assert exact.loss < exact.loss_start  # 9 LoRA steps at 3e-3 on 36 fixed sentences


@pytest.mark.slow
def test_real_dpo_and_full_runs(tiny_llm: Path, tmp_path: Path) -> None:
    dpo_text, _ = rendered(
        trainer="dpo", base_model_path=str(tiny_llm / "model"),
        dataset_dir=str(tiny_llm / "data/dpo.jsonl"), **FAST,
    )  # fmt: skip
    dpo = write(tmp_path / "dpo", dpo_text)
    proc, _ = train(dpo.parent, max_steps=4, save=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    st = trl.parse_log(proc.stdout)
    assert [p.step for p in st.curve()] == [1, 2, 3, 4]
    assert abs(st.loss_start - 0.6931) < 0.01  # DPO starts at log 2 (policy == reference)
    assert (dpo.parent / "dry-run" / "adapter_model.safetensors").is_file()
    assert not trl.checkpoint_dir(dpo).exists()  # a dry run keeps nothing in output/
    full_text, _ = rendered(
        method="full", base_model_path=str(tiny_llm / "model"),
        dataset_dir=str(tiny_llm / "data/sft.jsonl"), **FAST,
    )  # fmt: skip
    full = write(tmp_path / "full", full_text)
    proc, _ = train(full.parent, max_steps=3)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (trl.checkpoint_dir(full) / "model.safetensors").is_file()


FAKE_UNSLOTH = '''
"""A stand-in for unsloth in tests: its loader API, made of transformers + peft, recording the
arguments it was given (the real one needs an NVIDIA GPU)."""
import json, os
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

def _record(name, **kw):
    with open(os.environ["FAKE_UNSLOTH_LOG"], "a") as fh:
        fh.write(json.dumps({"call": name, **kw}) + "\\n")

class FastLanguageModel:
    @staticmethod
    def from_pretrained(model_name, max_seq_length, load_in_4bit, dtype):
        _record("from_pretrained", model_name=model_name, max_seq_length=max_seq_length,
                load_in_4bit=load_in_4bit)
        return AutoModelForCausalLM.from_pretrained(model_name), AutoTokenizer.from_pretrained(
            model_name)

    @staticmethod
    def get_peft_model(model, r, lora_alpha, lora_dropout, target_modules,
                       use_gradient_checkpointing, random_state):
        _record("get_peft_model", r=r, lora_alpha=lora_alpha, target_modules=target_modules,
                use_gradient_checkpointing=use_gradient_checkpointing)
        return get_peft_model(model, LoraConfig(r=r, lora_alpha=lora_alpha,
                                                lora_dropout=lora_dropout,
                                                target_modules=target_modules))
'''


@pytest.mark.slow
def test_unsloth_launcher_hands_unsloths_model_to_trl(tiny_llm: Path, tmp_path: Path) -> None:
    """The flavour's launcher, run for real with a stand-in `unsloth` package (the real one
    needs an NVIDIA GPU): it loads through FastLanguageModel with the YAML's settings and TRL
    trains what it returns."""
    fake = tmp_path / "fake" / "unsloth"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(FAKE_UNSLOTH)
    text, _ = rendered(
        flavour="unsloth", base_model_path=str(tiny_llm / "model"),
        dataset_dir=str(tiny_llm / "data/sft.jsonl"), seq_len=256, **FAST,
    )  # fmt: skip
    path = write(tmp_path / "u", text)
    calls = tmp_path / "calls.jsonl"
    path_var = os.pathsep.join([str(tmp_path / "fake"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "FAKE_UNSLOTH_LOG": str(calls), "PYTHONPATH": path_var}
    proc = subprocess.run(
        trl.command(path, max_steps=3), cwd=path.parent, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    loaded = [json.loads(line) for line in calls.read_text().splitlines()]
    assert loaded[0] == {"call": "from_pretrained", "model_name": str(tiny_llm / "model"),
                         "max_seq_length": 256, "load_in_4bit": False}  # fmt: skip
    assert loaded[1]["r"] == 8 and loaded[1]["target_modules"] == trl.LINEAR
    assert loaded[1]["use_gradient_checkpointing"] is False
    st = trl.parse_log(proc.stdout)
    assert [p.step for p in st.curve()] == [1, 2, 3] and st.finished
    assert (trl.checkpoint_dir(path) / "adapter_model.safetensors").is_file()


def test_tiny_llm_builder_is_a_cli(tmp_path: Path) -> None:
    from trainwright.demo import tiny_llm

    rows = tiny_llm.dpo_rows()
    assert len(rows) == 36 and {"prompt", "chosen", "rejected"} == set(rows[0])
    assert all(r["chosen"] != r["rejected"] for r in rows)
    assert tiny_llm.main([]) == 2
    written = tiny_llm.make_datasets(tmp_path)
    sft = [json.loads(line) for line in written["sft"].read_text().splitlines()]
    assert len(sft) == 36 and [m["role"] for m in sft[0]["messages"]] == ["user", "assistant"]
