"""Checks of user settings, shared by the Python API and the command line.

The CLI runs them before any computation and before any output folder is claimed, and turns
their :class:`~specml.errors.InputError` into a one-line ``error:`` and exit code 2. The module
is light on purpose (no numpy): the checks run before the heavy libraries are imported.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

from specml.errors import InputError

#: Highest temperature accepted (K): far above where molecules dissociate, and it keeps
#: Boltzmann weights and rotational contours finite.
MAX_TEMPERATURE_K = 10_000.0
#: Highest wavenumber of a range (cm-1): the near-infrared edge, well above any fundamental.
MAX_WAVENUMBER_CM1 = 20_000.0
#: Most points of a spectrum's grid (range / step): beyond this the memory, not the physics, decides.
MAX_GRID_POINTS = 1_000_000


def _number(name: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    return number


def positive(name: str, value, unit: str = "", upper: float = math.inf) -> float:
    """``value`` as a float if it is finite, > 0 and <= ``upper``; else :class:`InputError`."""
    number = _number(name, value)
    if not 0 < number <= upper:
        bound = f" and at most {upper:g}{_unit(unit)}" if upper < math.inf else ""
        raise InputError(f"{name} must be positive{bound}, got {number:g}{_unit(unit)}")
    return number


def non_negative(name: str, value, unit: str = "", upper: float = math.inf) -> float:
    """``value`` as a float if it is finite, >= 0 and <= ``upper``; else :class:`InputError`."""
    number = _number(name, value)
    if not 0 <= number <= upper:
        bound = f" and at most {upper:g}{_unit(unit)}" if upper < math.inf else ""
        raise InputError(f"{name} must be zero or positive{bound}, got {number:g}{_unit(unit)}")
    return number


def count(name: str, value, minimum: int = 1) -> int:
    """``value`` if it is an integer >= ``minimum``; else :class:`InputError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be a whole number of at least {minimum}, got {value!r}")
    return value


def temperature(name: str, value) -> float:
    """A temperature in K: > 0 and at most :data:`MAX_TEMPERATURE_K`."""
    return positive(name, value, "K", MAX_TEMPERATURE_K)


def temperatures(name: str, values: Iterable) -> tuple[float, ...]:
    """At least one temperature, each as :func:`temperature` requires."""
    checked = tuple(temperature(name, v) for v in values)
    if not checked:
        raise InputError(f"{name}: give at least one temperature")
    return checked


def wavenumber_range(name: str, lo, hi) -> tuple[float, float]:
    """``(lo, hi)`` in cm-1 with 0 <= lo < hi <= :data:`MAX_WAVENUMBER_CM1`."""
    lo, hi = _number(name, lo), _number(name, hi)
    if not 0 <= lo < hi <= MAX_WAVENUMBER_CM1:
        raise InputError(
            f"{name} must be LO HI with 0 <= LO < HI <= {MAX_WAVENUMBER_CM1:g} cm-1, got {lo:g} {hi:g}"
        )
    return lo, hi


def grid(name: str, lo: float, hi: float, step) -> float:
    """A grid step in cm-1 that gives at least 2 and at most :data:`MAX_GRID_POINTS` points on lo..hi."""
    step = positive(name, step, "cm-1")
    points = (hi - lo) / step
    if not 1 <= points <= MAX_GRID_POINTS:
        raise InputError(
            f"{name} {step:g} cm-1 gives {points:.3g} intervals on {lo:g}-{hi:g} cm-1; "
            f"between 1 and {MAX_GRID_POINTS:,} are possible"
        )
    return step


def choice(name: str, value: str, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``; else :class:`InputError` listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise InputError(f"{name} {value!r} is not known; choose one of {', '.join(choices)}")
    return value


def readable_file(path: str | Path, name: str = "file") -> Path:
    """``path`` if it is an existing, readable, non-empty file; else :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file" + (f" ({name})" if name != "file" else ""))
    try:
        with path.open("rb") as fh:
            empty = not fh.read(1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if empty:
        raise InputError(f"{path}: file is empty")
    return path


def existing_dir(path: str | Path, name: str) -> Path:
    """``path`` if it is an existing directory; else :class:`InputError`."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{name} {path}: no such directory")
    return path


def output_dir(path: str | Path, name: str) -> Path:
    """``path`` if it is a folder or can become one: no existing file at it or in its way."""
    path = Path(path)
    _check_no_file_in_the_way(path if path.exists() else path.absolute().parent, name, path)
    return path


def output_file(path: str | Path, name: str, suffixes: Iterable[str] = ()) -> Path:
    """``path`` if a file can be written there: not a folder, one of ``suffixes`` (lower case,
    with the dot) when given, and no existing file in the way of its folder."""
    path = Path(path)
    suffixes = tuple(suffixes)
    if path.is_dir():
        raise InputError(f"{name} {path}: is a directory; give a file name")
    if suffixes and path.suffix.lower() not in suffixes:
        raise InputError(f"{name} {path}: expected a {' or '.join(suffixes)} file")
    _check_no_file_in_the_way(path.absolute().parent, name, path)
    return path


def _check_no_file_in_the_way(folder: Path, name: str, path: Path) -> None:
    """The nearest existing one of ``folder`` and its parents must be a folder."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())  # the root always exists
    if not existing.is_dir():
        raise InputError(f"{name} {path}: {existing} is a file, not a folder")


def _unit(unit: str) -> str:
    return f" {unit}" if unit else ""
