"""Put on a trainer's PYTHONPATH by `trainwright dry-run`: when the process ends, print the peak
CUDA memory torch saw (max_memory_allocated / max_memory_reserved) as a `trainwright-peak` line,
so TRL, transformers and any other Python trainer report it without a change to their code.
Nothing is printed when torch never touched CUDA. An environment's own sitecustomize still runs.
"""

import atexit
import importlib.machinery
import importlib.util
import os
import shlex
import sys


def _report() -> None:
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if not torch.cuda.is_initialized():
            return
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        mib = 2**20
        # the format of trainwright.hardware.measured.Peak.line(), written out here because a
        # trainer's own environment (kohya's, torchtune's) may not have trainwright installed
        line = (
            f"trainwright-peak device=cuda "
            f"allocated_mib={torch.cuda.max_memory_allocated() / mib:.1f} "
            f"reserved_mib={torch.cuda.max_memory_reserved() / mib:.1f} "
            f"total_mib={props.total_memory / mib:.1f} gpu={shlex.quote(str(props.name))}"
        )
    except Exception:  # a report must never turn a finished run into a failed one
        return
    sys.stdout.write(f"\n{line}\n")
    sys.stdout.flush()


if os.environ.get("TRAINWRIGHT_PEAK_REPORT"):
    atexit.register(_report)


def _chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


_chain()
