"""Measured XAS in XDI files: μ(E) from the counts, energy calibration against the reference
foil, and edge-step normalisation.

XDI/1.0 (https://github.com/XraySpectroscopy/XAS-Data-Interchange) is a plain-text format:
``# Namespace.tag: value`` header fields, a ``# ///`` line before free comments, a ``#---``
line, then whitespace-separated columns named by the ``Column.N`` fields. It is read here
directly: the maintained reader (xraylarch's) brings a large dependency tree for a format this
simple, and the small PyPI readers are unmaintained.

* μ in transmission is ``ln(i0 / itrans)`` (``mutrans`` when the file gives μ itself); the foil
  measured behind the sample gives ``ln(itrans / irefer)``.
* Calibration shifts the energy axis so that the foil's edge (steepest rise) sits at the
  tabulated edge (Cu K: :data:`CU_K_EDGE_EV`), as beamline practice does.
* Normalisation (as Athena / larch ``pre_edge``): a line fitted to the pre-edge region and a
  quadratic to the post-edge region; ``(μ - pre-edge line) / edge step``, the step being the gap
  between the two at the edge E0. A normalised spectrum is ~0 before the edge and ~1 after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from specml.errors import SpectrumFormatError
from specml.spectra.spectrum import Spectrum

#: Cu K-edge energy of the metal (eV), the calibration point of a Cu foil (Kraft et al. 1996; Athena's table).
CU_K_EDGE_EV = 8979.0
#: Pre-edge fit region, eV relative to E0.
PRE_EDGE_EV = (-150.0, -30.0)
#: Post-edge fit region, eV relative to E0 (capped at the end of the data).
POST_EDGE_EV = (50.0, 400.0)


@dataclass(frozen=True)
class XdiFile:
    """An XDI file: its data columns (by name), their units and the header fields."""

    path: Path
    columns: dict[str, np.ndarray]
    units: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def energy(self) -> np.ndarray:
        return self.columns["energy"]

    def mu(self) -> np.ndarray:
        """μ in transmission: ``mutrans`` if given, else ``ln(i0 / itrans)``."""
        if "mutrans" in self.columns:
            return self.columns["mutrans"]
        return self._log_ratio("i0", "itrans", "a transmission μ")

    def reference_mu(self) -> np.ndarray | None:
        """μ of the reference foil, ``ln(itrans / irefer)``; None without an ``irefer`` column."""
        if "irefer" not in self.columns or "itrans" not in self.columns:
            return None
        return self._log_ratio("itrans", "irefer", "the reference μ")

    def _log_ratio(self, top: str, bottom: str, what: str) -> np.ndarray:
        missing = [name for name in (top, bottom) if name not in self.columns]
        if missing:
            raise SpectrumFormatError(f"{self.path}: no {' or '.join(missing)} column for {what}")
        a, b = self.columns[top], self.columns[bottom]
        if np.any(a <= 0) or np.any(b <= 0):
            raise SpectrumFormatError(f"{self.path}: {top} and {bottom} must be positive counts")
        return np.log(a / b)


def read_xdi(path: str | Path) -> XdiFile:
    """Read an XDI file; :class:`SpectrumFormatError` for anything that is not one."""
    path = Path(path)
    lines = path.read_text(errors="replace").splitlines()
    if not lines or not lines[0].lstrip("# ").upper().startswith("XDI/"):
        raise SpectrumFormatError(f"{path}: not an XDI file (the first line must be '# XDI/1.0 ...')")
    fields: dict[str, str] = {}
    rows: list[list[float]] = []
    in_header = True
    for lineno, line in enumerate(lines[1:], 2):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            body = text[1:].strip()
            if body.startswith("///"):
                in_header = False
            elif in_header and ":" in body and "." in body.split(":", 1)[0]:
                key, value = body.split(":", 1)
                fields[key.strip().lower()] = value.strip()
            continue
        try:
            rows.append([float(value) for value in text.split()])
        except ValueError:
            raise SpectrumFormatError(f"{path}:{lineno}: non-numeric value in {text[:60]!r}") from None
    if not rows or len({len(r) for r in rows}) != 1:
        raise SpectrumFormatError(f"{path}: no data, or rows of different lengths")
    data = np.array(rows)
    names: dict[str, str] = {}
    units: dict[str, str] = {}
    for key, value in fields.items():
        if key.startswith("column."):
            parts = value.split()
            index = int(key.split(".", 1)[1]) - 1 if key.split(".", 1)[1].isdigit() else -1
            if parts and 0 <= index < data.shape[1]:
                names[parts[0].lower()] = str(index)
                units[parts[0].lower()] = parts[1] if len(parts) > 1 else ""
    if "energy" not in names:
        raise SpectrumFormatError(f"{path}: no 'Column.N: energy' field")
    if units.get("energy", "eV").lower() not in ("ev", ""):
        raise SpectrumFormatError(f"{path}: energy in {units['energy']}; only eV is read")
    columns = {name: data[:, int(index)] for name, index in names.items()}
    order = np.argsort(columns["energy"], kind="stable")
    columns = {name: values[order] for name, values in columns.items()}
    if np.any(np.diff(columns["energy"]) <= 0):
        raise SpectrumFormatError(f"{path}: repeated energy points")
    return XdiFile(path, columns, units, fields)


def calibration_shift(xdi: XdiFile, edge_ev: float = CU_K_EDGE_EV) -> float:
    """eV to add to the energy axis so that the reference foil's edge sits at ``edge_ev``;
    0 without a reference column (the file is then taken as calibrated)."""
    from specml.xanes.analysis import edge_position

    reference = xdi.reference_mu()
    if reference is None:
        return 0.0
    return edge_ev - edge_position(xdi.energy, reference)


def normalize(energy, mu, e0: float | None = None) -> tuple[np.ndarray, float, float]:
    """``(normalised μ, E0, edge step)`` by the pre-/post-edge rule of the module docstring."""
    from specml.xanes.analysis import edge_position

    energy, mu = np.asarray(energy, dtype=float), np.asarray(mu, dtype=float)
    e0 = edge_position(energy, mu) if e0 is None else e0
    pre = (energy >= e0 + PRE_EDGE_EV[0]) & (energy <= e0 + PRE_EDGE_EV[1])
    post = (energy >= e0 + POST_EDGE_EV[0]) & (energy <= e0 + POST_EDGE_EV[1])
    if pre.sum() < 2 or post.sum() < 3:
        raise SpectrumFormatError(
            f"too few points to normalise: need data from E0{PRE_EDGE_EV[0]:+g} to E0{PRE_EDGE_EV[1]:+g} eV "
            f"and E0{POST_EDGE_EV[0]:+g} eV onwards (E0 = {e0:.1f} eV)"
        )
    pre_line = np.polyval(np.polyfit(energy[pre], mu[pre], 1), energy)
    post_curve = np.polyval(np.polyfit(energy[post], mu[post], 2), energy)
    step = float(np.interp(e0, energy, post_curve - pre_line))
    if not math.isfinite(step) or step <= 0:
        raise SpectrumFormatError(f"no absorption edge near {e0:.1f} eV (edge step {step:.3g})")
    return (mu - pre_line) / step, float(e0), step


def normalized_xanes(path: str | Path, edge_ev: float = CU_K_EDGE_EV) -> Spectrum:
    """A measured spectrum, calibrated against its reference foil and normalised, on the
    absolute energy axis (eV); metadata hold E0, the edge step and the calibration shift."""
    xdi = read_xdi(path)
    shift = calibration_shift(xdi, edge_ev)
    energy = xdi.energy + shift
    mu, e0, step = normalize(energy, xdi.mu())
    formula = xdi.fields.get("sample.formula") or xdi.fields.get("sample.name") or Path(path).stem
    return Spectrum(
        energy,
        mu,
        metadata={
            "axis": "energy_eV",
            "kind": "xanes",
            "source": str(path),
            "label": f"{formula} (measured)",
            "e0_ev": e0,
            "edge_step": step,
            "calibration_shift_ev": shift,
            "calibrated": xdi.reference_mu() is not None,
        },
    )
