"""Harmonic GFN2-xTB spectra with gas-phase rotational contours against the NIST gas-phase files.

For every compound of ../shared/data/nist-ir whose file declares a gas sample (##STATE=gas),
the harmonic spectrum (tight geometry, unscaled frequencies) is compared with the measurement
in two ways, side by side in one run:

- ``lorentzian_30``: every band a Lorentzian of 30 cm-1, the width that stands in for the
  rotational envelope in benchmarks/methanol_harmonic_vs_nist.py;
- ``gaussian_W``: every band a Gaussian of W cm-1 (W = 10 and 30);
- ``contour_W``: every band spread over its classical rotational contour at 298 K
  (specml.spectra.rotational_contour), then a Gaussian of W cm-1.

``gaussian_W`` against ``contour_W`` isolates what the contour adds at the same resolution;
against ``lorentzian_30`` it also includes how forgiving a wide line is of misplaced bands.
PCC and Wasserstein distance use specml.comparison.compare_spectra over 500-4000 cm-1. The
P-R maximum separation of the isolated CO fundamental is also compared with the
measurement. Writes docs/results/gas_phase_contours.json and, for methanol, gas_phase_contours.png.

    python benchmarks/gas_phase_contours.py
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NIST = ROOT.parent / "shared" / "data" / "nist-ir"
RANGE_CM1 = (500.0, 4000.0)
TEMPERATURE_K = 298.0
WIDTHS_CM1 = (10.0, 30.0)
FIGURE_FILE = "methanol.jdx"


def gas_phase_files() -> list[tuple[str, str, str]]:
    """(file, name, SMILES) of the index rows whose JCAMP header says the sample was a gas."""
    rows = []
    with (NIST / "index.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            header = (NIST / row["file"]).read_text(errors="replace").upper()
            if "##STATE=GAS" in header.replace(" ", ""):
                rows.append((row["file"], row["name"], row["smiles"]))
    return rows


def figure(by_model: dict, path: Path) -> None:
    """Methanol: NIST against 30 cm-1 Lorentzians and contours, whole range and the C-O stretch band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from specml.plotting import draw_spectra

    shown = ("lorentzian_30", "contour_10")
    # The measurement as the contour comparison sees it (10 cm-1), so the band shapes can be compared.
    spectra = [by_model["contour_10"].a] + [by_model[k].b for k in shown]
    labels = ["NIST (gas, 10 cm-1)"] + [
        f"GFN2-xTB, {k.replace('_', ' ')} cm-1 (PCC {by_model[k].pcc:.2f})" for k in shown
    ]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    for ax in axes:
        draw_spectra(ax, spectra, labels)
    axes[1].set_xlim(1120, 950)  # the C-O stretch: P, Q and R branches
    axes[1].get_legend().remove()
    axes[0].set_title("methanol, harmonic GFN2-xTB (unscaled) vs NIST")
    axes[1].set_title("C-O stretch band")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def band_maxima(spectrum, lo: float, hi: float) -> list[float]:
    from scipy.signal import find_peaks

    inside = (spectrum.wavenumber > lo) & (spectrum.wavenumber < hi)
    x, y = spectrum.wavenumber[inside], spectrum.intensity[inside]
    peaks, _ = find_peaks(y, prominence=0.1 * y.max())
    return x[peaks].tolist()


def main() -> None:
    from specml.comparison import compare_spectra
    from specml.experiment import load_absorbance
    from specml.experiment.preprocess import broaden_to
    from specml.molecules import load_molecules
    from specml.spectra.harmonic import optimized_harmonic_analysis

    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    lo, hi = RANGE_CM1
    rows, harmonics = [], {}
    for file, name, smiles in gas_phase_files():
        if smiles not in harmonics:
            harmonics[smiles] = optimized_harmonic_analysis(load_molecules(smiles)[0].atoms, "xtb")
        harmonic = harmonics[smiles]
        experiment = load_absorbance(NIST / file)
        models = {"lorentzian_30": harmonic.spectrum(fwhm=30.0, lo=lo, hi=hi)}
        start = time.perf_counter()
        for width in WIDTHS_CM1:
            models[f"gaussian_{width:g}"] = harmonic.spectrum(fwhm=width, shape="gaussian", lo=lo, hi=hi)
            models[f"contour_{width:g}"] = harmonic.spectrum(
                fwhm=width, shape="gaussian", lo=lo, hi=hi, rotational_temperature_k=TEMPERATURE_K
            )
        by_model = {
            label: compare_spectra(experiment, spectrum, lo, hi) for label, spectrum in models.items()
        }
        if file == FIGURE_FILE:
            figure(by_model, ROOT / "docs" / "results" / "gas_phase_contours.png")
        rows.append(
            {
                "file": file,
                "compound": name,
                "seconds_all_spectra": time.perf_counter() - start,
                **{f"pcc_{k}": v.pcc for k, v in by_model.items()},
                **{f"wd_cm1_{k}": v.wd_cm1 for k, v in by_model.items()},
            }
        )
        print(f"{file:24s} PCC " + "  ".join(f"{k} {v.pcc:.3f}" for k, v in by_model.items()), flush=True)

    # The CO fundamental: an isolated parallel band of a linear molecule, a P-R doublet.
    co = harmonics.get("[C-]#[O+]") or optimized_harmonic_analysis(
        load_molecules("[C-]#[O+]")[0].atoms, "xtb"
    )
    measured = band_maxima(broaden_to(load_absorbance(NIST / "carbon monoxide.jdx"), 4.0), 2050.0, 2250.0)
    centre = float(co.frequencies_cm1[-1])
    predicted = band_maxima(
        co.spectrum(
            fwhm=4.0,
            shape="gaussian",
            lo=centre - 100,
            hi=centre + 100,
            step=0.5,
            rotational_temperature_k=TEMPERATURE_K,
        ),
        centre - 100,
        centre + 100,
    )

    pcc = {key[4:]: np.array([r[key] for r in rows]) for key in rows[0] if key.startswith("pcc_")}
    result = {
        "reference": "GFN2-xTB (tblite), harmonic, unscaled",
        "temperature_k": TEMPERATURE_K,
        "range_cm1": RANGE_CM1,
        "n_files": len(rows),
        "mean_pcc": {k: float(v.mean()) for k, v in pcc.items()},
        "n_contour_better_than_gaussian": {
            f"{w:g}": int((pcc[f"contour_{w:g}"] > pcc[f"gaussian_{w:g}"]).sum()) for w in WIDTHS_CM1
        },
        "n_contour_better_than_lorentzian_30": {
            f"{w:g}": int((pcc[f"contour_{w:g}"] > pcc["lorentzian_30"]).sum()) for w in WIDTHS_CM1
        },
        "co_pr_separation_cm1": {
            "measured": float(np.ptp(measured)) if len(measured) == 2 else None,
            "measured_maxima": measured,
            "predicted": float(np.ptp(predicted)),
            "predicted_maxima": predicted,
            "textbook_2.358_sqrt_BT": 2.358 * float(np.sqrt(1.9313 * TEMPERATURE_K)),
        },
        "per_file": rows,
    }
    out = ROOT / "docs" / "results" / "gas_phase_contours.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_file"}, indent=2))


if __name__ == "__main__":
    main()
