"""Settings of the active-learning IR workflow. Defaults follow the PALIRS paper
except where a CPU needs smaller numbers (marked); every number is a setting."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from specml import checks
from specml.errors import InputError

# Settings by the check they must pass (units in the names); see WorkflowConfig.check.
_TEMPERATURES = ("sampling_temperature_k", "production_temperature_k")
_POSITIVE = ("timestep_fs", "uncertainty_stop", "production_ps", "max_correlation_fs", "test_md_ps")
_NON_NEGATIVE = (
    "exploration_friction_per_fs",
    "target_harmonic_mae_cm1",
    "thermalization_ps",
    "production_friction_per_fs",
)
_COUNTS = (
    "n_committee",
    "warm_start_epochs",
    "n_per_mode",
    "exploration_steps",
    "exploration_record_interval",
    "n_select_per_temperature",
    "n_trajectories",
    "dipole_record_interval",
    "test_md_replicas",
    "test_frames",
    "test_clusters",
    "test_per_cluster",
    "production_beads",
)

#: More beads than this is a mistyped option: 32 converge X-H stretches at 300 K.
MAX_BEADS = 512


@dataclass(frozen=True)
class WorkflowConfig:
    # reference and models
    reference: str = "xtb"
    model_preset: str = "default"  # CPU-sized; "paper" = 128 channels, L=1, r 3.0 Å, 2 layers
    model_epochs: int | None = None  # None: the model preset's own number of epochs
    n_committee: int = 3
    committee_seeds: tuple[int, ...] = (0, 1, 2)
    train_precision: str = "float32"
    warm_start: bool = False  # the paper retrains from scratch every iteration
    warm_start_epochs: int = 100  # epochs of each fine-tuning when warm_start (iteration 0 is from scratch)
    # Train the members in one fit, stacked into one vmapped model: less compute per step
    # (docs/results/training-cost.md); they then share one batch order and learning-rate schedule.
    stacked_committee: bool = False
    # 1. initial data
    n_per_mode: int = 10
    sampling_temperature_k: float = 500.0
    # 3. active learning
    temperatures_k: tuple[float, ...] = (300.0, 500.0, 700.0)
    exploration_steps: int = 2000  # per temperature and iteration (1 ps at 0.5 fs)
    timestep_fs: float = 0.5
    exploration_friction_per_fs: float = 0.01
    exploration_record_interval: int = 10
    n_select_per_temperature: int = 5
    uncertainty_stop: float = 0.5
    target_harmonic_mae_cm1: float = 5.0
    max_iterations: int = 12
    # Stop once this many iterations in a row have not lowered the best harmonic MAE (0: never).
    # An expensive reference pays minutes per label; on a plateau they buy nothing measurable.
    stall_iterations: int = 4
    # 5. production
    production_temperature_k: float = 300.0
    n_trajectories: int = 3
    thermalization_ps: float = 5.0
    production_ps: float = 50.0
    production_friction_per_fs: float = 0.001
    dipole_record_interval: int = 2  # 1 fs between dipoles: Nyquist 16,700 cm-1
    max_correlation_fs: float = 1000.0
    md_precision: str = "float32"
    # Beads per molecule in production MD: 1 classical nuclei; more, thermostatted ring-polymer
    # MD (quantum nuclei, specml.dynamics.ring_polymer): 16 at 300 K for X-H stretches
    # (docs/quantum-nuclei.md#how-many-beads).
    production_beads: int = 1
    raman: bool = False  # also label polarizabilities, train a polarizability model, write Raman spectra
    # 6. test set
    test_md_ps: float = 100.0  # per molecule, split over test_md_replicas independent replicas
    test_md_replicas: int = 4  # batched together: same sampled time, a quarter of the wall time
    test_frames: int = 2000
    test_clusters: int = 5
    test_per_cluster: int = 4
    run_test_set: bool = True
    # spectra range
    spectrum_range_cm1: tuple[float, float] = (400.0, 4000.0)
    seed: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def production_steps(self) -> int:
        return int(round(self.production_ps * 1000.0 / self.timestep_fs))

    @property
    def thermalization_steps(self) -> int:
        return int(round(self.thermalization_ps * 1000.0 / self.timestep_fs))

    def with_overrides(self, **overrides) -> WorkflowConfig:
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise InputError(f"unknown workflow setting(s): {', '.join(sorted(unknown))}")
        clean: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None
        }
        return replace(self, **clean)

    def check(self) -> WorkflowConfig:
        """This config if every setting is in its range, else :class:`InputError` naming the first that is not:
        temperatures in (0, 10000] K, times, steps and widths > 0, frictions >= 0, counts >= 1."""
        checks.temperatures("temperatures_k", self.temperatures_k)
        for name in _TEMPERATURES:
            checks.temperature(name, getattr(self, name))
        for name in _POSITIVE:
            checks.positive(name, getattr(self, name))
        for name in _NON_NEGATIVE:
            checks.non_negative(name, getattr(self, name))
        for name in _COUNTS:
            checks.count(name, getattr(self, name))
        checks.count("max_iterations", self.max_iterations, minimum=0)
        checks.count("stall_iterations", self.stall_iterations, minimum=0)
        if self.model_epochs is not None:
            checks.count("model_epochs", self.model_epochs)
        checks.wavenumber_range("spectrum_range_cm1", *self.spectrum_range_cm1)
        if self.production_beads > MAX_BEADS:
            raise InputError(f"production_beads must be at most {MAX_BEADS}, not {self.production_beads}")
        if self.raman and self.production_beads > 1:
            raise InputError(
                "Raman spectra come from classical production MD; use production_beads 1 with raman"
            )
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_dict(cls, data: dict) -> WorkflowConfig:
        return cls().with_overrides(**data)


#: Settings that only decide when the active-learning loop stops: a run may resume with new
#: values as long as its loop has not ended (nothing computed depends on them).
STOPPING_SETTINGS = ("max_iterations", "target_harmonic_mae_cm1", "stall_iterations")

#: Settings that choose another production spectrum of the same models, stored in its own folder
#: (:func:`specml.workflow.state.temperature_folder`): a finished run may be rerun with them.
SEPARATELY_STORED_SETTINGS = ("production_beads",)

#: Settings of the test-set stage: they may change until its structures are chosen, since
#: nothing computed before depends on them.
TEST_SET_SETTINGS = ("test_md_ps", "test_md_replicas", "test_frames", "test_clusters", "test_per_cluster")


#: Named settings. "ci" is for tests: tiny models, very short MD (minutes in total).
WORKFLOW_PRESETS: dict[str, WorkflowConfig] = {
    "default": WorkflowConfig(),
    "paper": WorkflowConfig(model_preset="paper", max_iterations=40, stall_iterations=0),
    # A first look in about ten minutes on a laptop-class CPU: fewer displacements, epochs and
    # iterations, 3 x 10 ps production. Use "default" for results. 60 epochs, not 30: on methanol
    # with three committee seed sets the harmonic MAE was 25-30 cm-1 against 56-103, for about
    # 75 s more training (benchmarks/quick_preset_epochs.py).
    "quick": WorkflowConfig(
        model_epochs=60,
        n_per_mode=4,
        exploration_steps=1000,
        max_iterations=2,
        thermalization_ps=1.0,
        production_ps=10.0,
        test_md_ps=5.0,
        test_frames=200,
    ),
    "ci": WorkflowConfig(
        model_preset="tiny",
        n_per_mode=4,
        temperatures_k=(300.0, 600.0),
        exploration_steps=200,
        exploration_record_interval=5,
        n_select_per_temperature=3,
        max_iterations=1,
        target_harmonic_mae_cm1=0.0,
        n_trajectories=2,
        thermalization_ps=0.05,
        production_ps=1.0,
        max_correlation_fs=200.0,
        test_md_ps=0.5,
        test_frames=40,
        test_clusters=2,
        test_per_cluster=2,
    ),
}


def get_workflow_config(name: str = "default", **overrides) -> WorkflowConfig:
    """The settings of preset ``name`` with ``overrides`` (None values ignored), checked (:meth:`WorkflowConfig.check`)."""
    if name not in WORKFLOW_PRESETS:
        raise InputError(f"unknown workflow preset {name!r}; choose one of {', '.join(WORKFLOW_PRESETS)}")
    return WORKFLOW_PRESETS[name].with_overrides(**overrides).check()
