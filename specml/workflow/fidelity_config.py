"""Settings of multi-fidelity active learning (:mod:`specml.workflow.multifidelity`).

Kept apart from the workflow so ``specml ir --pretrain`` checks its options before torch loads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from specml import checks
from specml.errors import InputError

#: Ways to carry the pretrained committee over to the expensive reference.
ADAPTATIONS = ("finetune", "delta", "scratch")
#: ``best`` trains all of :data:`ADAPTATIONS` on the first expensive labels and keeps the one
#: with the lowest harmonic MAE against the expensive reference.
ADAPTATION_CHOICES = (*ADAPTATIONS, "best")


@dataclass(frozen=True)
class MultiFidelitySettings:
    """How the expensive labels are chosen and the committee adapted to them.

    ``pretrain``: the cheap reference (a :func:`specml.reference.make_reference` name).
    ``adaptation``: ``finetune`` (the pretrained members keep training on expensive labels, E0s
    refitted first), ``delta`` (a correction committee learns expensive - cheap labels),
    ``scratch`` (new models on expensive labels only) or ``best``.
    First expensive labels per molecule: its minimum, ``n_per_mode`` displacements along each
    normal mode of the expensive Hessian, and from survey MD with the pretrained committee the
    ``n_uncertain`` most uncertain frames plus ``n_coverage`` frames, one from each KMeans
    cluster (MBTR) of the rest.
    """

    pretrain: str = "xtb"
    adaptation: str = "finetune"
    n_per_mode: int = 2
    n_uncertain: int = 6
    n_coverage: int = 6

    def check(self, reference: str | None = None) -> MultiFidelitySettings:
        """These settings if valid (and, given the expensive ``reference``, a different method
        from ``pretrain``), else :class:`InputError` naming the first bad one."""
        from specml.reference import make_reference

        if self.adaptation not in ADAPTATION_CHOICES:
            raise InputError(
                f"adaptation {self.adaptation!r} is not known; use one of {', '.join(ADAPTATION_CHOICES)}"
            )
        checks.count("n_per_mode", self.n_per_mode)
        checks.count("n_uncertain", self.n_uncertain, minimum=0)
        checks.count("n_coverage", self.n_coverage, minimum=0)
        cheap = make_reference(self.pretrain)
        if reference is not None and make_reference(reference).describe() == cheap.describe():
            raise InputError(
                f"--pretrain {self.pretrain!r} is the same method as --reference; pretrain with a cheaper one"
            )
        return self

    def to_dict(self) -> dict:
        return asdict(self)
