import itertools
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from flowjax import couplings, ot
from tests.train.helpers import env


def _clouds(n, seed=0, d=2):
    x0 = jax.random.normal(jax.random.key(seed), (n, d))
    x1 = jax.random.normal(jax.random.key(seed + 1), (n, d)) * 0.5 + 2.0
    return x0, x1


def _cost(c, perm):
    return float(jnp.sum(c[jnp.arange(c.shape[0]), perm]))


@pytest.mark.parametrize("backend", ot.EXACT_BACKENDS)
def test_exact_assignment_matches_brute_force_and_scipy(backend):
    x0, x1 = _clouds(6)
    c = ot.squared_distances(x0, x1)
    brute = min(sum(float(c[i, p[i]]) for i in range(6)) for p in itertools.permutations(range(6)))
    perm = jax.jit(lambda c: ot.exact_assignment(c, backend))(c)
    assert _cost(c, perm) == pytest.approx(brute, rel=1e-6)
    x0, x1 = _clouds(300, seed=3)
    c = ot.squared_distances(x0, x1)
    rows, cols = linear_sum_assignment(np.asarray(c, np.float64))
    perm = ot.exact_assignment(c, backend)
    assert sorted(np.asarray(perm).tolist()) == list(range(300))
    assert _cost(c, perm) == pytest.approx(float(np.asarray(c)[rows, cols].sum()), rel=1e-5)


def test_auction_is_a_permutation_within_one_percent_at_512():
    x0, x1 = _clouds(512, seed=5)
    c = ot.squared_distances(x0, x1)
    perm = jax.jit(ot.auction_assignment)(c)
    assert sorted(np.asarray(perm).tolist()) == list(range(512))
    exact = _cost(c, ot.exact_assignment(c))
    assert exact <= _cost(c, perm) <= 1.01 * exact


def test_sinkhorn_marginals_and_agreement_with_pot():
    import ot as pot

    x0, x1 = _clouds(64, seed=7)
    c = ot.squared_distances(x0, x1)
    plan = jax.jit(lambda c: ot.sinkhorn(c, 0.5, tol=1e-7))(c)
    np.testing.assert_allclose(plan.sum(1), 1 / 64, rtol=1e-4)
    np.testing.assert_allclose(plan.sum(0), 1 / 64, rtol=1e-4)
    reference = pot.sinkhorn(
        np.full(64, 1 / 64), np.full(64, 1 / 64), np.asarray(c, np.float64), 0.5, stopThr=1e-10
    )
    np.testing.assert_allclose(plan, reference, atol=1e-5)


def test_squared_distances_flatten_events():
    x = jax.random.normal(jax.random.key(0), (3, 2, 2))
    y = jax.random.normal(jax.random.key(1), (4, 2, 2))
    expected = jnp.sum((x[:, None] - y[None]) ** 2, axis=(2, 3))
    np.testing.assert_allclose(ot.squared_distances(x, y), expected, rtol=1e-5, atol=1e-5)


def _sorted_rows(a):
    a = np.asarray(a)
    return a[np.lexsort(a.T[::-1])]


@pytest.mark.parametrize("solver", ["exact", "auction"])
def test_permutation_couplings_use_every_sample_once(solver):
    x0, x1 = _clouds(64)
    y = jnp.arange(64)
    c0, c1, labels = jax.jit(couplings.ot_coupling(solver))(jax.random.key(0), x0, x1, y=y)
    np.testing.assert_array_equal(c0, x0)
    np.testing.assert_array_equal(_sorted_rows(c1), _sorted_rows(x1))
    np.testing.assert_array_equal(c1, x1[labels["y"]])  # labels travel with x1
    independent_cost = float(jnp.sum((x0 - x1) ** 2))
    assert float(jnp.sum((c0 - c1) ** 2)) < independent_cost


def test_with_replacement_duplicates_and_drops_pairs_like_torchcfm():
    x0, x1 = _clouds(256)
    c0, c1, _ = couplings.ot_coupling("exact", replace=True)(jax.random.key(1), x0, x1)
    exact0, exact1, _ = couplings.ot_coupling("exact")(jax.random.key(1), x0, x1)
    pairs = {
        tuple(np.round(np.concatenate([a, b]), 5))
        for a, b in zip(np.asarray(exact0), np.asarray(exact1), strict=True)
    }
    drawn = [
        tuple(np.round(np.concatenate([a, b]), 5))
        for a, b in zip(np.asarray(c0), np.asarray(c1), strict=True)
    ]
    assert set(drawn) <= pairs  # only optimal pairs ...
    assert len(set(drawn)) < 256  # ... some repeated, some dropped (~1 - 1/e of them kept)
    assert 0.55 * 256 < len(set(drawn)) < 0.75 * 256


def test_sinkhorn_coupling_and_argument_checks():
    x0, x1 = _clouds(128)
    c0, c1, _ = jax.jit(couplings.ot_coupling("sinkhorn", reg=0.05))(jax.random.key(2), x0, x1)
    e0, e1, _ = couplings.ot_coupling("exact")(jax.random.key(2), x0, x1)
    sinkhorn_cost, exact_cost = (
        float(jnp.mean(jnp.sum((a - b) ** 2, 1))) for a, b in ((c0, c1), (e0, e1))
    )
    assert (
        exact_cost
        <= sinkhorn_cost
        < 1.05 * exact_cost
        < float(jnp.mean(jnp.sum((x0 - x1) ** 2, 1)))
    )
    with pytest.raises(ValueError, match="needs reg > 0"):
        couplings.ot_coupling("sinkhorn")
    with pytest.raises(ValueError, match="unknown solver 'hungarian'"):
        couplings.ot_coupling("hungarian")


def test_within_class_pairs_only_match_labels():
    x0, x1 = _clouds(60)
    y = jnp.arange(60) % 3
    coupling = jax.jit(couplings.ot_coupling("exact", within="y"))
    y0 = jnp.roll(y, 1)  # labelled sources: every pair must share its class
    c0, c1, labels = coupling(jax.random.key(3), x0, x1, y=y, y0=y0)
    np.testing.assert_array_equal(c0, x0)
    np.testing.assert_array_equal(labels["y"], y0)
    assert "y0" not in labels
    # unlabelled sources (noise): the batch's labels are dealt out at random, then matched
    _, c1, labels = coupling(jax.random.key(4), x0, x1, y=y)
    np.testing.assert_array_equal(np.bincount(np.asarray(labels["y"])), [20, 20, 20])
    rows = [int(np.where((np.asarray(x1) == np.asarray(r)).all(1))[0][0]) for r in np.asarray(c1)]
    np.testing.assert_array_equal(labels["y"], y[jnp.asarray(rows)])


def test_sample_pairs_follows_the_plan():
    plan = jnp.array([[0.1, 0.2, 0.0], [0.3, 0.0, 0.4]])
    i, j = couplings.sample_pairs(jax.random.key(0), plan, 200_000)
    freq = np.bincount(np.asarray(i * 3 + j), minlength=6) / 200_000
    np.testing.assert_allclose(freq, np.asarray(plan).ravel(), atol=4e-3)


PER_SHARD_SCRIPT = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec
from flowjax import couplings
from flowjax.train.config import MeshConfig
from flowjax.train.sharding import make_mesh
mesh = make_mesh(MeshConfig(fsdp=2))
key = jax.random.key(0)
x0 = jax.random.normal(key, (64, 2))
x1 = jax.random.normal(jax.random.key(1), (64, 2)) + 3.0
y = jnp.arange(64) % 4
sharded = jax.device_put((x0, x1, y), NamedSharding(mesh, PartitionSpec(("data", "fsdp"))))
for solver in ("exact", "auction", "sinkhorn"):
    c = couplings.ot_coupling(solver, reg=0.5 if solver == "sinkhorn" else None)
    glob = jax.jit(c)(key, *sharded[:2], y=sharded[2])
    ref = c(key, x0, x1, y=y)
    assert all(np.array_equal(a, b) for a, b in zip(glob[:2], ref[:2])), solver
    out = jax.jit(couplings.per_shard(c, mesh))(key, *sharded[:2], y=sharded[2])
    assert out[1].sharding.spec == PartitionSpec(("data", "fsdp")), out[1].sharding
    for i in range(8):
        block = slice(8 * i, 8 * i + 8)
        r = c(jax.random.fold_in(key, i), x0[block], x1[block], y=y[block])
        assert np.array_equal(out[0][block], r[0]) and np.array_equal(out[1][block], r[1])
        assert np.array_equal(out[2]["y"][block], r[2]["y"]), (solver, i)
print("ok")
"""


@pytest.mark.slow
def test_per_shard_couples_each_device_block_and_global_matches_one_device():
    """On 8 devices: the global coupling equals the unsharded one; `per_shard` equals the
    coupling of each device's block with its folded key, and keeps the batch sharded."""
    out = subprocess.run(
        [sys.executable, "-c", PER_SHARD_SCRIPT],
        env=env(8),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_vmapped_exact_assignment_solves_each_problem_in_one_callback():
    x0, x1 = _clouds(4 * 3 * 40)
    cost = jax.vmap(ot.squared_distances)(x0.reshape(12, 40, 2), x1.reshape(12, 40, 2))
    one_by_one = np.stack([np.asarray(ot.exact_assignment(c)) for c in cost])
    batched = jax.jit(jax.vmap(jax.vmap(ot.exact_assignment)))(cost.reshape(4, 3, 40, 40))
    np.testing.assert_array_equal(np.asarray(batched).reshape(12, 40), one_by_one)
    assert len({tuple(p) for p in one_by_one}) == 12  # different problems, different answers


def _wrap(a):
    return (a + jnp.pi) % (2 * jnp.pi) - jnp.pi


def _circle_cost(a, b):
    """Squared geodesic distance on the unit circle between angles: `[n], [m] -> [n, m]`."""
    return _wrap(a[:, None] - b[None, :]) ** 2


def _circle_pairs_cost(a, b):
    return float(jnp.sum(_wrap(a - b) ** 2))


def test_exact_coupling_is_optimal_under_a_geodesic_cost():
    """Angles on an arc across the wrap-around at pi, and the same points rotated by 0.3 and
    shuffled. Under the squared geodesic distance the rotation is the optimal pairing (on the
    arc the circle is a line, where the monotone pairing is optimal for a convex cost); the
    Euclidean cost on the angles sees the points on either side of pi as far apart."""
    x0 = _wrap(jnp.pi + jnp.array([-0.5, -0.35, -0.2, -0.1, 0.15, 0.4]))
    rotated = _wrap(x0 + 0.3)
    x1 = rotated[jnp.array([3, 0, 5, 1, 4, 2])]
    c = np.asarray(_circle_cost(x0, x1), np.float64)
    perms = [list(p) for p in itertools.permutations(range(6))]
    brute = min(c[range(6), p].sum() for p in perms)
    assert brute == pytest.approx(6 * 0.3**2, rel=1e-5)

    key = jax.random.key(0)
    c0, c1, _ = jax.jit(couplings.ot_coupling("exact", cost=_circle_cost))(key, x0, x1)
    np.testing.assert_array_equal(c0, x0)
    np.testing.assert_array_equal(c1, rotated)
    e0, e1, _ = couplings.ot_coupling("exact")(key, x0, x1)  # squared Euclidean on the angles
    assert not np.array_equal(e1, rotated)
    assert _circle_pairs_cost(e0, e1) > 3 * brute

    # with replacement: every drawn pair is a pair of the optimal (rotation) pairing
    c0, c1, _ = couplings.ot_coupling("exact", replace=True, cost=_circle_cost)(key, x0, x1)
    np.testing.assert_allclose(_wrap(c1 - c0), 0.3, atol=1e-5)

    # within classes: the optimum, under the geodesic cost, over class-respecting pairings
    y1, y0 = jnp.array([0, 0, 0, 1, 1, 1]), jnp.array([0, 1, 0, 1, 0, 1])
    allowed = [p for p in perms if all(y0[i] == y1[p[i]] for i in range(6))]
    restricted = min(c[range(6), p].sum() for p in allowed)
    assert restricted > brute + 0.1  # the rotation does not respect the classes
    coupling = couplings.ot_coupling("exact", within="y", cost=_circle_cost)
    c0, c1, labels = jax.jit(coupling)(key, x0, x1, y=y1, y0=y0)
    np.testing.assert_array_equal(labels["y"], y0)
    assert _circle_pairs_cost(c0, c1) == pytest.approx(restricted, rel=1e-5)


@pytest.mark.parametrize("solver", ["auction", "sinkhorn"])
def test_device_solvers_are_near_optimal_under_a_geodesic_cost(solver):
    """Two clusters of angles straddling the wrap-around: the auction's permutation is within
    its `n * eps * mean(cost)` guarantee of the geodesic optimum, sinkhorn's plan has uniform
    marginals and near-optimal cost, and the pairs drawn from it are near-optimal; with the
    Euclidean cost on the angles either solver pairs far worse."""
    n = 128
    x0 = _wrap(jnp.pi + 0.5 * jax.random.normal(jax.random.key(0), (n,)))
    x1 = _wrap(jnp.pi + 0.6 + 0.5 * jax.random.normal(jax.random.key(1), (n,)))
    c = _circle_cost(x0, x1)
    rows, cols = linear_sum_assignment(np.asarray(c, np.float64))
    optimum = float(np.asarray(c, np.float64)[rows, cols].sum())
    options = {"reg": 0.02} if solver == "sinkhorn" else {}
    key = jax.random.key(2)
    c0, c1, _ = jax.jit(couplings.ot_coupling(solver, cost=_circle_cost, **options))(key, x0, x1)
    e0, e1, _ = jax.jit(couplings.ot_coupling(solver, **options))(key, x0, x1)
    if solver == "auction":
        np.testing.assert_array_equal(c0, x0)
        np.testing.assert_array_equal(np.sort(c1), np.sort(x1))  # a permutation of x1
        assert (
            optimum
            <= _circle_pairs_cost(c0, c1)
            <= optimum + n * 5e-3 * float(jnp.mean(c)) * (1 + 1e-5)
        )
    else:
        plan = ot.sinkhorn(c, 0.02, tol=1e-6)
        np.testing.assert_allclose(plan.sum(1), 1 / n, rtol=1e-4)
        np.testing.assert_allclose(plan.sum(0), 1 / n, rtol=1e-4)
        assert optimum <= n * float(jnp.sum(plan * c)) < 1.05 * optimum
        assert _circle_pairs_cost(c0, c1) < 1.25 * optimum  # n pairs drawn from the plan
    assert _circle_pairs_cost(e0, e1) > 1.5 * optimum


def test_a_cost_of_the_wrong_shape_is_an_error():
    x0, x1 = _clouds(6)

    def diagonal(a, b):  # pairs a_i with b_i only: [n], not [n, m]
        return jnp.sum((a - b) ** 2, axis=-1)

    with pytest.raises(ValueError, match=r"\[n, m\] = \[6, 6\].*got shape \(6,\)"):
        jax.jit(couplings.ot_coupling("exact", cost=diagonal))(jax.random.key(0), x0, x1)
