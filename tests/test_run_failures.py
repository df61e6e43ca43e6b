"""Why a trainer stopped: each kind from the message the real tool prints."""

from __future__ import annotations

import pytest

from trainwright.run.failures import classify, is_oom, oom_line

TRACE = 'Traceback (most recent call last):\n  File "train_network.py", line 1, in <module>\n'


@pytest.mark.parametrize(
    "message",
    [
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a "
        "total capacity of 23.65 GiB of which 1.02 GiB is free.",
        "RuntimeError: HIP out of memory. Tried to allocate 512.00 MiB.",
        "RuntimeError: [enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
        "allocate memory: you tried to allocate 4194304 bytes. Error code 12",
        "RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
        "RuntimeError: cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you "
        "passed in a non-contiguous input.",
        "terminate called after throwing an instance of 'std::bad_alloc'",
        "tiny: error oom: out of memory under the memory cap of 40 MiB (RuntimeError: "
        "pthread_create failed)",
    ],
)
def test_allocator_messages_are_oom(message: str) -> None:
    text = TRACE + message + "\n"
    assert is_oom(text, 1)
    f = classify(text, 1, batch=4)
    assert f.kind == "oom" and "batch 2" in f.fix and f.evidence == message.strip()


@pytest.mark.parametrize("code", [-9, 137])
def test_death_by_sigkill_is_the_oom_killer(code: int) -> None:
    assert is_oom("epoch 1/10\n", code)
    f = classify("", code, batch=1)
    assert f.kind == "oom" and "SIGKILL" in f.message and "try batch" not in f.fix


@pytest.mark.parametrize(
    "text,kind",
    [
        (
            "safetensors_rust.SafetensorError: Error while deserializing header: HeaderTooLarge",
            "model",
        ),
        ("tiny: error model: base model file /x/base.safetensors not found", "model"),
        (
            "FileNotFoundError: [Errno 2] No such file or directory: '/models/sdxl.safetensors'",
            "model",
        ),
        ("UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0", "dataset"),
        ("No images were discovered by the bucket manager", "dataset"),
        ("voluptuous.error.MultipleInvalid: extra keys not allowed @ data['datasets']", "dataset"),
        ("tiny: error dataset: caption a.txt is not UTF-8 text", "dataset"),
        (
            "RuntimeError: The NVIDIA driver on your system is too old (found version 12020).",
            "cuda",
        ),
        (
            "RuntimeError: CUDA error: no kernel image is available for execution on the device",
            "cuda",
        ),
        ("AssertionError: Torch not compiled with CUDA enabled", "cuda"),
        ("ModuleNotFoundError: No module named 'bitsandbytes'", "package"),
        ("tiny: error config: tiny.yaml lacks dataset", "config"),
    ],
)
def test_other_failures_are_named(text: str, kind: str) -> None:
    f = classify(TRACE + text + "\n", 1)
    assert f.kind == kind and f.fix and f.evidence


def test_an_unknown_crash_quotes_the_last_line() -> None:
    f = classify("step 1\nSegmentation fault (core dumped)\n", -11)
    assert f.kind == "crash" and f.evidence == "Segmentation fault (core dumped)"
    assert oom_line("all fine\n") is None and not is_oom("all fine", 0)


@pytest.mark.parametrize("code", [-9, 137])
def test_a_sigkill_the_oom_counters_do_not_explain_is_a_kill(code: int) -> None:
    assert not is_oom("epoch 1/10\n", code, oom_kill=False)
    f = classify("epoch 1/10\n", code, batch=4, oom_kill=False)
    assert f.kind == "killed" and "SIGKILL" in f.message and "batch" not in f.fix
    counted = classify("", code, batch=4, oom_kill=True)
    assert counted.kind == "oom" and "counter rose" in counted.message and "batch 2" in counted.fix


@pytest.mark.parametrize(
    "line",
    [
        "MemoryError",
        "numpy.core._exceptions._ArrayMemoryError: Unable to allocate 8.00 GiB for an array "
        "with shape (1024, 1024, 1024) and data type float64",
        "slurmstepd: error: Detected 1 oom-kill event(s) in StepId=7.batch. Some of your "
        "processes may have been killed by the cgroup out-of-memory handler.",
    ],
)
def test_host_memory_texts_are_oom_even_after_a_sigkill(line: str) -> None:
    f = classify(TRACE + line + "\n", 137, batch=2, oom_kill=False)
    assert f.kind == "oom" and f.evidence == line


def test_memory_error_inside_a_word_is_not_oom() -> None:
    assert classify("raise CustomMemoryErrorHandler\n", 1).kind == "crash"
