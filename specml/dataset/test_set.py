"""Representative test structures: MBTR descriptors (dscribe) clustered with KMeans (scikit-learn)."""

from __future__ import annotations

import warnings

import numpy as np
from ase import Atoms


def mbtr_features(frames: list[Atoms], species: list[str]) -> np.ndarray:
    """k=2 inverse-distance MBTR of each (non-periodic) frame, L2-normalised."""
    from dscribe.descriptors import MBTR

    mbtr = MBTR(
        species=species,
        geometry={"function": "inverse_distance"},
        grid={"min": 0.0, "max": 1.5, "n": 100, "sigma": 0.02},
        weighting={"function": "unity"},
        periodic=False,
        normalization="l2",
        sparse=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # dscribe calls a deprecated ASE accessor
        return np.asarray(mbtr.create(frames, n_jobs=1)).reshape(len(frames), -1)


def select_representative(
    frames: list[Atoms], n_clusters: int = 5, per_cluster: int = 4, seed: int = 0
) -> list[int]:
    """Indices of ``per_cluster`` random frames from each of ``n_clusters`` KMeans clusters of MBTR."""
    from sklearn.cluster import KMeans

    if not frames:
        return []
    species = sorted({s for f in frames for s in f.get_chemical_symbols()})
    features = mbtr_features(frames, species)
    n_clusters = min(n_clusters, len(frames))
    labels = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(features)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for cluster in range(n_clusters):
        members = np.flatnonzero(labels == cluster)
        take = min(per_cluster, len(members))
        chosen.extend(int(i) for i in rng.choice(members, size=take, replace=False))
    return sorted(chosen)
