"""Periodic evaluation on the EMA parameters through the family: samples, the family's
evaluators on held-out data, its sample metrics, and FID for image runs.

These run on every process (the parameters are global arrays); outputs are replicated so that
process 0 can read them.
"""

import functools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from flowjax import metrics
from flowjax.contracts import DataSpec, Family, SamplerSettings
from flowjax.train.config import TrainConfig
from flowjax.train.inputs import image_source


def _replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def _host(a: jax.Array) -> np.ndarray:
    """A replicated global array as a host array."""
    return np.asarray(a.addressable_data(0))


def settings(config: TrainConfig, family: Family) -> SamplerSettings:
    """The `log` section's sampler (method None: the family's first sampler method)."""
    method = config.log.eval_method or family.sampler_methods[0]
    return SamplerSettings(method, config.log.eval_steps, config.log.guidance)


def make_sampler(
    family: Family, network: Callable, config: TrainConfig, mesh: Mesh, data: DataSpec, n: int
) -> Callable:
    """A jitted `(params, key) -> (samples [n, *event], nfe)` by the family's sampler with the
    `log` settings, replicated over `mesh`. A class-conditional model draws sample i from class
    i mod num_classes. Build it once and call it with new keys: it compiles once."""
    sample = family.sampler(settings(config, family))
    classes = data.num_classes
    cond = {} if classes is None else {"y": jnp.arange(n) % classes}

    @jax.jit
    def run(params: Any, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        samples, stats = sample(network, params, key, n, cond)
        return jax.lax.with_sharding_constraint(samples, _replicated(mesh)), stats.nfe_batch

    return run


def draw_samples(sampler: Callable, params: Any, seed: int) -> tuple[np.ndarray, int]:
    """Samples (host array) and NFE from a `make_sampler` sampler, with the key of `seed`."""
    y, nfe = sampler(params, jax.random.key(seed))
    return _host(y), int(nfe)


class Evaluation:
    """The family's sampler, evaluators and sample metrics for a run, each compiled once:
    `Evaluation(...)(params) -> {"eval/<name>": float}` on held-out data (`{"x1": [N, *event],
    ...}`, loaded by `held_out()` on first use); `sampler(n)` is the `make_sampler` sampler of
    n samples."""

    def __init__(
        self,
        family: Family,
        network: Callable,
        config: TrainConfig,
        mesh: Mesh,
        data: DataSpec,
        held_out: Callable[[], Mapping[str, np.ndarray]],
    ) -> None:
        self._family, self._load, self._held_out = family, held_out, None
        self.sampler = functools.cache(
            functools.partial(make_sampler, family, network, config, mesh, data)
        )
        self._evaluators = [
            jax.jit(lambda p, k, d, fn=fn: fn(network, p, k, d), out_shardings=_replicated(mesh))
            for fn in family.evaluators(settings(config, family)).values()
        ]

    def held_out(self) -> Mapping[str, np.ndarray]:
        if self._held_out is None:
            self._held_out = self._load()
        return self._held_out

    def __call__(self, params: Any, seed: int = -1) -> dict[str, float]:
        key, data, out = jax.random.key(seed), self.held_out(), {}
        for evaluate in self._evaluators:
            out.update(
                {f"eval/{k}": _host(v).item() for k, v in evaluate(params, key, data).items()}
            )
        sample_metrics = self._family.sample_metrics()
        if sample_metrics:
            samples, _ = draw_samples(self.sampler(len(data["x1"])), params, seed)
            for metric in sample_metrics.values():
                out.update({f"eval/{k}": float(v) for k, v in metric(samples, data).items()})
        return out


def reference_statistics(
    config: TrainConfig, split: str, num: int | None, cache: Path, model: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """FID statistics `(mu, sigma)` of `num` images of the run's dataset split (a fixed random
    subset; None: all of them), cached in `cache` as `.npz`."""
    path = cache / f"fid_reference_{split}_{num or 'all'}.npz"
    if not path.is_file():
        source = image_source(config, split)
        n = len(source) if num is None else min(num, len(source))
        order = np.sort(np.random.default_rng(0).permutation(len(source))[:n])
        batches = (
            np.stack([np.asarray(source[int(i)]["image"]) for i in order[s : s + 100]])
            for s in range(0, n, 100)
        )
        mu, sigma = metrics.image_statistics(batches, model)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, mu=mu, sigma=sigma)
    stats = np.load(path)
    return stats["mu"], stats["sigma"]


def sample_fid(
    sampler: Callable,
    params: Any,
    reference: tuple[np.ndarray, np.ndarray],
    num: int,
    *,
    seed: int = 0,
    model: Any = None,
) -> dict:
    """FID of `num` samples (drawn in chunks by a `make_sampler` sampler, clipped to [-1, 1]
    as if saved as 8-bit images) against `reference = (mu, sigma)`, and the mean NFE per
    chunk."""
    nfe = []

    def batches() -> Iterator[np.ndarray]:
        start, i = 0, 0
        while start < num:
            images, calls = draw_samples(sampler, params, seed=seed + i)
            nfe.append(calls)
            yield np.clip(images[: num - start], -1.0, 1.0)
            start, i = start + len(images), i + 1

    score = metrics.frechet_distance(*reference, *metrics.image_statistics(batches(), model))
    return {"fid": score, "num": num, "nfe": float(np.mean(nfe))}
