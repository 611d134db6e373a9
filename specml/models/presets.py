"""Named hyper-parameter sets for the MACE potentials and dipole model.

``paper``
    The PALIRS setting: 128 channels with L=1 (hidden irreps 128x0e+128x1o),
    radial cutoff 3.0 Å, 2 interactions, correlation order 2.
``default``
    A smaller CPU setting: 32 channels, L=0, r_max 4.0 Å (see
    :data:`DEFAULT_PRESET_NOTE` for the measured trade-off on xTB methanol).
``tiny``
    For tests only: a few channels, L=0, one interaction, a handful of epochs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from e3nn import o3

from specml.errors import ModelError


@dataclass(frozen=True)
class ModelPreset:
    """Architecture and training hyper-parameters of one MACE model family.

    Units: ``r_max`` in Å; loss weights multiply MSEs of energy per atom
    (eV/atom)^2, forces (eV/Å)^2 and dipole per atom (e·Å/atom)^2.
    """

    name: str
    num_channels: int
    max_L: int
    r_max: float
    num_interactions: int
    correlation: int
    max_ell: int = 3
    num_radial_basis: int = 8
    num_cutoff_basis: int = 5
    radial_MLP: tuple[int, ...] = (64, 64, 64)
    MLP_irreps: str = "16x0e"
    epochs: int = 200
    #: Optimizer-step budget (None: no budget). When ``epochs`` would take more
    #: steps, training runs ceil(max_steps / steps per epoch) epochs instead, and
    #: the epoch-counted patiences shrink in the same ratio (see
    #: :func:`specml.models.training.epoch_budget`).
    max_steps: int | None = None
    batch_size: int = 8
    #: Draw each molecule's structures equally often (with replacement, one epoch = as many
    #: draws as training structures) instead of in proportion to their number. For data of
    #: several molecules, where a small molecule has few normal-mode labels and otherwise
    #: few visits (``benchmarks/committee_capacity.py``).
    balance_molecules: bool = False
    learning_rate: float = 0.01
    #: "plateau" (MACE's ReduceLROnPlateau, factor 0.8) or "cosine" (anneal to
    #: learning_rate * lr_min_factor by the last epoch).
    lr_schedule: str = "plateau"
    lr_min_factor: float = 0.01
    energy_weight: float = 1.0
    forces_weight: float = 100.0
    dipole_weight: float = 1.0
    #: MACE's "Stage Two" (``mace_run_train --stage_two``) for potentials trained on more
    #: than one molecule: the last ``stage_two_fraction`` of the epochs train with these
    #: loss weights at this learning rate. The high energy weight makes the model learn
    #: the energy offsets between molecules, which the force-dominated stage one leaves at
    #: hundreds of meV (0 disables it).
    stage_two_fraction: float = 0.0
    stage_two_energy_weight: float = 1000.0
    stage_two_forces_weight: float = 100.0
    stage_two_lr: float = 1e-3
    #: Exponential-moving-average decay of the weights (None disables EMA).
    ema_decay: float | None = 0.99
    #: Stop when the validation loss has not improved for this many epochs.
    patience: int = 50
    #: Max-norm gradient clipping, as in ``mace_run_train`` (None disables).
    clip_grad: float | None = 10.0
    valid_fraction: float = 0.2
    description: str = field(default="", compare=False)

    @property
    def hidden_irreps(self) -> o3.Irreps:
        """``num_channels`` copies of each irrep up to ``max_L`` (MACE's rule)."""
        return hidden_irreps(self.num_channels, self.max_L)

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["radial_MLP"] = list(self.radial_MLP)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelPreset:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ModelError(f"unknown preset fields {sorted(unknown)}")
        data = dict(data)
        if "radial_MLP" in data:
            data["radial_MLP"] = tuple(data["radial_MLP"])
        return cls(**data)


def hidden_irreps(num_channels: int, max_L: int) -> o3.Irreps:
    # Same construction as mace_run_train's --num_channels/--max_L options.
    return o3.Irreps((num_channels * o3.Irreps.spherical_harmonics(max_L)).sort().irreps.simplify())


DEFAULT_PRESET_NOTE = """\
Why ``default`` is 32 channels, L=0, r_max 4.0 Å, 2 interactions, max_ell 2:
measured on 120 GFN2-xTB methanol structures (0.1 Å rattle, mean |F| 2.8
eV/Å), 96 train / 24 valid, 20 epochs, float32, 1 CPU thread on a loaded
2-core machine; validation MAEs (energy meV/structure, forces meV/Å):

    setting                     s/epoch  E MAE  F MAE  ASE call/member
    32ch L=0 r4.0 (default)       0.64    109    160      15 ms
    32ch L=1 r4.0                 1.12     62    192      28 ms
    32ch L=1 r3.0                 1.14    160    206      25 ms
    64ch L=1 r4.0                 1.47    125    178      20 ms
    128ch L=1 r3.0 (paper)        2.71     76    170      40 ms

At this budget L=1 buys no force accuracy for 1.7-4x the cost, so the CPU
default is L=0 (as MACE-MP "small"); angular information still enters through
the l<=2 edge spherical harmonics and correlation order 2. The dipole model
always uses L>=1 features (AtomicDipolesMACE needs them). Use ``paper`` for
final production models when time allows.

Why 600 epochs (plateau schedule, lr 0.01, batch 8): on the 121 initial
normal-mode labels of xTB methanol, one member's validation force MAE and ML
harmonic-frequency MAE against xTB (single seed, float32) were

    200 epochs  14.6 meV/Å  23.7 cm-1   (previous default)
    600 epochs   8.6 meV/Å   9.2 cm-1
    400 epochs, cosine schedule        12.9 meV/Å  19.4 cm-1
    400 epochs, lr 0.03                11.7 meV/Å  14.0 cm-1
    200 epochs, float64 / batch 4 / forces weight 1000 / L=1 / 64 channels:
                13-18 meV/Å, 18-37 cm-1 (no better than the 200-epoch default)

so these models are limited by optimisation length, not capacity. The OH
torsion (373 cm-1) carries most of the error when undertrained. With 600
epochs on the 241 labels of a 9-iteration active-learning run, one member
reaches 4.3 cm-1 (10.3 meV/Å) with L=0 and 3.9 cm-1 (6.7 meV/Å) with L=1 at
1.4x the training time. All runs: ``benchmarks/training_recipe.py``, results in
``docs/results/training_recipe.jsonl``.

Why a budget of 20,000 optimizer steps: 600 epochs is 7,800-12,000 steps on
the 121-196 labels of a methanol run (the budget does not bind there), but
about 226,000 steps (some 4 h per model on one core) on the 3,770 initial
labels of the 24-molecule benchmark, where each epoch already holds 376
steps. There the budget means 54 epochs (20,304 steps); the first member took
41 min (77-109 ms per step, sharing its core with the reference MD).

Why Stage Two (the last 25 % of the epochs at energy weight 1000, lr 1e-3, as
``mace_run_train --stage_two``): trained on forces-dominated loss alone, the
first committee of the 24-molecule benchmark had a validation energy MAE of
223 meV, and the error was a constant offset per molecule (-513 to +489 meV,
within-molecule spread 0.4-64 meV): the E0 fit absorbs composition, not the
energy differences between molecules, and the force term drowns the rest. On
ethanol + dimethyl ether (isomers), tiny model, 150 epochs, the offset
difference fell from 726 to 62 meV with Stage Two, with forces 136 -> 145 meV/Å
(``tests/test_models.py``). MD and spectra use forces only, so Stage Two is
about sound energies (Table 1 of the benchmark) rather than spectra. It runs
only for data of more than one molecule: for one molecule the E0 fit absorbs
the offset, and on the quick methanol main job (30 epochs) Stage Two raised
the harmonic MAE from 44 to 68 cm-1 and lowered the PCC against NIST from
0.83 to 0.53.
"""

SHARED_PRESET_NOTE = """\
Why ``shared`` is ``default`` with a 60,000-step budget: one potential trained
on the 3,794 iteration-0 labels of the 24 train24 molecules (GFN2-xTB, seed 0,
float32, one thread, 2-3 fits at a time on 2 shared cores), harmonic MAE against
xTB averaged over the 24 molecules (benchmarks/committee_capacity.py,
docs/results/committee_capacity.jsonl):

    setting (default unless named)     steps   min   F MAE  harmonic MAE
    default                            20,520   14   18.9   28.0 cm-1
    default, seed 1                    20,520   17   19.8   32.4
    max_steps 60,000                   60,800   43   13.1   19.8
    max_L 1                            20,520   28   17.0   23.6
    64 channels                        20,520   18   17.0   27.5
    cosine schedule, no Stage Two      20,520   13   17.5   27.3
    molecules sampled equally often    20,520   19   20.8   29.0
    batch 32                            6,080   11   22.6   35.9

The budget binds (3x the steps: -29 %, well beyond the 28.0-32.4 spread of
two seeds); at equal cost L=1 gains about as much as more steps; width,
schedule and balance stay within the seed spread. The error sits in
torsions and bends: modes below 1000 cm-1 are off by 50 cm-1 on average,
1000-2000 cm-1 by 22 and stretches by 17 (ethylene's C=C twist: 426 against
1021 cm-1). 3x the steps triples the training of each iteration (about 40 min
per model on one core).
"""

PRESETS: dict[str, ModelPreset] = {
    "paper": ModelPreset(
        name="paper",
        num_channels=128,
        max_L=1,
        r_max=3.0,
        num_interactions=2,
        correlation=2,
        stage_two_fraction=0.25,
        description="PALIRS: 128x0e+128x1o, r_cut 3.0 Å, 2 interactions, correlation 2",
    ),
    "default": ModelPreset(
        name="default",
        num_channels=32,
        max_L=0,
        r_max=4.0,
        num_interactions=2,
        correlation=2,
        max_ell=2,
        radial_MLP=(32, 32),
        epochs=600,
        max_steps=20_000,
        patience=200,
        stage_two_fraction=0.25,
        description="CPU setting: 32x0e, r_max 4.0 Å, 2 interactions (see DEFAULT_PRESET_NOTE)",
    ),
    "tiny": ModelPreset(
        name="tiny",
        num_channels=16,
        max_L=0,
        r_max=4.0,
        num_interactions=1,
        correlation=2,
        max_ell=1,
        num_radial_basis=4,
        radial_MLP=(8,),
        MLP_irreps="4x0e",
        epochs=20,
        batch_size=4,
        learning_rate=0.01,
        patience=1000,
        description="for tests only",
    ),
}


# The step budget binds for data of many molecules; see SHARED_PRESET_NOTE.
PRESETS["shared"] = dataclasses.replace(
    PRESETS["default"],
    name="shared",
    max_steps=60_000,
    description="default architecture, 60,000-step budget: one committee for many molecules "
    "(see SHARED_PRESET_NOTE)",
)


def get_preset(name: str, **overrides) -> ModelPreset:
    """Return preset ``name`` with the given fields replaced.

    Raises :class:`ModelError` for an unknown preset name or field.
    """
    try:
        preset = PRESETS[name]
    except KeyError:
        raise ModelError(f"unknown model preset {name!r}; available: {', '.join(sorted(PRESETS))}") from None
    if not overrides:
        return preset
    known = {f.name for f in dataclasses.fields(ModelPreset)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ModelError(f"unknown preset field(s) {unknown}; known: {sorted(known)}")
    if "radial_MLP" in overrides:
        overrides["radial_MLP"] = tuple(overrides["radial_MLP"])
    return dataclasses.replace(preset, **overrides)
