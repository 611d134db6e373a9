"""Read infrared and Raman spectra from JCAMP-DX files.

Parsing is done by the ``jcamp`` package. That parser is lenient: it prints
X/Y-check failures instead of raising, builds the x axis from FIRSTX/LASTX/NPOINTS
whatever the number of decoded ordinates, and mis-expands DUP counts that follow
an SQZ token. This module therefore validates everything it returns and turns
every problem into a :class:`~specml.errors.SpectrumFormatError` naming the file.
Small header inconsistencies that real files have (a ##DELTAX a few percent off the actual
spacing) load with a note in ``metadata["cautions"]``, which the CLI shows.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import jcamp
import numpy as np

from specml.errors import SpectrumFormatError
from specml.spectra.spectrum import Spectrum

# x-unit spellings -> function mapping the axis to wavenumbers in cm-1.
_X_TO_CM1 = {
    "1/cm": lambda x: x,
    "cm-1": lambda x: x,
    "cm^-1": lambda x: x,
    "1/cm-1": lambda x: x,
    "wavenumber": lambda x: x,
    "wavenumbers": lambda x: x,
    "wavenumbers (cm-1)": lambda x: x,
    "micrometers": lambda x: 1.0e4 / x,
    "micrometer": lambda x: 1.0e4 / x,
    "microns": lambda x: 1.0e4 / x,
    "um": lambda x: 1.0e4 / x,
    "nanometers": lambda x: 1.0e7 / x,
    "nanometer": lambda x: 1.0e7 / x,
    "nm": lambda x: 1.0e7 / x,
}
_X_IN_CM1 = {"1/cm", "cm-1", "cm^-1", "1/cm-1", "wavenumber", "wavenumbers", "wavenumbers (cm-1)"}

_IR_TYPE = re.compile(r"INFRARED|\b(FT-?)?N?IR\b|\bFTIR\b", re.IGNORECASE)
_RAMAN_TYPE = re.compile(r"RAMAN", re.IGNORECASE)
#: The vibrational techniques a file can be read as: its ##DATA TYPE must name it. The x axis of
#: a Raman file in 1/CM is the Raman shift (cm-1), of an infrared one the wavenumber.
TECHNIQUES = {"infrared": _IR_TYPE, "raman": _RAMAN_TYPE}
_A_SPECTRUM = {"infrared": "an infrared spectrum", "raman": "a Raman spectrum"}
_OTHER_TECHNIQUE_HINT = {
    "infrared": "specml raman --compare and specml compare --raman read Raman spectra",
    "raman": "specml harmonic/ir --compare read infrared spectra",
}
# DUP count right after an SQZ token (digits in between): jcamp 1.3 looks back for a
# DIF token there and expands the wrong characters.
_SQZ_THEN_DUP = re.compile(r"[@A-Ia-i][0-9.]*[S-Zs]")
_DATA_HEADER = re.compile(r"^##(XYDATA|XYPOINTS|PEAK ?TABLE|DATA ?TABLE)\s*=", re.IGNORECASE)
_LEADING_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(.*)$")
# ##DELTAX against the decoded point spacing (relative): within rounding it passes silently; up
# to the limit it loads with a caution (real NIST files differ by about 4 %); beyond, the
# header and the data describe different axes and the file is refused.
DELTAX_ROUNDING = 0.01
DELTAX_LIMIT = 0.10


def read_jcamp(path: str | Path, technique: str = "infrared") -> Spectrum:
    """Read an infrared (or, with ``technique="raman"``, a Raman) spectrum from a JCAMP-DX file
    onto a cm-1 axis (wavenumber, or Raman shift); ``metadata["technique"]`` records which.

    Compound (LINK) files yield their first block of that technique. Raises
    :class:`SpectrumFormatError` for anything that is not a usable spectrum of the technique.
    """
    path = Path(path)
    if technique not in TECHNIQUES:
        raise ValueError(f"technique must be one of {sorted(TECHNIQUES)}, got {technique!r}")
    try:
        raw = path.read_bytes().decode("utf-8", "ignore")
    except OSError as exc:
        raise SpectrumFormatError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if "##NTUPLES" in raw.upper().replace(" ", ""):
        raise SpectrumFormatError(f"{path}: NTUPLES data tables are not supported")
    _check_encoding_supported(path, raw)

    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            parsed = jcamp.read(raw.splitlines(keepends=True))
    except Exception as exc:  # the parser raises bare Exception, IndexError, TypeError, ...
        raise SpectrumFormatError(f"{path}: malformed JCAMP-DX ({type(exc).__name__}: {exc})") from None
    block = _select_block(path, parsed, technique)
    _check_parser_log(path, log.getvalue())
    return _to_spectrum(path, block).with_metadata(technique=technique)


def _check_encoding_supported(path: Path, raw: str) -> None:
    in_data = False
    for line in raw.splitlines():
        if line.startswith("##"):
            in_data = bool(_DATA_HEADER.match(line))
            continue
        if in_data and not line.startswith("$$") and _SQZ_THEN_DUP.search(line):
            raise SpectrumFormatError(
                f"{path}: DUP repeat after an SQZ value is not decoded reliably by the parser"
            )


def _check_parser_log(path: Path, log: str) -> None:
    # A failed Y-check means the DIF chain of two lines disagrees: corrupt or mis-decoded.
    # (X-check messages are ignored: jcamp 1.3 reports false alarms on its first line.)
    for line in log.splitlines():
        if line.startswith("Y-Check failed"):
            raise SpectrumFormatError(f"{path}: compressed data failed its Y-check ({line.strip()})")


def _data_type(block: dict) -> str:
    return str(block.get("data type") or block.get("datatype") or "").split("$$")[0].strip()


def _select_block(path: Path, parsed: dict, technique: str) -> dict:
    if _data_type(parsed).upper() != "LINK":
        _require_technique(path, parsed, technique)
        return parsed
    children = parsed.get("children") or []
    for child in children:
        if TECHNIQUES[technique].search(_data_type(child)) and len(child.get("y", [])):
            return child
    found = ", ".join(sorted({_data_type(c) or "untyped" for c in children})) or "no blocks"
    name = _A_SPECTRUM[technique].split(" ", 1)[1]
    raise SpectrumFormatError(f"{path}: compound file has no {name} block (found: {found})")


def _require_technique(path: Path, block: dict, technique: str) -> None:
    data_type = _data_type(block)
    if data_type and not TECHNIQUES[technique].search(data_type):
        other = next(t for t in TECHNIQUES if t != technique)
        hint = f"; {_OTHER_TECHNIQUE_HINT[technique]}" if TECHNIQUES[other].search(data_type) else ""
        raise SpectrumFormatError(f"{path}: not {_A_SPECTRUM[technique]} (DATA TYPE: {data_type}){hint}")
    if technique == "raman" and not data_type:
        # An untyped file is read as infrared (many exporters leave the type out); Raman must say so.
        raise SpectrumFormatError(f"{path}: no ##DATA TYPE naming a Raman spectrum")
    if "peak table" in block and "xydata" not in block and "xypoints" not in block:
        raise SpectrumFormatError(f"{path}: holds a peak table, not a continuous spectrum")


def _header_text(block: dict, key: str) -> str:
    """A header value without its ``$$`` comment (the parser keeps inline comments)."""
    return str(block.get(key, "")).split("$$")[0].strip()


def _number(block: dict, key: str) -> float | None:
    value = block.get(key)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _to_spectrum(path: Path, block: dict) -> Spectrum:
    if "peak table" in block and "xydata" not in block and "xypoints" not in block:
        raise SpectrumFormatError(f"{path}: holds a peak table, not a continuous spectrum")
    xunits = _header_text(block, "xunits")
    to_cm1 = _X_TO_CM1.get(xunits.lower())
    if to_cm1 is None:
        raise SpectrumFormatError(f"{path}: x units {xunits or '(missing)'!r} cannot be converted to cm-1")
    x = np.asarray(block.get("x", []), dtype=float)
    y = np.asarray(block.get("y", []), dtype=float)
    if y.size == 0:
        raise SpectrumFormatError(f"{path}: no spectral data found")
    npoints = _number(block, "npoints")
    if npoints is not None and int(npoints) != y.size:
        raise SpectrumFormatError(f"{path}: decoded {y.size} points but ##NPOINTS={int(npoints)}")
    if x.size != y.size:
        raise SpectrumFormatError(f"{path}: {y.size} ordinates decoded for {x.size} abscissae")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise SpectrumFormatError(f"{path}: data contain non-finite values")
    if y.size < 2:
        raise SpectrumFormatError(f"{path}: a spectrum needs at least two points")
    _check_axis_headers(path, block, x)
    _check_first_y(path, block, y)

    if xunits.lower() not in _X_IN_CM1 and np.any(x <= 0):
        raise SpectrumFormatError(f"{path}: non-positive wavelengths cannot be converted to cm-1")
    wavenumber = to_cm1(x)

    metadata: dict[str, object] = {
        "source": str(path),
        "label": _header_text(block, "title") or path.stem,
        "xunits": xunits,
        "yunits": _header_text(block, "yunits"),
        "data_type": _data_type(block),
        "origin": _header_text(block, "origin"),
    }
    for key in ("molform", "state"):  # the sample state (gas, liquid, solution, ...) where the file gives it
        if _header_text(block, key):
            metadata[key] = _header_text(block, key)
    cautions = _axis_cautions(block, x)
    if cautions:
        metadata["cautions"] = [f"{path.name}: {note}" for note in cautions]
    try:
        spectrum = Spectrum(wavenumber, y, metadata=metadata)
    except SpectrumFormatError as exc:
        raise SpectrumFormatError(f"{path}: {exc}") from None
    resolution = _resolution_cm1(block, xunits) or spectrum.spacing_cm1
    return spectrum.with_metadata(resolution_cm1=float(resolution))


def _check_axis_headers(path: Path, block: dict, x: np.ndarray) -> None:
    """FIRSTX/LASTX must agree with the decoded axis, and DELTAX within :data:`DELTAX_LIMIT`."""
    first, last = _number(block, "firstx"), _number(block, "lastx")
    step = abs(float(np.median(np.diff(x))))
    tol = 0.51 * step
    if first is not None and abs(x[0] - first) > tol:
        raise SpectrumFormatError(f"{path}: first x {x[0]:g} disagrees with ##FIRSTX={first:g}")
    if last is not None and abs(x[-1] - last) > tol:
        raise SpectrumFormatError(f"{path}: last x {x[-1]:g} disagrees with ##LASTX={last:g}")
    mismatch = _deltax_mismatch(block, x)
    if mismatch is not None and mismatch[2] > DELTAX_LIMIT:
        delta, spacing, relative = mismatch
        raise SpectrumFormatError(
            f"{path}: point spacing {spacing:g} disagrees with ##DELTAX={delta:g} "
            f"by {relative:.0%} (more than {DELTAX_LIMIT:.0%})"
        )


def _deltax_mismatch(block: dict, x: np.ndarray) -> tuple[float, float, float] | None:
    """(##DELTAX, actual point spacing, their relative difference); None without a DELTAX for XYDATA."""
    delta = _number(block, "deltax")
    spacing = abs(float(np.median(np.diff(x))))
    if delta is None or "xydata" not in block or spacing == 0:
        return None
    return delta, spacing, abs(abs(delta) - spacing) / spacing


def _axis_cautions(block: dict, x: np.ndarray) -> list[str]:
    """What a reader of the spectrum should know about its axis: a ##DELTAX that differs from
    the actual spacing (FIRSTX to LASTX over NPOINTS) by more than rounding but within
    :data:`DELTAX_LIMIT`, as in some NIST files. The axis follows FIRSTX/LASTX/NPOINTS."""
    mismatch = _deltax_mismatch(block, x)
    if mismatch is None or mismatch[2] <= DELTAX_ROUNDING:
        return []
    delta, spacing, relative = mismatch
    return [
        f"point spacing {spacing:.6g} differs from ##DELTAX={delta:g} by {relative:.1%}; "
        "the axis follows ##FIRSTX, ##LASTX and ##NPOINTS"
    ]


def _check_first_y(path: Path, block: dict, y: np.ndarray) -> None:
    """A wrongly decoded first line shows up as a first ordinate far from ##FIRSTY.

    FIRSTY=0 is skipped: some exporters write 0 as a placeholder (NIST's isopropanol
    ASDF file does). Tolerance: 1 % of the data range plus one YFACTOR step (rounding).
    """
    first_y = _number(block, "firsty")
    if first_y is None or first_y == 0.0:
        return
    tol = 0.01 * float(np.ptp(y)) + abs(_number(block, "yfactor") or 0.0)
    if abs(y[0] - first_y) > tol:
        raise SpectrumFormatError(f"{path}: first y {y[0]:g} disagrees with ##FIRSTY={first_y:g}")


def _resolution_cm1(block: dict, xunits: str) -> float | None:
    """##RESOLUTION as a number in cm-1 (e.g. ``2``, ``"2 cm-1"``, ``"1 CM^-^1 AT 4000"``)."""
    if xunits.lower() not in _X_IN_CM1:
        return None  # a resolution in wavelength units has no single cm-1 value
    value = block.get("resolution")
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    match = _LEADING_NUMBER.match(str(value or ""))
    if not match:
        return None
    number, rest = float(match.group(1)), match.group(2).strip().lower()
    if number > 0 and (not rest or rest.startswith("cm")):
        return number
    return None
