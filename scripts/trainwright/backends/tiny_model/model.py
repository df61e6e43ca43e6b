"""A compact text-conditioned image denoiser (a small UNet, about 0.5 M parameters).

It predicts the noise added to a 64 px image under a cosine schedule, conditioned on the diffusion
time and on a caption read as a bag of hashed words. Small enough to train on two CPU cores,
shaped like the real thing (convolutions, group norms, skip connections, FiLM conditioning), so a
LoRA on it behaves like a LoRA on a large image model.
"""

from __future__ import annotations

import math
import re
import zlib

import torch
from torch import nn
from torch.nn import functional as F

VOCAB = 2048
TEXT_DIM = 64
COND_DIM = 128
CHANNELS = (16, 32, 64)
MAX_TOKENS = 32
_WORD = re.compile(r"[a-z0-9]+")


def tokenize(caption: str) -> list[int]:
    """Words -> hashed ids in 1..VOCAB-1 (0 pads); a new trigger word gets its own id too."""
    words = _WORD.findall(caption.lower())[:MAX_TOKENS]
    return [zlib.crc32(w.encode()) % (VOCAB - 1) + 1 for w in words] or [0]


def encode_captions(captions: list[str]) -> torch.Tensor:
    ids = [tokenize(c) for c in captions]
    out = torch.zeros(len(ids), MAX_TOKENS, dtype=torch.long)
    for i, row in enumerate(ids):
        out[i, : len(row)] = torch.tensor(row)
    return out


def alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal): the share of signal left at time t in [0, 1]."""
    return torch.cos((t + 0.008) / 1.008 * math.pi / 2).clamp(min=1e-4) ** 2


def timestep_embedding(t: torch.Tensor, dim: int = TEXT_DIM) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = t[:, None] * 1000.0 * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(COND_DIM, 2 * c_out)
        self.norm2 = nn.GroupNorm(8, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(cond)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return h + self.skip(x)


class TinyDenoiser(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        c1, c2, c3 = CHANNELS
        self.token_embedding = nn.EmbeddingBag(VOCAB, TEXT_DIM, mode="mean", padding_idx=0)
        self.text_proj = nn.Sequential(
            nn.Linear(TEXT_DIM, COND_DIM), nn.SiLU(), nn.Linear(COND_DIM, COND_DIM)
        )
        self.time_proj = nn.Sequential(
            nn.Linear(TEXT_DIM, COND_DIM), nn.SiLU(), nn.Linear(COND_DIM, COND_DIM)
        )
        self.conv_in = nn.Conv2d(3, c1, 3, padding=1)
        self.down1 = ResBlock(c1, c1)
        self.pool1 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.down2 = ResBlock(c2, c2)
        self.pool2 = nn.Conv2d(c2, c3, 3, stride=2, padding=1)
        self.mid1 = ResBlock(c3, c3)
        self.mid2 = ResBlock(c3, c3)
        self.lift2 = nn.Conv2d(c3, c2, 3, padding=1)
        self.up2 = ResBlock(2 * c2, c2)
        self.lift1 = nn.Conv2d(c2, c1, 3, padding=1)
        self.up1 = ResBlock(2 * c1, c1)
        self.norm_out = nn.GroupNorm(8, c1)
        self.conv_out = nn.Conv2d(c1, 3, 3, padding=1)

    def condition(self, t: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        text = self.text_proj(self.token_embedding(tokens))
        return self.time_proj(timestep_embedding(t)) + text

    def forward(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        cond = self.condition(t, tokens)
        h1 = self.down1(self.conv_in(x), cond)
        h2 = self.down2(self.pool1(h1), cond)
        h = self.mid2(self.mid1(self.pool2(h2), cond), cond)
        h = self.lift2(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.up2(torch.cat([h, h2], dim=1), cond)
        h = self.lift1(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.up1(torch.cat([h, h1], dim=1), cond)
        return self.conv_out(F.silu(self.norm_out(h)))


def diffusion_loss(
    model: nn.Module,
    images: torch.Tensor,
    tokens: torch.Tensor,
    generator: torch.Generator,
    part: slice | None = None,
) -> torch.Tensor:
    """Noise-prediction MSE at a random time per image (images scaled to [-1, 1]).

    `part`: the loss of that slice only, with times and noise still drawn for the whole batch,
    so data-parallel ranks that each take a slice draw what one process would (same generator).
    """
    n = images.shape[0]
    t = torch.rand(n, generator=generator).to(images.device)
    noise = torch.randn(images.shape, generator=generator).to(images.device)
    if part is not None:
        images, tokens, t, noise = images[part], tokens[part], t[part], noise[part]
    ab = alpha_bar(t)[:, None, None, None]
    noisy = ab.sqrt() * images + (1 - ab).sqrt() * noise
    return F.mse_loss(model(noisy, t, tokens), noise)


@torch.no_grad()
def sample(
    model: nn.Module,
    tokens: torch.Tensor,
    size: int = 64,
    steps: int = 25,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Deterministic DDIM sampling; returns images in [-1, 1], shape (n, 3, size, size)."""
    n = tokens.shape[0]
    device = next(model.parameters()).device
    x = torch.randn((n, 3, size, size), generator=generator).to(device)
    times = torch.linspace(1.0, 0.0, steps + 1)
    for t_now, t_next in zip(times[:-1], times[1:], strict=True):
        t = torch.full((n,), float(t_now), device=device)
        eps = model(x, t, tokens)
        ab_now, ab_next = alpha_bar(t_now), alpha_bar(t_next)
        x0 = ((x - (1 - ab_now).sqrt() * eps) / ab_now.sqrt()).clamp(-1, 1)
        x = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps
    return x.clamp(-1, 1)
