"""Same physics: methanol IR spectrum from the batched engine vs the ASE loop, trained models.

Both sides use the same trained committee (forces = committee mean) and dipole
model, in the production protocol of the workflow (``WorkflowConfig`` defaults:
Langevin, 0.5 fs, friction 0.001/fs, 300 K, float32, dipoles every 2 steps,
3 trajectories x (5 ps thermalisation + 50 ps production), spectra by
``specml.spectra.autocorrelation.ir_from_dipoles`` with the production
correlation depth, averaged over trajectories), with different random streams:

* batched: :class:`specml.dynamics.batched.BatchedMD` set up as
  ``specml.workflow.md_tasks.production_task`` sets it up (what production runs);
* ASE: ``ase.md.langevin.Langevin`` + ``MACECalculator`` per trajectory
  (:func:`specml.dynamics.ase_loop.run_mace_replica`).

The batched side also runs a second, independent set of trajectories (set B):
the PCC between the two batched sets is the sampling-noise floor at that length.

Resumable. The full protocol costs ~6 h of one core on the ASE side, so every
trajectory (ASE x n, batched set A x n, batched set B x n) is advanced in
segments (``--segment-ps``) and its state is saved after each segment to
``<work-dir>/<name>.npz`` (``specml.workflow.state.atomic_write_npz``):
positions, momenta (exact; velocities too, for reading), forces (batched),
the numpy bit-generator state of its Langevin stream, steps done per phase, the
production dipoles/temperatures/uncertainties so far and stop information.
Rerunning the same command continues every trajectory where it stopped; a
kill loses at most the segment in progress. Continuations are exact:

* batched: :meth:`BatchedMD.state_dict` / :meth:`BatchedMD.from_state` (positions,
  momenta, forces and generator state); within one process the engine simply
  runs on. As in ``production_task``, the production stream restarts from the
  trajectory's seed after thermalisation.
* ASE: the saved generator is restored and passed to ``run_mace_replica(rng=...)``,
  so the Langevin stream continues as if uninterrupted (thermalisation seed
  3000 + k, production seed 4000 + k, as in the one-go version).

The batched trajectories run first (cheap), then the ASE trajectories
round-robin, least advanced first, so all sides grow together. At the end of
every run (or with ``--report-only``) the spectra are computed from the
production dipoles that exist on all sides, truncated to the shortest common
production length (thermalisation is never used), and the JSON and PNG are
written with ``production_ps_reached`` and ``full_protocol``; an existing result
file with a longer production is kept (``--force-write`` overrides).
``<work-dir>/segments.jsonl`` logs every segment (steps, wall and CPU time).

    nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/batched_vs_ase_spectrum.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from ase import Atoms, units
from ase.build import molecule

from specml.comparison.metrics import pearson, wasserstein
from specml.dynamics.ase_loop import mace_calculator, run_mace_replica
from specml.dynamics.ase_md import initialize_velocities
from specml.dynamics.batched import BatchedMD
from specml.models import Committee
from specml.models.committee import FORCE_UNCERTAINTY_EPS
from specml.spectra.autocorrelation import ir_from_trajectories
from specml.workflow.config import WorkflowConfig
from specml.workflow.md_tasks import COMPILE_MIN_STEPS
from specml.workflow.state import atomic_write_npz

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = "/root/specml-runs/bench_methanol_xtb/models/iter_007"
DEFAULT_WORK_DIR = "/root/specml-runs/batched_vs_ase"
THERM, PROD = "thermalization", "production"
FRAME_KEYS = ("dipoles", "temperatures", "uncertainty")


# ---------------------------------------------------------------- trajectory states
def trajectory_plan(n_traj: int) -> list[dict]:
    """Name, engine and seeds of every trajectory (seeds as in the one-go version)."""
    plan = []
    for k in range(2 * n_traj):  # batched: velocities and Langevin stream from one seed (Replica.seed)
        name = f"batched_{'ab'[k // n_traj]}_{k % n_traj}"
        plan.append(
            {
                "name": name,
                "engine": "batched",
                "velocity_seed": 1000 + k,
                "seed_thermalization": 1000 + k,
                "seed_production": 1000 + k,
            }
        )
    for k in range(n_traj):
        plan.append(
            {
                "name": f"ase_{k}",
                "engine": "ase",
                "velocity_seed": 2000 + k,
                "seed_thermalization": 3000 + k,
                "seed_production": 4000 + k,
            }
        )
    return plan


def rng_state(seed: int) -> dict:
    return np.random.default_rng(seed).bit_generator.state


def fresh_state(entry: dict, protocol: dict) -> dict:
    atoms = molecule("CH3OH")
    initialize_velocities(atoms, protocol["temperature_K"], entry["velocity_seed"])
    phase = THERM if protocol["thermalization_steps"] > 0 else PROD
    return {
        **entry,
        "protocol": protocol,
        "phase": phase,
        "steps": {THERM: 0, PROD: 0},
        "rng_state": rng_state(entry[f"seed_{phase}"]),
        "numbers": atoms.numbers.copy(),
        "masses": atoms.get_masses(),
        "positions": atoms.positions.copy(),
        "momenta": atoms.get_momenta(),
        "forces": None,
        "stopped": False,
        "stop_reason": None,
        "dipoles": np.zeros((0, 3)),
        "temperatures": np.zeros(0),
        "uncertainty": np.zeros(0),
    }


def save_state(work_dir: Path, state: dict) -> None:
    """Write ``<name>.npz`` atomically (the workflow's own temporary-file + ``os.replace``)."""
    meta = {
        k: state[k]
        for k in (
            "name",
            "engine",
            "velocity_seed",
            "seed_thermalization",
            "seed_production",
            "protocol",
            "phase",
            "steps",
            "rng_state",
            "stopped",
            "stop_reason",
        )
    }
    arrays = {k: np.asarray(state[k]) for k in ("numbers", "masses", "positions", "momenta") + FRAME_KEYS}
    arrays["velocities_A_per_fs"] = state["momenta"] / state["masses"][:, None] * units.fs  # for reading only
    if state["forces"] is not None:
        arrays["forces"] = np.asarray(state["forces"])
    atomic_write_npz(work_dir / f"{state['name']}.npz", meta=np.array(json.dumps(meta)), **arrays)


def load_state(path: Path) -> dict:
    with np.load(path) as z:
        state = json.loads(str(z["meta"]))
        for k in ("numbers", "masses", "positions", "momenta") + FRAME_KEYS:
            state[k] = z[k]
        state["forces"] = z["forces"] if "forces" in z else None
    return state


def load_or_create(work_dir: Path, plan: list[dict], protocol: dict) -> list[dict]:
    states = []
    for entry in plan:
        path = work_dir / f"{entry['name']}.npz"
        if not path.exists():
            states.append(fresh_state(entry, protocol))
            continue
        state = load_state(path)
        saved = {**{k: state[k] for k in entry}, **{"protocol": state["protocol"]}}
        if saved != {**entry, "protocol": protocol}:
            raise SystemExit(
                f"{path} was written with another protocol, seeds or models:\n  saved "
                f"{saved}\n  now   { ({**entry, 'protocol': protocol}) }\nuse another --work-dir"
            )
        states.append(state)
    return states


def finished(state: dict, targets: dict) -> bool:
    return state["stopped"] or (state["phase"] == PROD and state["steps"][PROD] >= targets[PROD])


def position(state: dict) -> tuple[int, int]:
    return (0 if state["phase"] == THERM else 1, state["steps"][state["phase"]])


def finish_segment(
    work_dir: Path, state: dict, n: int, frames: dict, stopped: bool, stop_reason, targets: dict
) -> None:
    """Book ``n`` steps (and the production frames) into ``state``, switch phase if due, save."""
    phase = state["phase"]
    state["steps"][phase] += n
    if phase == PROD:
        for key in FRAME_KEYS:
            state[key] = np.concatenate(
                [state[key], np.asarray(frames[key]).reshape((-1,) + state[key].shape[1:])]
            )
    state["stopped"], state["stop_reason"] = bool(stopped), stop_reason
    if phase == THERM and state["steps"][THERM] >= targets[THERM]:
        state["phase"] = PROD
        state["rng_state"] = rng_state(state["seed_production"])
    save_state(work_dir, state)


def log_segment(work_dir: Path, **record) -> None:
    record.update(time=time.strftime("%Y-%m-%d %H:%M:%S"), load_1min=os.getloadavg()[0])
    with open(work_dir / "segments.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")
    print(
        f"[{record['time']}] {record['side']} {record['phase']} {record['names']}: {record['steps']} steps in "
        f"{record['wall_s']:.0f} s ({record['steps'] / max(record['wall_s'], 1e-9):.1f} steps/s per "
        f"trajectory) -> {record['reached']}",
        flush=True,
    )


def reached(states: list[dict]) -> str:
    return ", ".join(
        f"{s['name']} {s['phase'][:5]} {s['steps'][s['phase']]}" + (" STOPPED" if s["stopped"] else "")
        for s in states
    )


# ---------------------------------------------------------------- batched side
def batched_engine(group: list[dict], committee, protocol: dict, segment_steps: int, compile_models: bool):
    """A :class:`BatchedMD` continuing ``group`` (same phase and step), configured as production_task's."""
    phase = group[0]["phase"]
    replicas = [
        {
            "numbers": s["numbers"],
            "masses": s["masses"],
            "positions": s["positions"],
            "momenta": s["momenta"],
            "forces": s["forces"],
            "rng_state": s["rng_state"],
            "seed": s[f"seed_{phase}"],
            "temperature_K": protocol["temperature_K"],
            "friction_per_fs": protocol["friction_per_fs"],
            "uncertainty_threshold": protocol["uncertainty_stop"],
            "stopped": False,
            "stop_step": None,
            "stop_reason": None,
        }
        for s in group
    ]
    state = {
        "version": 1,
        "step": group[0]["steps"][phase],
        "ensemble": "langevin",
        "timestep_fs": protocol["timestep_fs"],
        "precision": protocol["precision"],
        "replicas": replicas,
    }
    production = phase == PROD
    return BatchedMD.from_state(
        state,
        committee.energy_models,
        dipole_model=committee.dipole_model if production else None,
        record_interval=protocol["record_interval"] if production else segment_steps,
        record_positions=False,
        compile_models=compile_models,
    )


def advance_batched(work_dir, states, committee, protocol, targets, segment_steps, compile_models, budget):
    """Advance the batched trajectories to the targets in segments; equal (phase, step) run together."""
    engine, key = None, None
    while budget["segments"] > 0:
        pending = [s for s in states if not finished(s, targets)]
        if not pending:
            return
        lead = min(position(s) for s in pending)
        group = [s for s in pending if position(s) == lead]
        phase = group[0]["phase"]
        built = (tuple(s["name"] for s in group), phase) != key
        t0, c0 = time.perf_counter(), time.process_time()
        if built:
            engine = batched_engine(group, committee, protocol, segment_steps, compile_models)
            key = (tuple(s["name"] for s in group), phase)
        n = min(segment_steps, targets[phase] - group[0]["steps"][phase])
        trajectory = engine.run(n)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        saved = engine.state_dict()["replicas"]
        for state, frames, rep in zip(group, trajectory.replicas, saved, strict=True):
            done = rep["stop_step"] - state["steps"][phase] if rep["stopped"] else n
            state.update(
                positions=rep["positions"],
                momenta=rep["momenta"],
                forces=rep["forces"],
                rng_state=rep["rng_state"],
            )
            finish_segment(
                work_dir,
                state,
                done,
                {
                    "dipoles": frames.dipoles,
                    "temperatures": frames.temperatures,
                    "uncertainty": frames.rel_uncertainty,
                },
                rep["stopped"],
                rep["stop_reason"],
                targets,
            )
        budget["segments"] -= 1
        log_segment(
            work_dir,
            side="batched",
            phase=phase,
            names=[s["name"] for s in group],
            steps=n,
            replica_steps=n * len(group),
            wall_s=wall,
            cpu_s=cpu,
            engine_built=built,
            reached=reached(states),
        )


# ---------------------------------------------------------------- ASE side
def advance_ase(work_dir, states, committee, protocol, targets, segment_steps, budget):
    """Advance the ASE trajectories round-robin (least advanced first), one segment at a time."""
    calc = dcalc = None
    while budget["segments"] > 0:
        pending = [s for s in states if not finished(s, targets)]
        if not pending:
            return
        state = min(pending, key=position)
        if calc is None:
            calc = mace_calculator(committee.energy_models, precision=protocol["precision"])
            dcalc = mace_calculator(
                [committee.dipole_model], model_type="DipoleMACE", precision=protocol["precision"]
            )
        phase = state["phase"]
        production = phase == PROD
        n = min(segment_steps, targets[phase] - state["steps"][phase])
        atoms = Atoms(numbers=state["numbers"], positions=state["positions"], masses=state["masses"])
        atoms.set_momenta(state["momenta"], apply_constraint=False)
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng_state"]
        t0, c0 = time.perf_counter(), time.process_time()
        frames, final = run_mace_replica(
            committee.energy_models,
            atoms,
            n,
            temperature_K=protocol["temperature_K"],
            timestep_fs=protocol["timestep_fs"],
            friction_per_fs=protocol["friction_per_fs"],
            rng=rng,
            record_interval=protocol["record_interval"] if production else n,
            dipole_model=committee.dipole_model if production else None,
            dipole_calculator=dcalc,
            uncertainty_threshold=protocol["uncertainty_stop"],
            uncertainty_eps=FORCE_UNCERTAINTY_EPS,
            calculator=calc,
            precision=protocol["precision"],
        )
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        state.update(
            positions=final.positions.copy(), momenta=final.get_momenta(), rng_state=rng.bit_generator.state
        )
        done = frames.stop_step if frames.stopped else n
        finish_segment(
            work_dir,
            state,
            done,
            {
                "dipoles": frames.dipoles,
                "temperatures": frames.temperatures,
                "uncertainty": frames.rel_uncertainty,
            },
            frames.stopped,
            frames.stop_reason,
            targets,
        )
        budget["segments"] -= 1
        log_segment(
            work_dir,
            side="ase",
            phase=phase,
            names=[state["name"]],
            steps=done,
            replica_steps=done,
            wall_s=wall,
            cpu_s=cpu,
            engine_built=False,
            reached=reached(states),
        )


# ---------------------------------------------------------------- report
def throughput(work_dir: Path) -> dict:
    """Wall/CPU time and steps per side from ``segments.jsonl`` (all runs so far)."""
    out = {}
    path = work_dir / "segments.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    for side in ("batched", "ase"):
        rows = [r for r in records if r["side"] == side]
        wall, cpu = sum(r["wall_s"] for r in rows), sum(r["cpu_s"] for r in rows)
        steps, replica_steps = sum(r["steps"] for r in rows), sum(r["replica_steps"] for r in rows)
        out[side] = {
            "wall_s": wall,
            "cpu_s": cpu,
            "engine_steps": steps,
            "replica_steps": replica_steps,
            "replica_steps_per_s": replica_steps / wall if wall else None,
            "replica_steps_per_cpu_s": replica_steps / cpu if cpu else None,
        }
    return out


def existing_production_ps(out: Path) -> float:
    if not out.exists():
        return 0.0
    old = json.loads(out.read_text())
    return float(old.get("production_ps_reached", old.get("trajectory", {}).get("production_ps", 0.0)))


def report(
    args, cfg: WorkflowConfig, states: list[dict], protocol: dict, committee_info: dict, load_start: float
) -> dict | None:
    """Spectra from the production dipoles of all sides at equal length; writes the JSON and PNG."""
    n_traj, dt, rec = args.n_traj, protocol["timestep_fs"], protocol["record_interval"]
    dt_rec = dt * rec
    sides = {
        "set_a": [s for s in states if s["name"].startswith("batched_a")],
        "set_b": [s for s in states if s["name"].startswith("batched_b")],
        "ase": [s for s in states if s["engine"] == "ase"],
    }
    usable = {k: [s for s in v if not s["stopped"]] for k, v in sides.items()}
    lengths = [len(s["dipoles"]) for v in usable.values() for s in v]
    n_common = min(lengths) if lengths and all(usable.values()) else 0
    production_ps = n_common * dt_rec / 1000.0
    print(
        f"production reached on all sides: {production_ps:.2f} ps ({n_common} frames per trajectory)",
        flush=True,
    )
    if n_common * dt_rec < 2 * args.max_correlation_fs:
        print(
            f"not enough common production data for a {args.max_correlation_fs:.0f} fs correlation depth "
            f"(need {2 * args.max_correlation_fs / 1000:.1f} ps); no report written",
            flush=True,
        )
        return None

    def dipoles(*names):
        return [s["dipoles"][:n_common] for name in names for s in usable[name]]

    def spectrum(names, depth):
        return ir_from_trajectories(dipoles(*names), dt_rec, depth, *cfg.spectrum_range_cm1)

    pairs = {
        "batched_vs_ase": (("set_a",), ("ase",)),
        "batched_all_vs_ase": (("set_a", "set_b"), ("ase",)),
        "noise_floor_batched_vs_batched": (("set_a",), ("set_b",)),
    }
    metrics, short = {}, {}
    for name, (x, y) in pairs.items():
        for depth, into in ((args.max_correlation_fs, metrics), (args.short_depth_fs, short)):
            sx, sy = spectrum(x, depth), spectrum(y, depth)
            into[f"pcc_{name}"] = pearson(sx, sy)
            into[f"wasserstein_cm1_{name}"] = wasserstein(sx, sy)
    full = (
        protocol["thermalization_steps"] == cfg.thermalization_steps
        and n_common * rec >= cfg.production_steps
        and n_traj >= cfg.n_trajectories
        and args.max_correlation_fs == cfg.max_correlation_fs
    )
    batched, ase = sides["set_a"] + sides["set_b"], sides["ase"]

    def mean_of(group, key):
        return float(np.mean([np.nanmean(s[key][:n_common]) for s in group if len(s[key])]))

    timing = throughput(Path(args.work_dir))
    result = {
        **metrics,
        "acceptance_pcc_min": 0.98,
        "max_correlation_fs": args.max_correlation_fs,
        f"at_max_correlation_{args.short_depth_fs:.0f}_fs": short,
        "production_ps_reached": production_ps,
        "full_protocol": bool(full),
        "n_trajectories": {
            "ase": len(usable["ase"]),
            "batched_set_a": len(usable["set_a"]),
            "batched_set_b": len(usable["set_b"]),
        },
        "stopped": {"ase": sum(s["stopped"] for s in ase), "batched": sum(s["stopped"] for s in batched)},
        "mean_temperature_K": {
            "ase": mean_of(ase, "temperatures"),
            "batched": mean_of(batched, "temperatures"),
        },
        "mean_relative_force_uncertainty": {
            "ase": mean_of(ase, "uncertainty"),
            "batched": mean_of(batched, "uncertainty"),
        },
        "trajectory": {
            "thermalization_ps": protocol["thermalization_steps"] * dt / 1000.0,
            "production_ps": production_ps,
            "target_production_ps": args.production_ps,
            "protocol_target": {
                "thermalization_ps": cfg.thermalization_ps,
                "production_ps": cfg.production_ps,
                "n_trajectories": cfg.n_trajectories,
            },
            "note": "accumulated across runs in segments (resumable); every trajectory is truncated to "
            "the shortest common production length; thermalisation is not used",
        },
        "progress": {
            s["name"]: {
                "thermalization_ps": s["steps"][THERM] * dt / 1000.0,
                "production_ps": s["steps"][PROD] * dt / 1000.0,
                "stopped": s["stopped"],
                "stop_reason": s["stop_reason"],
            }
            for s in states
        },
        "protocol": {
            "molecule": "methanol (ase.build.molecule('CH3OH'))",
            "temperature_K": protocol["temperature_K"],
            "timestep_fs": dt,
            "friction_per_fs": protocol["friction_per_fs"],
            "dipole_record_interval_steps": rec,
            "max_correlation_fs": args.max_correlation_fs,
            "spectrum_range_cm1": list(cfg.spectrum_range_cm1),
            "precision": protocol["precision"],
            "uncertainty_stop": protocol["uncertainty_stop"],
            "forces": "committee mean",
            "spectra": "ir_from_trajectories (ir_from_dipoles per trajectory, averaged)",
            "initial_velocities": "Maxwell-Boltzmann (no COM motion/rotation); different seeds "
            "and Langevin streams on each side",
            "continuation": "segments of the saved state (positions, momenta, generator state): exact; "
            "batched production restarts its stream from the seed as production_task does",
        },
        "models": committee_info,
        "engines": {
            "batched": "specml.dynamics.batched.BatchedMD as production_task configures it "
            f"(compile_models={protocol['compile_models']})",
            "ase": "ase.md.langevin.Langevin(fixcm=False) + mace.calculators.MACECalculator",
        },
        "timing_s": {
            "batched_wall": timing["batched"]["wall_s"],
            "batched_cpu": timing["batched"]["cpu_s"],
            "batched_trajectories": len(batched),
            "ase_wall": timing["ase"]["wall_s"],
            "ase_cpu": timing["ase"]["cpu_s"],
            "ase_trajectories": len(ase),
            "note": "sums over all segments of all runs, thermalisation included",
        },
        "throughput": timing,
        "threads": args.threads,
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
        "torch_version": torch.__version__,
        "machine": f"{platform.machine()} ({args.threads} torch thread; 2 cores shared with other jobs)",
    }
    print(json.dumps({k: v for k, v in result.items() if k.startswith(("pcc", "wasserstein"))}, indent=2))
    out = Path(args.out)
    previous = existing_production_ps(out)
    if previous > production_ps and not args.force_write:
        print(
            f"{out} holds a longer production ({previous:.2f} ps > {production_ps:.2f} ps); kept "
            f"(--force-write overrides)",
            flush=True,
        )
        return result
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(
        out.with_suffix(".png"),
        result,
        spectrum(("set_a",), args.max_correlation_fs),
        spectrum(("ase",), args.max_correlation_fs),
        spectrum(("set_b",), args.max_correlation_fs),
    )
    print(f"wrote {out} and {out.with_suffix('.png')}", flush=True)
    return result


def plot(png: Path, result: dict, s_a, s_ase, s_b) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = result["n_trajectories"]
    fig, ax = plt.subplots(figsize=(8, 4))
    for s, label, style in (
        (s_a, f"batched engine ({n['batched_set_a']} traj.)", "-"),
        (s_ase, f"ASE loop ({n['ase']} traj.)", "--"),
        (s_b, f"batched, other seeds ({n['batched_set_b']} traj.)", ":"),
    ):
        ax.plot(s.wavenumber, s.intensity / s.intensity.max(), style, lw=1.2, label=label)
    ax.set_xlabel("wavenumber (cm$^{-1}$)")
    ax.set_ylabel("IR intensity (normalised)")
    ax.set_title(
        f"methanol, trained committee, 300 K, {result['production_ps_reached']:.1f} ps production per "
        f"trajectory: PCC batched vs ASE = {result['pcc_batched_vs_ase']:.3f} "
        f"(noise floor {result['pcc_noise_floor_batched_vs_batched']:.3f})",
        fontsize=8,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=130)
    plt.close(fig)


# ---------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict | None:
    cfg = WorkflowConfig()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=DEFAULT_MODELS, help="trained committee directory (Committee.save)")
    ap.add_argument("--work-dir", default=DEFAULT_WORK_DIR, help="per-trajectory states (resumed from)")
    ap.add_argument(
        "--n-traj", type=int, default=cfg.n_trajectories, help="trajectories per side (and per batched set)"
    )
    ap.add_argument("--thermalization-ps", type=float, default=cfg.thermalization_ps)
    ap.add_argument("--production-ps", type=float, default=cfg.production_ps)
    ap.add_argument("--segment-ps", type=float, default=2.5, help="state saved after every segment")
    ap.add_argument(
        "--max-segments", type=int, default=None, help="stop after this many segments (all sides)"
    )
    ap.add_argument("--max-correlation-fs", type=float, default=cfg.max_correlation_fs)
    ap.add_argument(
        "--short-depth-fs",
        type=float,
        default=200.0,
        help="second, shorter correlation depth reported alongside the production one",
    )
    ap.add_argument("--no-compile", action="store_true", help="eager batched models even for long runs")
    ap.add_argument("--report-only", action="store_true", help="no MD: report from the saved states")
    ap.add_argument("--force-write", action="store_true", help="write the report even over a longer result")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "docs/results/batched_vs_ase_spectrum.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dt, rec = cfg.timestep_fs, cfg.dipole_record_interval
    targets = {
        THERM: int(round(args.thermalization_ps * 1000 / dt)),
        PROD: int(round(args.production_ps * 1000 / dt)),
    }
    segment_steps = int(round(args.segment_ps * 1000 / dt))
    if segment_steps < 1 or segment_steps % rec or targets[PROD] % rec:
        raise SystemExit(f"segment and production lengths must be positive multiples of {rec} steps")
    protocol = {
        "temperature_K": cfg.production_temperature_k,
        "timestep_fs": dt,
        "friction_per_fs": cfg.production_friction_per_fs,
        "record_interval": rec,
        "precision": cfg.md_precision,
        "uncertainty_stop": cfg.uncertainty_stop,
        "thermalization_steps": targets[THERM],
        "models": str(Path(args.models).resolve()),
        "compile_models": (not args.no_compile) and sum(targets.values()) >= COMPILE_MIN_STEPS,
    }
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    states = load_or_create(work_dir, trajectory_plan(args.n_traj), protocol)
    committee = Committee.load(args.models)
    print(f"work dir {work_dir}: {reached(states)}", flush=True)
    if not args.report_only:
        budget = {"segments": args.max_segments if args.max_segments is not None else float("inf")}
        advance_batched(
            work_dir,
            [s for s in states if s["engine"] == "batched"],
            committee,
            protocol,
            targets,
            segment_steps,
            protocol["compile_models"],
            budget,
        )
        advance_ase(
            work_dir,
            [s for s in states if s["engine"] == "ase"],
            committee,
            protocol,
            targets,
            segment_steps,
            budget,
        )
    info = {
        "dir": str(args.models),
        "n_committee": len(committee.energy_models),
        "preset": committee.preset.name,
    }
    return report(args, cfg, states, protocol, info, load_start)


if __name__ == "__main__":
    main()
