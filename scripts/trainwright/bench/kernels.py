"""The kernels `trainwright bench kernel` knows. Adding one is one entry in KERNELS.

A kernel module (imported lazily, after TRITON_INTERPRET is decided) provides:
- `OPERATION`, `MEMORY_PATTERN`: words for the report;
- `GPU_SHAPE`, `CHECK_SHAPE`: the default problem size on a GPU, and the small one checked
  under the interpreter;
- `gpu_configs()`, `check_configs()`: lists of config dicts (e.g. BLOCK_SIZE, num_warps);
- `make_inputs(shape, dtype, device, seed)`, `launch(inputs, config, out=None)` -> (output,
  compiled kernel or None), `reference(inputs)`, `peer(inputs)` -> (label, callable): the torch
  op to compare with, `bytes_moved(inputs)`, `flops(inputs)`, `grid(inputs, config)`,
  `one_pass(inputs, config)`;
- `check(output, expected)` -> (ok, max_abs_error).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from trainwright.errors import TrainwrightError


@dataclass(frozen=True)
class KernelEntry:
    name: str
    module: str
    summary: str


KERNELS: dict[str, KernelEntry] = {
    "softmax": KernelEntry(
        "softmax",
        "trainwright.bench.softmax",
        "row softmax, online max/sum over BLOCK_SIZE tiles (one pass when a row fits a tile)",
    ),
}


def load_kernel(name: str) -> ModuleType:
    if name not in KERNELS:
        raise TrainwrightError(f"unknown kernel {name!r}; one of: {', '.join(KERNELS)}")
    try:
        return importlib.import_module(KERNELS[name].module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        raise TrainwrightError(
            f"kernel {name!r} needs {missing}: pip install 'trainwright[gpu,torch]'"
        ) from None
