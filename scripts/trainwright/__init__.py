"""trainwright: the tools behind a skill pack for coding agents that train models."""

__version__ = "0.1.0"
