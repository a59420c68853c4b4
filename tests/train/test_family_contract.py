"""The extension point: a method family defined entirely in this file (an x1-predicting flow
with its own loss weight, sampled by the scan sampler) trains through `train()` and samples and
evaluates through the CLI, with no edit to `flowjax/train/`. The trainer finds it by its import
path, `--config.family=tests.train.test_family_contract:X1Family`."""

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from flowjax import losses, paths, plots, solvers, sources
from flowjax.contracts import DataSpec, NetworkSpec, SamplerSettings
from flowjax.train.config import apply_overrides, load_config
from flowjax.train.loop import train
from tests.train.helpers import SMALL, TOY, cli_report, metrics


@dataclasses.dataclass(frozen=True)
class X1Config:
    """power: the x1 error at time t is weighted by (1 - t)^(-2 power) (power 1: the velocity
    loss), with 1 - t floored at 0.05; t1: where sampling stops."""

    power: float = 1.0
    t1: float = 0.99

    def check(self) -> None:
        if self.power < 0:
            raise ValueError(f"power must be >= 0, got {self.power}")


class X1Family:
    Config = X1Config
    sampler_methods = tuple(solvers.TABLEAUS)

    def __init__(self, config: X1Config, data: DataSpec, mesh: Any = None) -> None:
        del mesh
        if not data.is_float:
            raise ValueError("X1Family needs float data")
        self.config, self.data = config, data
        self.path = paths.AffinePath(paths.CondOT())
        self.source = sources.Gaussian()
        self.network = NetworkSpec(data.event_shape, data.event_shape)

    def loss(self, field, params, key, batch, context=None):
        def weight(t):
            return jnp.maximum(1.0 - t, 0.05) ** (-2.0 * self.config.power)

        return losses.cfm_loss(
            field, params, key, batch["x1"], path=self.path, parameterization="x1", weighting=weight
        )

    def sampler(self, settings: SamplerSettings):
        def sample(field, params, key, n, cond):
            v = paths.as_velocity(field, self.path, "x1")
            x0 = self.source.sample(key, (n, *self.data.event_shape), jnp.float32)
            sol = solvers.fixed_step(
                v, params, x0, method=settings.method, num_steps=settings.steps, t1=self.config.t1
            )
            return sol.y, sol.stats

        return sample

    def evaluators(self, settings: SamplerSettings) -> dict:
        del settings

        def x1_error(field, params, key, data: Mapping) -> dict:
            x1 = data["x1"]
            x_t = 0.5 * x1 + 0.5 * self.source.sample(key, x1.shape, jnp.float32)
            return {"x1_error": jnp.mean(jnp.square(field(params, x_t, 0.5) - x1))}

        return {"x1_error": x1_error}

    def sample_metrics(self) -> dict:
        def mean_gap(samples: np.ndarray, data: Mapping) -> dict:
            return {"mean_gap": float(np.linalg.norm(samples.mean(0) - data["x1"].mean(0)))}

        return {"mean_gap": mean_gap}

    def render(self, samples: np.ndarray, path: Path, title: str) -> None:
        plots.scatter_png(samples, path, f"X1Family: {title}")


FAMILY = "tests.train.test_family_contract:X1Family"


def test_a_family_defined_in_a_test_trains_and_samples_through_the_cli(tmp_path):
    overrides = [
        *SMALL,
        f"--config.family={FAMILY}",
        "--config.flow.power=1",
        "--config.data.distribution=8gaussians",
        "--config.steps=300",
        "--config.model.width=128",
        "--config.optim.ema_decay=0.99",
        "--config.log.every=50",
        "--config.log.eval_every=300",
        "--config.log.sample_every=300",
        "--config.log.num_samples=1000",
        "--config.log.eval_method=midpoint",
        "--config.log.eval_steps=20",
        "--config.checkpoint.every=300",
    ]
    config = apply_overrides(load_config(TOY), overrides)
    state = train(config, tmp_path)
    assert int(state.step) == 300
    logged = metrics(tmp_path)
    losses_ = [m["loss"] for m in logged if "loss" in m]
    assert losses_[-1] < 0.5 * losses_[0]  # it learned
    evaluated = next(m for m in logged if "eval/x1_error" in m)
    assert evaluated["eval/mean_gap"] < 1.0  # the 8 clusters' mean is the origin; radius ~ 2.8
    assert (tmp_path / "samples" / "step_00000300.png").stat().st_size > 5000
    report = cli_report("sample", "--workdir", str(tmp_path), "--num", "500", "--method", "rk4")
    assert report["shape"] == [500, 2] and report["nfe"] == 4 * 20  # rk4, the run's 20 steps
    samples = np.load(tmp_path / "samples.npz")["samples"]
    radius = np.linalg.norm(samples, axis=1)
    assert 2.2 < np.median(radius) < 3.4  # on the ring of clusters (radius 2 sqrt 2)
    result = cli_report("evaluate", "--workdir", str(tmp_path))
    assert set(result) == {"step", "eval/x1_error", "eval/mean_gap"}
    assert np.isclose(result["eval/x1_error"], evaluated["eval/x1_error"], rtol=1e-5)
