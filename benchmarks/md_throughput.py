"""Replica-steps per second: batched engine vs ASE Langevin + MACECalculator loop.

Same model(s), machine, precision and thread count, side by side in one run.
Models have random weights with the architecture of the project's ``default``
preset (speed does not depend on the weights). Rates are given per wall-clock
second and per second of this process's CPU time: on a machine shared with other
jobs the CPU-time rates are the stable measure (one torch thread, so they equal
wall-clock rates on a quiet machine); the load average is recorded. Writes
``docs/results/md_throughput.json``.

    .venv/bin/python benchmarks/md_throughput.py [--precision float32] [--threads 1]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from mace import modules  # before e3nn: mace makes e3nn's constants loadable with torch>=2.6

# isort: split
from ase import Atoms
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from e3nn import o3

from specml.dynamics.ase_loop import mace_calculator, run_mace_replica
from specml.dynamics.batched import BatchedMD
from specml.models.presets import get_preset

ROOT = Path(__file__).resolve().parents[1]
MOLECULES_CSV = ROOT.parent / "shared" / "molecules" / "train24.csv"
Z = [1, 6, 7, 8]


def build_model(preset, seed: int, dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        return modules.ScaleShiftMACE(
            atomic_inter_scale=1.0,
            atomic_inter_shift=0.0,
            r_max=preset.r_max,
            num_bessel=preset.num_radial_basis,
            num_polynomial_cutoff=preset.num_cutoff_basis,
            max_ell=preset.max_ell,
            interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            num_interactions=preset.num_interactions,
            num_elements=len(Z),
            hidden_irreps=preset.hidden_irreps,
            MLP_irreps=o3.Irreps(preset.MLP_irreps),
            atomic_energies=np.zeros(len(Z)),
            avg_num_neighbors=8.0,
            atomic_numbers=Z,
            correlation=preset.correlation,
            gate=torch.nn.functional.silu,
            radial_MLP=list(preset.radial_MLP),
            pair_repulsion=True,
        )
    finally:
        torch.set_default_dtype(previous)


def embed(smiles: str, seed: int = 42) -> Atoms:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    if AllChem.EmbedMolecule(mol, randomSeed=seed) != 0:
        raise RuntimeError(f"RDKit could not embed {smiles}")
    AllChem.MMFFOptimizeMolecule(mol)
    pos = mol.GetConformer().GetPositions()
    return Atoms(numbers=[a.GetAtomicNum() for a in mol.GetAtoms()], positions=pos)


def thermalised(atoms: Atoms, T: float, seed: int) -> Atoms:
    atoms = atoms.copy()
    MaxwellBoltzmannDistribution(atoms, temperature_K=T, rng=np.random.default_rng(seed))
    return atoms


def _rates(run, replica_steps: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return replica_steps / wall, replica_steps / cpu


def batched_timer(models, atoms, temps, dtype, steps, warmup=3, fast_path=True, compile_models=False):
    """A function timing ``steps`` more steps of one warmed-up engine: (rs per wall s, per CPU s)."""
    eng = BatchedMD(
        models,
        atoms,
        temperatures_K=temps,
        precision=dtype,
        device="cpu",
        uncertainty_threshold=np.inf,
        record_interval=10,
        record_positions=False,
        fast_path=fast_path,
        compile_models=compile_models,
    )
    t0 = time.perf_counter()
    eng.run(warmup)  # includes the compilation (and its check) for compiled models
    if compile_models:
        if eng.compiled_models is None:
            raise RuntimeError("torch.compile fell back to eager models")
        print(
            f"    compiled {len(models)} model(s) + {warmup} warm-up steps: {time.perf_counter() - t0:.0f} s",
            flush=True,
        )

    def run():
        if eng.run(steps).stopped.any():
            raise RuntimeError("a replica stopped during the benchmark")

    return lambda: _rates(run, len(atoms) * steps)


def ase_timer(models, atoms, temps, precision, steps, warmup=2):
    """A function timing the ASE loop over all replicas: (rs per wall s, per CPU s).

    Each replica runs ``steps`` steps and steps 2..``steps`` are timed: the first
    step of a fresh ASE integrator also evaluates the initial forces (two model
    calls), which a long trajectory pays once, not per step. The batched engine
    is likewise timed on a continuation (no initial evaluation).
    """
    if steps < 2:
        raise ValueError("the ASE loop needs at least 2 steps per replica (the first is not timed)")
    # One calculator per committee, reused across replicas (its construction is
    # not counted); the loop over replicas is serial, as in the published workflow.
    calc = mace_calculator(models, precision=precision, device="cpu")
    run_mace_replica(models, atoms[0], warmup, temperature_K=temps[0], calculator=calc, record_interval=10)

    def timer():
        wall = cpu = 0.0
        for i, (a, T) in enumerate(zip(atoms, temps, strict=True)):
            mark = {}

            def after_step(step, total, mark=mark):
                if step == 1:
                    mark["wall"], mark["cpu"] = time.perf_counter(), time.process_time()

            run_mace_replica(
                models,
                a,
                steps,
                temperature_K=T,
                seed=i,
                calculator=calc,
                record_interval=10,
                progress=after_step,
            )
            wall += time.perf_counter() - mark["wall"]
            cpu += time.process_time() - mark["cpu"]
        n = len(atoms) * (steps - 1)
        return n / wall, n / cpu

    return timer


def interleaved(timers: dict, rounds: int) -> dict:
    """Median (wall, CPU) rates of each timer over ``rounds`` rounds, the timers alternating
    within each round so that all see the same load on a shared machine."""
    samples = {k: [] for k in timers}
    for _ in range(rounds):
        for k, timer in timers.items():
            samples[k].append(timer())
    return {k: tuple(float(np.median([v[j] for v in vals])) for j in (0, 1)) for k, vals in samples.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--precision", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batched-steps", type=int, default=20)
    ap.add_argument("--ase-steps", type=int, default=5, help="per replica; the first is not timed")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repeats; medians are reported")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows at R=72")
    ap.add_argument("--out", default=str(ROOT / "docs/results/md_throughput.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.precision]
    preset = get_preset("default")
    committee = [build_model(preset, s, dtype) for s in range(3)]

    with MOLECULES_CSV.open() as fh:
        rows = list(csv.DictReader(fh))
    mols = [embed(r["smiles"]) for r in rows]
    temps3 = (300.0, 500.0, 700.0)
    setups = {
        1: ([mols[1]], [300.0]),  # methanol
        3: (mols[:3], [300.0] * 3),
        24: (mols[:24], [300.0] * 24),
        72: ([m for T in temps3 for m in mols[:24]], [T for T in temps3 for _ in range(24)]),
    }
    table = []
    load_start = os.getloadavg()
    print(
        f"torch {torch.__version__}, threads {args.threads}, precision {args.precision}, "
        f"preset default ({preset.description}), load average {load_start[0]:.2f}"
    )
    print(f"{'R':>3} {'models':>6} {'batched rs/s':>13} {'ASE rs/s':>10} {'speedup':>8} {'(CPU time)':>10}")
    for R, (atoms, temps) in setups.items():
        atoms = [thermalised(a, T, i) for i, (a, T) in enumerate(zip(atoms, temps, strict=True))]
        for n_models in (1, 3):
            models = committee[:n_models]
            timers = {
                "batched": batched_timer(models, atoms, temps, dtype, args.batched_steps),
                "ase": ase_timer(models, atoms, temps, args.precision, args.ase_steps),
            }
            if R == 72 and n_models == 3:
                # the same engine without the fast-path modules, for the record
                timers["plain"] = batched_timer(
                    models, atoms, temps, dtype, args.batched_steps, fast_path=False
                )
            if R == 72 and not args.no_compile:
                timers["compiled"] = batched_timer(
                    models, atoms, temps, dtype, args.batched_steps, compile_models=True
                )
            rates = interleaved(timers, args.rounds)
            (b, b_cpu), (a, a_cpu) = rates["batched"], rates["ase"]
            row = dict(
                R=R,
                n_models=n_models,
                batched_replica_steps_per_s=b,
                ase_replica_steps_per_s=a,
                speedup=b / a,
                batched_replica_steps_per_cpu_s=b_cpu,
                ase_replica_steps_per_cpu_s=a_cpu,
                speedup_cpu_time=b_cpu / a_cpu,
                n_atoms_total=int(sum(len(x) for x in atoms)),
            )
            if "compiled" in rates:
                bc, bc_cpu = rates["compiled"]
                row.update(
                    batched_compiled_replica_steps_per_s=bc,
                    batched_compiled_replica_steps_per_cpu_s=bc_cpu,
                    speedup_compiled=bc / a,
                    speedup_compiled_cpu_time=bc_cpu / a_cpu,
                )
                print(
                    f"{'':>3} {'':>6} {bc:>13.1f} {'':>10} {bc / a:>8.1f}x {bc_cpu / a_cpu:>9.1f}x  (compiled)",
                    flush=True,
                )
            if "plain" in rates:
                b0, b0_cpu = rates["plain"]
                row.update(
                    batched_no_fast_path_replica_steps_per_s=b0,
                    batched_no_fast_path_replica_steps_per_cpu_s=b0_cpu,
                )
            table.append(row)
            print(
                f"{R:>3} {n_models:>6} {b:>13.1f} {a:>10.1f} {b / a:>8.1f}x {b_cpu / a_cpu:>9.1f}x",
                flush=True,
            )

    # Cost per replica-step vs molecule size (committee of 3, R=24 copies for batched).
    size_smiles = {
        "water": "O",
        "methanol": "CO",
        "benzene": "c1ccccc1",
        "decane": "CCCCCCCCCC",
        "eicosane": "CCCCCCCCCCCCCCCCCCCC",
    }
    size_rows = []
    print(
        f"\n{'molecule':>10} {'atoms':>5} {'batched ms/rs':>13} {'ASE ms/rs':>10} {'speedup':>8}  (committee 3, R=24)"
    )
    for name, smi in size_smiles.items():
        mol = embed(smi)
        atoms = [thermalised(mol, 300.0, i) for i in range(24)]
        rates = interleaved(
            {
                "batched": batched_timer(
                    committee, atoms, [300.0] * 24, dtype, max(5, args.batched_steps // 2)
                ),
                "ase": ase_timer(committee, atoms[:3], [300.0] * 3, args.precision, args.ase_steps),
            },
            args.rounds,
        )
        (b, b_cpu), (a, a_cpu) = rates["batched"], rates["ase"]
        size_rows.append(
            dict(
                molecule=name,
                n_atoms=len(mol),
                batched_ms_per_replica_step=1e3 / b,
                ase_ms_per_replica_step=1e3 / a,
                speedup=b / a,
                batched_cpu_ms_per_replica_step=1e3 / b_cpu,
                ase_cpu_ms_per_replica_step=1e3 / a_cpu,
                speedup_cpu_time=b_cpu / a_cpu,
            )
        )
        print(f"{name:>10} {len(mol):>5} {1e3 / b:>13.2f} {1e3 / a:>10.2f} {b / a:>8.1f}x", flush=True)

    def pick(R, n):
        return next(r for r in table if r["R"] == R and r["n_models"] == n)

    # Headline: the engine as production MD runs it (compiled models; specml.workflow.md_tasks
    # compiles for runs of COMPILE_MIN_STEPS steps or more); the eager engine is reported too.
    c = "" if args.no_compile else "compiled_"
    rate = "batched_compiled_replica_steps_per_s" if c else "batched_replica_steps_per_s"
    result = {
        "speedup_single_R72": pick(72, 1)[f"speedup{'_compiled' if c else ''}"],
        "speedup_committee3_R72": pick(72, 3)[f"speedup{'_compiled' if c else ''}"],
        "replica_steps_per_s_batched_committee3_R72": pick(72, 3)[rate],
        "replica_steps_per_s_ase_committee3_R72": pick(72, 3)["ase_replica_steps_per_s"],
        "speedup_single_R72_cpu_time": pick(72, 1)[f"speedup_{c}cpu_time"],
        "speedup_committee3_R72_cpu_time": pick(72, 3)[f"speedup_{c}cpu_time"],
        "speedup_single_R72_eager": pick(72, 1)["speedup"],
        "speedup_committee3_R72_eager": pick(72, 3)["speedup"],
        "speedup_committee3_R72_eager_cpu_time": pick(72, 3)["speedup_cpu_time"],
        "headline_engine": (
            "BatchedMD(compile_models=True): torch.compile (inductor, dynamic shapes) of each "
            "member, as production MD runs it"
            if c
            else "BatchedMD (eager)"
        ),
        "ase_timing": "steps 2..n of each replica (the first step of a fresh ASE integrator also evaluates "
        "the initial forces); batched engine timed on a continuation",
        "precision": args.precision,
        "batched_fast_path": "default on: specml.dynamics.mace_fastpath (convolution tensor product and "
        "invariant symmetric contraction); R=72 committee-3 row also without it",
        "load_average_1min": {"start": load_start[0], "end": os.getloadavg()[0]},
        "table": table,
        "size_scan_committee3_R24": size_rows,
        "model_preset": {
            "name": "default",
            **preset.as_dict(),
            "weights": "random (speed does not depend on weights)",
            "pair_repulsion": True,
            "elements": Z,
        },
        "integrator": "Langevin, 0.5 fs, friction 0.01/fs; ASE: ase.md.langevin.Langevin(fixcm=False) "
        "+ mace.calculators.MACECalculator(models=committee)",
        "molecules": "train24 (RDKit ETKDG seed 42 + MMFF); R=1 methanol, R=3/24 first molecules, "
        "R=72 = 24 molecules x 300/500/700 K",
        "steps_timed": {
            "batched": args.batched_steps,
            "ase_per_replica": args.ase_steps - 1,
            "rounds": args.rounds,
            "statistic": "median over interleaved rounds",
        },
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor()} ({torch.get_num_threads()} torch threads; "
        "2 cores shared with other jobs)",
        "device": "cpu",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
