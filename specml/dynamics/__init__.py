"""Molecular dynamics: the batched ML engine (:mod:`specml.dynamics.batched`, with
the MACE fast-path modules of :mod:`specml.dynamics.mace_fastpath`) and the ASE loop
(:func:`specml.dynamics.ase_md.ase_md_loop`), which serves reference MD
(:func:`run_ase_md`) and the MACE-calculator baseline (:mod:`specml.dynamics.ase_loop`)."""

from specml.dynamics.ase_md import ase_md_loop, run_ase_md, run_reference_md
from specml.dynamics.trajectory import DipoleTrajectory, ReplicaTrajectory

__all__ = ["DipoleTrajectory", "ReplicaTrajectory", "ase_md_loop", "run_ase_md", "run_reference_md"]
