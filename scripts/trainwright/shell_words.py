"""Words of a command line that trainwright writes into a shell script.

A plain `str` is data (quoted when written); a `Raw` is a fragment trainwright wrote itself (a
variable expansion such as `"$SLURM_NNODES"`), emitted as is. Backends build launch lines from
these; cluster/render.py writes them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Raw:
    """A shell fragment written by trainwright itself (a variable expansion), emitted as is."""

    text: str


Word = str | Raw
