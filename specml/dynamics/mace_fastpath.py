"""Drop-in replacements for the two hottest MACE blocks, for the batched MD engine.

Profiling the batched engine (R = 72 train24 replicas, default preset, one CPU
thread) put most of a member's forward + backward in two places:

* the convolution tensor product of every interaction (e3nn ``TensorProduct``,
  scalar node features x spherical harmonics, ``uvu`` paths with per-edge
  weights), whose generated code multiplies tensors with trailing size-1/size-3/5
  dimensions that do not vectorise, and whose backward reduces over them;
* the symmetric contraction of every product block (``Contraction``, invariant
  output), which runs as batched matrix products with unit dimensions.

For the common case (invariant hidden features, ``max_L = 0``) both are a few
dense operations with a contiguous channel dimension. :func:`accelerate`
replaces such submodules of a (deep-copied) model by these equivalents, after
checking on random inputs that each replacement reproduces the original (to
round-off of the chosen precision); anything that does not match the pattern or
the check keeps its original module. Pure torch operations, so they run on any
device. Nothing here changes the caller's model: the engine works on copies.
"""

from __future__ import annotations

import math

import torch

import specml._mace  # noqa: F401  -- imports MACE first, its import-time notice kept off stdout

try:  # the MACE modules these replace (mace first: it makes e3nn's constants loadable)
    from mace.modules.symmetric_contraction import Contraction  # isort: skip
    from e3nn.o3 import TensorProduct

    _HAVE_MACE = True
except ImportError:  # pragma: no cover - MACE is a dependency of specml
    _HAVE_MACE = False


class _ScalarConvTPFunction(torch.autograd.Function):
    """Forward and a hand-written backward (first derivatives only: MD needs forces, not
    force derivatives). Writes the output blocks in place, keeps the channel axis
    innermost and avoids broadcasting over the instruction axis (slow on CPU)."""

    @staticmethod
    def forward(ctx, x1, x2, weight, scale, blocks: list, n_ins: int, mul: int):
        n = x1.shape[0]
        ws = (weight * scale).view(n, n_ins, mul)  # path weights folded into the edge weights
        xw = ws * x1.unsqueeze(1)  # [E, ins, U]
        out = x1.new_empty(n, sum(mul * d for _, _, d in blocks))
        offset = 0
        for k, s, d in blocks:
            torch.mul(
                xw[:, k, :, None],
                x2[:, None, s : s + d],
                out=out[:, offset : offset + mul * d].view(n, mul, d),
            )
            offset += mul * d
        ctx.save_for_backward(x1, x2, ws, xw, scale)
        ctx.blocks, ctx.n_ins, ctx.mul = blocks, n_ins, mul
        return out

    @staticmethod
    def backward(ctx, grad):
        x1, x2, ws, xw, scale = ctx.saved_tensors
        n, n_ins, mul = x1.shape[0], ctx.n_ins, ctx.mul
        grad = grad.contiguous()
        g_xw = torch.empty_like(xw)
        g_x2 = torch.zeros_like(x2) if ctx.needs_input_grad[1] else None
        offset = 0
        for k, s, d in ctx.blocks:
            g = grad[:, offset : offset + mul * d].view(n, mul, d)
            offset += mul * d
            acc = g[:, :, 0] * x2[:, s : s + 1]
            for m in range(1, d):
                acc += g[:, :, m] * x2[:, s + m : s + m + 1]
            g_xw[:, k] = acc
            if g_x2 is not None:
                g_x2[:, s : s + d] += torch.bmm(xw[:, k, None, :], g).squeeze(1)
        g_x1 = g_w = None
        if ctx.needs_input_grad[0]:
            g_x1 = (g_xw * ws).sum(1)
        if ctx.needs_input_grad[2]:
            g_w = (g_xw * x1.unsqueeze(1)).view(n, n_ins * mul) * scale
        return g_x1, g_x2, g_w, None, None, None, None


class ScalarConvTP(torch.nn.Module):
    """e3nn ``TensorProduct`` of scalar features (``U x 0e``) with ``1 x l`` irreps, ``uvu`` paths.

    ``out[e, block l][u, m] = path_weight_l / sqrt(2l + 1) * w[e, l, u] * x1[e, u] * x2[e, l, m]``
    (e3nn's Wigner 3j symbol for 0 x l -> l is delta / sqrt(2l + 1)); the output
    is laid out exactly as e3nn's (irreps in order, channel-major within each).
    First derivatives only (see :class:`_ScalarConvTPFunction`).
    """

    def __init__(self, tp):
        super().__init__()
        self.mul = tp.irreps_in1[0].mul
        ins = list(tp.instructions)
        in2 = list(tp.irreps_in2)
        starts = [sum(m * ir.dim for m, ir in in2[:j]) for j in range(len(in2))]
        self.n_ins = len(ins)
        by_out = {i.i_out: (k, starts[i.i_in2], in2[i.i_in2].ir.dim) for k, i in enumerate(ins)}
        # (instruction = weight block, first component in x2, number of components), output order
        self.blocks = [by_out[j] for j in range(len(tp.irreps_out))]
        scales = [i.path_weight / math.sqrt(in2[i.i_in2].ir.dim) for i in ins]
        # one factor per weight (instruction-major, channel-minor, as e3nn lays out the weights)
        self.register_buffer("scale", torch.tensor(scales).repeat_interleave(self.mul).view(1, -1))

    @staticmethod
    def matches(tp) -> bool:
        try:
            in1, in2, out = tp.irreps_in1, tp.irreps_in2, tp.irreps_out
            ins = list(tp.instructions)
        except AttributeError:
            return False
        if tp.shared_weights or tp.internal_weights or len(in1) != 1 or in1[0].ir.l != 0 or in1[0].ir.p != 1:
            return False
        if sorted(i.i_out for i in ins) != list(range(len(out))):
            return False
        for i in ins:
            m2, ir2 = in2[i.i_in2]
            mo, iro = out[i.i_out]
            if (
                i.i_in1 != 0
                or i.connection_mode != "uvu"
                or not i.has_weight
                or m2 != 1
                or iro != ir2
                or mo != in1[0].mul
                or tuple(i.path_shape) != (in1[0].mul, 1)
            ):
                return False
        return tp.weight_numel == len(ins) * in1[0].mul

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return _ScalarConvTPFunction.apply(x1, x2, weight, self.scale, self.blocks, self.n_ins, self.mul)


class InvariantContraction(torch.nn.Module):
    """MACE ``Contraction`` with an invariant (``0e``) output, any correlation.

    Same recursion as the original (``U_nu`` contracted with element weights and
    the features), ordered so every step is a dense matrix product or a
    reduction over a contiguous dimension.
    """

    def __init__(self, c):
        super().__init__()
        self.correlation = c.correlation
        nu_max = c.correlation
        # weights and coupling tensors for nu = correlation, correlation - 1, ..., 1
        ws = [c.weights_max] + list(c.weights)
        for step, nu in enumerate(range(nu_max, 0, -1)):
            self.register_buffer(f"w_{step}", ws[step].detach().clone())
            self.register_buffer(f"U_{step}", c.U_tensors(nu).detach().clone())

    @staticmethod
    def matches(c) -> bool:
        try:
            nu_max = c.correlation
            us = [c.U_tensors(nu) for nu in range(1, nu_max + 1)]
            zeroed = [bool(b) for name, b in c.named_buffers() if name.endswith("_zeroed")]
        except (AttributeError, KeyError):
            return False
        return (
            all(u.dim() == nu + 1 for nu, u in zip(range(1, nu_max + 1), us, strict=True))
            and not any(zeroed)
            and len(c.weights) == nu_max - 1
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        weights = [getattr(self, f"w_{step}") for step in range(self.correlation)]
        us = [getattr(self, f"U_{step}") for step in range(self.correlation)]
        return self.contract(x, y, weights, us)

    @staticmethod
    def contract(x: torch.Tensor, y: torch.Tensor, weights: list, us: list) -> torch.Tensor:
        """The contraction of features ``x`` [B, C, I] with one-hot elements ``y`` [B, n_elements],
        element weights and coupling tensors for nu = correlation, ..., 1; out[b, c]. Plain
        differentiable operations (training uses it on the live weights)."""
        b, c, i = x.shape
        xf = x.reshape(b * c, i)
        out = x.new_zeros(0)
        for step, (u, w) in enumerate(zip(us, weights, strict=True)):
            k = u.shape[-1]
            # element weights of every node: [B, K, C] -> [B*C, K]
            wb = (y @ w.reshape(w.shape[0], k * c)).view(b, k, c).transpose(1, 2).reshape(b * c, k)
            if step == 0:
                # sum_{i_nu, k} U[..., i_nu, k] w[k] x[i_nu] = sum_k (x @ U^T)[..., k] w[k]
                nu = u.dim() - 1
                perm = [nu - 1] + list(range(nu - 1)) + [nu]
                ux = xf @ u.permute(perm).reshape(i, -1)  # [B*C, I^(nu-1) * K]
                out = (ux.view(b * c, -1, k) * wb.unsqueeze(1)).sum(-1)  # [B*C, I^(nu-1)]
            else:
                # add the order-nu term, then contract its last feature index with x
                out = out + wb @ u.reshape(-1, k).t()  # [B*C, I^nu]
                out = (out.view(b * c, -1, i) * xf.unsqueeze(1)).sum(-1)
        return out.reshape(b, c)


def _check(fast, orig, inputs, dtype) -> bool:
    """Outputs and first derivatives (w.r.t. every floating input) agree to round-off."""
    tol = 1e-9 if dtype == torch.float64 else 1e-4

    def run(module):
        leaves = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
        out = module(*leaves)
        cotangent = torch.linspace(-1.0, 1.0, out.numel(), dtype=out.dtype, device=out.device).view_as(out)
        differentiable = [x for x in leaves if x.requires_grad]
        grads = torch.autograd.grad(out, differentiable, cotangent, allow_unused=True)
        return [out.detach()] + [
            torch.zeros_like(x) if g is None else g for x, g in zip(differentiable, grads, strict=True)
        ]

    try:
        with torch.enable_grad():
            a, b = run(fast), run(orig)
    except RuntimeError:
        return False
    for x, y in zip(a, b, strict=True):
        if x.shape != y.shape or not bool(torch.isfinite(x).all()):
            return False
        if float((x - y).abs().max()) > tol * max(float(y.abs().max()), 1.0):
            return False
    return True


def accelerate(model: torch.nn.Module) -> dict:
    """Replace matching submodules of ``model`` in place; returns counts of replaced/kept."""
    counts = {"conv_tp": 0, "contraction": 0, "kept": 0}
    if not _HAVE_MACE:
        return counts
    p = next(model.parameters(), None)
    dtype = p.dtype if p is not None else torch.get_default_dtype()
    device = p.device if p is not None else torch.device("cpu")
    gen = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)

    fast: torch.nn.Module
    inputs: tuple[torch.Tensor, ...]
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, TensorProduct) and ScalarConvTP.matches(child):
                fast = ScalarConvTP(child).to(device=device, dtype=dtype)
                inputs = (
                    rand(7, child.irreps_in1.dim),
                    rand(7, child.irreps_in2.dim),
                    rand(7, child.weight_numel),
                )
                key = "conv_tp"
            elif isinstance(child, Contraction) and InvariantContraction.matches(child):
                fast = InvariantContraction(child)
                n_el = child.weights_max.shape[0]
                y = torch.nn.functional.one_hot(torch.arange(7) % n_el, n_el).to(device=device, dtype=dtype)
                inputs = (rand(7, child.weights_max.shape[-1], child.U_tensors(1).shape[0]), y)
                key = "contraction"
            else:
                continue
            if _check(fast, child, inputs, dtype):
                setattr(parent, name, fast)
                counts[key] += 1
            else:
                counts["kept"] += 1
    return counts


__all__ = ["InvariantContraction", "ScalarConvTP", "accelerate"]
