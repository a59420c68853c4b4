import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax import guidance, models, solvers

NULL = 3  # the MLP's null row, num_classes: the same class as guidance.NULL_LABEL


@pytest.fixture
def field():
    v, params = models.functional(
        models.MLP(
            2, width=32, depth=2, num_classes=3, time_embedding="sinusoidal", rngs=nnx.Rngs(0)
        )
    )
    return v, params


def _batch(n=16):
    x = jax.random.normal(jax.random.key(1), (n, 2))
    y = jnp.arange(n) % 3
    return x, y


def test_guided_field_interpolates_conditional_and_unconditional(field):
    v, params = field
    x, y = _batch()
    t = jnp.linspace(0.0, 1.0, 16)
    conditional = v(params, x, t, y=y)
    unconditional = v(params, x, t, y=jnp.full_like(y, NULL))
    assert not np.allclose(conditional, unconditional)  # the labels matter
    for w, want in ((1.0, conditional), (0.0, unconditional)):
        np.testing.assert_allclose(guidance.guided(v, w, NULL)(params, x, t, y=y), want, atol=1e-6)
    np.testing.assert_allclose(
        guidance.guided(v, 2.5, NULL)(params, x, t, y=y),
        unconditional + 2.5 * (conditional - unconditional),
        atol=1e-5,
    )
    # a traced guidance scale: one compiled sweep over w
    sweep = jax.jit(jax.vmap(lambda w: guidance.guided(v, w, NULL)(params, x, t, y=y)))
    np.testing.assert_allclose(sweep(jnp.array([0.0, 1.0]))[1], conditional, atol=1e-6)


def test_one_network_call_per_guided_evaluation(field):
    v, params = field
    calls = []

    def counted(p, x, t, **cond):
        calls.append(x.shape[0])
        return v(p, x, t, **cond)

    x, y = _batch()
    guidance.guided(counted, 2.0, NULL)(params, x, 0.5, y=y)
    assert calls == [32]  # the doubled batch, once
    calls.clear()
    for w in (0.0, 1):  # the unconditional or the conditional field alone: one half
        guidance.guided(counted, w, NULL)(params, x, 0.5, y=y)
    assert calls == [16, 16]
    calls.clear()
    interval = guidance.guided(counted, 2.0, NULL, interval=(0.2, 0.8))
    np.testing.assert_allclose(
        interval(params, x, 0.9, y=y), v(params, x, 0.9, y=y), atol=1e-6
    )  # outside the interval: the conditional field
    np.testing.assert_allclose(
        interval(params, x, 0.5, y=y), guidance.guided(v, 2.0, NULL)(params, x, 0.5, y=y), atol=1e-6
    )
    # per-sample times: inside and outside mixed in one batch
    t = jnp.where(jnp.arange(16) < 8, 0.1, 0.5)
    mixed = interval(params, x, t, y=y)
    np.testing.assert_allclose(mixed[:8], v(params, x, t, y=y)[:8], atol=1e-6)
    np.testing.assert_allclose(
        mixed[8:], guidance.guided(v, 2.0, NULL)(params, x, t, y=y)[8:], atol=1e-6
    )


def test_guided_field_works_with_samplers_and_likelihoods(field):
    v, params = field
    x, y = _batch(8)
    cond = {"y": y}
    for method in ("euler", "dopri5"):
        opts = {"num_steps": 20} if method == "euler" else {}
        got = solvers.sample(
            guidance.guided(v, 1.0, NULL), params, x, cond=cond, method=method, **opts
        )
        want = solvers.sample(v, params, x, cond=cond, method=method, **opts)
        np.testing.assert_allclose(got.y, want.y, atol=1e-5)
    logp, _ = solvers.log_likelihood(guidance.guided(v, 1.0, NULL), params, x, cond=cond)
    want, _ = solvers.log_likelihood(v, params, x, cond=cond)
    np.testing.assert_allclose(logp, want, atol=1e-4)


def test_label_dropout_per_sample_and_whole_batch():
    y = jnp.arange(10_000) % 10
    dropped = guidance.drop_labels(jax.random.key(0), y, 0.2, 10)
    frac = float(jnp.mean(dropped == 10))
    assert 0.18 < frac < 0.22
    np.testing.assert_array_equal(dropped[dropped != 10], y[dropped != 10])
    whole = [
        float(jnp.mean(guidance.drop_labels(k, y, 0.5, 10, whole_batch=True) == 10))
        for k in jax.random.split(jax.random.key(1), 40)
    ]
    assert set(whole) == {0.0, 1.0}  # all or nothing
    np.testing.assert_array_equal(guidance.drop_labels(jax.random.key(2), y, 0.0, 10), y)
    with pytest.raises(ValueError, match="must be in \\[0, 1\\]"):
        guidance.drop_labels(jax.random.key(0), y, 1.5, 10)
    with pytest.raises(ValueError, match="needs the labels"):
        guidance.guided(lambda p, x, t, **c: x, 2.0, 10)(None, y[:, None], 0.5)


def test_null_label_default_is_the_models_null_class(field):
    """`NULL_LABEL` (-1), the default of `guided` and `drop_labels`, is read by our models as
    the null class: the same fields as with the explicit null label `num_classes`."""
    assert guidance.NULL_LABEL == -1
    v, params = field
    x, y = _batch()
    t = jnp.linspace(0.0, 1.0, 16)
    for w in (0.0, 2.5):
        np.testing.assert_array_equal(
            guidance.guided(v, w)(params, x, t, y=y), guidance.guided(v, w, NULL)(params, x, t, y=y)
        )
    dropped = guidance.drop_labels(jax.random.key(0), y, 0.5)
    assert set(np.unique(dropped[dropped != y]).tolist()) == {guidance.NULL_LABEL}
    as_null = jnp.where(dropped == guidance.NULL_LABEL, NULL, dropped)
    np.testing.assert_array_equal(v(params, x, t, y=dropped), v(params, x, t, y=as_null))
