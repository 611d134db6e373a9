"""Workflow outputs people read: spectra (CSV + PNG with uncertainty band), learning curves
(JSON + PNG) and a short summary."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator, ScalarFormatter  # noqa: E402

from specml.plotting import plot_spectra  # noqa: E402
from specml.spectra.spectrum import Spectrum  # noqa: E402
from specml.workflow.state import atomic_write_json, atomic_write_text  # noqa: E402


def plot_learning_curves(curve: list[dict], path: Path, target_mae_cm1: float | None = None) -> Path:
    """Harmonic-frequency MAE/RMSE (with the stopping target, if given) and validation
    E/F/dipole errors against iteration."""
    iterations = [e["iteration"] for e in curve]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    try:
        ax = axes[0]
        ax.plot(iterations, [e["harmonic_mae_cm1"] for e in curve], "o-", label="MAE")
        ax.plot(iterations, [e["harmonic_rmse_cm1"] for e in curve], "s--", label="RMSE")
        ax.set_xlabel("active-learning iteration")
        ax.set_ylabel("harmonic frequency error (cm$^{-1}$)")
        if target_mae_cm1 is not None:
            ax.axhline(
                target_mae_cm1,
                color="grey",
                linestyle=":",
                label=f"target MAE {target_mae_cm1:g} cm$^{{-1}}$",
            )
        ax.set_yscale("log")
        twin = ax.twiny()
        twin.set_xlim(ax.get_xlim())
        twin.set_xticks(iterations)
        twin.set_xticklabels([str(e["reference_calls"]) for e in curve], fontsize="x-small")
        twin.set_xlabel("reference calculations")
        ax.legend()
        ax = axes[1]
        for key, label in (
            ("valid_energy_mae_meV", "energy (meV)"),
            ("valid_force_mae_meV_per_A", "force (meV/Å)"),
            ("valid_dipole_mae_mD", "dipole (mD)"),
        ):
            ax.plot(iterations, [e.get(key) for e in curve], "o-", label=label)
        ax.set_xlabel("active-learning iteration")
        ax.set_ylabel("validation MAE")
        ax.set_yscale("log")
        ax.legend()
        for axis in axes:  # after set_yscale, which resets formatters: plain numbers, not 6x10^0
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.yaxis.set_major_formatter(ScalarFormatter())
            axis.yaxis.set_minor_formatter(ScalarFormatter())
        fig.tight_layout()
        fig.savefig(path, dpi=150)
    finally:
        plt.close(fig)
    return path


def write_outputs(result, out_dir: Path, experiment: Spectrum | None = None, comparison=None) -> dict:
    """Write every spectrum, the learning curves and the summary; return the file paths."""
    from specml.workflow.state import safe_name

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for key, spectrum in result.spectra.items():
        stem = out_dir / f"spectrum_{safe_name(key.replace('@', '_'))}"
        spectrum.to_csv(stem.with_suffix(".csv"))
        shown = [spectrum] + ([experiment] if experiment is not None else [])
        plot_spectra(
            shown,
            stem.with_suffix(".png"),
            title=f"{spectrum.label} (mean ± std over {spectrum.metadata.get('n_trajectories', 1)} trajectories)",
        )
        files[key] = str(stem.with_suffix(".csv"))
    if result.learning_curve:
        atomic_write_json(out_dir / "learning_curve.json", result.learning_curve)
        plot_learning_curves(
            result.learning_curve,
            out_dir / "learning_curve.png",
            result.summary.get("target_harmonic_mae_cm1"),
        )
    summary = dict(result.summary)
    if comparison is not None:
        summary["vs_experiment"] = comparison
    atomic_write_json(out_dir / "summary.json", summary)
    atomic_write_text(out_dir / "summary.md", summary_markdown(summary))
    return files


def summary_markdown(summary: dict) -> str:
    lines = ["# specml IR workflow summary", ""]
    for key, value in summary.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        lines.append(f"- **{key}**: {value}")
    return "\n".join(lines) + "\n"
