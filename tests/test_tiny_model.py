"""The tiny backend's model: the bundled weights, LoRA layers and files, the data loader, and the
script that makes the weights (reproducible from data it generates)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from trainwright.backends.tiny_model import lora
from trainwright.backends.tiny_model.data import (
    DatasetError,
    load_folder,
    with_trigger,
    write_example_dataset,
)
from trainwright.backends.tiny_model.make_weights import make
from trainwright.backends.tiny_model.model import (
    TinyDenoiser,
    diffusion_loss,
    encode_captions,
    sample,
    tokenize,
)
from trainwright.backends.tiny_model.train import BUNDLED, bundled_weights, load_base


def test_bundled_weights_are_small_and_load() -> None:
    path = bundled_weights()
    assert path.is_file() and path.stat().st_size < 4 * 2**20
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    assert meta["made_by"].endswith("make_weights") and int(meta["steps"]) > 0
    model, ident = load_base(BUNDLED)
    assert ident.startswith("base.safetensors@")
    assert sum(p.numel() for p in model.parameters()) == sum(
        t.numel() for t in load_file(str(path)).values()
    )


def test_make_weights_is_reproducible(tmp_path: Path) -> None:
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    make(a, steps=1, batch=1, size=16)
    make(b, steps=1, batch=1, size=16)
    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys() == TinyDenoiser().state_dict().keys()
    assert all(torch.equal(ta[k], tb[k]) for k in ta)


def test_a_fresh_lora_leaves_the_model_unchanged_and_trains() -> None:
    torch.manual_seed(0)
    model = TinyDenoiser()
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([0.3, 0.7])
    tokens = encode_captions(["exstyle, a red circle", "a blue square"])
    before = model(x, t, tokens)
    layers = lora.inject(model, rank=4, alpha=4)
    assert torch.allclose(model(x, t, tokens), before, atol=1e-6)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(
        n.endswith(("down.weight", "up.weight"))
        for n, p in model.named_parameters()
        if p.requires_grad
    )
    opt = torch.optim.AdamW(trainable, lr=1e-2)
    gen = torch.Generator().manual_seed(1)
    diffusion_loss(model, x, tokens, gen).backward()
    opt.step()
    after = model(x, t, tokens)
    assert not torch.allclose(after, before, atol=1e-6)
    lora.set_multiplier(layers, 0.0)
    assert torch.allclose(model(x, t, tokens), before, atol=1e-6)


def test_lora_file_round_trip_with_kohya_names(tmp_path: Path) -> None:
    model = TinyDenoiser()
    layers = lora.inject(model, rank=4, alpha=2)
    for layer in layers.values():
        torch.nn.init.normal_(layer.up.weight)
    path = tmp_path / "x.safetensors"
    lora.save(path, layers, {"epoch": "3"})
    assert not path.with_name("x.safetensors.partial").exists()
    tensors = load_file(str(path))
    assert "lora_unet_down1_conv1.lora_down.weight" in tensors
    assert "lora_unet_text_proj_0.alpha" in tensors
    other = lora.inject(TinyDenoiser(), rank=4, alpha=4)
    assert lora.load_lora_state(other, tensors) == len(layers)
    assert other["down1.conv1"].alpha == 2.0
    with pytest.raises(ValueError, match="different rank"):
        lora.load_lora_state(lora.inject(TinyDenoiser(), rank=8, alpha=8), tensors)


def test_sampling_is_deterministic_for_a_seed() -> None:
    model, _ = load_base(BUNDLED)
    tokens = encode_captions(["a red circle on a blue background"])
    a = sample(model, tokens, size=16, steps=3, generator=torch.Generator().manual_seed(5))
    b = sample(model, tokens, size=16, steps=3, generator=torch.Generator().manual_seed(5))
    assert a.shape == (1, 3, 16, 16) and torch.equal(a, b) and a.abs().max() <= 1


def test_tokens_and_trigger_word() -> None:
    assert tokenize("ExStyle, red") == tokenize("exstyle red") and 0 not in tokenize("a b")
    assert with_trigger("a red circle", "exstyle") == "exstyle, a red circle"
    assert with_trigger("exstyle, a red circle", "exstyle") == "exstyle, a red circle"
    assert with_trigger("", "exstyle") == "exstyle"


def test_dataset_folder_reading(tmp_path: Path) -> None:
    files = write_example_dataset(tmp_path, 3, trigger="mytrig", size=40)
    files[0].with_suffix(".txt").unlink()
    (tmp_path / ".hidden.png").write_bytes(b"not an image")
    ds = load_folder(tmp_path, "mytrig", 32)
    assert len(ds.images) == 3 and ds.images[0].size == (32, 32)
    assert ds.uncaptioned == [files[0].name] and ds.captions[0] == "mytrig"
    assert all(c.startswith("mytrig") for c in ds.captions)


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda d: d.joinpath("painting_00.txt").write_bytes(b"\xff\xfe bad"), "not UTF-8"),
        (lambda d: d.joinpath("painting_01.png").write_bytes(b"garbage"), "cannot be read"),
        (lambda d: [p.unlink() for p in d.glob("*.png")], "no images"),
    ],
)
def test_dataset_problems_name_the_file(tmp_path: Path, damage: object, message: str) -> None:
    write_example_dataset(tmp_path, 2, size=40)
    damage(tmp_path)  # type: ignore[operator]
    with pytest.raises(DatasetError, match=message):
        load_folder(tmp_path, "t", 32)
    with pytest.raises(DatasetError, match="does not exist"):
        load_folder(tmp_path / "missing", "t", 32)
