"""Raman benchmark (issue 25): static polarizabilities against measured values, harmonic Raman
activities, and ML-MD Raman against reference-MD Raman with the same protocol.

Writes ``docs/results/raman.json``; each part can run alone and the file keeps the other parts'
results (``--parts polarizability harmonic md``). Nothing is filled in by hand: a part that was
not run leaves its key as it was (or absent).

    python benchmarks/raman.py --parts polarizability harmonic
    python benchmarks/raman.py --parts md --preset quick --run-dir runs/bench_raman_methanol
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "raman.json"
FIGURE = ROOT / "docs" / "results" / "raman_methanol_ml_vs_xtb.png"

#: Measured static (electronic) polarizabilities, Å^3. Source for all: T. M. Miller, "Atomic and
#: molecular polarizabilities", CRC Handbook of Chemistry and Physics (section 10), the values the
#: issue quotes (water 1.45, methane 2.59, CO2 2.91).
MEASURED_POLARIZABILITY_A3 = {
    "H2O": 1.45,
    "CH4": 2.593,
    "CO2": 2.911,
    "CH3OH": 3.29,
}
# Ammonia is left out: compilations disagree (2.81 and about 2.2 Å^3) and we could not check which
# is the electronic static value.
MEASURED_SOURCE = "T. M. Miller, Atomic and molecular polarizabilities, CRC Handbook of Chemistry and Physics"
GEOMETRY_NOTE = "ASE's G2 geometries (ase.build.molecule), not re-optimised, for every reference"
DFT = "pyscf:b3lyp/aug-cc-pvdz"

#: Published gas-phase Raman facts we could state with a source. Absolute gas-phase activities
#: (Å^4/amu) for water and methanol were not found in a source we could check here; the one
#: published number at hand is a ratio of water-vapour band intensities.
PUBLISHED = {
    "H2O": {
        "bend_over_symmetric_stretch_cross_section_max": 1.0 / 500.0,
        "laser_nm": 488.0,  # an argon laser; the abstract does not name the line
        "source": "A. S. Gilbert and H. J. Bernstein, 'Gas phase Raman spectra of water and the "
        "water-trimethylamine complex', Ohio State Int. Symp. Mol. Spectrosc. 1973, abstract E-09 "
        "(hdl.handle.net/1811/15978): the bend is 'at least 500 times weaker' than the symmetric "
        "stretch; the antisymmetric stretch was not observed with certainty",
        "absolute_activities": "not found",
    },
    "CH3OH": {"absolute_activities": "not found", "source": None},
}


def update_results(part: str, value, out: Path = OUT) -> None:
    results = json.loads(out.read_text()) if out.exists() else {}
    results[part] = value
    results.setdefault("units", {}).update(
        polarizability="A^3", activity="A^4/amu", wavenumber="cm-1", wd="cm-1"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float))
    print(f"wrote {part} to {out}")


def polarizability_part(references: list[str]) -> dict:
    from ase.build import molecule

    from specml.reference import make_reference

    out: dict = {"source_measured": MEASURED_SOURCE, "geometry": GEOMETRY_NOTE, "molecules": {}}
    for formula, measured in MEASURED_POLARIZABILITY_A3.items():
        entry: dict = {"measured_A3": measured, "computed_A3": {}, "relative_error": {}, "seconds": {}}
        for spec in references:
            started = time.perf_counter()
            alpha = make_reference(spec).polarizability(molecule(formula))
            mean = float(np.trace(alpha) / 3.0)
            entry["computed_A3"][spec] = mean
            entry["relative_error"][spec] = (mean - measured) / measured
            entry["seconds"][spec] = time.perf_counter() - started
            print(f"{formula:6s} {spec:28s} {mean:6.3f} Å^3 (measured {measured})", flush=True)
        out["molecules"][formula] = entry
    return out


def harmonic_part(plan: dict[str, list[str]]) -> dict:
    """Harmonic Raman at each reference's own minimum."""
    from ase.build import molecule

    from specml.molecules import optimize_geometry
    from specml.reference import make_reference
    from specml.spectra.raman import harmonic_raman

    out: dict = {}
    for formula, references in plan.items():
        entry: dict = {
            "published": PUBLISHED.get(formula, {"absolute_activities": "not found"}),
            "computed": {},
        }
        for spec in references:
            started = time.perf_counter()
            reference = make_reference(spec)
            atoms = optimize_geometry(molecule(formula), reference, fmax=1e-4)
            result = harmonic_raman(atoms, reference)
            computed = {
                "frequencies_cm1": result.frequencies_cm1.tolist(),
                "activities_A4_amu": result.activities.tolist(),
                "depolarization_ratios": result.depolarization_ratios.tolist(),
                "polarizability_A3": float(np.trace(result.polarizability) / 3),
                "seconds": time.perf_counter() - started,
            }
            if formula == "H2O":
                sigma = result.cross_sections(PUBLISHED["H2O"]["laser_nm"], 298.15)
                bend, symmetric = np.argsort(result.frequencies_cm1)[:2]  # bend < symmetric < antisymmetric
                computed["bend_over_symmetric_stretch_cross_section"] = float(sigma[bend] / sigma[symmetric])
            entry["computed"][spec] = computed
            print(f"{formula} {spec}: {np.round(result.frequencies_cm1)} {np.round(result.activities, 2)}")
        out[formula] = entry
    return out


def md_part(args) -> dict:
    """ML-MD Raman (the workflow with raman=True) against reference-MD Raman (xTB driving the
    same production protocol; polarizabilities of the recorded frames from the reference)."""
    from specml.comparison import compare_spectra
    from specml.executor import make_executor
    from specml.molecules import load_molecules
    from specml.spectra.raman_md import raman_from_trajectories
    from specml.workflow import IRWorkflow, get_workflow_config
    from specml.workflow.production import read_production_file

    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    config = get_workflow_config(args.preset, raman=True, **overrides)
    run_dir = Path(args.run_dir)
    executor = make_executor(show_progress=False)
    workflow = IRWorkflow(load_molecules(args.smiles), run_dir, config, executor, show_progress=False)
    if args.reference_only:  # a second process: the reference trajectories while the workflow runs
        ((_, start),) = workflow.prepared_structures()
        _reference_polarizabilities(start, config, run_dir / "reference_md")
        return {}
    result = workflow.run()
    ml_seconds = workflow.dirs.total_time_s()  # over every invocation of the run (it resumes)
    ((name, start),) = workflow.prepared_structures()
    key = f"{name}@{config.production_temperature_k:.0f}K"
    ml = result.raman_spectra[key]["total"]
    reference_series, reference_seconds = _reference_polarizabilities(start, config, run_dir / "reference_md")
    lo, hi = config.spectrum_range_cm1
    runs = read_production_file(
        run_dir / "production" / f"{config.production_temperature_k:.0f}K" / f"{name}.npz"
    )
    reference = raman_from_trajectories(
        reference_series,
        runs.record_interval_fs,
        config.production_temperature_k,
        config.max_correlation_fs,
        lo,
        hi,
        quantum_correction="harmonic",
    )["total"]
    comparison = compare_spectra(
        reference.with_metadata(
            label=f"xTB MD Raman ({config.n_trajectories} x {config.production_ps:g} ps)"
        ),
        ml.with_metadata(label="ML-MD Raman (MACE + AtomicDielectricMACE)"),
        lo,
        hi,
    )
    from specml.plotting import plot_comparison

    plot_comparison(
        comparison, FIGURE, title=f"{args.smiles} at {config.production_temperature_k:.0f} K, total Raman"
    )
    return {
        "molecule": args.smiles,
        "preset": args.preset,
        "overrides": overrides,
        "reference": config.reference,
        "protocol": {
            "temperature_k": config.production_temperature_k,
            "n_trajectories": config.n_trajectories,
            "production_ps": config.production_ps,
            "thermalization_ps": config.thermalization_ps,
            "timestep_fs": config.timestep_fs,
            "record_interval_fs": runs.record_interval_fs,
            "max_correlation_fs": config.max_correlation_fs,
        },
        "pcc_ml_vs_reference": comparison.pcc,
        "wd_ml_vs_reference": comparison.wd_cm1,
        "ml_polarizability_test_set": result.summary.get("raman", {}).get("test_set"),
        "ml_workflow_wall_s": ml_seconds,
        "ml_workflow_wall_s_by_stage": result.summary.get("wall_time_s_by_stage"),
        "reference_md_wall_s": reference_seconds,
    }


def _reference_polarizabilities(start, config, folder: Path) -> tuple[list[np.ndarray], float]:
    """Reference Langevin MD with the production protocol; polarizabilities of the recorded frames.
    Each trajectory is cached as ``.npz``."""
    from ase import Atoms

    from specml.dynamics.ase_md import ase_md_loop, initialize_velocities
    from specml.reference import make_reference

    folder.mkdir(parents=True, exist_ok=True)
    reference = make_reference(config.reference)
    series, seconds = [], 0.0
    for k in range(config.n_trajectories):
        path = folder / f"trajectory_{k}.npz"
        if not path.exists():
            started = time.perf_counter()
            atoms = start.copy()
            initialize_velocities(atoms, config.production_temperature_k, seed=1000 + k)
            frames, _ = ase_md_loop(
                atoms,
                reference.calculator(),
                config.production_steps,
                timestep_fs=config.timestep_fs,
                temperature_k=config.production_temperature_k,
                friction_per_fs=config.production_friction_per_fs,
                rng=np.random.default_rng(2000 + k),
                unrecorded_steps=config.thermalization_steps,
                record_interval=config.dipole_record_interval,
                record_positions=True,
                uncertainty=None,
            )
            alphas = np.array(
                [reference.polarizability(Atoms(start.numbers, positions=p)) for p in frames.positions]
            )
            np.savez(path, polarizabilities=alphas, seconds=time.perf_counter() - started)
        with np.load(path) as data:
            series.append(data["polarizabilities"])
            seconds += float(data["seconds"])
    return series, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", nargs="+", default=["polarizability", "harmonic"])
    parser.add_argument("--references", nargs="+", default=["xtb", DFT])
    parser.add_argument(
        "--harmonic-dft", nargs="*", default=["H2O"], help="molecules with a DFT harmonic Raman"
    )
    parser.add_argument("--smiles", default="CO")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--set", nargs="*", default=[], help="workflow overrides KEY=VALUE (JSON values)")
    parser.add_argument("--run-dir", default=str(ROOT / "runs" / "bench_raman_methanol"))
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument(
        "--reference-only", action="store_true", help="md: only the reference trajectories (run beside it)"
    )
    args = parser.parse_args()
    out = Path(args.out)
    if "polarizability" in args.parts:
        update_results("polarizability", polarizability_part(args.references), out)
    if "harmonic" in args.parts:
        plan = {f: ["xtb"] + ([DFT] if f in args.harmonic_dft else []) for f in ("H2O", "CH3OH")}
        update_results("harmonic_activities", harmonic_part(plan), out)
    if "md" in args.parts and args.reference_only:
        md_part(args)
    elif "md" in args.parts:
        md = md_part(args)
        update_results("md", md, out)
        update_results("pcc_ml_vs_reference", md["pcc_ml_vs_reference"], out)
        update_results("wd_ml_vs_reference", md["wd_ml_vs_reference"], out)


if __name__ == "__main__":
    main()
