"""``specml xanes train|predict|invert``: K-edge XANES from structure and structure from XANES."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from specml import checks
from specml.cli.app import (
    app,
    checked_options,
    console,
    emit_json,
    output_format,
    print_cautions,
    titled_table,
)
from specml.xanes.models import DEFAULT_MODEL  # numpy only: 30 ms at start-up

xanes_app = typer.Typer(
    help="X-ray absorption (K-edge XANES): train, predict from a structure, invert a spectrum.",
    no_args_is_help=True,
)
app.add_typer(xanes_app, name="xanes")

MODEL_HELP = (
    "A model folder written by 'specml xanes train', or the name of a model shipped with specml "
    "(cu-kedge: Cu K-edge, trained on the FEFF set, scored in docs/xanes.md)."
)
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


@xanes_app.command("train")
def train(
    data: Path = typer.Option(
        ..., "--data", help="FEFF set: the cu_kedge_feff folder or the folder holding it."
    ),
    out: Path = typer.Option(..., "--out", help="Model folder; rerun the same command to resume."),
    descriptor: str = typer.Option(
        "soap+chem",
        "--descriptor",
        help="Site descriptor: soap+chem (default: SOAP plus bond-valence sum, first shell and "
        "element-resolved RDF; the best on the benchmark's val split), soap+chem+ion (adds the "
        "Madelung potential and the neighbours' element properties; no better on val), soap, "
        "wacsf (XANESNET's) or wacsf+soap.",
    ),
    members: int = typer.Option(5, "--members", help="Networks per ensemble (bootstrap)."),
    width: int = typer.Option(256, "--width", help="Hidden-layer width."),
    layers: int = typer.Option(2, "--layers", help="Hidden layers."),
    epochs: int = typer.Option(200, "--epochs", help="Most training epochs per network."),
    include_unlabelled: bool = typer.Option(
        True,
        "--include-unlabelled/--labelled-only",
        help="Also train on the spectra the source left out of its split (never those of val or "
        "test materials).",
    ),
    limit: int | None = typer.Option(None, "--limit", help="Train on the first N training spectra only."),
    calibrate: bool = typer.Option(
        True,
        "--calibrate/--no-calibrate",
        help="Scale each ensemble's std to cover 68 % of the val-split errors.",
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print {model, n_train, parts: {...: members}} as JSON."
    ),
) -> None:
    """Train forward and inverse XANES ensembles on the source's train split (resumable)."""
    from specml.xanes.descriptors import KINDS, DescriptorSettings
    from specml.xanes.ensemble import EnsembleSettings

    with checked_options():
        machine = output_format(json_out)
        checks.choice("--descriptor", descriptor, KINDS)
        for name, value in (
            ("--members", members),
            ("--width", width),
            ("--layers", layers),
            ("--epochs", epochs),
        ):
            checks.count(name, value)
        if limit is not None:
            checks.count("--limit", limit, minimum=2)
        checks.existing_dir(data, "--data")
        checks.output_dir(out, "--out")
        settings = EnsembleSettings(members=members, hidden=(width,) * layers, epochs=epochs)
    import numpy as np

    from specml.xanes.data import load_feff_set
    from specml.xanes.models import train_xanes

    feff = load_feff_set(data)
    train_set = feff.part("train", include_unlabelled)
    if limit is not None:
        train_set = train_set.subset(np.arange(min(limit, len(train_set))))
    held_out = None
    if calibrate:
        held_out = feff.part("val")
        if limit is not None:
            held_out = held_out.subset(np.arange(min(limit, len(held_out))))
    model = train_xanes(train_set, out, DescriptorSettings(kind=descriptor), settings, calibration=held_out)
    parts = {name: len(e.members) for name, e in model.ensembles.items()}
    if machine:
        emit_json({"model": str(out), "n_train": len(train_set), "parts": parts})
    else:
        console.print(
            f"model written to {escape(str(out))} ({len(train_set)} training spectra)", highlight=False
        )


@xanes_app.command("models")
def models(
    json_out: bool = typer.Option(
        False,
        "--json",
        help="Print {name: model.json} (settings, domain, provenance; the grid as its range).",
    ),
) -> None:
    """List the XANES models shipped with specml that --model NAME accepts, with their domain."""
    from specml.xanes.models import shipped_model_info

    with checked_options():
        machine = output_format(json_out)
    shipped = shipped_model_info()
    if machine:
        emit_json(shipped)
        return
    if not shipped:
        console.print("no XANES model is shipped with this specml")
        return
    table = titled_table("shipped XANES models (specml xanes predict|invert --model NAME)")
    for column in (
        "name",
        "edge",
        "descriptor",
        "training spectra",
        "elements",
        "grid (eV about the edge)",
        "made",
    ):
        table.add_column(column)
    for name, info in shipped.items():
        table.add_row(
            escape(name),
            f"{info['absorber']} K",
            escape(info["descriptor"]["kind"]),
            str(info["n_train"]),
            _elements_summary(info["elements"]),
            "{:g} to {:g}".format(*info["energy_range_ev"]),
            escape(info.get("provenance", {}).get("date", "")),
        )
    console.print(table)
    console.print("A structure with an element outside a model's list is refused.", highlight=False)


def _elements_summary(elements: list[str]) -> str:
    """``80 of H-Np (not He, Ne, ...)``: a model's elements as what it lacks up to its heaviest."""
    from ase.data import atomic_numbers, chemical_symbols

    heaviest = max(atomic_numbers[e] for e in elements)
    missing = [s for s in chemical_symbols[1 : heaviest + 1] if s not in set(elements)]
    text = f"{len(elements)} of H-{chemical_symbols[heaviest]}"
    return text + (f" (not {', '.join(missing)})" if missing else "")


@xanes_app.command("predict")
def predict(
    structure: Path = typer.Argument(..., help="Structure file (CIF, POSCAR, extxyz, ...; read with ASE)."),
    model_name: str = typer.Option(DEFAULT_MODEL, "--model", help=MODEL_HELP),
    site: int | None = typer.Option(
        None, "--site", help="Index of the absorbing atom (default: average of all)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Write the spectrum as CSV (energy_eV, mu, std)."),
    plot: Path | None = typer.Option(None, "--plot", help="Plot with the ±std band (PNG, PDF or SVG)."),
    json_out: bool = typer.Option(
        False,
        "--json",
        help="Print {structure, site, cautions, edge_ev, edge_std_ev, first_maximum_ev, first_maximum_std_ev, "
        "steepest_rise_ev, position_std_calibrated, energy_ev, mu, std}.",
    ),
) -> None:
    """Predict the K-edge XANES of STRUCTURE (one site or the site average) with its uncertainty."""
    from specml.xanes.io import plot_xanes, read_structure, spectrum_features, write_csv
    from specml.xanes.models import XanesModel

    with checked_options():
        machine = output_format(json_out)
        if out is not None:
            checks.output_file(out, "--out", (".csv",))
        if plot is not None:
            checks.output_file(plot, "--plot", PLOT_SUFFIXES)
        checks.readable_file(structure, "structure")
        if site is not None:
            checks.count("--site", site, minimum=0)
        atoms = read_structure(structure)
        model = XanesModel.load(model_name)
        # no absorber, an element the model never saw, or a --site that is not an absorber
        model.checked_sites(atoms, None if site is None else [site])
    spectrum = model.predict(atoms, site)
    features = spectrum_features(spectrum)
    if out is not None:
        write_csv(spectrum, out)
    if plot is not None:
        plot_xanes([spectrum], plot, title=spectrum.label)
    if machine:
        emit_json(
            {
                "structure": str(structure),
                "site": spectrum.metadata["site"],
                "cautions": spectrum.metadata["cautions"],
                **features,
                "position_std_calibrated": spectrum.metadata["position_std_calibrated"],
                "energy_ev": spectrum.wavenumber.tolist(),
                "mu": spectrum.intensity.tolist(),
                "std": spectrum.std.tolist() if spectrum.std is not None else None,
            }
        )
        return
    table = titled_table(f"{structure.name}: {model.absorber} K-edge XANES (eV about the edge)")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("sites", str(spectrum.metadata["n_sites"]) if site is None else f"site {site}")
    for name, key in (
        ("edge, half step (eV)", "edge_ev"),
        ("first maximum (eV)", "first_maximum_ev"),
        ("steepest rise (eV)", "steepest_rise_ev"),
    ):
        std = features.get(key.replace("_ev", "_std_ev"))
        shown = "none" if features[key] is None else f"{features[key]:.2f}"
        table.add_row(name, shown if std is None or features[key] is None else f"{shown} ± {std:.2f}")
    if not spectrum.metadata["position_std_calibrated"]:
        table.add_row("± of positions", "members' spread, not calibrated")
    table.add_row("mean std of μ", f"{float(spectrum.std.mean()) if spectrum.std is not None else 0:.4f}")
    console.print(table)
    print_cautions(spectrum.metadata["cautions"])
    for written in (out, plot):
        if written is not None:
            console.print(f"written: {escape(str(written))}", highlight=False)


@xanes_app.command("invert")
def invert(
    spectrum_path: Path = typer.Argument(
        ..., help="XANES spectrum: XDI (calibrated, normalised here) or CSV."
    ),
    model_name: str = typer.Option(DEFAULT_MODEL, "--model", help=MODEL_HELP),
    json_out: bool = typer.Option(
        False, "--json", help="Print {coordination_number, ..._std, first_shell_A, ..._std, descriptor, ...}."
    ),
) -> None:
    """Local structure of the absorber from SPECTRUM: coordination number and first-shell distance."""
    from specml.xanes.io import read_spectrum
    from specml.xanes.models import XanesModel

    with checked_options():
        machine = output_format(json_out)
        checks.readable_file(spectrum_path, "spectrum")
        model = XanesModel.load(model_name)
        spectrum = read_spectrum(spectrum_path)
        model.on_grid(spectrum)  # a spectrum off the model's grid fails here
    result = model.invert(spectrum)
    if machine:  # cautions are in the JSON
        emit_json({"spectrum": str(spectrum_path), **result})
        return
    table = titled_table(f"{spectrum_path.name}: local structure of {model.absorber}")
    table.add_column("quantity")
    table.add_column("mean", justify="right")
    table.add_column("std", justify="right")
    table.add_row(
        "coordination number",
        f"{result['coordination_number']:.2f} (≈{result['coordination_number_rounded']})",
        f"{result['coordination_number_std']:.2f}",
    )
    table.add_row(
        "first-shell distance (Å)", f"{result['first_shell_A']:.3f}", f"{result['first_shell_std_A']:.3f}"
    )
    console.print(table)
    print_cautions(result["cautions"])
