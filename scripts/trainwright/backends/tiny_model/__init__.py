"""The tiny backend's model: a compact denoiser, its LoRA, its data loader and its trainer.

`base.safetensors` is made by `python -m trainwright.backends.tiny_model.make_weights`.
"""
