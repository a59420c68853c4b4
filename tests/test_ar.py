"""The autoregressive baseline family: exact log-likelihood and ancestral sampling against a
known joint law, the causal-network requirement, and guidance in log-probability space."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from flowjax import families
from flowjax.contracts import DataSpec, NetworkSpec, SamplerSettings
from flowjax.train import build
from flowjax.train.config import ConfigError, ModelConfig, TrainConfig

V = 5
DATA = DataSpec((2,), "int32", vocab_size=V)


def _exact_field(q):
    """The exact causal field of the joint law `q [V, V]` of two tokens: position 0 (input:
    the start token) gives the first token's marginal, position 1 (input: the first token)
    its conditional law of the second."""
    log_q = jnp.log(q)

    def field(params, x, t, y=None):
        del params, t, y
        first = jnp.broadcast_to(jnp.log(q.sum(1)), (x.shape[0], V))
        second = log_q[jnp.minimum(x[:, 1], V - 1)]
        return jnp.stack([first, second], axis=1)

    return field


def test_nll_and_loss_are_the_exact_log_likelihood():
    q = jax.random.dirichlet(jax.random.key(0), jnp.full(V * V, 0.5)).reshape(V, V)
    family = families.AR(families.ARConfig(), DATA)
    x1 = jax.random.randint(jax.random.key(1), (64, 2), 0, V)
    log_q = np.log(np.asarray(q))[np.asarray(x1[:, 0]), np.asarray(x1[:, 1])]
    field = _exact_field(q)
    loss, aux = family.loss(field, None, jax.random.key(2), {"x1": x1})
    np.testing.assert_allclose(loss, -log_q.mean() / 2, rtol=1e-5)  # nats per token
    (evaluate,) = family.evaluators(SamplerSettings("ancestral")).values()
    bits = evaluate(field, None, jax.random.key(3), {"x1": x1})["nll_bits_per_token"]
    np.testing.assert_allclose(bits, -log_q.mean() / (2 * math.log(2)), rtol=1e-5)
    np.testing.assert_allclose(aux["bits_per_token"], bits, rtol=1e-6)


def test_ancestral_samples_follow_the_joint_law():
    q = jax.random.dirichlet(jax.random.key(4), jnp.full(V * V, 2.0)).reshape(V, V)
    family = families.AR(families.ARConfig(), DATA)
    sample = jax.jit(family.sampler(SamplerSettings("ancestral")), static_argnums=(0, 3))
    x, solve_stats = sample(_exact_field(q), None, jax.random.key(5), 20_000, {})
    assert x.dtype == jnp.int32 and int(solve_stats.nfe_batch) == 2  # one call per token
    counts = np.zeros((V, V))
    np.add.at(counts, (np.asarray(x[:, 0]), np.asarray(x[:, 1])), 1)
    expected = np.asarray(q, np.float64).ravel()
    assert stats.chisquare(counts.ravel(), expected / expected.sum() * len(x)).pvalue > 1e-3
    # a low temperature concentrates on the most likely continuation
    cold = families.AR(families.ARConfig(temperature=0.01), DATA)
    x = jax.jit(cold.sampler(SamplerSettings("ancestral")), static_argnums=(0, 3))(
        _exact_field(q), None, jax.random.key(6), 100, {}
    )[0]
    np.testing.assert_array_equal(x[:, 1], np.argmax(np.asarray(q), axis=1)[np.asarray(x[:, 0])])


def test_guided_sampling_mixes_log_probabilities_in_one_call_per_token():
    """Per-label laws `q_y`: guidance w gives `q_y^w q_null^(1 - w)` (normalized), here for
    one token, with one doubled network call per token; w = 1 is the conditional law."""
    data = DataSpec((1,), "int32", num_classes=2, vocab_size=V)
    q = jax.random.dirichlet(jax.random.key(7), jnp.full(V, 1.0), (3,))  # labels 0, 1, null

    def field(params, x, t, y):
        del params, t
        return jnp.log(q[jnp.where(y < 0, 2, y)])[:, None]

    family = families.AR(families.ARConfig(), data)
    for w in (1.0, 2.5):
        sample = jax.jit(
            family.sampler(SamplerSettings("ancestral", guidance=w)), static_argnums=(0, 3)
        )
        x, solve_stats = sample(
            field, None, jax.random.key(8), 20_000, {"y": jnp.zeros(20_000, int)}
        )
        assert int(solve_stats.nfe_batch) == 1
        target = np.asarray(q[0], np.float64) ** w * np.asarray(q[2], np.float64) ** (1 - w)
        counts = np.bincount(np.asarray(x[:, 0]), minlength=V)
        expected = target / target.sum() * len(x)
        assert stats.chisquare(counts, expected).pvalue > 1e-3, w


def test_the_family_needs_integer_tokens_and_a_causal_network():
    with pytest.raises(ValueError, match="integer tokens"):
        families.AR(families.ARConfig(), DataSpec((2,)))
    with pytest.raises(ValueError, match="temperature"):
        families.ARConfig(temperature=0.0).check()
    spec = families.AR(families.ARConfig(), DataSpec((8,), "int32", vocab_size=V)).network
    assert spec == NetworkSpec((8,), (8, V), "int32", "logits", causal=True)
    model = ModelConfig("token_transformer", vocab_size=V, depth=1, width=16, heads=2)
    with pytest.raises(ConfigError, match="needs a causal network"):
        build.network(TrainConfig(model=model), spec, abstract=True)
    _, params = build.network(TrainConfig(model=model.replace(causal=True)), spec, abstract=True)
    assert jax.tree.leaves(params)
