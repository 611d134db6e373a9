"""One entry point for spectrum files: dispatch on the file suffix."""

from __future__ import annotations

from pathlib import Path

from specml.errors import InputError, SpectrumFormatError
from specml.experiment.jcamp_reader import TECHNIQUES, read_jcamp
from specml.spectra.spectrum import Spectrum

JCAMP_SUFFIXES = {".jdx", ".dx", ".jcamp", ".jcm"}
CSV_SUFFIXES = {".csv", ".txt"}


def is_jcamp(path: str | Path) -> bool:
    """True for a JCAMP-DX suffix, or any other suffix whose content starts with ``##``
    (JCAMP-DX files are often shipped as ``.txt``)."""
    path = Path(path)
    if path.suffix.lower() in JCAMP_SUFFIXES:
        return True
    return _starts_with_jcamp_label(path)


def _starts_with_jcamp_label(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(256).lstrip().startswith(b"##")


def read_spectrum(path: str | Path, technique: str = "infrared") -> Spectrum:
    """Read a JCAMP-DX or CSV spectrum file as it is stored (no unit conversion): an infrared one,
    or with ``technique="raman"`` a Raman one (x: Raman shift in cm-1). A CSV is taken to be of the
    technique asked for unless its metadata line names another."""
    path = Path(path)
    if technique not in TECHNIQUES:
        raise ValueError(f"technique must be one of {sorted(TECHNIQUES)}, got {technique!r}")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    if is_jcamp(path):
        return read_jcamp(path, technique)
    if path.suffix.lower() in CSV_SUFFIXES:
        spectrum = Spectrum.from_csv(path)
        stored = spectrum.metadata.get("technique", technique)
        if stored != technique:
            raise SpectrumFormatError(f"{path}: holds {stored} data, not {technique}")
        return spectrum.with_metadata(technique=technique)
    raise SpectrumFormatError(f"{path}: unknown spectrum format (expected .jdx/.dx/.jcamp/.jcm or .csv/.txt)")
