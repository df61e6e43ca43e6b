"""Evaluation and registration: eval grids (ComfyUI or in-process), failure diagnosis, studio.md."""
