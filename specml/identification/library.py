"""A persistent spectral library: predicted stick spectra of candidate molecules in SQLite.

One row per (canonical SMILES, method, settings). Sticks (harmonic frequencies in cm-1 and
intensities in km/mol) are stored rather than broadened curves so that frequency scaling and
line widths can be refitted without recomputing. Harmonic entries also keep their second
derivatives (Hessian in eV/Å^2, dipole derivatives in e), so that a force-constant correction
(:mod:`specml.identification.ccl`) can be applied later; entries written before they were kept
have none and stay valid. Failures are stored too (status ``failed``
plus the error message) so a molecule the method cannot treat is not retried on every query.
Every entry is committed as soon as it is written: an interrupted build loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from specml.errors import InputError, MoleculeError, SpecmlError
from specml.spectra.second_derivatives import SecondDerivatives

LIBRARY_ENV = "SPECML_LIBRARY"
CONFORMER_SEED = 42  # fixed so a library entry is reproducible
# Geometry convergence (eV/Å) of harmonic entries; part of the cache key (Method.harmonic).
HARMONIC_FMAX = 1e-4
# Version of the harmonic protocol (optimisation, saddle escape, mode analysis), also keyed:
# raise it when a fix changes harmonic sticks, so caches made before the fix miss and recompute.
# 2: saddle-point escape and linear molecules straight only to 1e-4 Å keep their bend.
HARMONIC_PROTOCOL = 2
# Conformer averaging of harmonic entries (Method.harmonic), keyed as it changes the sticks:
# the Boltzmann mixture at room temperature that a gas-phase spectrum records (ethanol: gauche
# and trans), from specml.spectra.harmonic.conformer_averaged_harmonic.
# The screen (0.15 eV) and window (0.2 eV) are conformer_averaged_harmonic's; a test keeps them in step.
CONFORMER_TEMPERATURE_K = 298.15
CONFORMER_PROTOCOL = (
    f"rdkit-mmff ensemble (seed {CONFORMER_SEED}), gfn2-xtb screen 0.15 eV, window 0.2 eV, "
    f"{CONFORMER_TEMPERATURE_K:g} K, mirror images x2"
)
# Workflow settings that shape an ML-MD spectrum; part of the key of ML-MD entries.
ML_SPECTRUM_SETTINGS = (
    "n_trajectories",
    "thermalization_ps",
    "production_ps",
    "timestep_fs",
    "production_friction_per_fs",
    "dipole_record_interval",
    "max_correlation_fs",
    "uncertainty_stop",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    smiles TEXT NOT NULL,
    method TEXT NOT NULL,
    settings TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error TEXT,
    kind TEXT NOT NULL DEFAULT 'sticks',
    x TEXT,
    y TEXT,
    xyz TEXT,
    seconds REAL,
    created REAL NOT NULL,
    derivatives TEXT
)
"""
# Columns added after the first schema, with their types: added to older files on open.
_ADDED_COLUMNS = {"derivatives": "TEXT"}


def default_library_path() -> Path:
    """``$SPECML_LIBRARY`` if set, else ``~/.cache/specml/library.sqlite``."""
    env = os.environ.get(LIBRARY_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "specml" / "library.sqlite"


def settings_json(settings: dict) -> str:
    """Canonical JSON of a settings dict (sorted keys), the form that is hashed."""
    return json.dumps(settings, sort_keys=True, default=str)


def entry_key(smiles: str, method: str, settings: dict) -> str:
    """SHA-256 over canonical SMILES, method name and settings JSON."""
    text = "\n".join([smiles, method, settings_json(settings)])
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class LibraryEntry:
    """A predicted spectrum of one molecule at one level of theory.

    ``kind`` is ``"sticks"`` (``x`` = frequencies in cm-1, ``y`` = intensities in km/mol) or
    ``"curve"`` (``x`` = wavenumber grid in cm-1, ``y`` = intensity; e.g. an ML-MD spectrum).
    """

    smiles: str
    method: str
    settings: dict
    status: str
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    kind: str = "sticks"
    error: str | None = None
    xyz: str | None = None
    seconds: float | None = None
    # Hessian and dipole derivatives at ``xyz`` (harmonic entries; None where not kept)
    second_derivatives: SecondDerivatives | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def key(self) -> str:
        return entry_key(self.smiles, self.method, self.settings)


class SpectralLibrary:
    """SQLite store of :class:`LibraryEntry`. ``hits``/``misses`` count lookups in this session.

    A lookup that misses the SQLite file falls back to the spectra shipped with specml
    (:mod:`specml.identification.shipped_library`), or to those in the directory ``shipped``
    names; ``shipped=False`` turns the fallback off.
    """

    def __init__(self, path: str | Path | None = None, shipped: bool | str | Path = True):
        self.shipped = shipped
        self.path = Path(path).expanduser() if path is not None else default_library_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path))
            self._db.execute(_SCHEMA)
            present = {row[1] for row in self._db.execute("PRAGMA table_info(entries)")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in present:  # a library written before the column existed
                    self._db.execute(f"ALTER TABLE entries ADD COLUMN {column} {kind}")
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a usable spectral library ({exc})") from exc
        self.hits = 0
        self.misses = 0

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def get(self, smiles: str, method: str, settings: dict) -> LibraryEntry | None:
        row = self._db.execute(
            "SELECT smiles, method, settings, status, error, kind, x, y, xyz, seconds, derivatives FROM entries"
            " WHERE key = ?",
            (entry_key(smiles, method, settings),),
        ).fetchone()
        if row is None:
            return self._shipped(smiles, method, settings)
        smiles, method, settings_text, status, error, kind, x, y, xyz, seconds, derivatives = row
        entry = LibraryEntry(
            smiles,
            method,
            json.loads(settings_text),
            status,
            np.array(json.loads(x or "[]"), dtype=float),
            np.array(json.loads(y or "[]"), dtype=float),
            kind,
            error,
            xyz,
            seconds,
            _decoded_derivatives(json.loads(derivatives) if derivatives else None, xyz),
        )
        if entry.second_derivatives is None and entry.ok:
            entry.second_derivatives = self._shipped_derivatives(entry)
        return entry

    def _shipped_derivatives(self, entry: LibraryEntry) -> SecondDerivatives | None:
        """The shipped second derivatives of the same entry, if they belong to its very geometry
        (an entry computed here may have optimised to a slightly different structure)."""
        from specml.identification.shipped_derivatives import geometry_mismatch

        shipped = self._shipped(entry.smiles, entry.method, entry.settings)
        if shipped is None or shipped.second_derivatives is None or not entry.xyz or not shipped.xyz:
            return None
        return shipped.second_derivatives if geometry_mismatch(shipped.xyz, entry.xyz) is None else None

    def _shipped(self, smiles: str, method: str, settings: dict) -> LibraryEntry | None:
        if self.shipped is False:
            return None
        from specml.identification.shipped_library import SHIPPED_DIR, shipped_entries

        directory = SHIPPED_DIR if self.shipped is True else Path(self.shipped)
        return shipped_entries(directory).get(entry_key(smiles, method, settings))

    def put(self, entry: LibraryEntry) -> None:
        """Insert or replace ``entry`` and commit at once."""
        self._db.execute(
            "INSERT OR REPLACE INTO entries (key, smiles, method, settings, status, error, kind, x, y, xyz, seconds,"
            " created, derivatives) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.key,
                entry.smiles,
                entry.method,
                settings_json(entry.settings),
                entry.status,
                entry.error,
                entry.kind,
                json.dumps(np.asarray(entry.x, float).tolist()),
                json.dumps(np.asarray(entry.y, float).tolist()),
                entry.xyz,
                entry.seconds,
                time.time(),
                None if entry.second_derivatives is None else json.dumps(entry.second_derivatives.to_json()),
            ),
        )
        self._db.commit()

    def entries(self, status: str | None = None) -> list[LibraryEntry]:
        query = "SELECT smiles, method, settings FROM entries" + (" WHERE status = ?" if status else "")
        rows = self._db.execute(query, (status,) if status else ()).fetchall()
        entries = [self.get(s, m, json.loads(t)) for s, m, t in rows]
        return [e for e in entries if e is not None]  # all are: each row is looked up by its own key


def _decoded_derivatives(record: dict | None, xyz: str | None) -> SecondDerivatives | None:
    """The stored second derivatives of an entry (their size checked against its geometry)."""
    if not record:
        return None
    n_atoms = int(xyz.split(maxsplit=1)[0]) if xyz else 0
    return SecondDerivatives.from_json(record, n_atoms)


# -- computing entries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A candidate molecule as listed by the user and its canonical SMILES."""

    name: str
    smiles: str


def atoms_to_xyz(atoms) -> str:
    lines = [str(len(atoms)), atoms.get_chemical_formula()]
    lines += [
        f"{s} {x:.6f} {y:.6f} {z:.6f}"
        for s, (x, y, z) in zip(atoms.get_chemical_symbols(), atoms.positions, strict=True)
    ]
    return "\n".join(lines)


def compute_harmonic_entry(task: tuple) -> dict:
    """Worker (module-level, picklable): optimised geometry and harmonic sticks of one SMILES.

    ``task`` is ``(canonical_smiles, reference)``. The same protocol as ``specml harmonic``
    (:func:`specml.spectra.harmonic.optimized_harmonic_analysis`, fmax ``HARMONIC_FMAX``).
    Raises specml errors; the executor captures them.
    """
    from threadpoolctl import threadpool_limits

    from specml.executor import make_executor
    from specml.molecules import atoms_from_smiles
    from specml.reference import make_reference
    from specml.spectra.harmonic import optimized_harmonic_analysis

    smiles, reference = task
    reference = make_reference(reference)
    start = time.perf_counter()
    atoms = atoms_from_smiles(smiles, seed=CONFORMER_SEED)
    atoms.info.setdefault("smiles", smiles)
    reference.calculator()  # loads the method's native libraries (e.g. tblite's OpenMP runtime) ...
    # ... so they can be held to one thread: the parallelism is across candidates, and an
    # OpenMP team on contended cores made tiny xTB calls 10-100x slower (measured).
    with threadpool_limits(limits=1):
        result = optimized_harmonic_analysis(
            atoms, reference, fmax=HARMONIC_FMAX, executor=make_executor(show_progress=False)
        )
    return {
        "x": result.frequencies_cm1.tolist(),
        "y": result.intensities_km_mol.tolist(),
        "xyz": atoms_to_xyz(result.atoms),
        "seconds": time.perf_counter() - start,
        "kind": "sticks",
        # kept so that force constants can be rescaled later (specml.identification.ccl)
        "derivatives": SecondDerivatives(result.hessian, result.dipole_derivatives).to_json(),
    }


def compute_conformer_entry(task: tuple) -> dict:
    """Worker: the Boltzmann-weighted harmonic sticks of every conformer of one SMILES
    (:func:`specml.spectra.harmonic.conformer_averaged_harmonic` at ``CONFORMER_TEMPERATURE_K``).

    ``task`` is ``(canonical_smiles, (reference, checkpoints))``. Intensities (km/mol) carry the
    populations; ``xyz`` is the lowest conformer. Second derivatives are kept for a molecule with
    one conformer only: a force-constant correction of a mixture would need every conformer's.
    Each conformer's results go to ``checkpoints/<molecule key>/`` as they finish
    (:mod:`specml.spectra.conformer_checkpoint`), so an interrupted molecule resumes per conformer.
    """
    from threadpoolctl import threadpool_limits

    from specml.executor import make_executor
    from specml.molecules.conformers import conformers_from_smiles
    from specml.reference import make_reference
    from specml.spectra.harmonic import conformer_averaged_harmonic
    from specml.workflow.state import safe_name

    smiles, (reference, checkpoints) = task
    reference = make_reference(reference)
    start = time.perf_counter()
    ensemble = conformers_from_smiles(smiles, seed=CONFORMER_SEED)
    key = entry_key(smiles, "harmonic", harmonic_settings(reference, conformers=True))
    reference.calculator()  # as in compute_harmonic_entry: native libraries loaded, then one thread
    with threadpool_limits(limits=1):
        mixture = conformer_averaged_harmonic(
            ensemble,
            reference,
            temperature_k=CONFORMER_TEMPERATURE_K,
            fmax=HARMONIC_FMAX,
            executor=make_executor(show_progress=False),
            checkpoint=Path(checkpoints) / f"{safe_name(smiles)}_{key[:12]}",
        )
    x, y = mixture.sticks()
    lowest = mixture.results[0]
    single = len(mixture.results) == 1
    return {
        "x": x.tolist(),
        "y": y.tolist(),
        "xyz": atoms_to_xyz(lowest.atoms),
        "seconds": time.perf_counter() - start,
        "kind": "sticks",
        "derivatives": SecondDerivatives(lowest.hessian, lowest.dipole_derivatives).to_json()
        if single
        else None,
    }


def compute_ml_entry(task: tuple) -> dict:
    """Worker: ML-MD spectrum (a curve) of one SMILES from a trained model directory.

    ``task`` is ``(canonical_smiles, (models_dir, preset, temperature_k))``. The MD files go
    to a temporary directory: the library keeps the spectrum, not the trajectories.
    """
    import tempfile

    from specml.workflow import get_workflow_config

    smiles, (models_dir, preset, temperature_k) = task
    predict = ml_predictor()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="specml-identify-") as tmp:
        spectrum = predict(
            models_dir, smiles, out_dir=tmp, temperature_k=temperature_k, config=get_workflow_config(preset)
        )
    return {
        "x": spectrum.wavenumber.tolist(),
        "y": spectrum.intensity.tolist(),
        "xyz": None,
        "seconds": time.perf_counter() - start,
        "kind": "curve",
    }


def ml_predictor() -> Callable:
    """``specml.workflow.predict_spectrum`` if the ML workflow provides it, else a clear error."""
    try:
        from specml.workflow import predict_spectrum
    except ImportError as exc:
        raise InputError(
            "--models needs specml.workflow.predict_spectrum (the ML-MD workflow), "
            "which this installation does not provide; use --reference instead"
        ) from exc
    return predict_spectrum


def committee_fingerprint(models_dir: Path) -> str:
    """The committee's content digest (:func:`specml.models.committee.committee_digest`) for a
    run directory or a committee directory. Keyed by content, not path, so retraining into the
    same directory never hits stale spectra and a copied committee reuses them."""
    from specml.models.committee import committee_digest
    from specml.workflow.prediction import resolve_models_dir

    return committee_digest(resolve_models_dir(models_dir))


@dataclass
class Method:
    """What computes library entries: a name, settings (hashed into the key) and a worker + its argument."""

    name: str
    settings: dict
    worker: Callable
    argument: object
    #: The worker's argument for a library in a given folder, where the argument depends on
    #: it (conformer checkpoints beside the library); None: always ``argument``.
    argument_in: Callable[[Path], object] | None = None

    def argument_for(self, folder: Path) -> object:
        """The worker's argument when filling a library that lives in ``folder``."""
        return self.argument if self.argument_in is None else self.argument_in(folder)

    @classmethod
    def harmonic(cls, reference, conformers: bool = False, checkpoints: str | Path | None = None) -> Method:
        """Harmonic sticks with ``reference`` of one structure (RDKit's conformer, seed 42) or, with
        ``conformers``, Boltzmann-averaged over the molecule's conformers (:func:`compute_conformer_entry`),
        whose per-conformer checkpoints go to ``checkpoints`` (default: ``conformers/`` beside the
        library that :func:`fill_library` fills)."""
        from specml.reference import make_reference

        reference = make_reference(reference)
        # Named by the Hamiltonian where the reference has several (GFN1-/GFN2-xTB), so that each
        # gets its own fitted scoring parameters. The optimisation threshold and the protocol
        # version change the sticks, so they are keyed along with the method.
        variant = str(
            getattr(reference, "level", None) or reference.settings.get("method", reference.name)
        ).lower()
        settings = {
            **reference.settings,
            "geometry_fmax": HARMONIC_FMAX,
            "harmonic_protocol": HARMONIC_PROTOCOL,
        }
        if conformers:
            settings["conformers"] = CONFORMER_PROTOCOL
        if not conformers:
            return cls(f"harmonic:{variant}", settings, compute_harmonic_entry, reference)
        where = None if checkpoints is None else str(checkpoints)
        beside = None if where else (lambda folder: (reference, str(folder / "conformers")))
        return cls(f"harmonic:{variant}", settings, compute_conformer_entry, (reference, where), beside)

    @classmethod
    def ml(cls, models_dir: str | Path, preset: str = "default", temperature_k: float = 300.0) -> Method:
        """ML-MD with the committee in ``models_dir`` and the MD settings of workflow ``preset``.

        The key holds the committee's content fingerprint and the MD settings that shape
        the spectrum, so another model or preset never reuses these entries.
        """
        ml_predictor()  # fail early and clearly
        models_dir = Path(models_dir)
        if not models_dir.is_dir():
            raise InputError(f"{models_dir}: model directory not found")
        from specml.workflow import get_workflow_config

        config = get_workflow_config(preset)  # raises InputError naming the known presets
        md = {k: getattr(config, k) for k in ML_SPECTRUM_SETTINGS if hasattr(config, k)}
        settings = {
            "committee_sha256": committee_fingerprint(models_dir),
            "preset": preset,
            "temperature_k": float(temperature_k),
            "md": md,
        }
        return cls("ml-md", settings, compute_ml_entry, (str(models_dir), preset, float(temperature_k)))


def harmonic_settings(reference, conformers: bool) -> dict:
    """What is keyed of a harmonic entry: the reference's settings, the optimisation threshold, the
    protocol version and, for conformer averages, their protocol."""
    settings = {**reference.settings, "geometry_fmax": HARMONIC_FMAX, "harmonic_protocol": HARMONIC_PROTOCOL}
    if conformers:
        settings["conformers"] = CONFORMER_PROTOCOL
    return settings


#: The DFT method of the spectra shipped with specml (benchmarks/dft_library.py). B3LYP/def2-SVP:
#: the affordable level that put the true compound first in 6 of 6 xTB confusions
#: (docs/results/identify_dft_pairs.json); see docs/fundamentals.md for its frequency errors.
DFT_REFERENCE = "pyscf:b3lyp/def2-svp"


def shipped_library_path(method: Method):
    """Where the shipped spectra of ``method`` live: ``specml/data/library/<method name>.json.gz``,
    ``<method name>_conformers.json.gz`` for conformer-averaged spectra."""
    from specml.identification.shipped_library import SHIPPED_DIR
    from specml.provenance import file_stem

    suffix = "_conformers" if "conformers" in method.settings else ""
    return SHIPPED_DIR / (file_stem(method.name) + suffix + ".json.gz")


# GFN2- and GFN1-xTB together: their harmonic errors differ by mode (GFN1 gets C-Cl and S=O
# stretches and the chloroform intensity pattern right, GFN2 many C-H and C=O modes), and the
# mean of their features ranked held-out compounds better than either alone (docs/identify.md).
XTB_ENSEMBLE = "gfn2+gfn1"

# The shipped B3LYP/def2-SVP spectra rank held-out NIST compounds far better than the xTB
# ensemble (docs/results/identify.json against identify_gfn2_gfn1.json) and cost nothing for
# the shipped molecules; a candidate outside the library is computed once (minutes) and cached.
DEFAULT_REFERENCE = DFT_REFERENCE


def methods_for(
    reference=DEFAULT_REFERENCE,
    models_dir: str | Path | None = None,
    ml_preset: str = "default",
    conformers: bool = False,
) -> list[Method]:
    """The methods whose predictions are scored together: ML-MD with ``models_dir``, else one
    harmonic method per member of ``reference`` (a method, a name, or names joined by ``+``),
    conformer-averaged with ``conformers``."""
    if models_dir is not None:
        if conformers:
            raise InputError(
                "conformer averaging applies to harmonic spectra; ML-MD samples conformers itself"
            )
        return [Method.ml(models_dir, ml_preset)]
    if isinstance(reference, str):
        members = [part.strip() for part in reference.split("+")]
        if not all(members):
            raise InputError(f"reference {reference!r}: empty member; use e.g. 'xtb' or 'gfn2+gfn1'")
        methods = [Method.harmonic(member, conformers) for member in members]
    else:
        methods = [Method.harmonic(reference, conformers)]
    if len({m.name for m in methods}) != len(methods):
        raise InputError(f"reference {reference!r} names the same method twice")
    return methods


def ensemble_name(methods: list[Method]) -> str:
    """Name of a set of methods scored together (the key of their fitted scoring parameters)."""
    return "+".join(m.name for m in methods)


@dataclass
class Warning_:
    """A candidate that could not be used, and why."""

    name: str
    smiles: str
    reason: str


def resolve_candidates(rows: Iterable[tuple[str, str]]) -> tuple[list[Candidate], list[Warning_]]:
    """Canonicalise SMILES; invalid ones become warnings. Duplicates (same canonical SMILES) keep the first name."""
    from specml.molecules import canonical_smiles

    candidates, warnings, seen = [], [], set()
    for name, smiles in rows:
        try:
            canonical = canonical_smiles(smiles)
        except MoleculeError as exc:
            warnings.append(Warning_(name, smiles, str(exc)))
            continue
        if canonical in seen:
            continue
        seen.add(canonical)
        candidates.append(Candidate(name, canonical))
    return candidates, warnings


def fill_ensemble(
    library: SpectralLibrary,
    candidates: list[Candidate],
    methods: list[Method],
    executor=None,
    retry_failed: bool = False,
) -> dict[str, list[LibraryEntry]]:
    """``{smiles: [entry per method]}`` for all ``candidates``, computing what is missing.

    A candidate is usable only when every method succeeded; see :func:`ensemble_error`.
    """
    per_method = [fill_library(library, candidates, method, executor, retry_failed) for method in methods]
    return {c.smiles: [entries[c.smiles] for entries in per_method] for c in candidates}


def ensemble_error(entries: list[LibraryEntry]) -> str | None:
    """The first failure among a candidate's entries (with its method), or None when all are ok."""
    for entry in entries:
        if not entry.ok:
            prefix = f"{entry.method}: " if len(entries) > 1 else ""
            return prefix + (entry.error or "calculation failed")
    return None


def fill_library(
    library: SpectralLibrary,
    candidates: list[Candidate],
    method: Method,
    executor=None,
    retry_failed: bool = False,
    on_entry: Callable[[LibraryEntry], None] | None = None,
) -> dict[str, LibraryEntry]:
    """Entries of all ``candidates``, computing the missing ones through ``executor``.

    Results are written (and committed) as they arrive, and each computed one is then passed to
    ``on_entry``. Returns ``{smiles: entry}``, failed ones included.
    """
    from specml.executor import make_executor

    entries: dict[str, LibraryEntry] = {}
    todo: list[str] = []
    for candidate in candidates:
        entry = library.get(candidate.smiles, method.name, method.settings)
        if entry is not None and (entry.ok or not retry_failed):
            library.hits += 1
            entries[candidate.smiles] = entry
        elif candidate.smiles not in todo:
            library.misses += 1
            todo.append(candidate.smiles)
    if not todo:
        return entries
    executor = executor or make_executor()
    argument = method.argument_for(library.path.parent)
    tasks = [(smiles, argument) for smiles in todo]
    for result in executor.imap(method.worker, tasks, description=f"predicting spectra ({method.name})"):
        smiles = todo[result.index]
        if result.ok:
            value = result.value
            entry = LibraryEntry(
                smiles,
                method.name,
                method.settings,
                "ok",
                np.asarray(value["x"]),
                np.asarray(value["y"]),
                value["kind"],
                None,
                value["xyz"],
                value["seconds"],
                _decoded_derivatives(value.get("derivatives"), value["xyz"]),
            )
        else:
            error = result.error
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            if not isinstance(error, SpecmlError):
                message = f"{type(error).__name__}: {message}"
            entry = LibraryEntry(smiles, method.name, method.settings, "failed", error=message)
        library.put(entry)
        entries[smiles] = entry
        if on_entry is not None:
            on_entry(entry)
    return entries
