"""Where models run: the cores this process may use, and the device, mixed-precision and progress-bar
helpers shared by the torch families (neural, plm, llm)."""

from __future__ import annotations

import os

from ..errors import ModelError


def available_cores() -> int:
    """The cores this process may use (its CPU affinity where the system tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def keep_freed_memory() -> None:
    """Let this process's allocator reuse freed blocks instead of returning each large array to the system.

    numpy allocates arrays of more than 128 kB with mmap, and glibc gives them back on free: every chunk of
    a long run then faults its pages in again, which cost a third of the time of a proteome run (system
    time). Raising glibc's mmap and trim thresholds keeps them for reuse; the peak memory is unchanged.
    Called by the command line and worker processes only, never on ``import idrkit``.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: larger arrays than a chunk's still use mmap
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD: free memory above 64 MB goes back
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def select_device(torch, name: str):
    """``auto`` (a GPU when there is one), ``cpu`` or ``cuda[:N]``; asking for a missing GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device '{name}' was asked for but no CUDA GPU is available")
    return torch.device(name)


def amp_dtype(torch, device, precision: str):
    """bf16 (or fp16 when asked) autocast on a GPU; full precision on the CPU."""
    if device.type != "cuda" or precision in ("fp32", "32"):
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class NullBar:
    """A progress bar that shows nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int | None, desc: str, enabled: bool, unit: str = "batch", **kwargs):
    """A tqdm bar on stderr when enabled and tqdm is installed, else a :class:`NullBar`."""
    if not enabled:
        return NullBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return NullBar()
    return tqdm(total=total, desc=desc, unit=unit, **kwargs)
