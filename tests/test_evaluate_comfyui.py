"""ComfyUI: workflows checked against the recorded /object_info, the client and `eval-grid`
against a local server that speaks ComfyUI's HTTP API (tests/data/comfyui/fake_server.py)."""

from __future__ import annotations

import copy
import json
import socket
from pathlib import Path

import pytest
from PIL import Image

from data.comfyui.fake_server import FakeComfyUI, write_lora
from helpers import REPO, run_cli
from trainwright.evaluate import comfyui
from trainwright.evaluate.workflow import (
    Sampling,
    build_workflow,
    load_object_info,
    match_file,
    validate_workflow,
)
from trainwright.state.grimoire import Grimoire

RECORDED = REPO / "tests" / "data" / "comfyui" / "object_info.json"
MODEL = "ponyDiffusionV6XL.safetensors"


def graph(weight: float = 0.7, lora: str = "example_style.safetensors") -> dict:
    return build_workflow(MODEL, lora, weight, "mystyle, a fox", 42, Sampling(negative="blurry"))


def test_recorded_object_info_says_where_it_came_from() -> None:
    raw = json.loads(RECORDED.read_text())
    assert "not captured from a live server" in raw["__source__"].lower()
    assert "__source__" not in load_object_info(RECORDED)


def test_built_workflow_passes_the_recorded_node_schemas() -> None:
    info = load_object_info(RECORDED)
    assert validate_workflow(graph(), info) == []
    classes = {n["class_type"] for n in graph().values()}
    assert classes == {
        "CheckpointLoaderSimple",
        "LoraLoader",
        "CLIPTextEncode",
        "EmptyLatentImage",
        "KSampler",
        "VAEDecode",
        "SaveImage",
    }
    g = graph(0.3)
    assert g["2"]["inputs"]["strength_model"] == g["2"]["inputs"]["strength_clip"] == 0.3
    assert g["6"]["inputs"]["seed"] == 42 and g["6"]["inputs"]["model"] == ["2", 0]
    assert g["3"]["inputs"]["clip"] == ["2", 1]  # the prompt goes through the LoRA's CLIP


def test_file_names_are_checked_only_when_asked() -> None:
    info = load_object_info(RECORDED)
    mine = graph(lora="my_own.safetensors")
    assert validate_workflow(mine, info, check_files=False) == []
    problems = validate_workflow(mine, info, check_files=True)
    assert len(problems) == 1 and "lora_name" in problems[0]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda g: g["6"]["inputs"].pop("steps"), "required input 'steps' is missing"),
        (lambda g: g["5"]["inputs"].update(depth=3), "unknown input 'depth'"),
        (lambda g: g["6"]["inputs"].update(sampler_name="euler_magic"), "sampler_name"),
        (lambda g: g["6"]["inputs"].update(denoise=1.5), "above the maximum"),
        (lambda g: g["5"]["inputs"].update(width=8), "below the minimum"),
        (lambda g: g["5"]["inputs"].update(batch_size="one"), "whole number"),
        (lambda g: g["6"]["inputs"].update(positive=["5", 0]), "expects CONDITIONING"),
        (lambda g: g["7"]["inputs"].update(vae=["1", 7]), "links to output 7"),
        (lambda g: g["7"]["inputs"].update(vae=["99", 2]), "missing node '99'"),
        (lambda g: g["2"].update(class_type="LoraLoaderTurbo"), "unknown node type"),
        (lambda g: g.pop("8"), "no output node"),
    ],
)
def test_validator_finds_what_comfyui_would_reject(mutate, expected: str) -> None:
    g = copy.deepcopy(graph())
    mutate(g)
    problems = validate_workflow(g, load_object_info(RECORDED))
    assert any(expected in p for p in problems), problems


def test_match_file_finds_a_lora_in_a_subfolder() -> None:
    assert match_file(["a.safetensors", "styles/mine.safetensors"], "mine.safetensors") == (
        "styles/mine.safetensors"
    )
    assert match_file(["x/mine.safetensors", "y/mine.safetensors"], "mine.safetensors") is None


# --- the client against the local server ---


def test_client_queues_waits_for_history_and_fetches_the_image() -> None:
    with FakeComfyUI(loras=["example_style.safetensors"], delay=0.3) as srv:
        client = comfyui.ComfyUIClient(srv.url, timeout=5)
        assert "devices" in client.system_stats()
        prompt_id = client.queue(graph(0.5))
        assert client.history(prompt_id) is None  # not run yet
        entry = client.wait(prompt_id, timeout=30)
        images = comfyui.output_images(entry, "8")
        data = client.view(images[0])
        assert srv.prompts[0]["client_id"] == client.client_id
    img = Image.open(__import__("io").BytesIO(data))
    assert img.format == "PNG" and img.getpixel((0, 0))[0] == 90  # 40 + 0.5 * 100


def test_client_reports_node_errors_of_a_400() -> None:
    with FakeComfyUI(loras=["other.safetensors"]) as srv:
        client = comfyui.ComfyUIClient(srv.url, timeout=5)
        with pytest.raises(comfyui.Rejected) as err:
            client.queue(graph())
    assert "node 2 (LoraLoader)" in str(err.value) and "lora_name" in str(err.value)
    assert "2" in err.value.node_errors


def test_client_reports_a_500() -> None:
    with FakeComfyUI(loras=["example_style.safetensors"]) as srv:
        srv.fail_status = 500
        with pytest.raises(comfyui.ServerError, match="HTTP 500"):
            comfyui.ComfyUIClient(srv.url, timeout=5).queue(graph())


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_client_says_when_nothing_listens() -> None:
    client = comfyui.ComfyUIClient(f"http://127.0.0.1:{_closed_port()}", timeout=2)
    with pytest.raises(comfyui.Unreachable, match="not reachable"):
        client.system_stats()


def test_client_gives_up_on_a_slow_server() -> None:
    with FakeComfyUI(loras=["example_style.safetensors"], delay=0) as srv:
        srv.slow = 2.0
        client = comfyui.ComfyUIClient(srv.url, timeout=0.3)
        prompt_id = client.queue(graph())
        with pytest.raises(comfyui.Unreachable, match="did not answer"):
            client.wait(prompt_id, timeout=30)


def test_client_reports_a_failure_while_running() -> None:
    with FakeComfyUI(loras=["example_style.safetensors"], delay=0) as srv:
        srv.execution_error_on = 1
        client = comfyui.ComfyUIClient(srv.url, timeout=5)
        with pytest.raises(comfyui.ExecutionFailed, match="KSampler.*out of memory"):
            client.wait(client.queue(graph()), timeout=30)


def test_client_stops_waiting_after_the_image_timeout() -> None:
    with FakeComfyUI(loras=["example_style.safetensors"]) as srv:
        srv.never_finish = True
        client = comfyui.ComfyUIClient(srv.url, timeout=5)
        with pytest.raises(comfyui.TimedOut):
            client.wait(client.queue(graph()), timeout=0.5)


# --- `trainwright eval-grid` end to end through ComfyUI ---


@pytest.fixture()
def project(tmp_path: Path) -> tuple[Path, Path]:
    g = Grimoire(tmp_path / "grimoire")
    g.ensure_base()
    g.new_project("mystyle")
    g.update(
        "intent",
        {"": {"Type": "style", "Trigger word": "mystyle", "Base model": MODEL}},
        "mystyle",
    )
    return g.root, write_lora(tmp_path / "out" / "mystyle.safetensors")


def eval_grid(root: Path, lora: Path, *args: str) -> tuple[int, dict]:
    proc = run_cli("--grimoire", str(root), "eval-grid", "mystyle", "--lora", str(lora), *args,
                   "--json")  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def eval_md(root: Path) -> dict:
    _, data = Grimoire(root).read("eval", "mystyle")
    return data["sections"][""]


def test_eval_grid_through_comfyui_makes_every_cell_at_one_seed(project) -> None:
    root, lora = project
    with FakeComfyUI(loras=["mystyle.safetensors"], checkpoints=[MODEL], delay=0.05) as srv:
        code, out = eval_grid(root, lora, "--comfyui", srv.url, "--weights", "0,0.5,1",
                              "--prompt", "a lighthouse at night", "--seed", "77")  # fmt: skip
        queued = [p["prompt"] for p in srv.prompts]
    assert code == 0 and out["status"] == "complete"
    assert set(out) == {  # the keys eval-phase.md documents
        "run", "folder", "project", "status", "message", "generator", "base_model", "seed",
        "weights", "prompts", "checkpoints", "sampling", "comfyui", "family", "cells_total",
        "cells_made", "partial", "grids", "cells", "eval_md", "snapshot", "exit_code",
    }  # fmt: skip
    assert out["cells_made"] == out["cells_total"] == 6 * 3
    assert {g["6"]["inputs"]["seed"] for g in queued} == {77}
    assert sorted({g["2"]["inputs"]["strength_model"] for g in queued}) == [0.0, 0.5, 1.0]
    assert queued[-1]["3"]["inputs"]["text"] == "mystyle, a lighthouse at night"
    folder = Path(out["folder"])
    assert folder.name.startswith("001-") and out["grids"] == ["grid.png"]
    for cell in out["cells"]:
        pixel = Image.open(folder / cell["image"]).getpixel((0, 0))
        assert pixel[0] == int(40 + cell["weight"] * 100)  # the picture of its own weight
        wf = json.loads((folder / cell["workflow"]).read_text())
        assert wf["2"]["inputs"]["strength_model"] == cell["weight"]
    grid = Image.open(folder / "grid.png")
    assert grid.width > 3 * 192 and grid.height > 6 * 192
    facts = eval_md(root)
    assert facts["Eval run"] == folder.name and facts["Partial"] is False
    assert facts["Weights"] == [0, 0.5, 1] and facts["Seed"] == 77
    assert facts["Test prompts"].startswith("5 standard + 1 custom")
    assert facts["Recommended weight"] is None  # the agent's judgement, not the tool's


def test_a_server_that_goes_away_leaves_a_marked_partial_grid(project) -> None:
    root, lora = project
    with FakeComfyUI(loras=["mystyle.safetensors"], checkpoints=[MODEL], delay=0.05) as srv:
        srv.die_after = 4
        code, out = eval_grid(root, lora, "--comfyui", srv.url, "--weights", "0.5,1")
    assert code == 1 and out["status"] == "partial" and out["partial"] is True
    assert out["cells_made"] == 3
    assert out["grids"] == ["grid-partial.png"]
    not_run = [c for c in out["cells"] if c["status"] == "not-run"]
    assert len(not_run) == 10 - 4 and "not run" in not_run[0]["error"]
    manifest = json.loads((Path(out["folder"]) / "manifest.json").read_text())
    assert manifest["partial"] is True
    facts = eval_md(root)
    assert facts["Partial"] is True and facts["Cells"] == "3 of 10"


def test_a_lora_comfyui_does_not_have_stops_before_queueing(project) -> None:
    root, lora = project
    with FakeComfyUI(loras=["someone_else.safetensors"], checkpoints=[MODEL]) as srv:
        code, out = eval_grid(root, lora, "--comfyui", srv.url)
        assert srv.prompts == []
    assert code == 1 and out["status"] == "failed" and out["grids"] == []
    assert "mystyle.safetensors (ComfyUI/models/loras/)" in out["message"]
    assert len(list(Path(out["folder"]).glob("workflows/*/*.json"))) == 25


def test_a_400_from_comfyui_fails_the_cells_with_its_node_errors(project) -> None:
    root, lora = project
    refusal = {
        "6": {
            "errors": [
                {"message": "Value not in list", "details": "scheduler: 'normal' not in []"}
            ],
            "dependent_outputs": ["8"],
            "class_type": "KSampler",
        }
    }
    with FakeComfyUI(loras=["mystyle.safetensors"], checkpoints=[MODEL]) as srv:
        srv.validate = lambda graph: refusal  # a server-side check the client cannot foresee
        code, out = eval_grid(root, lora, "--comfyui", srv.url, "--weights", "0.5,1")
    assert code == 1 and out["status"] == "failed" and out["grids"] == []
    assert all("node 6 (KSampler)" in c["error"] for c in out["cells"])
    assert all("scheduler: 'normal'" in c["error"] for c in out["cells"])


def test_a_500_stops_the_run(project) -> None:
    root, lora = project
    with FakeComfyUI(loras=["mystyle.safetensors"], checkpoints=[MODEL]) as srv:
        srv.fail_status = 500
        code, out = eval_grid(root, lora, "--comfyui", srv.url)
        assert len(srv.prompts) == 1
    assert code == 1 and out["status"] == "failed" and "HTTP 500" in out["message"]


def test_a_failure_while_running_marks_one_cell(project) -> None:
    root, lora = project
    with FakeComfyUI(loras=["mystyle.safetensors"], checkpoints=[MODEL], delay=0) as srv:
        srv.execution_error_on = 2
        code, out = eval_grid(root, lora, "--comfyui", srv.url, "--weights", "0.5,1",
                              "--no-standard", "--prompt", "a boat")  # fmt: skip
    assert code == 1 and out["status"] == "partial"
    assert [c["status"] for c in out["cells"]] == ["ok", "failed"]
    assert "out of memory" in out["cells"][1]["error"]


def test_a_slow_server_is_given_up_on(project) -> None:
    root, lora = project
    with FakeComfyUI(loras=["mystyle.safetensors"], checkpoints=[MODEL], delay=0) as srv:
        srv.slow = 3.0
        code, out = eval_grid(root, lora, "--comfyui", srv.url, "--request-timeout", "0.5",
                              "--weights", "1")  # fmt: skip
    assert code == 1 and out["status"] == "failed"
    assert "did not answer" in out["message"]


def test_no_comfyui_at_an_explicit_address_saves_workflows_and_says_so(project) -> None:
    root, lora = project
    url = f"http://127.0.0.1:{_closed_port()}"
    code, out = eval_grid(root, lora, "--comfyui", url, "--weights", "0.5,1")
    assert code == 1 and out["status"] == "workflows-only" and out["generator"] == "workflows"
    assert "not reachable" in out["message"] and "workflow JSON" in out["message"]
    files = sorted(Path(out["folder"]).glob("workflows/*/*.json"))
    assert len(files) == 10
    info = load_object_info(RECORDED)
    for f in files:
        assert validate_workflow(json.loads(f.read_text()), info, check_files=False) == []
    assert eval_md(root)["Generator"] == "workflows"


def test_no_comfyui_at_the_default_address_is_not_an_error(project) -> None:
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 8188)) == 0:
            pytest.skip("something listens on 127.0.0.1:8188")
    root, lora = project
    proc = run_cli("--grimoire", str(root), "eval-grid", "mystyle", "--lora", str(lora),
                   env={"TRAINWRIGHT_COMFYUI": ""})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "workflows" in proc.stdout and "not reachable" in proc.stdout


def test_a_new_eval_never_writes_over_an_earlier_one(project) -> None:
    root, lora = project
    g = Grimoire(root)
    with FakeComfyUI(loras=["mystyle.safetensors"], checkpoints=[MODEL], delay=0) as srv:
        _, first = eval_grid(root, lora, "--comfyui", srv.url, "--weights", "0.5,1")
        g.update("eval", {"": {"Recommended weight": 0.6, "Sweet spot": "0.5-0.7"}}, "mystyle")
        eval_path = g.path_for("eval", "mystyle")
        eval_path.write_text(eval_path.read_text() + "\nMara liked the 0.5 column.\n")
        before = {p: p.read_bytes() for p in Path(first["folder"]).rglob("*") if p.is_file()}
        _, second = eval_grid(root, lora, "--comfyui", srv.url, "--weights", "0.6")
    assert Path(first["folder"]).name.startswith("001-")
    assert Path(second["folder"]).name.startswith("002-")
    for path, data in before.items():
        assert path.read_bytes() == data
    kept = Path(first["folder"]) / "eval.md"
    assert second["snapshot"] == str(kept)
    assert "- **Recommended weight**: 0.6" in kept.read_text()
    now = eval_path.read_text()
    assert "Mara liked the 0.5 column." in now  # prose kept
    assert eval_md(root)["Recommended weight"] is None
    assert eval_md(root)["Eval run"] == Path(second["folder"]).name
