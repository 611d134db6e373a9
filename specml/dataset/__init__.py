"""Dataset: labelled structures with provenance, initial sampling, test-set selection."""

from specml.dataset.database import LabelDatabase
from specml.dataset.sampling import sample_normal_modes
from specml.dataset.test_set import select_representative

__all__ = ["LabelDatabase", "sample_normal_modes", "select_representative"]
