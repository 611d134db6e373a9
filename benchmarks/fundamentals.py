"""Harmonic wavenumbers of specml's reference methods against experimental gas-phase fundamentals.

What is compared. The 150 species of ../shared/data/fundamentals (Shimanouchi's tables, NIST SRD 69;
82 distinct parents once isotopes are removed). For every (method, parent SMILES) one harmonic
calculation: ``atoms_from_smiles(parent, seed=42)``, then ``optimized_harmonic_analysis`` as specml
does it for that method (optimisation to fmax 1e-4 eV/Å, then the Hessian and dipole
derivatives: finite differences, or analytic where the method has them). Isotopologues
reuse their parent's Hessian (the Born-Oppenheimer surface does not depend on the masses) with
their own masses, from ``atoms_from_smiles(species SMILES)`` and mapped onto the parent's atoms by
an RDKit graph match, through ``harmonic_from_derivatives``.

Matching rule. Each experimental mode counts as many times as its degeneracy (e and Π 2, f 3);
modes without a value are dropped (2-butyne's torsion), and of methanol's two selected values of
mode 12 only variant 1 (295 cm-1) is kept. The real calculated harmonic wavenumbers (3N-6, or
3N-5 if linear; imaginary ones are left out and counted) are assigned to the experimental
fundamentals by ``scipy.optimize.linear_sum_assignment`` on (omega - nu)^2, on unscaled values.
For equal counts that is the pairing of the two sorted lists (a squared cost, unlike |omega - nu|,
never prefers crossed pairs, which tie under |omega - nu| when both calculated values lie above
both experimental ones, as harmonic X-H stretches do); for incomplete species (complete=0)
or a structure with imaginary modes it is the best rectangular assignment. Symmetry species are
NOT matched: where calculated modes cross (a mode lands on another's experimental value) the
sorted or optimal assignment pairs the wrong modes with smaller differences, so the errors
reported here can only be underestimates.

Scaling and cross-validation. Scale factors are least-squares fits of nu ~ s * omega (cm-1): one
``global`` factor, and a ``split_2000`` pair (``below_2000`` / ``above_2000``, split on the
calculated harmonic wavenumber), and ``sqm``: eight force-constant factors by internal-coordinate
type (specml.spectra.sqm; Baker, Jarzecki & Pulay 1998), fitted on ln c with each mode keeping
its rank in the matching. All are judged by leave-one-parent-out cross-validation: the
factors are fitted on all other parents (a parent's isotopologues are held out together) and
predict the held-out parent's modes; rms and MAE are over those out-of-sample predictions, every
mode weighing the same. The scheme with the lowest cross-validated rms is reported as
``rms_scaled_cm1`` / ``mae_scaled_cm1`` (every scheme is under ``cross_validated``), next to
the unscaled errors and the factors fitted on all data (``scale_factors``, ``sqm_factors``). ``common`` repeats
the comparison over the species that every method finished, so that methods are compared on the
same molecules.

Cache. Every finished (method, parent) is written at once to
benchmarks/data/fundamentals/<method>.json: geometry, Hessian upper triangle, dipole
derivatives, wall seconds, cores, program versions, or the error. A rerun computes only what is
missing, so a run may be killed at any point and resumed in a later session.

    python benchmarks/fundamentals.py --methods xtb gfn1-xtb pyscf:b3lyp/def2-svp [--scheduler local:N]
        [--max-heavy-atoms N] [--only-molecules SMILES ...] [--report-only] [--retry-failed]
        [--out-stem PATH]

Writes docs/results/fundamentals.json and .png, and the results section of docs/fundamentals.md
(``--out-stem`` writes STEM.json and STEM.png instead and leaves the docs page alone).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import functools
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from scipy.optimize import least_squares, linear_sum_assignment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specml.atomic import atomic_write  # noqa: E402
from specml.errors import MoleculeError, SpecmlError, UnsupportedElementError  # noqa: E402
from specml.executor import make_executor  # noqa: E402
from specml.molecules import atoms_from_smiles, canonical_smiles  # noqa: E402
from specml.molecules.inputs import hydrogenated_rdkit_molecule  # noqa: E402
from specml.provenance import file_stem, program_versions, specml_commit  # noqa: E402
from specml.reference import ReferenceMethod, XTBReference, make_reference  # noqa: E402
from specml.spectra.harmonic import harmonic_from_derivatives, optimized_harmonic_analysis  # noqa: E402
from specml.spectra.second_derivatives import SecondDerivatives, rounded  # noqa: E402
from specml.spectra.sqm import (  # noqa: E402
    C_CL_TYPE,
    COORDINATE_TYPES,
    InternalForceField,
    internal_force_field,
    primitive_internals,
)

DATA = ROOT.parent / "shared" / "data" / "fundamentals"
CACHE_DIR = ROOT / "benchmarks" / "data" / "fundamentals"
RESULTS_STEM = ROOT / "docs" / "results" / "fundamentals"
DOCS_PAGE = ROOT / "docs" / "fundamentals.md"
TABLE_BEGIN = "<!-- begin: written by benchmarks/fundamentals.py, do not edit -->"
TABLE_END = "<!-- end: written by benchmarks/fundamentals.py -->"

SEED = 42
SPLIT_CM1 = 2000.0  # split_2000 uses one factor below and one above this calculated wavenumber
DFT_MAX_HEAVY_ATOMS = 10  # default size limit for every method that is not xTB (cost)
RECOMMEND_MIN_SPECIES = 60  # a method must cover this many species to be recommended
SCHEMES = ("global", "split_2000", "sqm")
# Weight (cm-1 per unit of ln c) of the pull of every SQM factor towards the global scale: one
# pseudo-mode of 1000 cm-1 of that type alone (d omega / d ln c = omega / 2 = 500 cm-1).
SQM_PRIOR_CM1 = 500.0
SCOTT_RADOM = {
    "method": "B3LYP/6-31G(d)",
    "scale_factor": 0.9614,
    "rms_cm1": 34,
    "reference": "A. P. Scott, L. Radom, J. Phys. Chem. 100, 16502 (1996): 1066 fundamentals "
    "of 122 molecules",
}


# --- experimental data --------------------------------------------------------------------------


@dataclass(frozen=True)
class Species:
    """One row of molecules.csv with its fundamentals (cm-1, expanded by degeneracy, ascending)."""

    molecule_id: str
    name: str
    smiles: str  # isotopes explicit; empty for the two polymers
    parent: str  # isotopes removed: the structure that is computed
    experimental_cm1: np.ndarray = field(compare=False)


def experimental_fundamentals(modes: list[dict]) -> np.ndarray:
    """Observed fundamentals of one species (cm-1), each repeated by its degeneracy; modes
    without a value are dropped and, of a mode with several selected values (methanol's
    torsion), only variant 1 is kept."""
    kept = [m for m in modes if m["wavenumber_cm1"] and m["variant"] == "1"]
    values = np.repeat([float(m["wavenumber_cm1"]) for m in kept], [int(m["degeneracy"]) for m in kept])
    return np.sort(values)


def read_species(only_parents: set[str] | None = None) -> list[Species]:
    modes: dict[str, list[dict]] = {}
    with (DATA / "fundamentals.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            modes.setdefault(row["molecule_id"], []).append(row)
    with (DATA / "molecules.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        Species(
            r["molecule_id"],
            r["name"],
            r["smiles"],
            r["smiles_parent"],
            experimental_fundamentals(modes.get(r["molecule_id"], [])),
        )
        for r in rows
        if only_parents is None or r["smiles_parent"] in only_parents
    ]


def parent_set(smiles: list[str] | None) -> set[str] | None:
    """--only-molecules as the data's parent SMILES (RDKit canonical, as in molecules.csv)."""
    if smiles is None:
        return None

    def canonical(s: str) -> str:
        try:
            return canonical_smiles(s)
        except MoleculeError:  # diborane is not sanitisable: take it as written
            return s

    return {canonical(s) for s in smiles}


# --- provenance ---------------------------------------------------------------------------------


@functools.cache
def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# --- cache of harmonic calculations --------------------------------------------------------------


def cache_entry(result, seconds: float) -> dict:
    """The compact record of one harmonic calculation. Units: Å, eV/Å^2, e (e·Å per Å).

    The second derivatives are encoded as the spectral library stores them
    (:class:`~specml.spectra.second_derivatives.SecondDerivatives`: Hessian upper triangle to
    1e-5 eV/Å^2, far below the accuracy of any method here).
    """
    return {
        "symbols": result.atoms.get_chemical_symbols(),
        "positions_angstrom": rounded(result.atoms.positions, 6),
        **SecondDerivatives(result.hessian, result.dipole_derivatives).to_json(),
        "derivatives": getattr(result, "derivatives", "finite differences"),  # analytic for PySCF DFT
        "seconds": round(seconds, 2),
        "cores": usable_cores(),
        "versions": program_versions(),
    }


def compute_entry(task: tuple[str, str]) -> dict:
    """One (method, parent SMILES) optimisation and harmonic analysis, as a cache entry (on a worker)."""
    method, parent = task
    start = time.perf_counter()
    result = optimized_harmonic_analysis(atoms_from_smiles(parent, seed=SEED), method)
    return cache_entry(result, time.perf_counter() - start)


def hessian_from_entry(entry: dict) -> np.ndarray:
    """The full Hessian (eV/Å^2) of a cache entry."""
    return SecondDerivatives.from_json(entry, len(entry["symbols"])).hessian


class ResultCache:
    """One method's finished parents, benchmarks/data/fundamentals/<method>.json (committed).

    Each entry is stored as soon as it arrives: merged with what is on disk (another process may
    fill the same file), then written to a temporary file and renamed into place, so a run killed
    at any point loses only the calculations in flight.
    """

    def __init__(self, method: str, reference):
        self.path = CACHE_DIR / f"{file_stem(method)}.json"
        # Round-tripped through JSON so that it compares equal to what is read back.
        self.header = json.loads(
            json.dumps(
                {
                    "method": method,
                    "settings": reference.settings,
                    "protocol": f"atoms_from_smiles(parent, seed={SEED}); optimized_harmonic_analysis(atoms, method)",
                }
            )
        )
        self.entries = self._read()

    def _read(self) -> dict:
        if not self.path.exists():
            return {}
        data = json.loads(self.path.read_text())
        if data["settings"] != self.header["settings"]:
            raise SystemExit(
                f"error: {self.path} holds results for settings {data['settings']}, not "
                f"{self.header['settings']}; move it away to recompute"
            )
        return data["entries"]

    def store(self, parent: str, entry: dict) -> None:
        self.entries = {**self._read(), parent: entry}
        atomic_write(self.path, lambda tmp: tmp.write_text(self._text()))

    def _text(self) -> str:
        # One entry a line: compact, and a resumed run shows up as added lines in git.
        head = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in self.header.items()]
        body = [
            f"{json.dumps(p)}: {json.dumps(e, separators=(',', ':'))}"
            for p, e in sorted(self.entries.items())
        ]
        return "{\n" + ",\n".join(head) + ',\n"entries": {\n' + ",\n".join(body) + "\n}\n}\n"


# --- what each method computes -----------------------------------------------------------------


@dataclass
class MethodPlan:
    method: str
    reference: ReferenceMethod
    cache: ResultCache
    max_heavy_atoms: int | None
    parent_skips: dict[str, str]  # parent SMILES -> why it is not computed
    todo: list[str]  # parent SMILES still to compute, smallest first

    @property
    def is_xtb(self) -> bool:
        return isinstance(self.reference, XTBReference)


def parent_skip_reason(parent: str, method: str, reference, max_heavy_atoms: int | None) -> str | None:
    if not parent:
        return "no SMILES (crystalline polymer, not a molecule)"
    try:
        atoms = atoms_from_smiles(parent, seed=SEED)
    except MoleculeError as exc:
        return f"specml cannot build the parent: {exc}"
    heavy = sum(symbol != "H" for symbol in atoms.get_chemical_symbols())
    if max_heavy_atoms is not None and heavy > max_heavy_atoms:
        return f"{heavy} heavy atoms > --max-heavy-atoms {max_heavy_atoms}"
    try:
        reference.check_elements(atoms, parent)
    except UnsupportedElementError as exc:
        return f"element(s) {', '.join(exc.elements)} not supported by {method}"
    return None


def plan_method(
    method: str, species: list[Species], max_heavy_atoms: int | None, retry_failed: bool
) -> MethodPlan:
    try:
        reference = make_reference(method)
    except SpecmlError as exc:
        raise SystemExit(f"error: {exc}") from None
    if max_heavy_atoms is None and not isinstance(reference, XTBReference):
        max_heavy_atoms = DFT_MAX_HEAVY_ATOMS
    cache = ResultCache(method, reference)
    parents = list(dict.fromkeys(s.parent for s in species))
    skips = {
        p: reason for p in parents if (reason := parent_skip_reason(p, method, reference, max_heavy_atoms))
    }
    todo = [
        p
        for p in parents
        if p not in skips and (p not in cache.entries or (retry_failed and "error" in cache.entries[p]))
    ]
    todo.sort(key=lambda p: hydrogenated_rdkit_molecule(p).GetNumAtoms())
    return MethodPlan(method, reference, cache, max_heavy_atoms, skips, todo)


def failure_entry(error: BaseException) -> dict | None:
    """The cached record of a failed calculation, or None for an error that may not recur (a bug,
    a lost worker): those are not cached, so the next run tries again."""
    if not isinstance(error, SpecmlError):
        return None
    return {
        "error": f"{type(error).__name__}: {error}",
        "cores": usable_cores(),
        "versions": program_versions(),
    }


def compute(plans: list[MethodPlan], scheduler: str | None) -> None:
    tasks = [(plan, parent) for plan in plans for parent in plan.todo]
    if not tasks:
        return
    executor = make_executor(scheduler)
    try:
        items = [(plan.method, parent) for plan, parent in tasks]
        for result in executor.imap(compute_entry, items, description="harmonic calculations"):
            plan, parent = tasks[result.index]
            entry = result.value if result.ok else failure_entry(result.error)
            if entry is None:
                print(
                    f"{plan.method} {parent}: {type(result.error).__name__}: {result.error} (not cached)",
                    flush=True,
                )
                continue
            plan.cache.store(parent, entry)
            outcome = entry.get("error") or f"{entry['seconds']:.1f} s"
            print(f"{plan.method} {parent}: {outcome}", flush=True)
    finally:
        executor.close()


# --- matching -----------------------------------------------------------------------------------


@dataclass
class Match:
    """The calculated harmonic wavenumbers of one species paired with its fundamentals (cm-1)."""

    species: Species
    calculated_cm1: np.ndarray
    experimental_cm1: np.ndarray
    imaginary_cm1: np.ndarray  # left out of the matching; negative
    # Where the matched modes sit in the ascending list of all 3N-6 (or 3N-5) harmonic wavenumbers:
    # a rescaled force field (SQM) keeps this pairing by rank, as the matching rule pairs sorted lists.
    mode_positions: np.ndarray = field(repr=False)
    entry: dict = field(repr=False)  # the parent's cache entry (geometry, Hessian)


@functools.cache
def species_masses(smiles: str, parent: str) -> np.ndarray:
    """Atomic masses (amu) of the species ``smiles`` (isotope labels honoured) in the atom order of
    ``atoms_from_smiles(parent)``. The two SMILES order their atoms differently ([2H]OC against
    CO), so the species' atoms are mapped onto the parent's by an RDKit graph match. Every
    labelled set in the data covers all graph-equivalent positions or sits on an atom whose
    hydrogens are all labelled alike, so which of the graph's automorphisms is used does not matter."""
    from rdkit import Chem

    labelled = hydrogenated_rdkit_molecule(smiles)
    masses = atoms_from_smiles(smiles, seed=SEED).get_masses()
    wrong = [
        a.GetSymbol()
        for a in labelled.GetAtoms()
        if a.GetIsotope() and abs(masses[a.GetIdx()] - a.GetMass()) > 1e-3
    ]
    if wrong:
        raise MoleculeError(
            f"{smiles}: atoms_from_smiles did not give the labelled isotopes' masses ({wrong})"
        )
    unlabelled = Chem.Mol(labelled)
    for atom in unlabelled.GetAtoms():
        atom.SetIsotope(0)  # isotope labels would block the match against the parent
    match = hydrogenated_rdkit_molecule(parent).GetSubstructMatch(unlabelled)
    if len(match) != len(masses):
        raise MoleculeError(f"{smiles} does not map onto its parent {parent}")
    ordered = np.empty_like(masses)
    ordered[list(match)] = masses
    return ordered


def harmonic_wavenumbers(entry: dict, masses: np.ndarray) -> np.ndarray:
    """Harmonic wavenumbers (cm-1, ascending, imaginary negative) of the cached parent with ``masses``."""
    atoms = Atoms(entry["symbols"], positions=entry["positions_angstrom"], masses=masses)
    dipole_derivatives = np.reshape(entry["dipole_derivatives_e"], (-1, 3))
    return harmonic_from_derivatives(atoms, hessian_from_entry(entry), dipole_derivatives).frequencies_cm1


def assignment(calculated: np.ndarray, experimental: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into calculated, into experimental) of the pairs minimising the summed
    (omega - nu)^2; rectangular when the counts differ. The squared cost keeps the pairs in order:
    |omega - nu| ties crossed and uncrossed pairs whenever both calculated values lie above both
    experimental ones (water's O-H stretches were paired crosswise under it)."""
    return linear_sum_assignment((calculated[:, None] - experimental[None, :]) ** 2)


def match_species(species: Species, entry: dict) -> Match:
    wavenumbers = harmonic_wavenumbers(entry, species_masses(species.smiles, species.parent))
    real = wavenumbers > 0  # ascending, so the real ones are the last
    rows, columns = assignment(wavenumbers[real], species.experimental_cm1)
    positions = np.flatnonzero(real)[rows]
    return Match(
        species,
        wavenumbers[positions],
        species.experimental_cm1[columns],
        wavenumbers[~real],
        positions,
        entry,
    )


def species_skip_reason(species: Species, plan: MethodPlan) -> str | None:
    if species.parent in plan.parent_skips:
        return plan.parent_skips[species.parent]
    entry = plan.cache.entries.get(species.parent)
    if entry is None:
        return "not computed yet"
    if "error" in entry:
        return f"calculation failed: {entry['error']}"
    return None


def match_method(plan: MethodPlan, species: list[Species]) -> tuple[list[Match], list[dict]]:
    matches, skipped = [], []
    for s in species:
        reason = species_skip_reason(s, plan)
        if reason is None:
            try:
                matches.append(match_species(s, plan.cache.entries[s.parent]))
                continue
            except MoleculeError as exc:
                reason = str(exc)
        skipped.append({"molecule_id": s.molecule_id, "name": s.name, "smiles": s.smiles, "reason": reason})
    return matches, skipped


# --- statistics ---------------------------------------------------------------------------------


def least_squares_factor(calculated: np.ndarray, experimental: np.ndarray) -> float:
    """s minimising sum (nu - s * omega)^2."""
    denominator = float(calculated @ calculated)
    return float(calculated @ experimental) / denominator if denominator else float("nan")


def global_factor_without(method: str, parents: set[str]) -> float:
    """The global scale factor of ``method`` fitted on every cached species except those of
    ``parents`` (canonical SMILES; isotopologues go with their parent): a factor for a molecule
    that did not help fit it. Reads the harmonic cache only (``--compute`` fills it)."""
    species = read_species()
    matches, _ = match_method(plan_method(method, species, None, retry_failed=False), species)
    calculated, experimental, of_parent = pooled(matches)
    keep = ~np.isin(of_parent, sorted(parents))
    return least_squares_factor(calculated[keep], experimental[keep])


def fit_factors(calculated: np.ndarray, experimental: np.ndarray) -> dict:
    below = calculated < SPLIT_CM1
    return {
        "global": least_squares_factor(calculated, experimental),
        "below_2000": least_squares_factor(calculated[below], experimental[below]),
        "above_2000": least_squares_factor(calculated[~below], experimental[~below]),
    }


def scaled(calculated: np.ndarray, factors: dict, scheme: str) -> np.ndarray:
    if scheme == "global":
        return factors["global"] * calculated
    return np.where(calculated < SPLIT_CM1, factors["below_2000"], factors["above_2000"]) * calculated


def error_stats(predicted: np.ndarray, experimental: np.ndarray) -> dict:
    error = predicted - experimental
    if not len(error):
        return {"rms_cm1": float("nan"), "mae_cm1": float("nan")}
    return {"rms_cm1": float(np.sqrt(np.mean(error**2))), "mae_cm1": float(np.mean(np.abs(error)))}


def pooled(matches: list[Match]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(calculated, experimental, parent) of every matched mode."""
    if not matches:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=object)
    calculated = np.concatenate([m.calculated_cm1 for m in matches])
    experimental = np.concatenate([m.experimental_cm1 for m in matches])
    parents = np.concatenate([[m.species.parent] * len(m.calculated_cm1) for m in matches])
    return calculated, experimental, parents


def cross_validated(matches: list[Match], scheme: str) -> np.ndarray:
    """Leave-one-parent-out predictions of every matched mode (cm-1), in the order of :func:`pooled`."""
    if scheme == "sqm":
        return SQMFit(matches).cross_validated() if matches else np.zeros(0)
    calculated, experimental, parents = pooled(matches)
    predicted = np.empty_like(calculated)
    for parent in np.unique(parents):
        held_out = parents == parent
        factors = fit_factors(calculated[~held_out], experimental[~held_out])
        predicted[held_out] = scaled(calculated[held_out], factors, scheme)
    return predicted


# --- SQM: force constants scaled by internal-coordinate type ----------------------------------------


class SQMFit:
    """Pulay-type SQM factors (:mod:`specml.spectra.sqm`) fitted to matched modes.

    Least squares on ln c, with each mode keeping its rank-based pairing (``Match.mode_positions``)
    and the analytic Jacobian d omega / d ln c = omega * (potential energy distribution) / 2. Every
    factor is also pulled towards the square of the fold's global frequency factor by a pseudo-mode
    of ``SQM_PRIOR_CM1`` cm-1 per unit of ln c: a type with few modes in the training parents
    (one formic acid carries the DFT sets' only torsion) stays near the global scale instead of
    fitting a single mode.
    """

    def __init__(self, matches: list[Match]):
        self.matches = matches
        self.fields = sqm_force_fields(matches)
        _, self.experimental, self.parents = pooled(matches)
        self.owner = np.concatenate([[i] * len(m.mode_positions) for i, m in enumerate(matches)]).astype(int)

    def modes(self, log_factors: np.ndarray, which: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Scaled wavenumbers (cm-1) of the matched modes of ``matches[which]`` and their derivatives
        with respect to ln c, (n, len(COORDINATE_TYPES))."""
        factors = dict(zip(COORDINATE_TYPES, np.exp(log_factors), strict=True))
        values, derivatives = [], []
        for i in which:
            wavenumbers, distribution = self.fields[i].energy_distribution(factors)
            positions = self.matches[i].mode_positions
            values.append(wavenumbers[positions])
            derivatives.append(0.5 * wavenumbers[positions, None] * distribution[positions])
        return np.concatenate(values), np.concatenate(derivatives)

    def fit(self, which: list[int], start: np.ndarray | None = None) -> np.ndarray:
        """ln c fitted on the matched modes of ``matches[which]``."""
        experimental = np.concatenate([self.matches[i].experimental_cm1 for i in which])
        calculated = np.concatenate([self.matches[i].calculated_cm1 for i in which])
        prior = np.full(len(COORDINATE_TYPES), 2.0 * np.log(least_squares_factor(calculated, experimental)))
        memo: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

        def evaluated(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            key = x.tobytes()  # least_squares asks for residuals and Jacobian at the same point
            if key not in memo:
                memo.clear()
                memo[key] = self.modes(x, which)
            return memo[key]

        def residuals(x: np.ndarray) -> np.ndarray:
            return np.concatenate([evaluated(x)[0] - experimental, SQM_PRIOR_CM1 * (x - prior)])

        def jacobian(x: np.ndarray) -> np.ndarray:
            return np.vstack([evaluated(x)[1], SQM_PRIOR_CM1 * np.eye(len(x))])

        x0 = prior if start is None else start
        return least_squares(residuals, x0, jac=jacobian, method="lm", xtol=1e-10).x

    def factors(self) -> dict[str, float]:
        """The factors c (force constants; frequencies scale by sqrt(c)) fitted on all matches."""
        return dict(
            zip(COORDINATE_TYPES, np.exp(self.fit(list(range(len(self.matches))))).tolist(), strict=True)
        )

    def cross_validated(self) -> np.ndarray:
        """Leave-one-parent-out predictions, in the order of :func:`pooled`."""
        everything = self.fit(list(range(len(self.matches))))  # a warm start for every fold
        predicted = np.empty_like(self.experimental)
        for parent in np.unique(self.parents):
            held_out = [i for i, m in enumerate(self.matches) if m.species.parent == parent]
            kept = [i for i, m in enumerate(self.matches) if m.species.parent != parent]
            log_factors = self.fit(kept, start=everything)
            predicted[np.isin(self.owner, held_out)] = self.modes(log_factors, held_out)[0]
        return predicted


def sqm_force_fields(matches: list[Match]) -> list[InternalForceField]:
    """The internal force field of every matched species, with its own masses (the Eckart
    projection depends on them); the internal coordinates are built once per parent."""
    internals: dict[str, tuple] = {}
    fields = []
    for m in matches:
        atoms = Atoms(
            m.entry["symbols"],
            positions=m.entry["positions_angstrom"],
            masses=species_masses(m.species.smiles, m.species.parent),
        )
        if m.species.parent not in internals:
            internals[m.species.parent] = primitive_internals(atoms)
        fields.append(internal_force_field(atoms, hessian_from_entry(m.entry), internals[m.species.parent]))
    return fields


# --- the identification's C-Cl correction: c_CCl on C-Cl stretches, then split_2000 ----------------

IDENTIFICATION_QUERIES = ROOT.parent / "shared" / "data" / "nist-ir" / "index.csv"
C_CL_MODE_SHARE = 0.5  # a mode is "a C-Cl stretch" when at least this share of its potential energy is


def identification_query_smiles() -> set[str]:
    """Canonical SMILES of the identification queries: never used to fit c_CCl."""
    with IDENTIFICATION_QUERIES.open(newline="") as fh:
        return {canonical_smiles(row["smiles"]) for row in csv.DictReader(fh)}


@dataclass
class CClModel:
    """The identification's frequency model on the matched modes of chlorinated species: the force
    constants of the C-Cl stretch coordinates scaled by c (all other coordinates unscaled), then the
    split_2000 factors ``split`` (fitted on all of the method's modes, as identification takes them).
    Each matched mode keeps its rank (``Match.mode_positions``)."""

    matches: list[Match]
    split: dict

    def __post_init__(self):
        self.fields = sqm_force_fields(self.matches)
        self.c_cl_share = [
            self.fields[i].energy_distribution({})[1][m.mode_positions, COORDINATE_TYPES.index(C_CL_TYPE)]
            for i, m in enumerate(self.matches)
        ]

    def predict(self, i: int, c_ccl: float) -> np.ndarray:
        """The matched modes of ``matches[i]`` (cm-1) under the model with factor ``c_ccl``."""
        wavenumbers, _ = self.fields[i].energy_distribution({C_CL_TYPE: c_ccl})
        return scaled(wavenumbers[self.matches[i].mode_positions], self.split, "split_2000")

    def fit(self, which: list[int]) -> float:
        """c_CCl by least squares over all matched modes of ``matches[which]`` (cm-1), on ln c."""
        from scipy.optimize import minimize_scalar

        def loss(log_c: float) -> float:
            return sum(
                float(np.sum((self.predict(i, np.exp(log_c)) - self.matches[i].experimental_cm1) ** 2))
                for i in which
            )

        return float(
            np.exp(minimize_scalar(loss, bounds=(-0.5, 0.5), method="bounded", options={"xatol": 1e-7}).x)
        )


def c_cl_correction(matches: list[Match], split: dict) -> tuple[dict | None, dict[str, np.ndarray]]:
    """c_CCl fitted on the chlorinated species that are not identification queries, with its
    leave-one-parent-out errors over every chlorinated species (the queries predicted with the
    c_CCl of all fit parents, which never include them) and the C-Cl stretches before and after;
    and the out-of-sample predictions of every chlorinated species' matched modes (cm-1, by id)."""
    from specml.identification.ccl import has_c_cl_bond

    queries = identification_query_smiles()
    chlorinated = [m for m in matches if has_c_cl_bond(m.species.parent)]
    fitted = [i for i, m in enumerate(chlorinated) if canonical_smiles(m.species.parent) not in queries]
    if not fitted:
        return None, {}
    model = CClModel(chlorinated, split)
    c_all = model.fit(fitted)
    folds = {}
    for parent in dict.fromkeys(chlorinated[i].species.parent for i in fitted):
        folds[parent] = model.fit([i for i in fitted if chlorinated[i].species.parent != parent])
    rows, before, after, c_cl, corrected = [], [], [], [], {}
    for i, m in enumerate(chlorinated):
        c_out = folds.get(m.species.parent, c_all)  # queries: never in the fit
        predicted_before, predicted_after = model.predict(i, 1.0), model.predict(i, c_out)
        corrected[m.species.molecule_id] = predicted_after
        before.append(predicted_before - m.experimental_cm1)
        after.append(predicted_after - m.experimental_cm1)
        c_cl.append(model.c_cl_share[i] >= C_CL_MODE_SHARE)
        rows.append(
            {
                "molecule_id": m.species.molecule_id,
                "name": m.species.name,
                "parent": m.species.parent,
                "role": "fit" if i in fitted else "identification query (not fitted)",
                "c_ccl_applied": c_out,
                "rms_before_cm1": error_stats(predicted_before, m.experimental_cm1)["rms_cm1"],
                "rms_after_cm1": error_stats(predicted_after, m.experimental_cm1)["rms_cm1"],
                "c_cl_stretches": [
                    {
                        "experimental_cm1": float(m.experimental_cm1[k]),
                        "unscaled_cm1": float(m.calculated_cm1[k]),
                        "split_2000_cm1": float(predicted_before[k]),
                        "with_c_ccl_cm1": float(predicted_after[k]),
                        "c_cl_share": float(model.c_cl_share[i][k]),
                    }
                    for k in np.flatnonzero(model.c_cl_share[i] >= C_CL_MODE_SHARE)
                ],
            }
        )
    before_all, after_all, stretch = np.concatenate(before), np.concatenate(after), np.concatenate(c_cl)
    summary = {
        "c_ccl": c_all,
        "model": f"force constants of the `{C_CL_TYPE}` coordinates x c_CCl (specml.spectra.sqm, all other "
        "factors 1), then split_2000 with this method's scale_factors (all modes)",
        "fit": "least squares over every matched mode of the fit species, on ln c_CCl",
        "split_factors": {k: split[k] for k in ("below_2000", "above_2000")},
        "fit_parents": sorted({chlorinated[i].species.parent for i in fitted}),
        "fit_species": [chlorinated[i].species.molecule_id for i in fitted],
        "excluded_queries": sorted({m.species.parent for i, m in enumerate(chlorinated) if i not in fitted}),
        "query_source": f"{IDENTIFICATION_QUERIES.name} of ../shared/data/nist-ir",
        "leave_one_parent_out": {
            "c_ccl_by_held_out_parent": folds,
            "all_modes": {"before": _rms(before_all), "after": _rms(after_all), "n_modes": int(stretch.size)},
            "c_cl_stretches": {
                "before": _rms(before_all[stretch]),
                "after": _rms(after_all[stretch]),
                "n_modes": int(stretch.sum()),
                "definition": f"modes with >= {C_CL_MODE_SHARE:g} of their potential energy in C-Cl stretches",
            },
        },
        "species": rows,
    }
    return summary, corrected


def _rms(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(errors**2))) if errors.size else float("nan")


def cv_predictions(matches: list[Match]) -> dict[str, np.ndarray]:
    """Leave-one-parent-out predictions of every scheme, in the order of :func:`pooled`."""
    return {scheme: cross_validated(matches, scheme) for scheme in SCHEMES}


def summarize(matches: list[Match], predictions: dict[str, np.ndarray] | None = None) -> dict:
    calculated, experimental, parents = pooled(matches)
    predictions = predictions or cv_predictions(matches)
    cv = {scheme: error_stats(predictions[scheme], experimental) for scheme in SCHEMES}
    chosen = min(SCHEMES, key=lambda scheme: np.nan_to_num(cv[scheme]["rms_cm1"], nan=np.inf))
    unscaled = error_stats(calculated, experimental)
    return {
        "n_molecules": len(matches),
        "n_parents": len(set(parents)),
        "n_modes": len(calculated),
        "rms_cm1": unscaled["rms_cm1"],
        "mae_cm1": unscaled["mae_cm1"],
        "scheme": chosen,
        "rms_scaled_cm1": cv[chosen]["rms_cm1"],
        "mae_scaled_cm1": cv[chosen]["mae_cm1"],
        "cross_validated": cv,
        "scale_factors": fit_factors(calculated, experimental),
        "sqm_factors": SQMFit(matches).factors() if matches else None,
    }


def method_result(
    plan: MethodPlan, matches: list[Match], skipped: list[dict], predictions: dict[str, np.ndarray]
) -> dict:
    used = {m.species.parent for m in matches}
    seconds = [plan.cache.entries[p]["seconds"] for p in used]
    summary = summarize(matches, predictions)
    predicted = predictions[summary["scheme"]]
    per_species, start = {}, 0
    for m in matches:  # out-of-sample rms per species, to find the worst ones
        stop = start + len(m.calculated_cm1)
        per_species[m.species.molecule_id] = round(
            error_stats(predicted[start:stop], m.experimental_cm1)["rms_cm1"], 1
        )
        start = stop
    return {
        "settings": plan.reference.settings,
        "is_xtb": plan.is_xtb,
        "cache": str(plan.cache.path.relative_to(ROOT)),
        "max_heavy_atoms": plan.max_heavy_atoms,
        **summary,
        "seconds_per_molecule": float(np.mean(seconds)) if seconds else None,
        "cores": sorted({plan.cache.entries[p]["cores"] for p in used}),
        "imaginary_modes": [
            {
                "molecule_id": m.species.molecule_id,
                "name": m.species.name,
                "wavenumbers_cm1": rounded(m.imaginary_cm1, 1),
            }
            for m in matches
            if len(m.imaginary_cm1)
        ],
        "rms_scaled_cv_by_species_cm1": per_species,
        "skipped": skipped,
    }


def recommended(methods: dict) -> str | None:
    """The non-xTB method with the lowest cross-validated scaled rms among those covering enough species."""
    eligible = [
        m for m, r in methods.items() if not r["is_xtb"] and r["n_molecules"] >= RECOMMEND_MIN_SPECIES
    ]
    return min(eligible, key=lambda m: methods[m]["rms_scaled_cm1"], default=None)


def evaluate(
    plans: list[MethodPlan], species: list[Species]
) -> tuple[dict, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The results document, and every method's (experimental, chosen scheme's out-of-sample
    prediction) of its matched modes (for the figure)."""
    matched = {plan.method: match_method(plan, species) for plan in plans}
    predictions = {method: cv_predictions(matches) for method, (matches, _) in matched.items()}
    methods = {
        plan.method: method_result(plan, *matched[plan.method], predictions[plan.method]) for plan in plans
    }
    corrections = {
        method: c_cl_correction(matches, methods[method]["scale_factors"])
        for method, (matches, _) in matched.items()
    }
    common_ids = set.intersection(*({m.species.molecule_id for m in matched[p.method][0]} for p in plans))
    common = {
        method: summarize([m for m in matches if m.species.molecule_id in common_ids])
        for method, (matches, _) in matched.items()
    }
    results = {
        "benchmark": "harmonic wavenumbers against experimental gas-phase fundamentals (benchmarks/fundamentals.py)",
        "date": datetime.date.today().isoformat(),
        "git_commit": specml_commit(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cores": usable_cores(),
        },
        "data": "../shared/data/fundamentals (Shimanouchi, NSRDS-NBS 39 via NIST SRD 69)",
        "protocol": {
            "structure": f"atoms_from_smiles(parent, seed={SEED}), optimized_harmonic_analysis "
            "(fmax 1e-4 eV/Å)",
            "matching": "modes expanded by degeneracy; real harmonic wavenumbers assigned to fundamentals "
            "by linear_sum_assignment on (omega - nu)^2 (unscaled); no symmetry matching",
            "scaling": "least squares nu ~ s omega: global, or split at 2000 cm-1 calculated; sqm: "
            "force constants in geomeTRIC primitive internal coordinates scaled by type, F'_ij = "
            "sqrt(c_i c_j) F_ij (specml.spectra.sqm), least squares on ln c with a pull of "
            f"{SQM_PRIOR_CM1:g} cm-1 per unit ln c towards the global factor squared",
            "cross_validation": "leave-one-parent-out (isotopologues held out together)",
        },
        "recommended": recommended(methods),
        "recommended_scheme": methods[best]["scheme"] if (best := recommended(methods)) else None,
        "recommendation_rule": f"non-xTB method with the lowest cross-validated scaled rms among those with "
        f">= {RECOMMEND_MIN_SPECIES} species evaluated",
        "anchor_scott_radom_1996": SCOTT_RADOM,
        "methods": methods,
        "common": {"n_molecules": len(common_ids), "molecule_ids": sorted(common_ids), "methods": common},
        "c_cl_stretches": {
            method: c_cl_stretches(matches, predictions[method], corrections[method][1])
            for method, (matches, _) in matched.items()
        },
        # For identification (specml.identification.ccl): its C-Cl force-constant factor, fitted here.
        "c_cl_correction": {method: correction for method, (correction, _) in corrections.items()},
    }
    figure_data = {
        method: (pooled(matches)[1], predictions[method][methods[method]["scheme"]])
        for method, (matches, _) in matched.items()
    }
    return results, figure_data


#: Shimanouchi's mode numbers of the C-Cl stretches reported beside the rms (B3LYP puts them ~4 % low).
C_CL_STRETCH_MODES = {"SHIM031": (3,), "SHIM013": (3, 9), "SHIM009": (2, 5), "SHIM007": (1, 3)}


def c_cl_stretches(
    matches: list[Match], predictions: dict[str, np.ndarray], corrected: dict[str, np.ndarray]
) -> list[dict]:
    """The C-Cl stretches of CH3Cl, CH2Cl2, CHCl3 and CCl4 (cm-1): experiment, unscaled, the
    leave-one-parent-out split_2000 and sqm predictions, and the identification's model
    (``corrected``, from :func:`c_cl_correction`) (the mean over a degenerate set)."""
    with (DATA / "fundamentals.csv").open(newline="") as fh:
        rows = [
            r
            for r in csv.DictReader(fh)
            if int(r["mode_no"]) in C_CL_STRETCH_MODES.get(r["molecule_id"], ()) and r["variant"] == "1"
        ]
    starts = np.cumsum([0] + [len(m.calculated_cm1) for m in matches])
    found = []
    for row in rows:
        index = next((i for i, m in enumerate(matches) if m.species.molecule_id == row["molecule_id"]), None)
        if index is None:
            continue
        match, start = matches[index], starts[index]
        paired = np.flatnonzero(match.experimental_cm1 == float(row["wavenumber_cm1"]))
        found.append(
            {
                "molecule_id": row["molecule_id"],
                "name": match.species.name,
                "mode": f"{row['mode_no']} {row['description']}",
                "experimental_cm1": float(row["wavenumber_cm1"]),
                "unscaled_cm1": float(match.calculated_cm1[paired].mean()),
                **{
                    f"{scheme}_cv_cm1": float(predictions[scheme][start + paired].mean())
                    for scheme in ("split_2000", "sqm")
                },
                "split_2000_c_ccl_cv_cm1": float(corrected[row["molecule_id"]][paired].mean())
                if row["molecule_id"] in corrected
                else None,
            }
        )
    return found


# --- report -------------------------------------------------------------------------------------


def fmt(value, digits: int = 1) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def table(summaries: dict, with_cost: bool) -> list[str]:
    lines = [
        "| method | species | modes | rms / MAE | CV global | CV split_2000 | CV sqm | chosen "
        "| s global | s < 2000 / ≥ 2000 |" + (" s per parent |" if with_cost else ""),
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|" + ("---:|" if with_cost else ""),
    ]
    for method, r in summaries.items():
        cv, s = r["cross_validated"], r["scale_factors"]
        cells = " | ".join(f"{fmt(cv[k]['rms_cm1'])} / {fmt(cv[k]['mae_cm1'])}" for k in SCHEMES)
        row = (
            f"| `{method}` | {r['n_molecules']} | {r['n_modes']} | {fmt(r['rms_cm1'])} / {fmt(r['mae_cm1'])} "
            f"| {cells} | {r['scheme']} | {fmt(s['global'], 4)} "
            f"| {fmt(s['below_2000'], 4)} / {fmt(s['above_2000'], 4)} |"
        )
        if with_cost:
            seconds = r["seconds_per_molecule"]
            row += f" {seconds:.3g} |" if seconds is not None else " – |"
        lines.append(row)
    return lines


def sqm_factor_table(methods: dict) -> list[str]:
    lines = [
        "| method | " + " | ".join(f"`{t}`" for t in COORDINATE_TYPES) + " |",
        "|---|" + "---:|" * len(COORDINATE_TYPES),
    ]
    for method, r in methods.items():
        factors = r["sqm_factors"] or {}
        lines.append(f"| `{method}` | " + " | ".join(fmt(factors.get(t), 3) for t in COORDINATE_TYPES) + " |")
    return lines


def c_cl_table(stretches: dict) -> list[str]:
    lines = [
        "| method | species | mode | experiment | unscaled | split_2000 (CV) | sqm (CV) | c_CCl + split_2000 (CV) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for method, rows in stretches.items():
        for r in rows:
            lines.append(
                f"| `{method}` | {r['name']} | {r['mode']} | {fmt(r['experimental_cm1'], 0)} "
                f"| {fmt(r['unscaled_cm1'], 0)} | {fmt(r['split_2000_cv_cm1'], 0)} | {fmt(r['sqm_cv_cm1'], 0)} "
                f"| {fmt(r['split_2000_c_ccl_cv_cm1'], 0)} |"
            )
    return lines


def c_cl_correction_lines(corrections: dict) -> list[str]:
    lines = [
        "| method | c_CCl | fit species | LOPO rms all modes before → after | LOPO rms C–Cl stretches before → after |",
        "|---|---:|---|---:|---:|",
    ]
    for method, r in corrections.items():
        if r is None:
            continue
        loo = r["leave_one_parent_out"]
        lines.append(
            f"| `{method}` | {r['c_ccl']:.4f} | {', '.join(f'`{p}`' for p in r['fit_parents'])} "
            f"| {fmt(loo['all_modes']['before'])} → {fmt(loo['all_modes']['after'])} ({loo['all_modes']['n_modes']}) "
            f"| {fmt(loo['c_cl_stretches']['before'])} → {fmt(loo['c_cl_stretches']['after'])} "
            f"({loo['c_cl_stretches']['n_modes']}) |"
        )
    return lines


def skipped_lines(methods: dict) -> list[str]:
    lines = []
    for method, r in methods.items():
        reasons: dict[str, list[str]] = {}
        for s in r["skipped"]:
            reasons.setdefault(s["reason"], []).append(s["name"])
        parts = [
            f"{', '.join(names) if len(names) <= 10 else f'{len(names)} species'} ({reason})"
            for reason, names in reasons.items()
        ]
        lines.append(
            f"- `{method}`: {len(r['skipped'])} skipped" + (": " + "; ".join(parts) if parts else "")
        )
    return lines


def imaginary_lines(methods: dict) -> list[str]:
    lines = []
    for method, r in methods.items():
        found = [
            f"{m['name']} ({', '.join(f'{w:g}' for w in m['wavenumbers_cm1'])})" for m in r["imaginary_modes"]
        ]
        lines.append(f"- `{method}`: " + ("; ".join(found) if found else "none"))
    return lines


def report_markdown(results: dict) -> str:
    common = results["common"]
    if results["recommended"]:
        recommendation = (
            f"Recommended DFT method (lowest CV scaled rms, ≥ {RECOMMEND_MIN_SPECIES} species): "
            f"`{results['recommended']}`, scheme `{results['recommended_scheme']}`."
        )
    else:
        recommendation = (
            f"Recommended DFT method: none yet (none has ≥ {RECOMMEND_MIN_SPECIES} species evaluated)."
        )
    commit = results["git_commit"][:12] + results["git_commit"][40:]  # keeps a "+dirty" mark
    lines = [
        f"Measured {results['date']} at commit `{commit}` on "
        f"{results['machine']['processor']} ({results['machine']['cores']} cores). Wavenumber errors in cm-1; "
        "`CV` = leave-one-parent-out rms / MAE; `chosen` = the scheme with the lowest CV rms; `s` = scale "
        "factors fitted on all modes; `s per parent` = mean wall seconds of one optimisation and Hessian.",
        "",
        "**Each method on every species it finished:**",
        "",
        *table(results["methods"], with_cost=True),
        "",
        f"**Common set** ({common['n_molecules']} species that every method finished; CV and factors refitted "
        "on these):",
        "",
        *table(common["methods"], with_cost=False),
        "",
        recommendation,
        "",
        "**SQM force-constant factors** c (fitted on all of a method's species; a frequency scales as sqrt(c)):",
        "",
        *sqm_factor_table(results["methods"]),
        "",
        "**C–Cl stretches** (cm-1; CV = predicted with the factors fitted without that parent; the last "
        "column is identification's model, c_CCl below, the split_2000 factors of all modes; CH2Cl2 and CHCl3 "
        "are identification queries, never in the c_CCl fit):",
        "",
        *c_cl_table(results["c_cl_stretches"]),
        "",
        "**C–Cl correction for identification** (force constants of C–Cl stretches × c_CCl, then "
        "split_2000; c_CCl fitted on chlorinated species that are not identification queries; LOPO = "
        "leave-one-parent-out, the queries predicted with the c_CCl of all fit species; modes in parentheses; "
        f"C–Cl stretches = modes with ≥ {C_CL_MODE_SHARE:g} of their potential energy in C–Cl stretches; "
        "every chlorinated species, queries included; per species in the JSON):",
        "",
        *c_cl_correction_lines(results["c_cl_correction"]),
        "",
        "Optimised structures with imaginary modes (cm-1; saddle points, left out of the matching):",
        "",
        *imaginary_lines(results["methods"]),
        "",
        "Species not evaluated:",
        "",
        *skipped_lines(results["methods"]),
    ]
    return "\n".join(lines) + "\n"


def write_docs_table(markdown: str, page: Path = DOCS_PAGE) -> None:
    text = page.read_text()
    start, end = text.find(TABLE_BEGIN), text.find(TABLE_END)
    if start < 0 or end < start:
        raise SystemExit(f"error: {page} lacks the markers {TABLE_BEGIN!r} ... {TABLE_END!r}")
    new = text[: start + len(TABLE_BEGIN)] + "\n" + markdown + text[end:]
    atomic_write(page, lambda tmp: tmp.write_text(new))


def figure(figure_data: dict[str, tuple[np.ndarray, np.ndarray]], results: dict, path: Path) -> None:
    """Out-of-sample scaled error against the experimental wavenumber, one panel per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(figure_data)
    columns = min(n, 3)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False, sharey=True)
    for ax, (method, (experimental, predicted)) in zip(axes.flat, figure_data.items(), strict=False):
        r = results["methods"][method]
        error = predicted - experimental
        ax.scatter(experimental, error, s=6, alpha=0.5, lw=0)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(
            f"{method}: {r['n_molecules']} species, CV rms {fmt(r['rms_scaled_cm1'])} ({r['scheme']})",
            fontsize=9,
        )
        ax.set_xlabel("experimental fundamental (cm-1)")
    for ax in axes[:, 0]:
        ax.set_ylabel("scaled harmonic - experiment (cm-1)")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Leave-one-parent-out scaled harmonic wavenumbers vs gas-phase fundamentals", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def write_results(results: dict, path: Path) -> None:
    def clean(value):  # NaN is not JSON: null
        if isinstance(value, float) and not np.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(clean(results), indent=1) + "\n"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--methods", nargs="+", required=True, help="reference names: xtb gfn1-xtb pyscf:b3lyp/def2-svp ..."
    )
    parser.add_argument(
        "--max-heavy-atoms",
        type=int,
        default=None,
        help=f"skip larger parents (default {DFT_MAX_HEAVY_ATOMS} for non-xTB methods, none for xTB)",
    )
    parser.add_argument(
        "--only-molecules", nargs="+", default=None, metavar="SMILES", help="parent SMILES to include"
    )
    parser.add_argument("--scheduler", default=None, help="tcp://host:port or local:N (default: in-process)")
    parser.add_argument("--report-only", action="store_true", help="evaluate the caches, compute nothing")
    parser.add_argument("--retry-failed", action="store_true", help="recompute cached failures")
    parser.add_argument(
        "--out-stem",
        type=Path,
        default=None,
        help="write STEM.json and STEM.png; the docs page is left alone",
    )
    args = parser.parse_args()

    species = read_species(parent_set(args.only_molecules))
    plans = [plan_method(m, species, args.max_heavy_atoms, args.retry_failed) for m in args.methods]
    if not args.report_only:
        compute(plans, args.scheduler)
    results, figure_data = evaluate(plans, species)
    stem = args.out_stem or RESULTS_STEM
    write_results(results, stem.with_suffix(".json"))
    figure(figure_data, results, stem.with_suffix(".png"))
    markdown = report_markdown(results)
    if args.out_stem is None:
        write_docs_table(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
