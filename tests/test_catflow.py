"""CatFlow (variational FM on one-hot tokens): the exact posterior's flow carries Gaussian
noise to the data law, the loss is the posterior cross-entropy, guidance acts on logits."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from flowjax import families
from flowjax.contracts import DataSpec, SamplerSettings

V = 4


def _exact_logits(q):
    """The exact posterior of one token under x_t = t e_k + (1 - t) x0, x0 ~ N(0, I):
    log q_k - |x_t - t e_k|^2 / (2 (1 - t)^2), up to a constant in k."""

    def field(params, x, t, y=None):
        del params, y
        t = jnp.broadcast_to(t, x.shape[:1])[:, None, None]  # [B, 1, 1]
        centers = t[..., None] * jnp.eye(V)  # [B, 1, V, V]: row k is t e_k
        sq = jnp.sum((x[:, :, None, :] - centers) ** 2, axis=-1)  # [B, 1, V]
        return jnp.log(q) - sq / (2 * (1 - t) ** 2)

    return field


def test_the_flow_of_the_exact_posterior_samples_the_data_law():
    q = jnp.array([0.5, 0.25, 0.15, 0.1])
    family = families.CatFlow(families.CatFlowConfig(), DataSpec((1,), "int32", vocab_size=V))
    sample = jax.jit(family.sampler(SamplerSettings("dopri5")), static_argnums=(0, 3))
    x, solve_stats = sample(_exact_logits(q), None, jax.random.key(0), 20_000, {})
    assert x.shape == (20_000, 1) and x.dtype == jnp.int32
    assert int(solve_stats.nfe_batch) > 1
    counts = np.bincount(np.asarray(x[:, 0]), minlength=V)
    assert stats.chisquare(counts, np.asarray(q, np.float64) * len(x)).pvalue > 1e-3


def test_loss_is_the_posterior_cross_entropy_and_the_velocity_points_to_its_mean():
    q = jnp.array([0.4, 0.3, 0.2, 0.1])
    family = families.CatFlow(families.CatFlowConfig(), DataSpec((1,), "int32", vocab_size=V))
    field = _exact_logits(q)
    x1 = jax.random.choice(jax.random.key(1), V, (50_000, 1), p=q)
    loss, aux = jax.jit(lambda k: family.loss(field, None, k, {"x1": x1}))(jax.random.key(2))
    # the exact posterior's cross-entropy lies between 0 and the entropy of q (t ~ U(0, 1))
    entropy = -float(jnp.sum(q * jnp.log(q)))
    assert 0.2 * entropy < float(loss) < entropy and 0.0 < float(aux["accuracy"]) < 1.0
    # the field the sampler integrates: v = (softmax(logits) - x) / (1 - t)
    x = jax.random.normal(jax.random.key(3), (5, 1, V))
    t = jnp.full(5, 0.3)
    mu = jax.nn.softmax(field(None, x, t), axis=-1)
    velocity = family.mean(field)(None, x, t)
    np.testing.assert_allclose(velocity, mu, rtol=1e-6)
    from flowjax import paths

    v = paths.as_velocity(family.mean(field), family.path, "x1")(None, x, t)
    np.testing.assert_allclose(v, (mu - x) / 0.7, rtol=1e-5, atol=1e-6)


def test_held_out_cross_entropy_and_bad_configs():
    q = jnp.array([0.4, 0.3, 0.2, 0.1])
    family = families.CatFlow(families.CatFlowConfig(), DataSpec((3,), "int32", vocab_size=V))
    assert family.network.input_shape == (3, V) and family.network.output == "logits"
    (evaluate,) = family.evaluators(SamplerSettings("dopri5")).values()
    x1 = jax.random.choice(jax.random.key(4), V, (256, 3), p=q)

    def uniform(params, x, t):
        return jnp.zeros_like(x)

    out = evaluate(uniform, None, jax.random.key(5), {"x1": x1})
    assert float(out["cross_entropy"]) == pytest.approx(math.log(V), rel=1e-6)
    simplex = families.CatFlow(
        families.CatFlowConfig(source="simplex"), DataSpec((3,), "int32", vocab_size=V)
    )
    x0 = simplex.source.sample(jax.random.key(6), (8, 3, V), jnp.float32)
    np.testing.assert_allclose(x0.sum(-1), 1.0, rtol=1e-6)  # the linear simplex FM baseline
    assert float(x0.min()) >= 0.0
    uniform = simplex.source.sample(jax.random.key(7), (20_000, V), jnp.float32)
    assert stats.kstest(np.asarray(uniform[:, 0]), stats.beta(1, V - 1).cdf).pvalue > 1e-3
    with pytest.raises(ValueError, match="integer tokens"):
        families.CatFlow(families.CatFlowConfig(), DataSpec((2,)))
    with pytest.raises(ValueError, match="endpoint_eps"):
        families.CatFlowConfig(endpoint_eps=0.0).check()
