"""Thermostatted ring-polymer MD against exact results for harmonic potentials.

A harmonic trap is the one system whose ring-polymer averages are known in closed form at any
number of beads P: per Cartesian degree of freedom of frequency ω, the bead-averaged potential
energy is ½ kT Σ_k ω² / (ω² + ω_k²) (ω_k the free ring polymer's mode frequencies), which is
½ kT for P = 1 and tends to (ħω/4) coth(βħω/2) as P grows. The bead-averaged dipole of a
linear dipole follows the centroid, so its spectrum peaks at ω exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms, units

from specml.dynamics.ring_polymer import HBAR_EV_ASE_TIME, RingPolymerMD, mode_frequencies, normal_mode_matrix
from specml.errors import DynamicsError
from specml.spectra.autocorrelation import ir_from_dipoles

WAVENUMBER_CM1 = 1500.0
OMEGA = 2 * np.pi * units._c * 100 * WAVENUMBER_CM1 / units.s  # 1 / ASE time
MASS = 1.008


class HarmonicTrap(torch.nn.Module):
    """Every atom in an isotropic harmonic well at the origin: E = ½ m ω² |x|² (eV)."""

    def __init__(self, omega: float = OMEGA, mass: float = MASS):
        super().__init__()
        self.register_buffer("r_max", torch.tensor(3.0, dtype=torch.float64))
        self.register_buffer("atomic_numbers", torch.tensor([1]))
        self.k = mass * omega**2

    def forward(self, data, training=False, compute_force=False):
        energy = 0.5 * self.k * (data["positions"] ** 2).sum(1)
        n_graphs = len(data["ptr"]) - 1
        per_graph = torch.zeros(n_graphs, dtype=energy.dtype).index_add_(0, data["batch"], energy)
        return {"energy": per_graph}


class LinearDipole(HarmonicTrap):
    """Dipole (e·Å) = sum of the atoms' positions: a unit charge on every atom."""

    def forward(self, data, training=False):
        n_graphs = len(data["ptr"]) - 1
        dipole = torch.zeros(n_graphs, 3, dtype=data["positions"].dtype)
        return {"dipole": dipole.index_add_(0, data["batch"], data["positions"])}


def two_atoms() -> Atoms:
    return Atoms("H2", positions=[[0.0, 0.0, 0.0], [0.05, 0.0, 0.0]])


def exact_potential_per_dof(beads: int, temperature_k: float) -> float:
    omega_k = mode_frequencies(beads, temperature_k)
    return 0.5 * units.kB * temperature_k * float(np.sum(OMEGA**2 / (OMEGA**2 + omega_k**2)))


def test_normal_modes_are_orthogonal_with_the_centroid_first():
    C = normal_mode_matrix(6)
    assert np.allclose(C.T @ C, np.eye(6), atol=1e-12)
    assert np.allclose(C[:, 0], 1 / np.sqrt(6))
    # the spring matrix of the ring is diagonal in these modes, with the squared frequencies
    springs = 2 * np.eye(6) - np.roll(np.eye(6), 1, 0) - np.roll(np.eye(6), -1, 0)
    omega_p = 6 * units.kB * 300.0 / HBAR_EV_ASE_TIME
    assert np.allclose(C.T @ (omega_p**2 * springs) @ C, np.diag(mode_frequencies(6, 300.0) ** 2), rtol=1e-9)


@pytest.mark.parametrize("beads", [1, 8])
def test_bead_averaged_potential_energy_matches_the_exact_harmonic_value(beads):
    temperature = 300.0
    md = RingPolymerMD(
        [HarmonicTrap()],
        [two_atoms() for _ in range(6)],
        beads=beads,
        temperatures_K=temperature,
        friction_per_fs=0.05,  # fast centroid sampling; the spring modes have their own thermostat
        timestep_fs=0.25,
        seeds=range(6),
    )
    md.run(1000)  # equilibrate
    energies = np.concatenate([r.energies for r in md.run(6000).replicas])
    expected = 6 * exact_potential_per_dof(beads, temperature)  # two atoms, three directions
    assert energies.mean() == pytest.approx(expected, rel=0.04)
    if beads > 1:  # zero-point energy: far above the classical value
        assert expected > 2.5 * 6 * 0.5 * units.kB * temperature


def test_bead_averaged_dipole_spectrum_peaks_at_the_harmonic_frequency():
    md = RingPolymerMD(
        [HarmonicTrap()],
        [two_atoms() for _ in range(3)],
        beads=4,
        temperatures_K=300.0,
        dipole_model=LinearDipole(),
        record_interval=2,
        seeds=range(3),
    )
    dipoles = [r.dipoles for r in md.run(8000).replicas]
    spectra = [ir_from_dipoles(d, 1.0, 1000.0) for d in dipoles]
    intensity = np.mean([s.intensity for s in spectra], axis=0)
    peak = spectra[0].wavenumber[np.argmax(intensity)]
    assert peak == pytest.approx(WAVENUMBER_CM1, abs=10.0)


def test_a_run_continued_from_its_state_matches_one_run():
    def engine():
        return RingPolymerMD(
            [HarmonicTrap()], [two_atoms(), two_atoms()], beads=4, temperatures_K=300.0, seeds=[3, 4]
        )

    whole = engine().run(60)
    first = engine()
    first.run(25)
    state = first.state_dict()
    continued = RingPolymerMD.from_state(state, [HarmonicTrap()]).run(35)
    for a, b in zip(whole.replicas, continued.replicas, strict=True):
        assert np.allclose(a.energies[25:], b.energies, rtol=0, atol=1e-12)
    assert continued.final_atoms[0].positions == pytest.approx(whole.final_atoms[0].positions, abs=1e-12)


def test_the_recorded_temperature_is_the_physical_one():
    md = RingPolymerMD(
        [HarmonicTrap()], [two_atoms() for _ in range(4)], beads=8, temperatures_K=300.0, friction_per_fs=0.05
    )
    md.run(500)
    temperatures = np.concatenate([r.temperatures for r in md.run(3000).replicas])
    # bead momenta are thermal at P T; their kinetic temperature divided by P is T
    assert temperatures.mean() == pytest.approx(300.0, rel=0.04)


def test_bad_settings_are_refused():
    with pytest.raises(DynamicsError, match="beads"):
        RingPolymerMD([HarmonicTrap()], [two_atoms()], beads=0, temperatures_K=300.0)
    with pytest.raises(DynamicsError, match="above 0 K"):
        RingPolymerMD([HarmonicTrap()], [two_atoms()], beads=4, temperatures_K=0.0)


def test_a_molecule_whose_beads_leave_the_committee_stops_alone():
    """Two traps of different stiffness disagree by a third of the force: the molecule whose
    threshold that exceeds stops whole (all its beads), the other one runs on."""
    committee = [HarmonicTrap(), HarmonicTrap(omega=OMEGA * np.sqrt(2.0))]
    md = RingPolymerMD(
        committee,
        [two_atoms(), two_atoms()],
        beads=4,
        temperatures_K=300.0,
        uncertainty_threshold=[np.inf, 0.1],
        seeds=[1, 2],
    )
    trajectory = md.run(50)
    running, stopped = trajectory.replicas
    assert stopped.stopped and stopped.stop_reason == "uncertainty above threshold"
    assert stopped.stop_step == 1 and len(stopped.energies) == 1  # its last frame is kept, as classically
    assert not running.stopped and len(running.energies) == 50
    assert list(md.stopped) == [False, True]
    assert md.run(10).replicas[0].steps[-1] == 60  # the survivor continues; the stopped one stays put
