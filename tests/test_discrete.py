"""Discrete flow matching on mixture paths: the path's marginals, the rate <-> posterior
conversions, the generalized KL against its definition, the ELBO against closed forms and
against the masked-diffusion (MDLM) bound."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from flowjax import guidance, losses, paths, solvers, sources
from flowjax._utils import Array

V = 5  # vocabulary; the mask token is V
MASK = sources.MaskToken(V)


@pytest.mark.parametrize("scheduler", [paths.CondOT(), paths.Polynomial(2.0), paths.Cosine()])
def test_mixture_path_takes_x1_with_probability_kappa(scheduler):
    path = paths.MixturePath(scheduler)
    x0 = jnp.zeros((4000, 16), jnp.int32)
    x1 = jnp.ones((4000, 16), jnp.int32)
    t = jnp.linspace(0.0, 1.0, 4000)
    x_t, dx_t = path.sample(x0, x1, t, key=jax.random.key(0))
    assert dx_t is None and x_t.dtype == x1.dtype and x_t.shape == x1.shape
    # at t = 0 all x0, at t = 1 all x1; in between the frequency follows kappa_t
    assert int(x_t[0].sum()) == 0 and int(x_t[-1].sum()) == 16
    bins = np.asarray(x_t, float).reshape(20, -1).mean(axis=1)
    kappa = np.asarray(path.kappa(t)).reshape(20, -1).mean(axis=1)
    np.testing.assert_allclose(bins, kappa, atol=0.03)
    with pytest.raises(ValueError, match="needs a key"):
        path.sample(x0, x1, t)


def test_rate_and_posterior_round_trip():
    path = paths.MixturePath(paths.Polynomial(3.0))
    k1, k2 = jax.random.split(jax.random.key(1))
    posterior = jax.nn.softmax(jax.random.normal(k1, (8, 3, V)), axis=-1)
    x_t = jax.random.randint(k2, (8, 3), 0, V + 1)  # some tokens are the mask (V)
    t = jnp.linspace(0.05, 0.95, 8)
    rate = path.rate(posterior, x_t, t)
    jump = np.asarray(path.jump_coefficient(t))[:, None]
    off = np.where(jax.nn.one_hot(x_t, V) > 0, 0.0, np.asarray(rate))
    assert (off >= 0).all()
    # a token at a vocabulary value: rates sum to zero; at the mask: leaves at the jump rate
    total = np.asarray(rate.sum(-1))
    np.testing.assert_allclose(total, np.where(np.asarray(x_t) == V, jump, 0.0), atol=1e-5)
    np.testing.assert_allclose(path.posterior(rate, x_t, t), posterior, atol=1e-5)
    # kappa_t = t^3: jump = 3 t^2 / (1 - t^3)
    np.testing.assert_allclose(jump[:, 0], 3 * t**2 / (1 - t**3), rtol=1e-5)


def _definition(model_rate, x_t, x1, jump):
    """sum_{x != x_t} [u_theta - u + u log(u / u_theta)] with the conditional rate
    u(x) = jump * delta_{x1}(x) off x_t, by brute force over the vocabulary."""
    model_rate, x_t, x1, jump = map(np.asarray, (model_rate, x_t, x1, jump))
    out = np.zeros(x_t.shape)
    for index in np.ndindex(*x_t.shape):
        for x in range(V):
            if x == x_t[index]:
                continue
            u = jump[index[0]] * (x == x1[index])
            m = model_rate[index][x]
            out[index] += m - u + (u * math.log(u / m) if u > 0 else 0.0)
    return out


def test_generalized_kl_is_the_definition():
    path = paths.MixturePath(paths.CondOT())
    k1, k2, k3 = jax.random.split(jax.random.key(2), 3)
    logits = jax.random.normal(k1, (6, 4, V)) * 2
    x1 = jax.random.randint(k2, (6, 4), 0, V)
    x_t = jnp.where(jax.random.bernoulli(k3, 0.5, x1.shape), x1, (x1 + 1) % (V + 1))
    t = jnp.linspace(0.1, 0.9, 6)
    jump = path.jump_coefficient(t)
    d = losses.generalized_kl(logits, x_t, x1, jump)
    model = path.rate(jax.nn.softmax(logits, -1), x_t, t)
    np.testing.assert_allclose(d, _definition(model, x_t, x1, jump), rtol=1e-4, atol=1e-5)
    assert (np.asarray(d) >= 0).all()
    # zero exactly when the posterior is the point mass at x1
    certain = jnp.where(jax.nn.one_hot(x1, V) > 0, 30.0, -30.0)
    np.testing.assert_allclose(losses.generalized_kl(certain, x_t, x1, jump), 0.0, atol=1e-6)


def test_elbo_is_tight_for_the_true_posterior_of_one_masked_token():
    """One token, mask source, kappa_t = t: the network that returns the data law q when the
    token is masked (and keeps it otherwise) generates q exactly, and the bound is -log q(x1)."""
    q = jnp.array([0.5, 0.25, 0.125, 0.0625, 0.0625])

    def field(params, x_t, t):
        del params, t
        return jnp.where((x_t == V)[..., None], jnp.log(q), 60.0 * jax.nn.one_hot(x_t, V) - 30)

    x1 = jnp.repeat(jnp.arange(V), 2000)[:, None]
    path = paths.MixturePath(paths.CondOT())
    nats = losses.dfm_elbo(field, None, jax.random.key(3), x1, path=path, source=MASK, num_times=64)
    per_token = np.asarray(nats).reshape(V, -1).mean(axis=1)
    np.testing.assert_allclose(per_token, -np.log(q), rtol=0.05)
    bits = losses.bits_per_token(nats.mean(), (1,))
    assert float(bits) == pytest.approx(float(nats.mean()) / math.log(2))


def test_elbo_bounds_the_nll_with_a_uniform_source():
    """With a uniform source and the same true-posterior network the bound is loose but holds
    on average: E_q[ELBO] >= H(q)."""
    q = jnp.array([0.7, 0.1, 0.1, 0.05, 0.05])
    uniform = sources.UniformTokens(V)
    path = paths.MixturePath(paths.CondOT())

    def field(params, x_t, t):
        # the exact posterior p(x1 | x_t) of one token: x_t = x1 w.p. kappa + (1 - kappa) / V
        del params
        kappa = path.kappa(t)[:, None, None]
        stay = kappa + (1 - kappa) / V
        like = jnp.where(jax.nn.one_hot(x_t, V) > 0, stay, (1 - kappa) / V)
        return jnp.log(q * like)

    x1 = jax.random.choice(jax.random.key(4), V, (20000, 1), p=q)
    nats = losses.dfm_elbo(field, None, jax.random.key(5), x1, path=path, source=uniform)
    entropy = float(-(q * jnp.log(q)).sum())
    assert float(nats.mean()) >= entropy
    assert float(nats.mean()) < entropy + 1.0


def test_generalized_kl_with_a_mask_source_is_the_mdlm_bound():
    """MDLM (Sahoo et al. 2024) writes its time s with s = 1 at the mask: s = 1 - t, alpha_s =
    1 - s, integrand (alpha'_s / (1 - alpha_s)) sum_masked log p(x1) = 1/s sum_masked -log p."""
    path = paths.MixturePath(paths.CondOT())
    k1, k2, k3 = jax.random.split(jax.random.key(6), 3)
    x1 = jax.random.randint(k1, (32, 12), 0, V)
    t = jax.random.uniform(k2, (32,), minval=0.01, maxval=0.99)
    x_t = path.sample(MASK.sample(k3, x1.shape), x1, t, key=k3).x_t
    logits = jax.random.normal(k3, (32, 12, V))
    keep = jnp.where(jax.nn.one_hot(x_t, V) > 0, 30.0, -30.0)  # MDLM's carry-over of unmasked
    logits = jnp.where((x_t == V)[..., None], logits, keep)
    ours = losses.generalized_kl(logits, x_t, x1, path.jump_coefficient(t)).sum(-1)
    s = 1.0 - t
    log_p = jax.nn.log_softmax(logits, -1)
    picked = jnp.take_along_axis(log_p, x1[..., None], -1)[..., 0]
    mdlm = (1.0 / s) * jnp.sum(jnp.where(x_t == V, -picked, 0.0), axis=-1)
    np.testing.assert_allclose(ours, mdlm, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss", losses.DISCRETE_LOSSES)
def test_dfm_loss_trains_a_posterior_table(loss):
    """A table of logits per (position, token) learns the data law of two independent tokens."""
    import optax

    q = jnp.array([[0.6, 0.2, 0.1, 0.05, 0.05], [0.05, 0.05, 0.1, 0.2, 0.6]])
    path = paths.MixturePath(paths.CondOT())

    def field(params, x_t, t):
        del t
        return jnp.where((x_t == V)[..., None], params, 30.0 * jax.nn.one_hot(x_t, V) - 15)

    params = jnp.zeros((2, V))
    opt = optax.adam(0.05)
    state = opt.init(params)

    @jax.jit
    def step(params, state, key):
        k1, k2 = jax.random.split(key)
        x1 = jax.vmap(lambda k: jax.random.categorical(k, jnp.log(q)))(jax.random.split(k1, 512))
        grads, aux = jax.grad(
            lambda p: losses.dfm_loss(field, p, k2, x1, path=path, source=MASK, loss=loss),
            has_aux=True,
        )(params)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(params, updates), state, aux

    for i in range(300):
        params, state, aux = step(params, state, jax.random.key(i))
    np.testing.assert_allclose(jax.nn.softmax(params, -1), q, atol=0.05)
    assert 0.0 <= float(aux["accuracy"]) <= 1.0


def test_bad_inputs_are_one_line_errors():
    path = paths.MixturePath(paths.CondOT())
    x1 = jnp.zeros((4, 3), jnp.int32)
    with pytest.raises(ValueError, match="logits"):
        losses.dfm_loss(
            lambda p, x, t: jnp.zeros((4, V)), None, jax.random.key(0), x1, path=path, source=MASK
        )
    with pytest.raises(ValueError, match="loss"):
        losses.dfm_loss(
            lambda p, x, t: jnp.zeros((4, 3, V)),
            None,
            jax.random.key(0),
            x1,
            path=path,
            source=MASK,
            loss="mse",
        )
    with pytest.raises(ValueError, match="num_times"):
        losses.dfm_elbo(
            lambda p, x, t: jnp.zeros((4, 3, V)),
            None,
            jax.random.key(0),
            x1,
            path=path,
            source=MASK,
            num_times=0,
        )


def _joint_posterior(q):
    """The exact posterior field of the joint law `q [V, V]` of two tokens on the mask path:
    per token, p(x1^i | x_t) given what of x_t is unmasked."""
    log_q = jnp.log(q)

    def field(params, x_t, t):
        del params, t
        a, b = x_t[:, 0], x_t[:, 1]
        first = jnp.where(
            (b == V)[:, None], jnp.log(q.sum(1))[None], log_q.T[jnp.minimum(b, V - 1)]
        )
        second = jnp.where((a == V)[:, None], jnp.log(q.sum(0))[None], log_q[jnp.minimum(a, V - 1)])
        logits = jnp.stack([first, second], axis=1)
        keep = jnp.where(jax.nn.one_hot(x_t, V) > 0, 30.0, -30.0)
        return jnp.where((x_t == V)[..., None], logits, keep)

    return field


def _joint_problem(seed):
    """A random joint law `q [V, V]` of two tokens, its exact posterior field, the path."""
    q = jax.random.dirichlet(jax.random.key(seed), jnp.full(V * V, 0.5)).reshape(V, V)
    return q, _joint_posterior(q), paths.MixturePath(paths.CondOT())


def _total_variation(samples, q):
    counts = np.zeros((V, V))
    np.add.at(counts, (np.asarray(samples[:, 0]), np.asarray(samples[:, 1])), 1)
    return 0.5 * np.abs(counts / counts.sum() - np.asarray(q)).sum()


def test_ctmc_euler_samples_the_data_law_with_the_exact_posterior():
    q, field, path = _joint_problem(7)
    x0 = MASK.sample(None, (40000, 2))
    run = jax.jit(
        lambda key, n: solvers.ctmc_euler(field, None, key, x0, path=path, num_steps=n),
        static_argnums=1,
    )
    tv = {n: _total_variation(run(jax.random.key(8), n).y, q) for n in (1, 4, 64)}
    # one step draws the two tokens independently (the factorized posterior's error): TV is
    # that of q against the product of its marginals; many steps recover the joint law
    product = np.outer(q.sum(1), q.sum(0))
    assert tv[1] == pytest.approx(0.5 * np.abs(product - np.asarray(q)).sum(), abs=0.02)
    assert tv[64] < 0.03 < tv[1] and tv[4] < tv[1]
    sol = run(jax.random.key(9), 4)
    assert sol.y.dtype == x0.dtype and int(sol.y.max()) < V  # no mask survives t = 1
    assert int(sol.stats.nfe_batch) == 4 and (np.asarray(sol.stats.nfe) == 4).all()


def test_ctmc_euler_on_a_non_uniform_grid_and_a_uniform_source():
    q = jnp.array([0.7, 0.1, 0.1, 0.05, 0.05])
    path = paths.MixturePath(paths.Polynomial(2.0))

    def field(params, x_t, t):  # the exact one-token posterior under a uniform source
        kappa = path.kappa(t)[:, None, None]
        like = jnp.where(jax.nn.one_hot(x_t, V) > 0, kappa + (1 - kappa) / V, (1 - kappa) / V)
        return jnp.log(q * like)

    x0 = sources.UniformTokens(V).sample(jax.random.key(10), (100_000, 1))
    ts = jnp.linspace(0.0, 1.0, 11) ** 0.5

    def error(jump: str, ts: Array) -> float:
        sol = solvers.ctmc_euler(field, None, jax.random.key(11), x0, path=path, ts=ts, jump=jump)
        assert int(sol.stats.nfe_batch) == len(ts) - 1 and sol.method == jump
        return float(np.abs(np.bincount(np.asarray(sol.y[:, 0]), minlength=V) / len(x0) - q).max())

    # the path's jump probability is exact here (sampling noise: ~0.0015); Euler's error
    # shrinks with the steps (its rate diverges at t = 1)
    assert error("path", ts) < 0.006
    assert error("euler", jnp.linspace(0.0, 1.0, 201)) < error("euler", ts) - 0.01


def test_ctmc_euler_bad_inputs():
    path = paths.MixturePath(paths.CondOT())
    good = lambda p, x, t: jnp.zeros((*x.shape, V))  # noqa: E731
    tokens = jnp.zeros((4, 3), jnp.int32)
    with pytest.raises(ValueError, match="integer tokens"):
        solvers.ctmc_euler(good, None, jax.random.key(0), tokens.astype(float), path=path)
    with pytest.raises(ValueError, match="logits"):
        solvers.ctmc_euler(
            lambda p, x, t: jnp.zeros((4, V)), None, jax.random.key(0), tokens, path=path
        )
    with pytest.raises(ValueError, match="jump"):
        solvers.ctmc_euler(good, None, jax.random.key(0), tokens, path=path, jump="exact")
    with pytest.raises(ValueError, match="temperature"):
        solvers.ctmc_euler(good, None, jax.random.key(0), tokens, path=path, temperature=0.0)


def test_classifier_free_guidance_of_a_posterior_field_mixes_log_probabilities():
    """`guidance.guided` on a posterior field combines logits, i.e. log-probabilities up to a
    per-token constant: the guided posterior is p_null^(1 - w) p_y^w, renormalized. With one
    masked token and the exact tables, the sampler draws exactly that law."""
    tables = jnp.log(jnp.array([[0.4, 0.3, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.3, 0.4]]))
    null = jnp.log(jnp.full(V, 1.0 / V) + jnp.arange(V) * 0.02)
    calls = []

    def field(params, x_t, t, y):
        calls.append(x_t.shape[0])
        rows = jnp.where((y == guidance.NULL_LABEL)[:, None], null, tables[jnp.maximum(y, 0)])
        keep = jnp.where(jax.nn.one_hot(x_t, V) > 0, 30.0, -30.0)
        return jnp.where((x_t == V)[..., None], rows[:, None], keep)

    w = 2.5
    v_w = guidance.guided(field, w)
    y = jnp.repeat(jnp.arange(2), 20000)
    x0 = MASK.sample(None, (40000, 1))
    path = paths.MixturePath(paths.CondOT())
    sol = solvers.ctmc_euler(
        v_w, None, jax.random.key(12), x0, path=path, num_steps=8, cond={"y": y}
    )
    assert calls == [80000] and int(sol.stats.nfe_batch) == 8  # one doubled call per step
    for label in (0, 1):
        expected = jax.nn.softmax((1 - w) * jax.nn.log_softmax(null) + w * tables[label])
        tokens = np.asarray(sol.y[y == label, 0])
        np.testing.assert_allclose(
            np.bincount(tokens, minlength=V) / len(tokens), expected, atol=0.01
        )


def test_rate_space_guidance_mixes_probabilities_and_clips():
    """In rate space the guided posterior of a masked token is (1 - w) p_null + w p_y, clipped
    at zero and renormalized: a law different from the log-space one, known in closed form."""
    tables = jnp.array([[0.4, 0.3, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.3, 0.4]])
    null = tables.mean(0)

    def field(params, x_t, t, y):
        rows = jnp.where((y == guidance.NULL_LABEL)[:, None], null, tables[jnp.maximum(y, 0)])
        keep = jnp.where(jax.nn.one_hot(x_t, V) > 0, 30.0, -30.0)
        return jnp.where((x_t == V)[..., None], jnp.log(rows)[:, None], keep)

    w = 2.0
    y = jnp.repeat(jnp.arange(2), 30000)
    x0 = MASK.sample(None, (60000, 1))
    path = paths.MixturePath(paths.CondOT())
    sol = solvers.ctmc_euler(
        field,
        None,
        jax.random.key(13),
        x0,
        path=path,
        num_steps=16,
        rate_guidance=w,
        cond={"y": y},
    )
    assert int(sol.stats.nfe_batch) == 16
    for label in (0, 1):
        mix = np.maximum((1 - w) * np.asarray(null) + w * np.asarray(tables[label]), 0.0)
        tokens = np.asarray(sol.y[y == label, 0])
        freq = np.bincount(tokens, minlength=V) / len(tokens)
        np.testing.assert_allclose(freq, mix / mix.sum(), atol=0.01)
        assert (freq[mix == 0] == 0).all()  # clipped rates are never taken
    with pytest.raises(ValueError, match="labels"):
        solvers.ctmc_euler(field, None, jax.random.key(0), x0, path=path, rate_guidance=w)


def test_the_corrector_remasks_and_keeps_the_law():
    q, field, path = _joint_problem(14)
    x0 = MASK.sample(None, (40000, 2))
    sol = solvers.ctmc_euler(
        field,
        None,
        jax.random.key(15),
        x0,
        path=path,
        num_steps=64,
        corrector=1.0,
        mask=V,
        save_trajectory=True,
    )
    ys = np.asarray(sol.ys)
    remasked = ((ys[:-1] != V) & (ys[1:] == V)).sum()
    assert remasked > 1000  # tokens are revised, not only unmasked
    assert int(sol.y.max()) < V and _total_variation(sol.y, q) < 0.03
    schedule = solvers.ctmc_euler(
        field,
        None,
        jax.random.key(15),
        x0,
        path=path,
        num_steps=64,
        mask=V,
        corrector=lambda t: 2.0 * t * (1.0 - t),
    )
    assert _total_variation(schedule.y, q) < 0.03
    with pytest.raises(ValueError, match="mask"):
        solvers.ctmc_euler(field, None, jax.random.key(0), x0, path=path, corrector=1.0)
    with pytest.raises(ValueError, match="corrector"):
        solvers.ctmc_euler(field, None, jax.random.key(0), x0, path=path, corrector=-1.0, mask=V)


def test_confident_unmasking_follows_the_schedule_and_the_law():
    q, field, path = _joint_problem(16)
    x0 = MASK.sample(None, (20000, 2))
    sol = solvers.ctmc_euler(
        field,
        None,
        jax.random.key(17),
        x0,
        path=path,
        num_steps=2,
        jump="confident",
        mask=V,
        save_trajectory=True,
    )
    ys = np.asarray(sol.ys)
    # kappa = t, two steps: half of the two masked tokens (one) after the first, all at the end
    assert ((ys[1] == V).sum(axis=1) == 1).all() and (ys[2] != V).all()
    # the token unmasked first is the more confident of the two draws; the pair follows q
    # better than the independent one-step draw
    assert (
        _total_variation(sol.y, q)
        < 0.5 * np.abs(np.outer(q.sum(1), q.sum(0)) - np.asarray(q)).sum()
    )
    with pytest.raises(ValueError, match="confident"):
        solvers.ctmc_euler(field, None, jax.random.key(0), x0, path=path, jump="confident")


def test_metric_path_rate_solves_the_kolmogorov_equation():
    """d/dt p_t(x | x1) = sum_z u_t(x | z, x1) p_t(z | x1): the conditional rate generates the
    path (finite differences in t), with a distance between random token positions."""
    points = jax.random.normal(jax.random.key(18), (V, 2))
    distance = jnp.linalg.norm(points[:, None] - points[None], axis=-1)
    path = paths.MetricPath(distance, c=2.0, a=1.5)
    x1 = jnp.arange(V)[:, None]  # each target token, one position
    for t in (0.2, 0.5, 0.8):
        p = path.probabilities(x1, t)[:, 0]  # [x1, x]
        h = 1e-3
        dp = (path.probabilities(x1, t + h) - path.probabilities(x1, t - h))[:, 0] / (2 * h)
        # u[x1, z, x] = u_t(x | z, x1)
        rates = jnp.stack(
            [path.conditional_rate(jnp.full((V, 1), z), x1, t)[:, 0] for z in range(V)], axis=1
        )
        flow = jnp.einsum("bz,bzx->bx", p, rates)
        np.testing.assert_allclose(flow, dp, atol=2e-3)
        np.testing.assert_allclose(np.asarray(rates).sum(-1), 0.0, atol=1e-4)
    # the ends: uniform at t = 0, x1 at t -> 1; samples follow p_t
    np.testing.assert_allclose(path.probabilities(x1, 0.0)[:, 0], 1.0 / V, atol=1e-6)
    assert (np.asarray(path.probabilities(x1, 0.999)[:, 0]).argmax(-1) == np.arange(V)).all()
    x1 = jnp.full((50000, 1), 2)
    x_t = path.sample(x1, x1, 0.4, key=jax.random.key(19)).x_t
    freq = np.bincount(np.asarray(x_t[:, 0]), minlength=V) / len(x1)
    np.testing.assert_allclose(freq, path.probabilities(x1[:1], 0.4)[0, 0], atol=0.01)


def test_ctmc_euler_samples_a_metric_path_with_the_exact_posterior():
    points = jnp.linspace(0.0, 3.0, V)[:, None]
    distance = jnp.abs(points - points.T)
    path = paths.MetricPath(distance, c=3.0, a=1.0)
    q = jnp.array([0.5, 0.05, 0.05, 0.1, 0.3])

    def field(params, x_t, t):  # p(x1 | x_t) of one token: q(x1) p_t(x_t | x1)
        like = path.probabilities(jnp.broadcast_to(jnp.arange(V), (x_t.shape[0], V)), t)
        return jnp.log(q) + jnp.log(jnp.take_along_axis(like, x_t[:, :, None], -1)[..., 0])[:, None]

    x0 = sources.UniformTokens(V).sample(jax.random.key(20), (40000, 1))
    ts = jnp.linspace(0.0, 0.995, 200).at[-1].set(1.0)
    sol = solvers.ctmc_euler(field, None, jax.random.key(21), x0, path=path, ts=ts)
    freq = np.bincount(np.asarray(sol.y[:, 0]), minlength=V) / len(x0)
    np.testing.assert_allclose(freq, q, atol=0.015)
    with pytest.raises(ValueError, match="MetricPath"):
        solvers.ctmc_euler(field, None, jax.random.key(0), x0, path=path, jump="path")


def test_rate_generalized_kl_is_the_mixture_path_closed_form():
    """On a mixture path the rates' generalized KL (model rate from the posterior, conditional
    rate lambda_t (delta_{x1} - delta_{x_t})) is `generalized_kl`, for x_t at and off x1."""
    path = paths.MixturePath(paths.Polynomial(2.0))
    k1, k2, k3 = jax.random.split(jax.random.key(22), 3)
    logits = jax.random.normal(k1, (64, 3, V))
    x1 = jax.random.randint(k2, (64, 3), 0, V)
    x_t = jnp.where(jax.random.uniform(k3, (64, 3)) < 0.5, x1, (x1 + 1) % V)
    t = jnp.linspace(0.05, 0.95, 64)
    model = path.rate(jax.nn.softmax(logits), x_t, t)
    conditional = path.rate(jax.nn.one_hot(x1, V), x_t, t)
    np.testing.assert_allclose(
        losses.rate_generalized_kl(model, conditional, x_t),
        losses.generalized_kl(logits, x_t, x1, path.jump_coefficient(t)),
        rtol=1e-5,
        atol=1e-5,
    )
    assert float(jnp.abs(losses.rate_generalized_kl(conditional, conditional, x_t)).max()) < 1e-5


def _metric_problem():
    """One token on a metric path between 5 positions on a line, the data law q, and the exact
    posterior field p(x1 | x_t) = q(x1) p_t(x_t | x1) / Z."""
    points = jnp.linspace(0.0, 3.0, V)[:, None]
    path = paths.MetricPath(jnp.abs(points - points.T), c=3.0, a=1.0)
    q = jnp.array([0.5, 0.05, 0.05, 0.1, 0.3])

    def field(params, x_t, t):
        like = path.probabilities(jnp.broadcast_to(jnp.arange(V), (x_t.shape[0], V)), t)
        at = jnp.log(jnp.take_along_axis(like, x_t[:, :, None], -1)[..., 0])[:, None]
        return jnp.log(q) + at + (0.0 if params is None else params)

    return path, q, field


def test_metric_path_elbo_bounds_the_nll_and_is_smallest_for_the_exact_posterior():
    """The ELBO of a metric path (rate-space generalized KL, uniform source) holds for the exact
    posterior, E_q[ELBO] >= H(q), and grows when the posterior is perturbed."""
    path, q, field = _metric_problem()
    x1 = jax.random.choice(jax.random.key(23), V, (20000, 1), p=q)
    uniform = sources.UniformTokens(V)

    def elbo(params):
        nats = losses.dfm_elbo(
            field, params, jax.random.key(24), x1, path=path, source=uniform, num_times=200
        )
        return float(nats.mean()), float(nats.std() / math.sqrt(len(x1)))

    entropy = float(-(q * jnp.log(q)).sum())
    exact, error = elbo(None)
    assert exact >= entropy - 3 * error
    assert exact < entropy + 0.5
    perturbed, _ = elbo(jnp.array([0.0, 0.5, -0.5, 0.5, 0.0]))
    assert perturbed > exact + 3 * error


def test_dfm_loss_trains_on_a_metric_path_by_its_generalized_kl():
    """The metric path's generalized-KL loss has finite gradients, and a gradient step on the
    logit offsets of a wrong posterior lowers it."""
    path, _, field = _metric_problem()
    x1 = jax.random.choice(
        jax.random.key(25), V, (4096, 1), p=jnp.array([0.5, 0.05, 0.05, 0.1, 0.3])
    )
    uniform = sources.UniformTokens(V)

    def loss(params):
        return losses.dfm_loss(
            field, params, jax.random.key(26), x1, path=path, source=uniform, loss="generalized_kl"
        )[0]

    wrong = jnp.array([-1.0, 1.0, 1.0, 0.0, -1.0])
    value, grad = jax.value_and_grad(loss)(wrong)
    assert np.isfinite(np.asarray(grad)).all() and float(jnp.abs(grad).max()) > 0
    assert float(loss(wrong - 0.5 * grad / jnp.abs(grad).max())) < float(value)


@pytest.mark.parametrize("draw", solvers.DRAWS)
def test_ctmc_draws_follow_the_posterior_and_never_a_zero_mass(draw):
    """One step to t = 1 from all masks draws each token from the posterior: its law by a
    chi-square test at level 1e-3, and no token of zero probability (the first, the last and
    a middle one are zero; the others span eight orders of magnitude, as near t = 1)."""
    law = jnp.array([0.0, 0.7, 1e-8, 0.0, 0.3 - 1e-8, 0.0])
    field = lambda p, x, t: jnp.broadcast_to(jnp.log(law), (*x.shape, 6))  # noqa: E731
    path, x0 = paths.MixturePath(paths.CondOT()), jnp.full((50_000, 4), 6)
    sol = solvers.ctmc_euler(field, None, jax.random.key(27), x0, path=path, num_steps=1, draw=draw)
    counts = np.bincount(np.asarray(sol.y).ravel(), minlength=6)
    assert counts[[0, 3, 5]].sum() == 0 and counts[2] <= 1
    observed = [counts[1], counts[2] + counts[4]]
    assert stats.chisquare(observed, np.array([0.7, 0.3]) * counts.sum()).pvalue > 1e-3
    with pytest.raises(ValueError, match="draw"):
        solvers.ctmc_euler(field, None, jax.random.key(0), x0, path=path, draw="exact")
