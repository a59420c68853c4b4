"""Conformance: every registered source, path, sampler method and family meets its contract
(`flowjax.contracts`). The cases are read from the registries, so registering a new
implementation runs it through these checks."""

import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import contracts, families, manifolds, matchers, paths, solvers, sources
from flowjax.contracts import DataSpec, SamplerSettings

# Data a family or source may be built for; each is tried, those it refuses are skipped.
DATA = {
    "vectors": DataSpec((3,)),
    "labelled-images": DataSpec((4, 4, 1), num_classes=3, bits=8),
    "tokens": DataSpec((3,), dtype="int32", vocab_size=3),
    "sphere-points": DataSpec((3,), manifold="sphere"),
    "torus-points": DataSpec((2,), manifold="torus"),
    "rotation-points": DataSpec((9,), manifold="so3"),
}


def _accepted(build):
    """Names of the `DATA` specs that `build(spec)` accepts (a ValueError refuses one)."""
    out = []
    for name, spec in DATA.items():
        try:
            build(spec)
        except ValueError:
            continue
        out.append(name)
    return out


# ------------------------------------------------------------------------------- sources

SOURCE_CASES = [(s, d) for s in sources.SOURCES for d in _accepted(sources.SOURCES[s])]


def test_every_source_builds_for_some_data():
    assert {s for s, _ in SOURCE_CASES} == set(sources.SOURCES)


@pytest.mark.parametrize(("name", "data"), SOURCE_CASES)
def test_source_conformance(name, data):
    spec = DATA[data]
    source = sources.SOURCES[name](spec)
    assert isinstance(source, contracts.Source)
    n, dtype = 20_000, jnp.dtype(spec.dtype)
    shape = (n, *spec.event_shape)
    draw = jax.jit(lambda s, k: s.sample(k, shape, dtype))  # a pytree: it passes through jit
    x = draw(source, jax.random.key(0))
    assert x.shape == shape and x.dtype == dtype
    np.testing.assert_array_equal(x, source.sample(jax.random.key(0), shape, dtype))
    logp = jax.jit(lambda s, x: s.log_prob(x))(source, x)
    assert logp.shape == (n,) and bool(jnp.isfinite(logp).all())
    d = math.prod(spec.event_shape)
    flat = np.asarray(x, np.float64).reshape(n, d)
    if spec.is_float:
        # log_prob is a normalized density whose first two moments are those of the samples:
        # importance sampling from a wider Gaussian around the samples' moments
        mean, std = flat.mean(0), flat.std(0) + 1e-6
        z = np.asarray(jax.random.normal(jax.random.key(1), (200_000, d)), np.float64)
        q = mean + 1.5 * std * z
        log_q = np.sum(-0.5 * z**2 - np.log(1.5 * std) - 0.5 * math.log(2 * math.pi), axis=1)
        points = jnp.asarray(q.reshape(-1, *spec.event_shape), jnp.float32)
        w = np.exp(np.asarray(source.log_prob(points), np.float64) - log_q)
        assert abs(w.mean() - 1.0) < 0.03
        np.testing.assert_allclose((w[:, None] * q).mean(0), mean, atol=0.05 * std.max())
        np.testing.assert_allclose(
            (w[:, None] * q**2).mean(0), (flat**2).mean(0), rtol=0.06, atol=0.02
        )
    else:
        # a normalized mass over every sequence of values in [0, vocab] (the mask may be vocab),
        # whose per-position marginals are the samples' frequencies
        values = spec.vocab_size + 1
        every = jnp.asarray(list(itertools.product(range(values), repeat=d)), dtype)
        mass = np.exp(np.asarray(source.log_prob(every.reshape(-1, *spec.event_shape))))
        assert abs(mass.sum() - 1.0) < 1e-5
        every = np.asarray(every)
        for i in range(d):
            expected = [mass[every[:, i] == v].sum() for v in range(values)]
            observed = [np.mean(flat[:, i] == v) for v in range(values)]
            np.testing.assert_allclose(observed, expected, atol=0.02)


# --------------------------------------------------------------------------------- paths

PATHS = {f"affine/{name}": paths.AffinePath(cls()) for name, cls in paths.SCHEDULERS.items()}
PATHS |= {
    f"noisy/{name}": paths.NoisyPath(paths.CondOT(), cls(0.1)) for name, cls in paths.NOISES.items()
}
PATHS |= {f"matcher/{name}": matchers.matcher(name, 0.1).path for name in matchers.MATCHERS}


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("event", [(3,), (2, 2, 2)])
def test_path_conformance(name, event):
    """Shapes; x_t is near x1 at t = 1 and carries x0 at t = 0 (up to the path's own scale and
    noise); dx_t is d/dt x_t by jax.jvp (the noise held fixed); jit changes nothing."""
    path = PATHS[name]
    assert isinstance(path, contracts.Path)
    k0, k1, kt, kn = jax.random.split(jax.random.key(0), 4)
    b = 512
    x0 = jax.random.normal(k0, (b, *event))
    x1 = jax.random.normal(k1, (b, *event)) + 2.0
    at = lambda t: path.sample(x0, x1, jnp.full(b, t), key=kn).x_t  # noqa: E731
    end = at(1.0)
    assert end.shape == x1.shape
    assert float(jnp.sqrt(jnp.mean((end - x1) ** 2))) < 0.15  # x1 at t = 1
    start = np.asarray(at(0.0)).ravel()
    assert np.corrcoef(start, np.asarray(x0).ravel())[0, 1] > 0.95  # x0 at t = 0
    t = jax.random.uniform(kt, (b,), minval=0.05, maxval=0.95)
    x_t, dx_t = path.sample(x0, x1, t, key=kn)
    _, jvp = jax.jvp(lambda t: path.sample(x0, x1, t, key=kn).x_t, (t,), (jnp.ones_like(t),))
    np.testing.assert_allclose(dx_t, jvp, rtol=1e-4, atol=1e-4)
    jitted = jax.jit(lambda p, t: p.sample(x0, x1, t, key=kn))(path, t)
    np.testing.assert_allclose(jitted.x_t, x_t, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------ samplers


def _counted(field):
    calls = []

    def counted(params, x, t, **cond):
        jax.debug.callback(lambda: calls.append(1), ordered=False)
        return field(params, x, t, **cond)

    return counted, calls


def _diffrax(method):
    def run(v, params, x0):
        return solvers.sample(v, params, x0, method=method, num_steps=50)

    return run


def _scan(method):
    def run(v, params, x0):
        return solvers.fixed_step(v, params, x0, method=method, num_steps=50)

    return run


SAMPLERS = {f"diffrax/{m}": _diffrax(m) for m in solvers.METHODS}
SAMPLERS |= {f"scan/{m}": _scan(m) for m in solvers.TABLEAUS}
# max error at 50 steps: first order ~ h |dv/dt| (0.02 x ~4), second order ~ h^2 x ~4;
# rk4 and the adaptive methods (rtol = atol = 1e-5) reach float32 round-off
TOLERANCE = {"euler": 0.1, "midpoint": 3e-3, "heun": 3e-3}


@pytest.mark.parametrize("name", SAMPLERS)
def test_sampler_conformance(name, target):
    """Every sampler method pushes N(0, I) through the exact CondOT field onto the closed-form
    flow map's image of the same points, and reports the network calls it made."""
    sched = paths.CondOT()
    x0 = jax.random.normal(jax.random.key(3), (256, 2))
    exact = target.mu + target._rotate(x0, jnp.sqrt(target.lam) * jnp.ones_like(x0))
    field, calls = _counted(target.velocity(sched))
    sol = jax.jit(lambda mu, x: SAMPLERS[name](field, mu, x))(target.mu, x0)
    jax.block_until_ready(sol.y)
    assert sol.y.shape == x0.shape
    error = float(jnp.max(jnp.abs(sol.y - exact)))
    assert error < TOLERANCE.get(name.split("/")[1], 1e-3), error
    assert int(sol.stats.nfe_batch) == len(calls) > 0


# ------------------------------------------------------------------------------ families


def tiny_network(spec: contracts.NetworkSpec, num_classes: int | None):
    """A linear map from `[x, t, one_hot(y)]` (t: `spec.times` times) to the family's outputs:
    `(field, params)`."""
    d_in = math.prod(spec.input_shape) + spec.times + (num_classes or 0)
    d_out = math.prod(spec.output_shape)
    params = {"w": 0.1 * jax.random.normal(jax.random.key(7), (d_in, d_out)), "b": jnp.zeros(d_out)}

    def field(params, x, t, y=None):
        times = t if isinstance(t, tuple) else (t,)
        ts = [jnp.broadcast_to(jnp.asarray(s, jnp.float32), x.shape[:1])[:, None] for s in times]
        features = [x.reshape(x.shape[0], -1).astype(jnp.float32), *ts]
        if num_classes is not None:
            features.append(
                jax.nn.one_hot(jnp.zeros(x.shape[0], int) if y is None else y, num_classes)
            )
        out = jnp.concatenate(features, axis=1) @ params["w"] + params["b"]
        return out.reshape(x.shape[0], *spec.output_shape)

    return field, params


def _data(spec: DataSpec, key, n: int, raw: bool) -> dict:
    """A batch for `spec`: training values, or held-out values as stored (`raw`)."""
    kx, ky = jax.random.split(key)
    shape = (n, *spec.event_shape)
    if spec.vocab_size is not None:
        x = jax.random.randint(kx, shape, 0, spec.vocab_size, jnp.dtype(spec.dtype))
    elif spec.bits is not None:
        levels = jax.random.randint(kx, shape, 0, 2**spec.bits)
        x = levels.astype(jnp.uint8) if raw else levels / 2 ** (spec.bits - 1) - 1.0
    elif spec.manifold is not None:
        x = manifolds.by_name(spec.manifold, spec.event_shape[-1]).uniform(kx, shape[:-1])
    else:
        x = jax.random.normal(kx, shape)
    out = {"x1": x}
    if spec.num_classes is not None:
        out["y"] = jax.random.randint(ky, (n,), 0, spec.num_classes)
    return out


# each family on the first data kind it accepts; the other kinds in the slow suite
FAMILY_CASES = [
    pytest.param(f, d, marks=[pytest.mark.slow] if i else [])
    for f in families.FAMILIES
    for i, d in enumerate(_accepted(lambda s, f=f: families.get(f)(families.get(f).Config(), s)))
]


def test_every_family_builds_for_some_data():
    assert {case.values[0] for case in FAMILY_CASES} == set(families.FAMILIES)


@pytest.mark.parametrize("name", families.FAMILIES)
def test_family_config_section(name):
    cls = families.get(name)
    config = cls.Config()
    assert dataclasses.is_dataclass(config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.__setattr__(dataclasses.fields(config)[0].name, None)
    getattr(config, "check", lambda: None)()  # the defaults are valid
    for field, allowed in getattr(config, "choices", dict)().items():
        assert getattr(config, field) in allowed, field
    assert cls.sampler_methods


@pytest.mark.parametrize(("name", "data"), FAMILY_CASES)
def test_family_conformance(name, data, tmp_path):
    spec = DATA[data]
    family = families.get(name)(families.get(name).Config(), spec)
    assert isinstance(family.source, contracts.Source)
    # the network reads the event, with trailing feature axes if the family adds any (one-hot)
    assert tuple(family.network.input_shape[: len(spec.event_shape)]) == spec.event_shape
    assert family.network.output in ("vector", "logits")
    field, params = tiny_network(family.network, spec.num_classes)
    batch = _data(spec, jax.random.key(1), 16, raw=False)

    # the objective (as the trainer calls it, with a context): a finite scalar, deterministic
    # given the key, the same under jit, with finite and non-zero gradients
    context = contracts.TrainContext(jnp.int32(3), 10, params)
    loss, aux = family.loss(field, params, jax.random.key(2), batch, context)
    assert loss.shape == () and bool(jnp.isfinite(loss))
    assert all(jnp.shape(v) == () for v in aux.values())
    jitted = jax.jit(lambda p, k, b: family.loss(field, p, k, b, context)[0])
    np.testing.assert_allclose(jitted(params, jax.random.key(2), batch), loss, rtol=1e-5)
    grads = jax.grad(lambda p: family.loss(field, p, jax.random.key(2), batch, context)[0])(params)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))

    # every sampler method: samples of the data's shape and dtype, the calls it reports
    n = 8
    cond = {} if spec.num_classes is None else {"y": jnp.arange(n) % spec.num_classes}
    for method in family.sampler_methods:
        counted, calls = _counted(field)
        sample = family.sampler(SamplerSettings(method, steps=3, guidance=2.0))
        run = jax.jit(lambda p, k, sample=sample, counted=counted: sample(counted, p, k, n, cond))
        x, stats = run(params, jax.random.key(3))
        jax.block_until_ready(x)
        assert x.shape == (n, *spec.event_shape), method
        assert x.dtype == jnp.dtype(spec.dtype) and bool(jnp.isfinite(x).all()), method
        assert int(stats.nfe_batch) == len(calls) > 0, method

    # evaluators on held-out data as stored, and sample metrics on samples
    held_out = _data(spec, jax.random.key(4), 8, raw=True)
    settings = SamplerSettings(family.sampler_methods[0], steps=3)
    for evaluate in family.evaluators(settings).values():
        result = jax.jit(lambda p, k, d, e=evaluate: e(field, p, k, d))(
            params, jax.random.key(5), held_out
        )
        assert result and all(bool(jnp.isfinite(v)) and jnp.shape(v) == () for v in result.values())
    host = {k: np.asarray(v) for k, v in held_out.items()}
    for metric in family.sample_metrics().values():
        assert all(np.isfinite(v) for v in metric(np.asarray(x), host).values())
    family.render(np.asarray(x), tmp_path / "samples.png", name)  # draws, or declines quietly


def test_families_are_found_by_name_or_import_path():
    assert families.get("cfm") is families.CFM
    assert families.get("flowjax.families.cfm:CFM") is families.CFM
    with pytest.raises(ValueError, match="unknown family 'ctmc'"):
        families.get("ctmc")
    with pytest.raises(ValueError, match=r"cannot import family 'no\.such:Family'"):
        families.get("no.such:Family")
