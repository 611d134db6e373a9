"""Committee members evaluated as one model: energies and forces of all members in one pass.

A training step of a small MACE potential is a few thousand operations on small tensors, so
its cost is the number of operations, not their size (``docs/results/training-cost.md``).
Evaluating the members of a committee one after the other repeats every operation per member;
:func:`torch.func.vmap` over the members' stacked weights runs each operation once for all of
them. The forces of each member come from its own copy of the positions, so one backward
pass from the summed energies gives every member its own forces (a member's energy depends
only on its copy), and the parameter gradients of any loss on them reach each member's own
parameters through :func:`torch.stack` (the stacking is part of the graph).

MACE's forward marks its inputs ``requires_grad_`` and sums messages with an in-place
``scatter_add_``, neither of which runs under ``vmap``. :class:`StackedPotentials` therefore
runs the energy part of ``ScaleShiftMACE.forward`` on MACE's own blocks (embeddings,
interactions, products, readouts, scale and shift), with an out-of-place scatter while it
runs, and checks on the first batch that it reproduces each member's own energies and forces.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch

import specml._mace  # noqa: F401  -- imports MACE first, its import-time notice kept off stdout
from specml.errors import ModelError

try:
    import mace.modules.blocks as _mace_blocks
    from mace.modules import ScaleShiftMACE
    from mace.modules.utils import get_edge_vectors_and_lengths

    _HAVE_MACE = True
except ImportError:  # pragma: no cover - MACE is a dependency of specml
    _HAVE_MACE = False


def _scatter_sum_out_of_place(src, index, dim=-1, out=None, dim_size=None, reduce="sum"):
    """``mace.tools.scatter.scatter_sum`` (1-D ``index`` along ``dim``) without writing in
    place, so that it runs under ``vmap``."""
    if out is not None or reduce != "sum":
        raise ModelError("stacked potentials support MACE's plain scatter_sum only")
    dim = dim % src.dim()
    shape = list(src.shape)
    shape[dim] = int(dim_size) if dim_size is not None else int(index.max()) + 1
    return src.new_zeros(shape).index_add(dim, index, src)


@contextlib.contextmanager
def _vmappable_scatter() -> Iterator[None]:
    original = _mace_blocks.scatter_sum
    _mace_blocks.scatter_sum = _scatter_sum_out_of_place
    try:
        yield
    finally:
        _mace_blocks.scatter_sum = original


class _Energy(torch.nn.Module):
    """Total energy (eV) per graph of one ``ScaleShiftMACE`` from explicit positions (Å): the
    energy part of its forward, single head, without ``requires_grad_`` on the inputs."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, positions: torch.Tensor, data: dict) -> torch.Tensor:
        m: Any = self.model  # MACE's submodules, untyped
        n_atoms, n_graphs = positions.shape[0], data["ptr"].numel() - 1
        heads = torch.zeros(n_atoms, dtype=torch.int64, device=positions.device)
        atoms = torch.arange(n_atoms, device=positions.device)
        vectors, lengths = get_edge_vectors_and_lengths(positions, data["edge_index"], data["shifts"])
        node_e0 = m.atomic_energies_fn(data["node_attrs"])[atoms, heads]
        node_feats = m.node_embedding(data["node_attrs"])
        edge_attrs = m.spherical_harmonics(vectors)
        edge_feats, cutoff = m.radial_embedding(
            lengths, data["node_attrs"], data["edge_index"], m.atomic_numbers
        )
        node_energies = []
        for i, (interaction, product, readout) in enumerate(
            zip(m.interactions, m.products, m.readouts, strict=True)
        ):
            node_feats, sc = interaction(
                node_attrs=data["node_attrs"],
                node_feats=node_feats,
                edge_attrs=edge_attrs,
                edge_feats=edge_feats,
                edge_index=data["edge_index"],
                cutoff=cutoff,
                first_layer=i == 0,
                lammps_class=None,
                lammps_natoms=(0, 0),
            )
            node_feats = product(node_feats=node_feats, sc=sc, node_attrs=data["node_attrs"])
            node_energies.append(readout(node_feats, heads)[atoms, heads])
        node_inter = m.scale_shift(torch.stack(node_energies).sum(0), heads)
        per_atom = node_e0.to(node_inter.dtype) + node_inter
        return _scatter_sum_out_of_place(per_atom, data["batch"], dim=-1, dim_size=n_graphs)


def supported(model: torch.nn.Module) -> bool:
    """Whether :class:`StackedPotentials` covers this model's architecture (checked again
    numerically on the first batch)."""
    return (
        _HAVE_MACE
        and isinstance(model, ScaleShiftMACE)
        and len(getattr(model, "heads", ["default"])) == 1
        and not hasattr(model, "pair_repulsion")
        and not hasattr(model, "joint_embedding")
        and len(model.readouts) == len(model.interactions)
    )


class StackedPotentials:
    """Energies (eV) and forces (eV/Å) of several ``ScaleShiftMACE`` members of one
    architecture, evaluated together (see the module docstring). The members stay separate
    modules with their own parameters: optimisers, EMA and checkpoints see them unchanged."""

    def __init__(self, models: Sequence[torch.nn.Module]):
        self.models = list(models)
        if len(self.models) < 2:
            raise ModelError("stacking needs at least two potentials")
        if not all(supported(m) for m in self.models):
            raise ModelError("stacking supports single-head ScaleShiftMACE potentials only")
        shapes = {tuple((k, tuple(v.shape)) for k, v in m.state_dict().items()) for m in self.models}
        if len(shapes) != 1:
            raise ModelError("stacked potentials must share one architecture")
        self._energies = [_Energy(m) for m in self.models]
        # The live tensors (optimisers update them in place), stacked anew at every call.
        self._params = [dict(e.named_parameters()) for e in self._energies]
        self._buffers = [dict(e.named_buffers()) for e in self._energies]
        self._checked = False

    def __len__(self) -> int:
        return len(self.models)

    def energy_forces(self, data: dict, create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``(energies [members, graphs], forces [members, atoms, 3])`` for a MACE batch dict.
        With ``create_graph`` the forces stay differentiable (for a force loss)."""
        from torch.func import functional_call, vmap

        if not self._checked:
            self.check(data)
        params = {name: torch.stack([p[name] for p in self._params]) for name in self._params[0]}
        buffers = {name: torch.stack([b[name] for b in self._buffers]) for name in self._buffers[0]}
        positions = data["positions"].detach()
        copies = positions.expand(len(self), *positions.shape).clone().requires_grad_(True)

        def one(p, b, x):
            return functional_call(self._energies[0], (p, b), (x, data))

        with _vmappable_scatter():
            energies = vmap(one)(params, buffers, copies)
        (gradient,) = torch.autograd.grad(
            energies.sum(), copies, create_graph=create_graph, retain_graph=create_graph
        )
        return energies, -gradient

    def check(self, data: dict, rtol: float = 1e-4) -> None:
        """Raise :class:`ModelError` unless the stacked evaluation reproduces each member's own
        ``forward`` on ``data`` (energies and forces, to ``rtol`` of their scale)."""
        self._checked = True
        energies, forces = self.energy_forces(data, create_graph=False)
        for k, model in enumerate(self.models):
            own = model(dict(data), training=False, compute_force=True)
            for name, mine, theirs in (
                ("energies", energies[k], own["energy"]),
                ("forces", forces[k], own["forces"]),
            ):
                scale = float(theirs.detach().abs().max()) or 1.0
                error = float((mine.detach() - theirs.detach()).abs().max())
                if error > rtol * scale:
                    self._checked = False
                    raise ModelError(
                        f"stacked evaluation does not reproduce member {k}'s {name} "
                        f"(max error {error:.3g} against a scale of {scale:.3g})"
                    )


#: Larger batches are evaluated member by member outside training: stacking saves time per
#: operation, and on one CPU core three members' energies and forces of train24 structures took
#: 0.75x the separate time in batches of 16 but 1.04x in batches of 64 and 1.56x in batches of 512.
STACK_MAX_GRAPHS = 32


class StackedCommittee(torch.nn.Module):
    """Committee members trained as one module: its forward returns every member's energies
    ``[members, graphs]`` (eV) and forces ``[members, atoms, 3]`` (eV/Å), in training from one
    stacked evaluation with forces that stay differentiable. Its parameters are the
    members' own, so the training loop's optimiser, EMA and checkpoints work on it unchanged;
    :attr:`members` are the trained potentials afterwards."""

    def __init__(self, members: Sequence[torch.nn.Module]):
        super().__init__()
        self.members = torch.nn.ModuleList(members)
        self._stacked = StackedPotentials(list(self.members))

    def forward(self, data: dict, training: bool = False, compute_force: bool = True) -> dict:
        if training or data["ptr"].numel() - 1 <= STACK_MAX_GRAPHS:
            energies, forces = self._stacked.energy_forces(data, create_graph=training)
            if not training:
                energies, forces = energies.detach(), forces.detach()
            return {"energy": energies, "forces": forces}
        outs = [m(dict(data), training=False, compute_force=True) for m in self.members]
        return {
            "energy": torch.stack([o["energy"].detach() for o in outs]),
            "forces": torch.stack([o["forces"].detach() for o in outs]),
        }


class MemberSumLoss(torch.nn.Module):
    """``loss_fn`` of each member's outputs (a :class:`StackedCommittee`'s), summed over the
    members: each member gets exactly its own loss's gradient, as in a fit of its own (a mean
    would scale it, which Adam's epsilon feels for near-zero gradients)."""

    def __init__(self, loss_fn: torch.nn.Module):
        super().__init__()
        self.loss_fn = loss_fn

    def forward(self, batch, out: dict) -> torch.Tensor:
        n = out["energy"].shape[0]
        losses = [
            self.loss_fn(batch, {"energy": out["energy"][k], "forces": out["forces"][k]}) for k in range(n)
        ]
        return torch.stack(losses).sum()


__all__ = ["MemberSumLoss", "StackedCommittee", "StackedPotentials", "supported"]
