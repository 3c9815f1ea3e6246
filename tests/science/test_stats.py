"""The run-time kNN and PCA against their scikit-learn oracles."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from flowtheory.datasets.toys import s_curve
from flowtheory.science import stats
from flowtheory.science.stats import knn_indices, pca


@pytest.mark.parametrize(("n_ref", "n_pts", "d", "k"), [(500, 80, 3, 30), (300, 300, 2, 11), (400, 20, 50, 7)])
def test_knn_matches_sklearn(n_ref, n_pts, d, k):
    rng = np.random.default_rng(d)
    ref = rng.normal(size=(n_ref, d))
    pts = ref[:n_pts] if n_ref == n_pts else rng.normal(size=(n_pts, d))
    ours = knn_indices(ref, pts, k)
    oracle = NearestNeighbors(n_neighbors=k).fit(ref).kneighbors(pts, return_distance=False)
    assert ours.shape == (n_pts, k)
    np.testing.assert_array_equal(ours, oracle)
    if n_ref == n_pts:
        np.testing.assert_array_equal(ours[:, 0], np.arange(n_pts))  # each point is its own nearest


def test_knn_on_the_s_curve_in_chunks_matches_sklearn(monkeypatch):
    x, _ = s_curve(2_000, np.random.default_rng(0))
    monkeypatch.setattr(stats, "KNN_CHUNK_PAIRS", 50_000)  # 25 rows per chunk
    ours = knn_indices(x, x, 11)
    oracle = NearestNeighbors(n_neighbors=11).fit(x).kneighbors(x, return_distance=False)
    np.testing.assert_array_equal(ours, oracle)


def test_knn_breaks_ties_by_index_and_rejects_bad_k():
    ref = np.array([[1.0], [-1.0], [1.0], [3.0]])
    np.testing.assert_array_equal(knn_indices(ref, np.zeros((1, 1)), 3), [[0, 1, 2]])
    with pytest.raises(ValueError, match=r"k must be in \[1, 4\], got 5"):
        knn_indices(ref, ref, 5)


@pytest.mark.parametrize(("n", "d", "rank"), [(1_000, 3, 3), (500, 40, 40), (300, 20, 12)])
def test_pca_matches_sklearn(n, d, rank):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d)) * np.linspace(0.5, 3, d) + 2.0
    evals, axes, mean = pca(x)
    oracle = PCA().fit(x)
    np.testing.assert_allclose(evals[:rank], oracle.explained_variance_[:rank], rtol=1e-9)
    assert (evals >= 0).all() and np.all(np.diff(evals) <= 0)
    assert np.abs(evals[rank:]).max(initial=0) < 1e-9 * evals[0]  # rank-deficient: exact zeros up to rounding
    np.testing.assert_allclose(mean, oracle.mean_, atol=1e-12)
    scores, oracle_scores = (x - mean) @ axes.T, oracle.transform(x)
    for j in range(rank):  # up to sign
        sign = np.sign(scores[:, j] @ oracle_scores[:, j])
        np.testing.assert_allclose(sign * scores[:, j], oracle_scores[:, j], atol=1e-8 * np.abs(oracle_scores).max())
