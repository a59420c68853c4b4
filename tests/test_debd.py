"""The DEBD experiment's parts: exact baselines (independent, Chow-Liu) on known laws, table
data through the unchanged trainer with the best checkpoint kept by the validation metric, and
a reduced run of the experiment."""

import itertools
import json

import numpy as np
import pytest

from experiments.debd.baselines import ChowLiuTree, Independent, fit_best
from flowjax.train import inputs
from flowjax.train.checkpoint import Checkpointer
from flowjax.train.config import apply_overrides, load_config
from flowjax.train.loop import train
from tests.shared_data import shared_data
from tests.test_data_records import write_table
from tests.train.helpers import REPO


def chain(n: int, order: list[int], stay: float, seed: int = 0) -> np.ndarray:
    """Binary Markov chain over the variables in `order`: each copies its predecessor with
    probability `stay`."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, len(order)), np.int64)
    x[:, order[0]] = rng.integers(0, 2, n)
    for a, b in itertools.pairwise(order):
        x[:, b] = np.where(rng.random(n) < stay, x[:, a], 1 - x[:, a])
    return x


@pytest.mark.parametrize("model", [Independent, ChowLiuTree])
def test_baselines_normalize_over_every_configuration(model):
    x = np.random.default_rng(1).integers(0, 3, (100, 5))
    every = np.array(list(itertools.product(range(3), repeat=5)))
    assert abs(np.exp(model.fit(x, 3, 0.5).log_prob(every)).sum() - 1.0) < 1e-10


def test_chow_liu_recovers_a_chain_and_its_likelihood():
    order = [3, 0, 5, 1, 4, 2]
    x = chain(20000, order, stay=0.9)
    tree = ChowLiuTree.fit(x, 2, 0.1)
    assert tree.edges() == {tuple(sorted(e)) for e in itertools.pairwise(order)}
    exact = -np.log(2) + 5 * (0.9 * np.log(0.9) + 0.1 * np.log(0.1))  # E log p(x), nats
    assert abs(tree.log_prob(chain(20000, order, 0.9, seed=2)).mean() - exact) < 0.02
    independent = Independent.fit(x, 2, 0.1)
    assert tree.log_prob(x).mean() > independent.log_prob(x).mean() + 1.0


def test_fit_best_takes_the_validation_maximizer():
    x = chain(300, [0, 1, 2, 3], 0.8)
    _, alpha = fit_best(ChowLiuTree, x[:200], x[200:], 2, alphas=(0.01, 1.0, 100.0))
    scores = {a: ChowLiuTree.fit(x[:200], 2, a).log_prob(x[200:]).mean() for a in (0.01, 1, 100)}
    assert alpha == max(scores, key=scores.get) and alpha != 100.0


@pytest.mark.slow
def test_table_run_keeps_the_best_validation_checkpoint(tmp_path):
    rows = {
        s: chain(n, [0, 1, 2, 3, 4, 5], 0.9, seed=i)
        for i, (s, n) in enumerate((("train", 512), ("valid", 64), ("test", 64)))
    }
    write_table(tmp_path, "toy", rows)
    overrides = [
        f"--config.data.path={tmp_path}",
        "--config.data.name=toy",
        "--config.data.batch_size=32",
        "--config.steps=12",
        "--config.model.depth=1",
        "--config.model.width=32",
        "--config.model.heads=2",
        "--config.optim.warmup_steps=2",
        "--config.checkpoint.every=3",
        "--config.log.every=3",
        "--config.log.eval_every=3",
        "--config.flow.elbo_times=4",
        "--config.compilation_cache=off",
    ]
    config = apply_overrides(load_config(REPO / "flowjax/configs/debd_dfm.py"), overrides)
    np.testing.assert_array_equal(inputs.held_out(config, None)["x1"], rows["valid"])
    work = tmp_path / "run"
    train(config, work)
    metric = "eval/elbo_bits_per_token"
    evals = {
        r["step"]: r[metric]
        for r in map(json.loads, (work / "metrics.jsonl").open())
        if metric in r
    }
    assert sorted(evals) == [3, 6, 9, 12]
    checkpointer = Checkpointer(work / "checkpoints", config.checkpoint)
    best = min(evals, key=evals.get)
    assert checkpointer.best_step() == best and set(checkpointer.all_steps()) == {best, 12}
    checkpointer.close()


@pytest.mark.slow
def test_debd_reduced_run_writes_the_table(tmp_path):
    from experiments.debd import run

    data = shared_data() / "debd-binary"
    argv = ["--data", str(data), "--datasets", "nltcs", "--steps", "30", "--elbo-times", "4"]
    results = run.main([*argv, "--workdir", str(tmp_path)])["nltcs"]
    assert results["ChowLiuTree"]["test_ll"] > results["Independent"]["test_ll"]
    for family in ("dfm", "ar"):
        assert -16 * np.log(2) < results[family]["test_ll"] < 0  # better than a coin per bit
        assert results[family]["best_step"] == 30
    text = (tmp_path / "cpu" / "results.md").read_text()
    assert "Chow-Liu tree" in text and "HCLT" in text
