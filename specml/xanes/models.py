"""Forward (site -> XANES) and inverse (XANES -> local structure) models of one absorbing element.

A :class:`XanesModel` is a folder with three bootstrap ensembles (:mod:`~specml.xanes.ensemble`):

* ``forward``: descriptor of the absorbing site -> μ on the model's energy grid (eV about the edge);
* ``inverse_descriptor``: μ -> the site's descriptor;
* ``inverse_shell``: μ -> coordination number and mean first-shell distance (Å), the rule of
  :func:`~specml.xanes.analysis.first_shell`.

``model.json`` records the descriptor settings, the grid, the absorber, the elements seen in
training (others are refused: the networks never saw them) and ``edge_ev``, the median edge
(steepest rise) of the training spectra on the grid; a spectrum on an absolute energy axis is
shifted so that its own edge lands there before it is inverted. ``positions.json`` (written
when the model is calibrated on held-out spectra) holds the factors that turn the members' spread
of the edge and first-maximum positions into a calibrated std (:meth:`XanesModel.positions`).

Trained models ship with specml under ``specml/data/xanes/NAME`` (:func:`ship_model` writes one,
with its provenance and without the training cache); :meth:`XanesModel.load` takes such a name
or a folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from specml.errors import InputError, ModelError, UnsupportedElementError
from specml.spectra.spectrum import Spectrum
from specml.xanes.analysis import MEMBER_POSITIONS, member_positions, position_spread
from specml.xanes.descriptors import DescriptorSettings, site_descriptors
from specml.xanes.ensemble import CALIBRATION_QUANTILE, MIN_SCALE, Ensemble, EnsembleSettings

PARTS = ("forward", "inverse_descriptor", "inverse_shell")
#: Marks a spectrum whose axis is XANES energy (the Spectrum field is named for IR).
AXIS_RELATIVE = "energy_eV_about_edge"
AXIS_ABSOLUTE = "energy_eV"
#: An inverted CN or distance further than this fraction of the training range outside it is flagged.
OUTSIDE_MARGIN = 0.05
#: Where the models shipped with specml live, one folder per name.
SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "data" / "xanes"
#: The shipped model that ``specml xanes predict|invert`` use unless given another.
DEFAULT_MODEL = "cu-kedge"
#: File in a model folder with the position std factors (:meth:`XanesModel.calibrate_positions`).
POSITIONS_FILE = "positions.json"
#: What :func:`train_xanes` calibrates the position std on.
POSITIONS_SOURCE = "the held-out spectra given to train_xanes (specml xanes train: the val split)"


def shipped_models(root: Path = SHIPPED_MODELS) -> list[str]:
    """Names of the models shipped with specml."""
    return sorted(f.name for f in root.iterdir() if (f / "model.json").is_file()) if root.is_dir() else []


def shipped_model_info(root: Path = SHIPPED_MODELS) -> dict[str, dict]:
    """``{name: model.json}`` of every shipped model, the energy grid given as its range
    (``energy_range_ev``) rather than its 521 points."""
    info = {}
    for name in shipped_models(root):
        meta = json.loads((root / name / "model.json").read_text())
        grid = meta.pop("energy_ev")
        info[name] = {"name": name, **meta, "energy_range_ev": [grid[0], grid[-1]]}
    return info


def model_folder(model: str | Path, root: Path = SHIPPED_MODELS) -> Path:
    """The folder of ``model``: a folder as given, else the shipped model of that name;
    :class:`ModelError` naming the shipped ones otherwise."""
    folder = Path(model)
    if folder.is_dir():
        return folder
    if str(model) in shipped_models(root):
        return root / str(model)
    shipped = ", ".join(shipped_models(root)) or "none"
    raise ModelError(
        f"{model}: no such model folder and no shipped XANES model of that name (shipped: {shipped}); "
        "train one with 'specml xanes train'"
    )


def absorber_sites(atoms, absorber: str) -> list[int]:
    """Indices of the ``absorber`` atoms; :class:`InputError` when there is none."""
    sites = [i for i, symbol in enumerate(atoms.get_chemical_symbols()) if symbol == absorber]
    if not sites:
        raise InputError(
            f"the structure has no {absorber} atom ({atoms.get_chemical_formula()}); the model is for {absorber}"
        )
    return sites


def dataset_descriptors(
    dataset, settings: DescriptorSettings, on_structure: Callable[[], None] | None = None
) -> np.ndarray:
    """Descriptor of every spectrum's absorbing site, computed once per structure."""
    out = np.zeros((len(dataset), settings.size))
    for structure in np.unique(dataset.structure_index):
        rows = np.flatnonzero(dataset.structure_index == structure)
        out[rows] = site_descriptors(dataset.structures[structure], dataset.site_index[rows], settings)
        if on_structure is not None:
            on_structure()
    return out


def dataset_shells(dataset) -> np.ndarray:
    """``[coordination number, first-shell distance (Å)]`` of every spectrum's site."""
    from specml.xanes.analysis import first_shell

    return np.array([first_shell(*dataset.site(row)) for row in range(len(dataset))], dtype=float)


@dataclass
class XanesModel:
    """A trained (or partly trained) XANES model; see the module docstring."""

    folder: Path
    descriptor: DescriptorSettings
    energy: np.ndarray
    absorber: str
    elements: list[str]
    edge_ev: float
    ensembles: dict[str, Ensemble]
    #: Lowest and highest ``[CN, first-shell distance]`` among the training sites (None if unknown).
    shell_range: tuple[np.ndarray, np.ndarray] | None = None
    #: Factor per :data:`~specml.xanes.analysis.MEMBER_POSITIONS` entry that calibrates the
    #: members' spread of that position (None: not calibrated, the raw spread is reported).
    position_std_scale: dict[str, float] | None = None

    # -- loading ------------------------------------------------------------------------------
    @classmethod
    def load(cls, model: str | Path) -> XanesModel:
        """The model in folder ``model``, or the shipped model of that name (:func:`model_folder`)."""
        folder = model_folder(model)
        meta_path = folder / "model.json"
        if not meta_path.is_file():
            raise ModelError(
                f"{folder}: no XANES model here (model.json is missing); train one with 'specml xanes train'"
            )
        meta = json.loads(meta_path.read_text())
        ensembles = {
            part: Ensemble.load(folder / part) for part in PARTS if (folder / part / "scalers.npz").is_file()
        }
        return cls(
            folder=folder,
            descriptor=DescriptorSettings(**meta["descriptor"]),
            energy=np.asarray(meta["energy_ev"], dtype=float),
            absorber=meta["absorber"],
            elements=list(meta["elements"]),
            edge_ev=float(meta["edge_ev"]),
            ensembles=ensembles,
            shell_range=_shell_range(folder / "features.npz", meta),
            position_std_scale=_position_std_scale(folder / POSITIONS_FILE),
        )

    def _ensemble(self, part: str) -> Ensemble:
        ensemble = self.ensembles.get(part)
        if ensemble is None or not ensemble.complete:
            raise ModelError(
                f"{self.folder}: the {part} ensemble is not fully trained; rerun 'specml xanes train' to finish it"
            )
        return ensemble

    # -- forward ------------------------------------------------------------------------------
    def check_structure(self, atoms) -> list[int]:
        """The absorber sites of ``atoms``; errors for no absorber or elements never trained on."""
        sites = absorber_sites(atoms, self.absorber)
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(self.elements))
        if unknown:
            raise UnsupportedElementError(
                f"element(s) {', '.join(unknown)} were not in the training set of this model", unknown
            )
        return sites

    def checked_sites(self, atoms, sites=None) -> list[int]:
        """The absorber ``sites`` (default: all) of ``atoms``, after :meth:`check_structure`;
        :class:`InputError` for a site that is not an absorber atom."""
        all_sites = self.check_structure(atoms)
        sites = all_sites if sites is None else [int(s) for s in np.atleast_1d(sites)]
        wrong = [s for s in sites if s not in all_sites]
        if wrong:
            raise InputError(
                f"site {wrong[0]} is not a {self.absorber} atom; {self.absorber} sites: {_listed(all_sites)}"
            )
        return sites

    def site_descriptors(self, atoms, sites=None) -> np.ndarray:
        """The descriptors of the absorber ``sites`` (default: all), one row each."""
        return site_descriptors(atoms, self.checked_sites(atoms, sites), self.descriptor)

    def predict_sites(self, atoms, sites=None) -> tuple[np.ndarray, np.ndarray]:
        """μ mean and std, shape (n_sites, n_energy), at the absorber ``sites`` (default: all)."""
        return self._ensemble("forward").predict(self.site_descriptors(atoms, sites))

    def unlike_training(self, descriptors: np.ndarray) -> list[str]:
        """A caution when a site's descriptor leaves the range the training sites span (by more
        than :data:`OUTSIDE_MARGIN` of it) in any entry: the forward model clips such entries, so
        its spectrum is an extrapolation, whatever its std says."""
        forward = self._ensemble("forward")
        if forward.x_min is None or forward.x_max is None:
            return []
        counts = _beyond_range(descriptors, forward.x_min, forward.x_max).sum(1)
        if not counts.any():
            return []
        return [
            f"{int(counts.max())} of {descriptors.shape[1]} descriptor entries of "
            f"{'a site' if len(counts) > 1 else 'the site'} lie outside the training sites' range: "
            "its environment is unlike any training site, so the spectrum is an extrapolation"
        ]

    def predict(self, atoms, site: int | None = None) -> Spectrum:
        """The XANES of one site, or the average over all absorber sites (every atom counts once,
        which weights inequivalent sites by their multiplicity), with the ensemble's ±std.
        ``metadata["cautions"]`` says when a site is unlike the training sites
        (:meth:`unlike_training`)."""
        x = self.site_descriptors(atoms, None if site is None else [site])
        mean, std = self._ensemble("forward").predict(x)
        _, position_std = self.positions(x, average=True)
        # mean of the per-site stds: an upper bound of the std of the site average (the members'
        # errors at different sites may partly cancel in the average)
        metadata = {
            "axis": AXIS_RELATIVE,
            "kind": "xanes",
            "absorber": self.absorber,
            "site": "average" if site is None else int(site),
            "n_sites": int(mean.shape[0]),
            "model": str(self.folder),
            "label": f"{atoms.get_chemical_formula()} {self.absorber} K-edge (predicted)",
            "cautions": self.unlike_training(x),
            "position_std_ev": dict(zip(MEMBER_POSITIONS, position_std[0].tolist(), strict=True)),
            "position_std_calibrated": self.position_std_scale is not None,
        }
        return Spectrum(self.energy, mean.mean(0), std.mean(0), metadata)

    def positions(
        self, descriptors: np.ndarray, average: bool = False, calibrated: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Edge and first maximum (eV, :data:`~specml.xanes.analysis.MEMBER_POSITIONS`) of the
        predicted spectrum of each descriptor row (``average``: of their site average), and
        their std: the spread of the members' own positions, times the calibration factors when
        the model has them and ``calibrated``. Shape (n, 2) each (n = 1 with ``average``)."""
        members = self._ensemble("forward").predict_members(descriptors)
        if average:
            members = members.mean(1, keepdims=True)
        values = member_positions(self.energy, members.mean(0)[None])[0]
        spread = position_spread(member_positions(self.energy, members))
        if calibrated and self.position_std_scale is not None:
            spread = spread * np.array([self.position_std_scale[name] for name in MEMBER_POSITIONS])
        return values, spread

    def calibrate_positions(
        self, descriptors: np.ndarray, mu: np.ndarray, source: str = "held-out spectra"
    ) -> dict[str, float]:
        """Fit the factor per position that makes :data:`~specml.xanes.ensemble.CALIBRATION_QUANTILE`
        of the held-out errors (sites ``descriptors``, true spectra ``mu``) fall within the scaled
        std, as :meth:`~specml.xanes.ensemble.Ensemble.calibrate` does for μ; saved to
        ``positions.json`` with ``source``, what the held-out spectra were. A position missing
        from the truth or the prediction has no error and does not count."""
        from specml.workflow.state import atomic_write_json

        values, raw = self.positions(descriptors, calibrated=False)
        true = member_positions(self.energy, np.asarray(mu, dtype=float)[None])[0]
        ratio = np.abs(values - true) / np.maximum(raw, MIN_SCALE)
        counted = np.isfinite(ratio).sum(0)
        if counted.min() < 2:
            raise InputError(
                "calibrating the position std needs an ensemble of at least two members and at least two "
                "held-out spectra whose edge and first maximum are found in both the truth and the prediction"
            )
        self.position_std_scale = {
            name: float(np.nanquantile(ratio[:, k], CALIBRATION_QUANTILE))
            for k, name in enumerate(MEMBER_POSITIONS)
        }
        atomic_write_json(
            self.folder / POSITIONS_FILE,
            {
                "std_scale": self.position_std_scale,
                "coverage": CALIBRATION_QUANTILE,
                "n_spectra": dict(zip(MEMBER_POSITIONS, counted.tolist(), strict=True)),
                "source": source,
            },
        )
        return self.position_std_scale

    # -- inverse ------------------------------------------------------------------------------
    def on_grid(self, spectrum: Spectrum) -> np.ndarray:
        """μ of ``spectrum`` on the model grid. An absolute axis (metadata ``axis`` of
        :data:`AXIS_ABSOLUTE`, or energies above 1 keV) is first shifted so that its edge sits at
        ``edge_ev``. :class:`InputError` when the spectrum does not cover the grid."""
        from specml.xanes.analysis import edge_position

        energy = spectrum.wavenumber
        absolute = spectrum.metadata.get("axis") == AXIS_ABSOLUTE or energy[0] > 1000.0
        if absolute:
            energy = energy - edge_position(energy, spectrum.intensity) + self.edge_ev
        lo, hi = self.energy[0], self.energy[-1]
        if energy[0] > lo + 1e-6 or energy[-1] < hi - 1e-6:
            raise InputError(
                f"{spectrum.label}: spectrum off the grid: it covers {energy[0]:.1f} to {energy[-1]:.1f} eV "
                f"about the edge, the model needs {lo:.1f} to {hi:.1f} eV"
            )
        return np.interp(self.energy, energy, spectrum.intensity)

    def invert(self, spectrum: Spectrum) -> dict:
        """Local structure from a spectrum: coordination number, first-shell distance (Å) and
        descriptor, each as mean and standard deviation over the ensemble."""
        mu = self.on_grid(spectrum)[None, :]
        shell_mean, shell_std = self._ensemble("inverse_shell").predict(mu)
        desc_mean, desc_std = self._ensemble("inverse_descriptor").predict(mu)
        return {
            "coordination_number": float(shell_mean[0, 0]),
            "coordination_number_std": float(shell_std[0, 0]),
            "coordination_number_rounded": int(np.clip(np.rint(shell_mean[0, 0]), 1, None)),
            "first_shell_A": float(shell_mean[0, 1]),
            "first_shell_std_A": float(shell_std[0, 1]),
            "cautions": self._outside_training(shell_mean[0]),
            "descriptor": desc_mean[0].tolist(),
            "descriptor_std": desc_std[0].tolist(),
        }

    def _outside_training(self, shell: np.ndarray) -> list[str]:
        """Cautions for a CN or distance beyond the training sites' range (the spectrum is then
        probably unlike any training spectrum: an extrapolation, not a measurement)."""
        if self.shell_range is None:
            return []
        lo, hi = self.shell_range
        cautions = []
        for value, low, high, beyond, name, unit in zip(
            shell,
            lo,
            hi,
            _beyond_range(shell, lo, hi),
            ("coordination number", "first-shell distance"),
            ("", " Å"),
            strict=True,
        ):
            if beyond:
                cautions.append(
                    f"{name} {value:.2f}{unit} is outside the training range {low:.2f}-{high:.2f}{unit}: "
                    "the spectrum is unlike the training spectra; do not trust this inversion"
                )
        return cautions


def _beyond_range(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Where ``values`` lie beyond ``low``-``high`` by more than :data:`OUTSIDE_MARGIN` of the
    range (a NaN counts as beyond): the one rule for descriptors and for inverted shells."""
    margin = OUTSIDE_MARGIN * (high - low)
    return ~((values >= low - margin) & (values <= high + margin))


def _shell_range(path: Path, meta: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """Lowest and highest training ``[CN, distance]``: from the training cache, else (a shipped
    model, which has none) from ``model.json``."""
    if path.is_file():
        with np.load(path) as cached:
            shells = cached["shells"]
        return shells.min(0), shells.max(0)
    if "shell_range" in meta:
        low, high = meta["shell_range"]
        return np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    return None


def _position_std_scale(path: Path) -> dict[str, float] | None:
    if not path.is_file():
        return None
    return {name: float(f) for name, f in json.loads(path.read_text())["std_scale"].items()}


def ship_model(folder: str | Path, target: str | Path, provenance: dict, dtype=np.float16) -> Path:
    """Copy the trained model in ``folder`` to ``target`` (replacing what is there) for shipping: ``model.json`` with the
    training sites' CN and distance range and ``provenance`` added, each ensemble's scalers,
    settings and calibration, and its members' weights as ``dtype``. The descriptor cache of
    training (``features.npz``, megabytes) stays behind.

    float16 halves the size of float32; it changes μ by about 10⁻⁴ (measured in
    ``benchmarks/xanes.py --ship``), far below the model's own error.
    """
    import shutil

    from specml.workflow.state import atomic_write_json

    model = XanesModel.load(folder)
    for part in PARTS:
        model._ensemble(part)  # every ensemble complete, or ModelError
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    meta = json.loads((model.folder / "model.json").read_text())
    if model.shell_range is not None:
        meta["shell_range"] = [model.shell_range[0].tolist(), model.shell_range[1].tolist()]
    meta["provenance"] = provenance
    for part in PARTS:
        source, destination = model.folder / part, target / part
        destination.mkdir(parents=True)
        for name in ("scalers.npz", "ensemble.json", "calibration.json"):
            if (source / name).is_file():
                shutil.copy2(source / name, destination / name)
        for k, member in enumerate(model.ensembles[part].members):
            member.save(destination / f"member_{k:03d}.npz", dtype=dtype)
    if (model.folder / POSITIONS_FILE).is_file():
        shutil.copy2(model.folder / POSITIONS_FILE, target / POSITIONS_FILE)
    atomic_write_json(target / "model.json", meta)
    return target


def _listed(sites: list[int]) -> str:
    shown = ", ".join(str(s) for s in sites[:10])
    return shown + (", ..." if len(sites) > 10 else "")


def _advance(progress, task, _member: int) -> None:
    progress.advance(task)


def train_xanes(
    dataset,
    folder: str | Path,
    descriptor: DescriptorSettings | None = None,
    ensemble: EnsembleSettings | None = None,
    absorber: str = "Cu",
    show_progress: bool = True,
    calibration=None,
) -> XanesModel:
    """Train the three ensembles on ``dataset`` into ``folder``, resuming what is there.

    ``calibration``: a held-out dataset (the val split) on which each ensemble's std factor is
    fitted after training (:meth:`~specml.xanes.ensemble.Ensemble.calibrate`), and the factors of
    the edge and first-maximum std (:meth:`XanesModel.calibrate_positions`).

    Descriptors and first-shell targets are cached in ``folder/features.npz``; each ensemble
    member is saved as it finishes. Rerunning with the same settings continues; other settings
    in a used folder are refused (:class:`ModelError`).
    """
    from specml.executor import progress_bar
    from specml.xanes.analysis import edge_position

    descriptor = descriptor or DescriptorSettings()
    ensemble = ensemble or EnsembleSettings()
    folder = Path(folder)
    if len(dataset) < 2:
        raise InputError("training needs at least two spectra")
    meta = {
        "absorber": absorber,
        "descriptor": descriptor.as_dict(),
        "ensemble": ensemble.as_dict(),
        "energy_ev": np.asarray(dataset.energy, dtype=float).tolist(),
        "elements": sorted(
            {
                s
                for i in np.unique(dataset.structure_index)
                for s in dataset.structures[i].get_chemical_symbols()
            }
        ),
        "edge_ev": float(np.median([edge_position(dataset.energy, mu) for mu in dataset.mu])),
        "n_train": len(dataset),
    }
    meta_path = folder / "model.json"
    if meta_path.is_file():
        if json.loads(meta_path.read_text()) != json.loads(json.dumps(meta)):
            raise ModelError(f"{folder} holds a model trained on other data or settings; choose a new folder")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        meta_path.write_text(json.dumps(meta, indent=1))

    with progress_bar(disable=not show_progress) as progress:
        features_path = folder / "features.npz"
        if features_path.is_file():
            with np.load(features_path) as cached:
                x, shells = cached["descriptors"], cached["shells"]
        else:
            structures = len(np.unique(dataset.structure_index))
            task = progress.add_task("descriptors", total=structures)
            x = dataset_descriptors(dataset, descriptor, lambda: progress.advance(task))
            shells = dataset_shells(dataset)
            np.savez(features_path, descriptors=x, shells=shells)
        mu = np.asarray(dataset.mu, dtype=float)
        pairs = {"forward": (x, mu), "inverse_descriptor": (mu, x), "inverse_shell": (mu, shells)}
        for part in PARTS:
            inputs, targets = pairs[part]
            part_folder = folder / part
            if (part_folder / "scalers.npz").is_file():
                model = Ensemble.load(part_folder, ensemble)
            else:
                # descriptors are clipped to their training range, spectra are not (ensemble.py)
                model = Ensemble.for_data(inputs, targets, ensemble, clip_inputs=part == "forward")
            task = progress.add_task(part, total=ensemble.members, completed=len(model.members))
            model.fit(inputs, targets, part_folder, on_member=partial(_advance, progress, task))
        if calibration is not None:
            task = progress.add_task("calibration", total=None)
            x_held, mu_held = (
                dataset_descriptors(calibration, descriptor),
                np.asarray(calibration.mu, dtype=float),
            )
            held_out = {
                "forward": (x_held, mu_held),
                "inverse_descriptor": (mu_held, x_held),
                "inverse_shell": (mu_held, dataset_shells(calibration)),
            }
            for part in PARTS:
                Ensemble.load(folder / part).calibrate(*held_out[part], folder / part)
            try:  # one member has no spread, a few held-out spectra may lack a position
                XanesModel.load(folder).calibrate_positions(x_held, mu_held, POSITIONS_SOURCE)
            except InputError:
                pass  # predictions then report the raw spread, marked uncalibrated
            progress.update(task, total=1, completed=1)
    return XanesModel.load(folder)
