"""Spectra: the Spectrum type, IR from dipole time series, harmonic IR and Raman, broadening."""

from specml.spectra.spectrum import Spectrum

__all__ = ["Spectrum"]
