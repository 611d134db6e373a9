"""Same physics: a methanol IR spectrum from the batched engine vs the ASE loop.

Same (tiny, fixed random-weight) energy and dipole models, same protocol,
different random streams; the spectra are averaged over trajectories and must
agree at PCC >= 0.98. Trained committee models can replace the random ones
without changing the protocol.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from test_batched_md import build_mace  # noqa: E402  (tests dir is on sys.path under pytest)

from specml.comparison.metrics import pearson
from specml.dynamics.ase_loop import mace_calculator, run_mace_replica
from specml.dynamics.batched import BatchedMD
from specml.spectra.autocorrelation import average_spectra, ir_from_dipoles

pytestmark = pytest.mark.slow

N_TRAJ, N_STEPS, DT_FS, RECORD, T_K = 6, 2400, 0.5, 4, 300.0
# Short correlation depth: a smooth (Hann FWHM ~1700 cm-1) spectrum that converges
# in a test-sized run. Measured noise floor, batched vs batched with other seeds at
# this sampling: PCC 0.980 (0.91 at 100 fs depth, 4 x 1600 steps).
MAX_CORR_FS = 40.0


def spectrum(trajectories):
    return average_spectra(
        [
            ir_from_dipoles(t.dipoles, DT_FS * RECORD, max_correlation_fs=MAX_CORR_FS, lo=200.0, hi=4000.0)
            for t in trajectories
        ]
    )


def test_batched_spectrum_matches_ase_loop_spectrum():
    torch.set_num_threads(1)
    energy, dipole = build_mace(0), build_mace(7, dipole=True)
    starts = []
    for i in range(N_TRAJ):
        a = molecule("CH3OH")
        MaxwellBoltzmannDistribution(a, temperature_K=T_K, rng=np.random.default_rng(i))
        starts.append(a)
    kw = dict(timestep_fs=DT_FS, friction_per_fs=0.002)
    batched = BatchedMD(
        [energy],
        starts,
        dipole_model=dipole,
        temperatures_K=T_K,
        seeds=range(1000, 1000 + N_TRAJ),
        record_interval=RECORD,
        record_positions=False,
        **kw,
    ).run(N_STEPS)
    calc = mace_calculator([energy])
    dcalc = mace_calculator([dipole], model_type="DipoleMACE")
    ase = [
        run_mace_replica(
            [energy],
            a,
            N_STEPS,
            temperature_K=T_K,
            seed=2000 + i,
            record_interval=RECORD,
            dipole_model=dipole,
            calculator=calc,
            dipole_calculator=dcalc,
            **kw,
        )[0]
        for i, a in enumerate(starts)
    ]
    assert not batched.stopped.any() and not any(t.stopped for t in ase)
    # different streams: the trajectories themselves differ
    assert np.abs(batched[0].dipoles - ase[0].dipoles).max() > 1e-3
    s_batched, s_ase = spectrum(batched.replicas), spectrum(ase)
    pcc = pearson(s_batched, s_ase)
    assert pcc >= 0.98, pcc


def _script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "batched_vs_ase_spectrum.py"
    spec = importlib.util.spec_from_file_location("batched_vs_ase_spectrum", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_resumes_exactly(tmp_path):
    """benchmarks/batched_vs_ase_spectrum.py: a run interrupted between segments and rerun ends with
    the same trajectories (same frames, bit for bit) as an uninterrupted one; a changed protocol
    is refused."""
    from specml.models import Committee
    from specml.models.presets import PRESETS

    torch.set_num_threads(1)
    models = tmp_path / "models"
    # identical members: zero committee uncertainty, so random weights never trigger the stop
    Committee(
        [build_mace(0, dtype=torch.float32)] * 2,
        build_mace(7, dipole=True, dtype=torch.float32),
        PRESETS["tiny"],
    ).save(models)
    script = _script()

    def run(work, *extra):
        return script.main(
            [
                "--models",
                str(models),
                "--work-dir",
                str(tmp_path / work),
                "--n-traj",
                "1",
                "--thermalization-ps",
                "0.01",
                "--production-ps",
                "0.1",
                "--segment-ps",
                "0.05",
                "--max-correlation-fs",
                "20",
                "--short-depth-fs",
                "10",
                "--out",
                str(tmp_path / f"{work}.json"),
                *extra,
            ]
        )

    whole = run("whole")
    assert run("parts", "--max-segments", "2") is None  # batched side only: no ASE production yet
    parts = run("parts")
    for name in ("batched_a_0", "batched_b_0", "ase_0"):
        a, b = (script.load_state(tmp_path / work / f"{name}.npz") for work in ("whole", "parts"))
        assert len(a["dipoles"]) == len(b["dipoles"]) == 100
        assert np.array_equal(a["dipoles"], b["dipoles"]) and a["rng_state"] == b["rng_state"]
    assert parts["production_ps_reached"] == whole["production_ps_reached"] == 0.1
    assert parts["pcc_batched_vs_ase"] == whole["pcc_batched_vs_ase"] and not parts["full_protocol"]
    assert run("parts", "--report-only")["pcc_batched_vs_ase"] == whole["pcc_batched_vs_ase"]
    with pytest.raises(SystemExit, match="another protocol"):
        run("parts", "--thermalization-ps", "0.02")
