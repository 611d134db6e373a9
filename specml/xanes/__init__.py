"""X-ray absorption near-edge structure (XANES): structure to spectrum and spectrum to structure.

A XANESNET-style pipeline beside the IR one: a local descriptor of the absorbing atom
(:mod:`~specml.xanes.descriptors`), ensembles of small networks for the forward (descriptor ->
spectrum) and inverse (spectrum -> descriptor, coordination number, first-shell distance) maps
(:mod:`~specml.xanes.models`), the FEFF training set (:mod:`~specml.xanes.data`), measured
spectra in XDI files (:mod:`~specml.xanes.xdi`) and spectral / structural features
(:mod:`~specml.xanes.analysis`). Energies are in eV, distances in Å.

Names are imported on first use, so ``specml --help`` does not load dscribe or scikit-learn.
"""

from specml._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "XanesDataset": "data",
        "load_feff_set": "data",
        "DescriptorSettings": "descriptors",
        "site_descriptors": "descriptors",
        "first_shell": "analysis",
        "edge_position": "analysis",
        "first_maximum": "analysis",
        "half_step_energy": "analysis",
        "spectral_features": "analysis",
        "XanesModel": "models",
        "train_xanes": "models",
        "read_xdi": "xdi",
        "normalized_xanes": "xdi",
    },
)

__all__ = [
    "DescriptorSettings",
    "XanesDataset",
    "XanesModel",
    "edge_position",
    "first_maximum",
    "first_shell",
    "half_step_energy",
    "load_feff_set",
    "normalized_xanes",
    "read_xdi",
    "site_descriptors",
    "spectral_features",
    "train_xanes",
]
