"""Compact forms of the MD dipole files: the autocorrelations their spectra need, not the series.

A spectrum of a trajectory needs only the autocorrelation of its dipole derivative up to the
correlation depth (:func:`~specml.spectra.autocorrelation.dipole_acf`, 1,001 numbers at 1 ps and
1 fs) and its length; the dipole series of 50 ps holds 150,000. :func:`compact_dipole_file`
rewrites a production file (:func:`~specml.workflow.production.write_production_file`) or a
one-trajectory reference-MD file (``dipoles``, ``temperatures``, ...) as those autocorrelations,
over the whole trajectory and over its first ``windows_ps`` picoseconds, with the per-trajectory
numbers the reports use (sanity stop, mean uncertainty, mean temperature, length). The spectra
of a compact file equal those of the original to the last bit. :func:`trajectory_correlations`
reads either form.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from specml.errors import InputError
from specml.spectra.autocorrelation import dipole_acf
from specml.workflow.production import acf_key, read_production_file

#: The marker key of a compact file (its correlation depth, fs).
DEPTH_KEY = "acf_depth_fs"


def dipole_file_kind(path: Path) -> str | None:
    """``"production"``, ``"trajectory"`` (one reference-MD trajectory), or None for another file;
    the same names with ``"compact_"`` in front for the compact forms."""
    with np.load(path) as data:
        names = set(data.files)
    prefix = "compact_" if DEPTH_KEY in names else ""
    if "stopped_0" in names:
        return prefix + "production"
    if "dipoles" in names or (prefix and "n_frames" in names):
        return prefix + "trajectory"
    return None


def _windowed_acfs(
    series: np.ndarray, dt_fs: float, depth_fs: float, windows_ps: Sequence[float], index: int | None
) -> dict[str, np.ndarray]:
    """ACFs of the whole series and of each first-``window`` part long enough for the depth."""
    out = {}
    for max_ps in (None, *windows_ps):
        part = series if max_ps is None else series[: int(round(max_ps * 1000.0 / dt_fs))]
        if len(part) * dt_fs >= 2 * depth_fs:
            out[acf_key(index, max_ps)] = dipole_acf(part, dt_fs, depth_fs)
    return out


def compact_dipole_arrays(
    src: Path, depth_fs: float, windows_ps: Sequence[float] = ()
) -> dict[str, np.ndarray]:
    """The arrays of the compact form of the dipole file ``src`` (see the module text), to save
    with :func:`numpy.savez` or :func:`write_npz_bytes`."""
    kind = dipole_file_kind(src)
    arrays: dict[str, np.ndarray] = {DEPTH_KEY: np.array(float(depth_fs))}
    if kind == "production":
        runs = read_production_file(src)
        dt = runs.record_interval_fs
        arrays["record_interval_fs"] = np.array(dt)
        for k, (series, stop) in enumerate(zip(runs.dipoles, runs.stopped, strict=True)):
            arrays[f"stopped_{k}"] = np.array(stop)
            arrays[f"n_frames_{k}"] = np.array(len(series))
            arrays[f"uncertainty_{k}"] = np.array([runs.mean_uncertainties[k]])
            arrays[f"mean_temperature_{k}"] = np.array(runs.mean_temperatures_k[k])
            if not stop:
                arrays.update(_windowed_acfs(series, dt, depth_fs, windows_ps, k))
    elif kind == "trajectory":
        with np.load(src) as data:
            series = np.asarray(data["dipoles"], dtype=float)
            dt = float(data["record_interval_fs"])
            temperatures = np.asarray(data["temperatures"], dtype=float)
            for key in ("record_interval_fs", "temperature_k", "wall_time_s"):
                arrays[key] = np.asarray(data[key])
        arrays["n_frames"] = np.array(len(series))
        arrays["mean_temperature_k"] = np.array(float(np.mean(temperatures)) if temperatures.size else np.nan)
        arrays.update(_windowed_acfs(series, dt, depth_fs, windows_ps, None))
    else:
        raise InputError(f"{src}: not an uncompacted dipole file (production or one-trajectory MD)")
    return arrays


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A compressed ``.npz`` of ``arrays`` as bytes, the same for the same arrays (no time stamps)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w") as fh:
                np.lib.format.write_array(fh, np.asanyarray(arrays[name]), allow_pickle=False)
    return buffer.getvalue()


def trajectory_correlations(
    path: Path, depth_fs: float, max_ps: float | None = None
) -> tuple[list[tuple[np.ndarray, int]], float]:
    """``(dipole_acf, n_frames)`` of every usable trajectory of a dipole file (production files:
    those not stopped), over their first ``max_ps`` picoseconds, and the record interval (fs);
    raw or compact files alike."""
    kind = dipole_file_kind(path)
    if kind in ("production", "compact_production"):
        runs = read_production_file(path)
        return runs.usable_correlations(depth_fs, max_ps=max_ps), runs.record_interval_fs
    if kind == "trajectory":
        with np.load(path) as data:
            dt = float(data["record_interval_fs"])
            series = np.asarray(data["dipoles"], dtype=float)
        part = series if max_ps is None else series[: int(round(max_ps * 1000.0 / dt))]
        return [(dipole_acf(part, dt, depth_fs), len(part))], dt
    if kind == "compact_trajectory":
        with np.load(path) as data:
            dt, stored_depth = float(data["record_interval_fs"]), float(data[DEPTH_KEY])
            key, n = acf_key(None, max_ps), int(data["n_frames"])
            if stored_depth != depth_fs or key not in data.files:
                raise InputError(f"{path}: no stored autocorrelation {key!r} at a depth of {depth_fs:g} fs")
            acf = np.asarray(data[key], dtype=float)
        return [(acf, n if max_ps is None else min(n, int(round(max_ps * 1000.0 / dt))))], dt
    raise InputError(f"{path}: not a dipole file (production or one-trajectory MD)")
