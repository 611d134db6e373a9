"""Spectrum files for tests, written the way real sources write them."""

from __future__ import annotations

import numpy as np


def nist_like_jcamp(
    deltax_factor: float = 1.0, n: int = 1761, first: float = 450.0, last: float = 3970.0
) -> str:
    """A gas-phase transmittance JCAMP-DX file in NIST's layout (AFFN, 10 values a line), bands at
    1030 and 2950 cm-1, its ##DELTAX ``deltax_factor`` times the spacing that FIRSTX, LASTX and
    NPOINTS give (real NIST files differ by a few percent)."""
    x = np.linspace(first, last, n)
    t = 1 - 0.6 * np.exp(-(((x - 1030) / 40) ** 2)) - 0.4 * np.exp(-(((x - 2950) / 50) ** 2))
    header = [
        "##TITLE=NIST-LIKE",
        "##JCAMP-DX=4.24",
        "##DATA TYPE=INFRARED SPECTRUM",
        "##STATE=GAS",
        "##XUNITS=1/CM",
        "##YUNITS=TRANSMITTANCE",
        "##XFACTOR=1.000000",
        "##YFACTOR=0.001",
        f"##DELTAX={(x[1] - x[0]) * deltax_factor:.6f}",
        f"##FIRSTX={first:g}",
        f"##LASTX={last:g}",
        f"##FIRSTY={round(t[0], 3):g}",
        f"##NPOINTS={n}",
        "##XYDATA=(X++(Y..Y))",
    ]
    lines = [f"{x[i]:.3f} " + " ".join(str(round(v * 1000)) for v in t[i : i + 10]) for i in range(0, n, 10)]
    return "\n".join(header + lines + ["##END="]) + "\n"
