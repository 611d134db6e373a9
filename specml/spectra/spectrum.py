"""The :class:`Spectrum` type shared by every part of specml."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from specml.errors import InputError, SpectrumFormatError


@dataclass(frozen=True)
class Spectrum:
    """An IR spectrum on a wavenumber axis.

    Attributes:
        wavenumber: axis in cm-1, strictly increasing.
        intensity: values on that axis (units in ``metadata["intensity_units"]``).
        std: optional standard deviation of ``intensity`` (e.g. over trajectories).
        metadata: provenance and settings: ``source``, ``method``, ``settings``,
            ``intensity_units``, ``resolution_cm1`` (FWHM of the line shape), ...
    """

    wavenumber: np.ndarray
    intensity: np.ndarray
    std: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        x = np.asarray(self.wavenumber, dtype=float)
        y = np.asarray(self.intensity, dtype=float)
        if x.ndim != 1 or y.shape != x.shape:
            raise SpectrumFormatError(
                f"wavenumber and intensity must be 1-D of equal length, got {x.shape} and {y.shape}"
            )
        if x.size < 2:
            raise SpectrumFormatError("a spectrum needs at least two points")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise SpectrumFormatError("spectrum contains non-finite values")
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        if np.any(np.diff(x) <= 0):
            raise SpectrumFormatError("wavenumber axis has repeated points")
        std = None
        if self.std is not None:
            std = np.asarray(self.std, dtype=float)[order]
            if std.shape != x.shape:
                raise SpectrumFormatError("std must have the same length as intensity")
        object.__setattr__(self, "wavenumber", x)
        object.__setattr__(self, "intensity", y)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "metadata", dict(self.metadata))

    # -- convenience -------------------------------------------------------
    @property
    def label(self) -> str:
        return str(self.metadata.get("label") or self.metadata.get("source") or "spectrum")

    @property
    def spacing_cm1(self) -> float:
        """Median point spacing in cm-1."""
        return float(np.median(np.diff(self.wavenumber)))

    def with_metadata(self, **updates) -> Spectrum:
        return replace(self, metadata={**self.metadata, **updates})

    def normalized(self) -> Spectrum:
        """Scaled so that the maximum intensity is 1 (std scaled alike)."""
        peak = float(np.max(np.abs(self.intensity)))
        if peak == 0.0:
            return self
        std = None if self.std is None else self.std / peak
        return replace(self, intensity=self.intensity / peak, std=std)

    def crop(self, lo: float, hi: float) -> Spectrum:
        """The part of the spectrum with ``lo <= wavenumber <= hi``."""
        keep = (self.wavenumber >= lo) & (self.wavenumber <= hi)
        if keep.sum() < 2:
            raise SpectrumFormatError(
                f"{self.label}: fewer than two points in {lo:g}-{hi:g} cm-1 "
                f"(data covers {self.wavenumber[0]:.0f}-{self.wavenumber[-1]:.0f} cm-1)"
            )
        std = None if self.std is None else self.std[keep]
        return replace(self, wavenumber=self.wavenumber[keep], intensity=self.intensity[keep], std=std)

    def scaled_wavenumbers(self, factor: float) -> Spectrum:
        """The spectrum with its axis multiplied by ``factor`` (a frequency scale factor, e.g.
        fitted on experimental fundamentals); intensities divided by it, so band areas stay."""
        if not (np.isfinite(factor) and factor > 0):
            raise InputError(f"a frequency scale factor must be a positive number, got {factor}")
        std = None if self.std is None else self.std / factor
        scaled = replace(
            self, wavenumber=self.wavenumber * factor, intensity=self.intensity / factor, std=std
        )
        updates = {"frequency_scale_factor": factor * self.metadata.get("frequency_scale_factor", 1.0)}
        if self.metadata.get("resolution_cm1") is not None:  # line widths scale with the axis
            updates["resolution_cm1"] = float(self.metadata["resolution_cm1"]) * factor
        return scaled.with_metadata(**updates)

    # -- CSV I/O -----------------------------------------------------------
    def to_csv(self, path: str | Path) -> Path:
        """Write ``wavenumber_cm1,intensity[,std]`` with metadata as a JSON comment line."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            fh.write("# " + json.dumps(self.metadata, default=str) + "\n")
            writer = csv.writer(fh)
            header = ["wavenumber_cm1", "intensity"] + (["std"] if self.std is not None else [])
            writer.writerow(header)
            cols = [self.wavenumber, self.intensity] + ([self.std] if self.std is not None else [])
            for row in zip(*cols, strict=True):
                writer.writerow([f"{v:.8g}" for v in row])
        return path

    @classmethod
    def from_csv(cls, path: str | Path) -> Spectrum:
        """Read a CSV spectrum: two or three numeric columns, optional header and
        ``#`` comment lines (the first may hold JSON metadata, as :meth:`to_csv` writes)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        metadata: dict = {}
        rows: list[list[float]] = []
        with path.open(newline="") as fh:
            for lineno, line in enumerate(fh, 1):
                text = line.strip()
                if not text:
                    continue
                if text.startswith("#"):
                    try:
                        parsed = json.loads(text[1:])
                        if isinstance(parsed, dict) and not metadata:
                            metadata = parsed
                    except json.JSONDecodeError:
                        pass
                    continue
                fields = [f for f in text.replace(";", ",").replace("\t", ",").split(",") if f != ""]
                try:
                    rows.append([float(f) for f in fields])
                except ValueError:
                    if rows:
                        raise SpectrumFormatError(f"{path}:{lineno}: non-numeric value in {text!r}") from None
                    continue  # header line
        if not rows:
            raise SpectrumFormatError(f"{path}: no numeric data")
        width = {len(r) for r in rows}
        if len(width) != 1 or width.pop() < 2:
            raise SpectrumFormatError(f"{path}: expected 2 or 3 numeric columns on every row")
        data = np.array(rows)
        std = data[:, 2] if data.shape[1] >= 3 else None
        metadata.setdefault("source", str(path))
        return cls(data[:, 0], data[:, 1], std, metadata)
