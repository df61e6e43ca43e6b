"""Hardware facts: GPUs, the model catalog, VRAM estimates, environment probes."""
