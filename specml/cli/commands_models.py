"""``specml models``: the pretrained model sets shipped with specml (:mod:`specml.models.model_sets`)."""

from __future__ import annotations

import typer
from rich.markup import escape

from specml.cli.app import app, checked_options, console, emit_json, output_format, titled_table


@app.command("models")
def models(
    json_out: bool = typer.Option(
        False, "--json", help="Print {name: model_set.json} (reference, domain, provenance) as JSON."
    ),
) -> None:
    """List the pretrained model sets that `--models NAME` accepts, with their training domain."""
    from specml.models.model_sets import available_model_sets

    with checked_options():
        machine = output_format(json_out)
    sets = available_model_sets()
    if machine == "json":
        emit_json(sets)
        return
    if not sets:
        console.print("no pretrained model set is shipped with this specml")
        return
    table = titled_table("pretrained model sets (specml ir --models NAME MOLECULE)")
    for column in ("name", "reference", "elements", "atoms", "heavy atoms", "trained T (K)", "description"):
        table.add_column(column)
    for name, info in sets.items():
        domain = info["domain"]
        table.add_row(
            escape(name),
            escape(info["reference"]),
            " ".join(domain["elements"]),
            "{}-{}".format(*domain["atoms_per_molecule"]),
            "{}-{}".format(*domain["heavy_atoms_per_molecule"]),
            "{:g}-{:g}".format(*domain["temperatures_k"]),
            escape(info["description"]),
        )
    console.print(table)
