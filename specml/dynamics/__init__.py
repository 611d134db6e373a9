"""ML molecular dynamics: the batched engine (:mod:`specml.dynamics.batched`), the
ASE reference loop for ML models (:mod:`specml.dynamics.ase_loop`) and the generic
ASE loop (:mod:`specml.dynamics.ase_md`)."""

from specml.dynamics.ase_md import run_ase_md, run_reference_md
from specml.dynamics.trajectory import DipoleTrajectory

__all__ = ["DipoleTrajectory", "run_ase_md", "run_reference_md"]
