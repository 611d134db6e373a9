"""Torch device and floating-point precision selection for the MACE models."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from specml.errors import ModelError

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def select_device(preference: str | torch.device = "auto") -> torch.device:
    """Return the torch device to use.

    ``"auto"`` picks CUDA when a GPU is visible, else the CPU. An explicit
    ``"cuda"`` without a GPU is an error rather than a silent CPU fallback, so a
    user who asked for the GPU learns that it is not being used.
    """
    if isinstance(preference, torch.device):
        preference = str(preference)
    choice = str(preference).strip().lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelError(f"device {preference!r} requested but CUDA is not available")
        return torch.device(choice)
    if choice == "cpu":
        return torch.device("cpu")
    raise ModelError(f"unknown device {preference!r}; use 'auto', 'cpu' or 'cuda[:N]'")


def torch_dtype(precision: str | torch.dtype) -> torch.dtype:
    """Map ``"float32"``/``"float64"`` (or a torch dtype) to a torch dtype."""
    if isinstance(precision, torch.dtype):
        if precision in _DTYPES.values():
            return precision
        raise ModelError(f"unsupported precision {precision}; use float32 or float64")
    try:
        return _DTYPES[str(precision).strip().lower()]
    except KeyError:
        raise ModelError(f"unknown precision {precision!r}; use one of {sorted(_DTYPES)}") from None


def dtype_name(dtype: torch.dtype) -> str:
    """Inverse of :func:`torch_dtype` (for JSON manifests)."""
    for name, value in _DTYPES.items():
        if value == dtype:
            return name
    raise ModelError(f"unsupported precision {dtype}")


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Temporarily set torch's default dtype.

    MACE builds its buffers and ``AtomicData`` tensors with
    ``torch.get_default_dtype()``; MACE's own scripts set it globally, we set
    it only for the duration of a build so other code is not affected.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
