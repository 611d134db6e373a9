"""Molecular dynamics: the batched ML engine (:mod:`specml.dynamics.batched`, with
the MACE fast-path modules of :mod:`specml.dynamics.mace_fastpath`; ring-polymer MD for
quantum nuclei on it, :mod:`specml.dynamics.ring_polymer`) and the ASE loop
(:func:`specml.dynamics.ase_md.ase_md_loop`), which serves reference MD
(:func:`run_ase_md`) and the MACE-calculator baseline (:mod:`specml.dynamics.ase_loop`).

Names are imported on first use: the settings checks (:mod:`specml.dynamics.settings`) run
before torch is loaded."""

from specml._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ase_md_loop": "ase_md",
        "run_ase_md": "ase_md",
        "run_reference_md": "ase_md",
        "DipoleTrajectory": "trajectory",
        "ReplicaTrajectory": "trajectory",
    },
)

__all__ = ["DipoleTrajectory", "ReplicaTrajectory", "ase_md_loop", "run_ase_md", "run_reference_md"]
