"""Exact-likelihood baselines for tables of categorical variables `x [N, D]` in [0, K): the
independent model (a product of smoothed marginals) and the Chow-Liu tree (Chow & Liu 1968:
the maximum spanning tree of the pairwise mutual information, a tree Bayesian network fitted
by smoothed counts). Both give exact log-likelihoods in nats per sample; the smoothing
`alpha` (pseudo-counts per cell) is chosen on the validation split by `fit_best`.
"""

from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

ALPHAS = (0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def one_hot(x: np.ndarray, k: int) -> np.ndarray:
    """`[N, D]` integers -> `[N, D * K]` float64 indicators."""
    return np.eye(k)[x].reshape(len(x), -1)


@dataclass(frozen=True)
class Independent:
    """`log p(x) = sum_i log p_i(x_i)`, `p_i(a) = (N_i(a) + alpha) / (N + K alpha)`."""

    log_marginals: np.ndarray  # [D, K]

    @classmethod
    def fit(cls, x: np.ndarray, k: int, alpha: float) -> "Independent":
        counts = one_hot(x, k).sum(0).reshape(x.shape[1], k) + alpha
        return cls(np.log(counts / counts.sum(1, keepdims=True)))

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """`[N]` nats."""
        return np.take_along_axis(self.log_marginals[None], x[..., None], -1)[..., 0].sum(1)


@dataclass(frozen=True)
class ChowLiuTree:
    """`log p(x) = log p_r(x_r) + sum_{j != r} log p(x_j | x_parent(j))`, rooted at variable 0,
    from smoothed pairwise counts `p_ij(a, b) = (N_ij(a, b) + alpha) / (N + K^2 alpha)` (whose
    marginals are consistent, so every conditional normalizes)."""

    parents: np.ndarray  # [D], -1 at the root
    log_root: np.ndarray  # [K]
    log_conditionals: np.ndarray  # [D, K (parent value), K (child value)]; unused at the root

    @classmethod
    def fit(cls, x: np.ndarray, k: int, alpha: float) -> "ChowLiuTree":
        n, d = x.shape
        h = one_hot(x, k)
        joint = ((h.T @ h).reshape(d, k, d, k).transpose(0, 2, 1, 3) + alpha) / (n + k * k * alpha)
        marginal = joint[:, 0].sum(2)  # [D, K]: p_i(a) = sum_b p_i0(a, b)
        ratio = joint / (marginal[:, None, :, None] * marginal[None, :, None, :])
        information = np.sum(joint * np.log(ratio), axis=(2, 3))  # [D, D]
        np.fill_diagonal(information, 0.0)
        # the maximum spanning tree: minimum of (max + 1 - I), every weight positive
        tree = minimum_spanning_tree(np.triu(information.max() + 1.0 - information, 1))
        _, parents = breadth_first_order(tree, 0, directed=False)
        parents = np.where(parents < 0, -1, parents)
        log_conditionals = np.zeros((d, k, k))
        for j in np.flatnonzero(parents >= 0):
            p = parents[j]
            log_conditionals[j] = np.log(joint[p, j] / marginal[p][:, None])
        return cls(parents, np.log(marginal[0]), log_conditionals)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """`[N]` nats."""
        children = np.flatnonzero(self.parents >= 0)
        terms = self.log_conditionals[children, x[:, self.parents[children]], x[:, children]]
        return self.log_root[x[:, 0]] + terms.sum(1)

    def edges(self) -> set[tuple[int, int]]:
        """The tree's undirected edges `(i, j)`, i < j."""
        return {tuple(sorted((int(p), j))) for j, p in enumerate(self.parents) if p >= 0}


def fit_best(
    model: type, train: np.ndarray, valid: np.ndarray, k: int, alphas: tuple = ALPHAS
) -> tuple[object, float]:
    """The model fitted on `train` with the `alpha` that maximizes the mean validation
    log-likelihood, and that alpha."""
    fits = {a: model.fit(train, k, a) for a in alphas}
    alpha = max(alphas, key=lambda a: fits[a].log_prob(valid).mean())
    return fits[alpha], alpha
