"""Faster MACE training steps that compute the same numbers (issue 24).

Profiling one training step of the default potential (``benchmarks/training_cost.py``) shows a
step of small tensors, where the cost is the number of operations rather than their size: the
forward pass, the force backward (``create_graph``) and the parameter backward through it run
some 3,000 tensor operations for 8 small molecules. :func:`training_fast_path` cuts them where
the MD engine's fast path (:mod:`specml.dynamics.mace_fastpath`) showed the generated e3nn code
to be slowest, with a twist for training: the forces' derivatives need second derivatives, so
the replacements are plain differentiable torch operations (autograd derives them twice), not
the MD engine's hand-written first-derivative backward, and they read the model's own
parameters, so the optimiser, EMA, checkpoints and saved models see the unchanged module tree.

* the convolution tensor product of each interaction (scalar features x spherical harmonics);
* the symmetric contraction of each product block (invariant output).

Modules are patched per instance (their ``forward``), only after each replacement reproduces
the original's output and first derivatives on random inputs, and restored when the context
ends. :func:`reference_training` switches the fast path off (today's code path), for benchmarks
and equivalence tests.
"""

from __future__ import annotations

import contextlib
import functools
import types
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch

from specml.dynamics.mace_fastpath import _HAVE_MACE, InvariantContraction, ScalarConvTP
from specml.dynamics.mace_fastpath import _check as reproduces

if _HAVE_MACE:
    from mace.modules.symmetric_contraction import Contraction  # isort: skip
    from e3nn.o3 import TensorProduct

_ENABLED = [True]
R = TypeVar("R")


@contextlib.contextmanager
def reference_training() -> Iterator[None]:
    """Train with the unpatched MACE modules inside this context (the code path before issue 24)."""
    _ENABLED.append(False)
    try:
        yield
    finally:
        _ENABLED.pop()


def fast_path_enabled() -> bool:
    return _ENABLED[-1]


def _conv_tp_forward(self, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """:class:`ScalarConvTP`'s product in differentiable operations (see its docstring)."""
    mul, n_ins, blocks, scale = self._specml_fast
    n = x1.shape[0]
    xw = (weight * scale.to(dtype=weight.dtype, device=weight.device)).view(n, n_ins, mul) * x1.unsqueeze(1)
    return torch.cat(
        [(xw[:, k, :, None] * x2[:, None, s : s + d]).reshape(n, mul * d) for k, s, d in blocks], 1
    )


def _contraction_forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """:class:`InvariantContraction`'s recursion on the module's live weights."""
    weights = [self.weights_max, *self.weights]
    us = [self.U_tensors(nu) for nu in range(self.correlation, 0, -1)]
    return InvariantContraction.contract(x, y, weights, us)


def _patches(
    model: torch.nn.Module,
) -> list[tuple[torch.nn.Module, types.MethodType, tuple[torch.Tensor, ...]]]:
    """(module, fast forward, random check inputs) for every submodule the fast path covers."""
    if not _HAVE_MACE:
        return []
    p = next(model.parameters(), None)
    dtype = p.dtype if p is not None else torch.get_default_dtype()
    device = p.device if p is not None else torch.device("cpu")
    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)

    out: list[tuple[torch.nn.Module, types.MethodType, tuple[torch.Tensor, ...]]] = []
    inputs: tuple[torch.Tensor, ...]
    for module in model.modules():
        if isinstance(module, TensorProduct) and ScalarConvTP.matches(module):
            plan = ScalarConvTP(module)
            module._specml_fast = (plan.mul, plan.n_ins, plan.blocks, plan.scale)
            inputs = (
                rand(7, module.irreps_in1.dim),
                rand(7, module.irreps_in2.dim),
                rand(7, module.weight_numel),
            )
            out.append((module, types.MethodType(_conv_tp_forward, module), inputs))
        elif isinstance(module, Contraction) and InvariantContraction.matches(module):
            n_el = module.weights_max.shape[0]
            y = torch.nn.functional.one_hot(torch.arange(7) % n_el, n_el).to(device=device, dtype=dtype)
            inputs = (rand(7, module.weights_max.shape[-1], module.U_tensors(1).shape[0]), y)
            out.append((module, types.MethodType(_contraction_forward, module), inputs))
    return out


@contextlib.contextmanager
def training_fast_path(model: torch.nn.Module) -> Iterator[int]:
    """Patch ``model``'s covered submodules for the enclosed training; yields how many were
    patched (0 inside :func:`reference_training`). Restores every module on exit."""
    patched = []
    try:
        if fast_path_enabled():
            for module, forward, inputs in _patches(model):
                original = functools.partial(type(module).forward, module)
                if reproduces(forward, original, inputs, inputs[0].dtype):
                    module.forward = forward
                    patched.append(module)
        yield len(patched)
    finally:
        for module in patched:
            del module.forward
            if hasattr(module, "_specml_fast"):
                del module._specml_fast


def with_fast_path(fit: Callable[..., R]) -> Callable[..., R]:
    """Decorate a fit function whose first argument is the model: it runs in :func:`training_fast_path`."""

    @functools.wraps(fit)
    def wrapper(model: torch.nn.Module, *args, **kwargs) -> R:
        with training_fast_path(model):
            return fit(model, *args, **kwargs)

    return wrapper


__all__ = ["fast_path_enabled", "reference_training", "training_fast_path", "with_fast_path"]
