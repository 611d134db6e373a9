"""specml: machine-learned infrared spectroscopy."""

__version__ = "0.1.0"

from specml.errors import SpecmlError  # noqa: E402
from specml.spectra.spectrum import Spectrum  # noqa: E402

__all__ = ["Spectrum", "SpecmlError", "__version__"]
