"""A bootstrap ensemble of small multilayer perceptrons: mean ± standard deviation, resumable.

Each member is a scikit-learn ``MLPRegressor`` fitted on a bootstrap resample of the (scaled)
training rows with its own seed; the spread of the members is the model's uncertainty. A fitted
member is kept as its weights (:class:`Network`), not as a pickle: a weight file loads without
running code and with any scikit-learn version, which a model shipped with specml needs. Inputs
and outputs are standardised per column with the full training set's mean and standard
deviation. On request (``clip_inputs``, the forward model's descriptors) inputs are clipped
to the range each column spans in training before they are scaled: a column that is nearly
constant in training (a rare neighbour element at a rare distance) would otherwise put an
unusual site thousands of standard deviations out, where the networks' output is meaningless.
Spectra (the inverse models' inputs) are not clipped: a measured white line above every FEFF
one is information, not an artefact. Each member's weights are written to the ensemble's folder
as it finishes (``member_NNN.npz``), so an interrupted training resumes at the first missing
member.

The members' spread is usually too narrow (they share the data and the architecture).
:meth:`Ensemble.calibrate` fits one factor per output column on held-out data. The factor makes
68.3 % of the held-out errors fall within the scaled std, as for a Gaussian. It is stored in
``calibration.json`` and applied by :meth:`Ensemble.predict`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from specml.errors import InputError, ModelError

#: Share of held-out errors that the calibrated std covers (one Gaussian standard deviation).
CALIBRATION_QUANTILE = 0.683
#: Columns whose spread is below this are not scaled (a constant descriptor entry).
MIN_SCALE = 1e-8


@dataclass(frozen=True)
class EnsembleSettings:
    """Size and training of an ensemble.

    Attributes:
        members: number of networks.
        hidden: widths of the hidden layers.
        epochs: most passes over the data (Adam; stops earlier when the held-out score stalls).
        learning_rate: Adam's step size.
        alpha: L2 penalty.
        bootstrap: resample the rows for each member (else only the seeds differ).
        seed: seed of the first member (member k uses seed + k).
    """

    members: int = 5
    hidden: tuple[int, ...] = (128, 128)
    epochs: int = 200
    learning_rate: float = 1e-3
    alpha: float = 1e-4
    bootstrap: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.members < 1 or self.epochs < 1 or not self.hidden or min(self.hidden) < 1:
            raise InputError(
                "an ensemble needs at least one member, one epoch and hidden layers of width >= 1"
            )
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))

    def as_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden)}


@dataclass(frozen=True)
class Network:
    """A fitted ``MLPRegressor`` as its weights: ReLU hidden layers and a linear output.

    The forward pass is written out (a matrix product per layer) because scikit-learn has no
    portable format for its networks: pickles run code when loaded and are tied to the version
    that wrote them.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    @classmethod
    def from_sklearn(cls, network) -> Network:
        if network.activation != "relu" or network.out_activation_ != "identity":
            raise ModelError(
                f"only ReLU regressors are stored as weights, got {network.activation}/{network.out_activation_}"
            )
        return cls(_float32(network.coefs_), _float32(network.intercepts_))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs, shape (n, n_outputs), for scaled inputs ``x`` of shape (n, n_inputs)."""
        for weight, bias in zip(self.weights[:-1], self.biases[:-1], strict=True):
            x = np.maximum(x @ weight + bias, 0.0)
        return x @ self.weights[-1] + self.biases[-1]

    def save(self, path: Path, dtype=np.float32) -> None:
        """Write the weights as ``dtype`` (float32, the precision they are used in; a shipped
        model may use float16, see :func:`~specml.xanes.models.ship_model`)."""
        from specml.workflow.state import atomic_write_npz

        arrays = {f"weight_{k}": w.astype(dtype) for k, w in enumerate(self.weights)}
        arrays.update({f"bias_{k}": b.astype(dtype) for k, b in enumerate(self.biases)})
        atomic_write_npz(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> Network:
        with np.load(path) as stored:
            layers = sum(1 for name in stored.files if name.startswith("weight_"))
            return cls(
                _float32(stored[f"weight_{k}"] for k in range(layers)),
                _float32(stored[f"bias_{k}"] for k in range(layers)),
            )


def _float32(arrays) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(a, dtype=np.float32) for a in arrays)


def _load_member(folder: Path, k: int) -> Network | None:
    """Member ``k`` of ``folder``: its weight file, else a scikit-learn pickle of an older specml
    (``member_NNN.joblib``, converted), else None."""
    path = folder / f"member_{k:03d}.npz"
    if path.is_file():
        return Network.load(path)
    legacy = folder / f"member_{k:03d}.joblib"
    if legacy.is_file():
        import joblib

        return Network.from_sklearn(joblib.load(legacy))
    return None


@dataclass
class Ensemble:
    """Scalers and fitted members of one map ``x -> y``."""

    settings: EnsembleSettings
    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: np.ndarray
    y_scale: np.ndarray
    members: list[Network] = field(default_factory=list)
    #: Factor per output column applied to the members' std (1 until :meth:`calibrate`).
    std_scale: np.ndarray | None = None
    #: Lowest and highest training input per column (None: no clipping, folders from before).
    x_min: np.ndarray | None = None
    x_max: np.ndarray | None = None

    @classmethod
    def for_data(cls, x, y, settings: EnsembleSettings, clip_inputs: bool = False) -> Ensemble:
        """Scalers for ``x -> y`` (members not trained yet); ``clip_inputs``: clip inputs to the
        training range at prediction."""
        x, y = _matrix(x, "inputs"), _matrix(y, "targets")
        if x.shape[0] != y.shape[0]:
            raise InputError(f"{x.shape[0]} input rows but {y.shape[0]} target rows")
        if x.shape[0] < 2:
            raise InputError("an ensemble needs at least two training rows")
        ranges = {"x_min": x.min(0), "x_max": x.max(0)} if clip_inputs else {}
        return cls(settings, x.mean(0), _scale(x), y.mean(0), _scale(y), **ranges)

    def predict_members(self, x) -> np.ndarray:
        """Every member's prediction, shape (n_members, n, n_outputs)."""
        if not self.members:
            raise ModelError("the ensemble has no trained member")
        x = _matrix(x, "inputs")
        if x.shape[1] != self.x_mean.size:
            raise ModelError(f"the model takes {self.x_mean.size} input values, got {x.shape[1]}")
        if self.x_min is not None:
            x = np.clip(x, self.x_min, self.x_max)
        scaled = (x - self.x_mean) / self.x_scale
        outputs = np.stack([m.predict(scaled).reshape(len(x), -1) for m in self.members])
        return outputs * self.y_scale + self.y_mean

    def predict(self, x, calibrated: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation over the members, shape (n, n_outputs) each; the std is
        multiplied by the calibration factor unless ``calibrated`` is False."""
        outputs = self.predict_members(x)
        std = outputs.std(0)
        if calibrated and self.std_scale is not None:
            std = std * self.std_scale
        return outputs.mean(0), std

    def calibrate(self, x, y, folder: str | Path | None = None) -> np.ndarray:
        """Fit the std factor per output on held-out ``x``, ``y`` (saved to ``folder``)."""
        y = _matrix(y, "targets")
        mean, std = self.predict(x, calibrated=False)
        ratio = np.abs(mean - y) / np.maximum(std, MIN_SCALE)
        self.std_scale = np.quantile(ratio, CALIBRATION_QUANTILE, axis=0)
        if folder is not None:
            (Path(folder) / "calibration.json").write_text(json.dumps({"std_scale": self.std_scale.tolist()}))
        return self.std_scale

    def fit(
        self, x, y, folder: str | Path | None = None, on_member: Callable[[int], None] | None = None
    ) -> Ensemble:
        """Train the missing members (all, without ``folder``), saving each to ``folder``."""
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        x, y = _matrix(x, "inputs"), _matrix(y, "targets")
        xs, ys = (x - self.x_mean) / self.x_scale, (y - self.y_mean) / self.y_scale
        if folder is not None:
            self.save_scalers(folder)
        while len(self.members) < self.settings.members:
            k = len(self.members)
            seed = self.settings.seed + k
            rows = np.arange(len(x))
            if self.settings.bootstrap:
                rows = np.random.default_rng(seed).integers(0, len(x), len(x))
            network = MLPRegressor(
                hidden_layer_sizes=self.settings.hidden,
                learning_rate_init=self.settings.learning_rate,
                alpha=self.settings.alpha,
                max_iter=self.settings.epochs,
                early_stopping=len(x) >= 50,
                n_iter_no_change=20,
                random_state=seed,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                network.fit(xs[rows], ys[rows] if ys.shape[1] > 1 else ys[rows, 0])
            member = Network.from_sklearn(network)
            self.members.append(member)
            if folder is not None:
                member.save(Path(folder) / f"member_{k:03d}.npz")
            if on_member is not None:
                on_member(k)
        return self

    # -- persistence ------------------------------------------------------------------------
    def save_scalers(self, folder: str | Path) -> None:
        from specml.workflow.state import atomic_write_npz

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {
            "x_mean": self.x_mean,
            "x_scale": self.x_scale,
            "y_mean": self.y_mean,
            "y_scale": self.y_scale,
        }
        if self.x_min is not None and self.x_max is not None:  # the clipping range, when used
            arrays.update(x_min=self.x_min, x_max=self.x_max)
        atomic_write_npz(folder / "scalers.npz", **arrays)
        (folder / "ensemble.json").write_text(json.dumps(self.settings.as_dict(), indent=2))

    @classmethod
    def load(cls, folder: str | Path, settings: EnsembleSettings | None = None) -> Ensemble:
        """The ensemble in ``folder`` with the members finished so far; ``settings`` must match
        the stored ones when given (resuming with other settings would mix two ensembles)."""
        folder = Path(folder)
        if not (folder / "scalers.npz").is_file() or not (folder / "ensemble.json").is_file():
            raise ModelError(f"{folder}: not an ensemble folder (no scalers.npz / ensemble.json)")
        stored = json.loads((folder / "ensemble.json").read_text())
        stored_settings = EnsembleSettings(**{**stored, "hidden": tuple(stored["hidden"])})
        if settings is not None and settings != stored_settings:
            raise ModelError(f"{folder} holds an ensemble trained with other settings; use a new folder")
        with np.load(folder / "scalers.npz") as scalers:
            ranges = {key: scalers[key] for key in ("x_min", "x_max") if key in scalers.files}
            ensemble = cls(
                stored_settings,
                scalers["x_mean"],
                scalers["x_scale"],
                scalers["y_mean"],
                scalers["y_scale"],
                **ranges,
            )
        for k in range(stored_settings.members):
            member = _load_member(folder, k)
            if member is None:
                break
            ensemble.members.append(member)
        calibration = folder / "calibration.json"
        if calibration.is_file():
            ensemble.std_scale = np.asarray(json.loads(calibration.read_text())["std_scale"], dtype=float)
        return ensemble

    @property
    def complete(self) -> bool:
        return len(self.members) >= self.settings.members


def _matrix(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.size == 0:
        raise InputError(f"{name} must be a non-empty 2-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} contain non-finite values")
    return array


def _scale(values: np.ndarray) -> np.ndarray:
    scale = values.std(0)
    return np.where(scale > MIN_SCALE, scale, 1.0)
