"""A stand-in `nvidia-smi` (there is no GPU here) that answers with a recording from
tests/data/nvidia-smi: the CSV for --query-gpu, the plain table otherwise."""

from __future__ import annotations

import stat
from pathlib import Path

SMI = Path(__file__).resolve().parents[1] / "data" / "nvidia-smi"


def fake_smi(folder: Path, name: str) -> Path:
    """Write the stand-in into `folder`; point TRAINWRIGHT_NVIDIA_SMI at the returned path."""
    script = folder / f"nvidia-smi-{name}"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f"  --query-gpu=*) cat '{SMI / (name + '-query.csv')}' ;;\n"
        f"  *) cat '{SMI / (name + '.txt')}' ;;\n"
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script
