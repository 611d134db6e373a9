"""The frequency scale factors of ``benchmarks/fundamentals.py`` from its committed harmonic cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_a_held_out_scale_factor_reproduces_the_benchmark_and_leaves_the_molecule_out(shared_dir):
    from fundamentals import global_factor_without

    stored = json.loads((ROOT / "docs" / "results" / "fundamentals.json").read_text())["methods"]
    method = "pyscf:b3lyp/def2-svp"
    every_species = global_factor_without(method, set())
    assert every_species == pytest.approx(stored[method]["scale_factors"]["global"], rel=1e-12)
    without_methanol = global_factor_without(method, {"CO"})
    # methanol's modes need less scaling than the average one: without them the factor is lower
    assert 0.95 < without_methanol < every_species - 1e-4
    assert global_factor_without(method, {"no such molecule"}) == every_species
