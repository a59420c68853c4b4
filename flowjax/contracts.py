"""The contracts that every method family implements, and that the training system consumes.

Shapes: batched arrays `x: [B, *event]`, times `t: [B]` (a scalar broadcasts). A *field* is any
callable `field(params, x, t, **cond)`: the network as the family sees it (it predicts what the
family trains it to predict: a velocity, x1, logits, ...).

- `Source`: the distribution at t = 0 (`sample`, `log_prob`).
- `Path`: the conditional path between a source sample x0 and a data point x1.
- `Family`: what the trainer needs of a method: its source, what the network must output, the
  training objective (given a `TrainContext`), a sampler, evaluators, a picture of samples,
  and its config section.

`tests/test_contracts.py` runs every registered source, path, sampler and family through the
same conformance checks: registering a new implementation gets it tested.
"""

import dataclasses
import pathlib
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

import jax
import numpy as np

Array = jax.Array
Field = Callable[..., Array]


@runtime_checkable
class Source(Protocol):
    """A distribution over `[B, *event]` arrays: Gaussian noise, uniform on a manifold, a mask
    token, uniform tokens, ..."""

    def sample(self, key: Array, shape: tuple[int, ...], dtype: Any) -> Array:
        """`shape = (B, *event)` samples of `dtype`."""
        ...

    def log_prob(self, x: Array) -> Array:
        """Log-density (or log-mass, for discrete sources) of each sample: `[B, *event] -> [B]`."""
        ...


class PathSample(NamedTuple):
    """A point `x_t: [B, *event]` on a conditional path and its time derivative `dx_t` (the
    velocity target), or None where the path has no velocity (discrete paths)."""

    x_t: Array
    dx_t: Array | None


@runtime_checkable
class Path(Protocol):
    """A conditional path from x0 (t = 0) to x1 (t = 1); `key` drives paths that add noise."""

    def sample(self, x0: Array, x1: Array, t: Array, key: Array | None = None) -> PathSample: ...


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What a training run's data is, known before any batch is drawn.

    event_shape: one sample's shape (batches are `[B, *event_shape]`).
    dtype: "float32" for continuous data, an integer dtype for tokens.
    num_classes: batches carry labels `y: [B]` in `[0, num_classes)` when set.
    bits: raw data is quantized to `bits` bits (8-bit images; bits/dim applies), or None.
    vocab_size: tokens take values in `[0, vocab_size)`, or None.
    vocabulary: the text of each token (character-level text: token i is `vocabulary[i]`),
      for writing samples as text; None for other data.
    manifold: the points along the last axis lie on a manifold (`flowjax.manifolds.by_name`:
      "sphere", S^(D-1) in R^D; "torus", T^D of angles; "so3", flattened rotation matrices,
      D = 9; "hyperbolic", H^(D-1) on the hyperboloid in R^D; "bumpy_sphere", the generated
      mesh of `flowjax.manifolds.mesh`, D = 3), or None for Euclidean data.
    augment_dim: batches carry EDM's augmentation labels `augment_labels: [B, augment_dim]`
      float32 (`flowjax.data.augment`) when set, conditioning like every batch entry but x1.
    """

    event_shape: tuple[int, ...]
    dtype: str = "float32"
    num_classes: int | None = None
    bits: int | None = None
    vocab_size: int | None = None
    vocabulary: str | None = None
    manifold: str | None = None
    augment_dim: int | None = None

    @property
    def is_float(self) -> bool:
        return np.issubdtype(np.dtype(self.dtype), np.floating)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "DataSpec":
        return cls(**{**values, "event_shape": tuple(values["event_shape"])})


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """What the family needs the network to compute: `x: [B, *input_shape]` of `input_dtype`
    at `times` times (`t: [B]`, or the pair `(r, t)` of two-time models) to `[B, *output_shape]`
    float "vector"s (velocities, x1 or noise predictions) or "logits". `causal`: the output at
    each position (row-major over the event) may depend on the inputs at that position and
    before it only (autoregressive models); the network must say it is (`causal = True`)."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_dtype: str = "float32"
    output: str = "vector"
    times: int = 1
    causal: bool = False


class TrainContext(NamedTuple):
    """What the training step knows beyond the batch, for objectives that need it: the step
    being taken (int32 scalar), the run's total steps (curricula) and the EMA parameters (a
    teacher for self-distilling objectives; no gradient flows into them)."""

    step: Array
    steps: int
    ema_params: Any


@dataclasses.dataclass(frozen=True)
class SamplerSettings:
    """How to draw samples: `method` (one of the family's `sampler_methods`), `steps` (for
    fixed-step methods) and the classifier-free guidance scale (1: the conditional model)."""

    method: str
    steps: int = 100
    guidance: float = 1.0


# `sampler(field, params, key, n, cond) -> (samples [n, *event], stats)`; `stats` is a pytree
# with at least `nfe_batch`, the number of batched network calls made.
Sampler = Callable[[Field, Any, Array, int, Mapping[str, Array]], tuple[Array, Any]]
# `evaluator(field, params, key, data) -> {name: scalar}`: pure JAX on held-out `data`
# (`{"x1": [N, *event], ...}`, raw: uint8 for 8-bit images).
Evaluator = Callable[[Field, Any, Array, Mapping[str, Array]], dict[str, Array]]
# `metric(samples, data) -> {name: float}` on host arrays (W2, FID, ...).
SampleMetric = Callable[[np.ndarray, Mapping[str, np.ndarray]], dict[str, float]]


class Family(Protocol):
    """A method family as the trainer consumes it, built as `Family(config, data, mesh)` from
    its config section (an instance of `Config`), the run's `DataSpec` and the device mesh
    (None outside a training run). The constructor raises `ValueError` for a config that does
    not fit the data.

    Config: the dataclass of the family's config section (`--config.flow.<field>=...`); it may
    define `choices() -> {field: allowed values}` and `check()` (raising ValueError), which
    the config system runs before any compute.
    sampler_methods: the `SamplerSettings.method` names the family's sampler accepts, its
      default first.
    source: where the family's samples start (its sampler's first time, t = 0 unless the
      family says otherwise) and the base density of its likelihoods.
    network: what the network must compute.
    """

    Config: ClassVar[type]
    sampler_methods: ClassVar[tuple[str, ...]]
    source: Source
    network: NetworkSpec

    def loss(
        self,
        field: Field,
        params: Any,
        key: Array,
        batch: Mapping[str, Array],
        context: TrainContext | None = None,
    ) -> tuple[Array, dict[str, Array]]:
        """The training objective on `batch = {"x1": [B, *event], (cond...)}`: a scalar loss
        and metrics (scalars), differentiable in `params`. The trainer passes its `context`.
        Every entry but "x1" (labels "y", "augment_labels", ...) is conditioning: each network
        call gets it as keywords, on the rows of its inputs (`guidance.training_conditioning`
        builds it; couplings and row splits carry it along)."""
        ...

    def sampler(self, settings: SamplerSettings) -> Sampler:
        """A pure sampler (jit it); `cond` holds per-sample conditioning, e.g. labels `y: [n]`."""
        ...

    def evaluators(self, settings: SamplerSettings) -> dict[str, Evaluator]:
        """Evaluations on held-out data run periodically by the trainer (NLL, bits/dim, ...)."""
        ...

    def sample_metrics(self) -> dict[str, SampleMetric]:
        """Metrics of samples against held-out data (W2, ...), computed on the host."""
        ...

    def render(self, samples: np.ndarray, path: pathlib.Path, title: str) -> None:
        """A PNG of samples (host array `[n, *event]`) at `path`, if the family draws them."""
        ...
