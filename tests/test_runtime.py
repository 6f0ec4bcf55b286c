"""Where models run: cores, the allocator setting, devices, precision and progress bars."""

import pytest

from idrkit.errors import ModelError
from idrkit.models._runtime import NullBar, amp_dtype, available_cores, keep_freed_memory, progress_bar


def test_cores_and_allocator(monkeypatch):
    import os

    assert available_cores() == len(os.sched_getaffinity(0))
    keep_freed_memory()  # safe to call (glibc: thresholds raised; elsewhere nothing happens)
    import numpy as np

    assert np.ones(10_000_000, dtype=np.uint8).sum() == 10_000_000  # allocation still works


def test_progress_bar_is_silent_when_disabled():
    bar = progress_bar(10, "x", enabled=False)
    assert isinstance(bar, NullBar)
    bar.update(3)
    bar.set_postfix_str("fine")
    bar.close()


def test_devices_and_precision():
    torch = pytest.importorskip("torch")
    from idrkit.models._runtime import select_device

    assert select_device(torch, "cpu").type == "cpu"
    assert select_device(torch, "auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert amp_dtype(torch, torch.device("cpu"), "bf16") is None  # full precision on the CPU
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA GPU"):
            select_device(torch, "cuda")
