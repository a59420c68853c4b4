"""Riemannian FM through the unchanged trainer and CLI: a small run on the volcano events
(S^2) trains, checkpoints, resumes bit-identically, evaluates the held-out NLL and samples a
map; RNA torsions (T^7) build and train a few steps with minibatch OT on the geodesic cost."""

import json
import shutil

import numpy as np
import pytest

from flowjax.train.config import apply_overrides, load_config
from flowjax.train.loop import train
from tests.shared_data import shared_data
from tests.train.helpers import REPO, cli_report, max_difference, restore

SMALL = [
    "--config.steps=40",
    "--config.data.batch_size=128",
    "--config.model.width=64",
    "--config.model.depth=2",
    "--config.optim.lr=1e-3",
    "--config.flow.nll_rtol=1e-4",
    "--config.checkpoint.every=20",
    "--config.checkpoint.keep=3",
    "--config.log.every=10",
    "--config.log.eval_every=20",
    "--config.log.sample_every=40",
    "--config.log.num_samples=256",
    "--config.log.eval_steps=10",
    "--config.compilation_cache=off",
]
CONFIG = REPO / "flowjax" / "configs" / "earth_rfm.py"


@pytest.mark.slow
def test_volcano_run_resumes_bit_identically_evaluates_and_samples(tmp_path):
    data = shared_data() / "earth-sphere" / "volerup.csv"
    config = apply_overrides(load_config(CONFIG), [*SMALL, f"--config.data.path={data}"])
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(config, straight)
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "checkpoints" / "40")  # as if stopped after the step-20 checkpoint
    train(config, resumed)
    (step_a, params_a), (step_b, params_b) = restore(straight), restore(resumed)
    assert step_a == step_b == 40 and max_difference(params_a, params_b) == 0.0
    rows = [json.loads(line) for line in (straight / "metrics.jsonl").open()]
    nll = [r["eval/nll"] for r in rows if "eval/nll" in r]
    assert len(nll) == 2 and all(np.isfinite(nll))
    assert nll[-1] < np.log(4 * np.pi)  # better than the uniform law after 40 steps
    report = cli_report("sample", "--workdir", str(straight), "--num", "64", "--steps", "8")
    assert report["shape"] == [64, 3] and report["nfe"] == 32  # rk4: 4 calls per step
    samples = np.load(straight / "samples.npz")["samples"]
    np.testing.assert_allclose(np.linalg.norm(samples, axis=-1), 1.0, atol=1e-5)
    assert any(p.suffix == ".png" for p in (straight / "samples").iterdir())


def test_rna_torsions_train_on_the_seven_torus_with_geodesic_ot_pairs(tmp_path):
    data = shared_data() / "rna-torsions" / "rna.tsv"
    overrides = [*SMALL, "--config.data.kind=torsions", f"--config.data.path={data}"]
    overrides += ["--config.flow.coupling=exact"]
    overrides += ["--config.steps=20", "--config.log.sample_every=20"]
    config = apply_overrides(load_config(CONFIG), overrides)
    train(config, tmp_path)
    step, _ = restore(tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    nll = [r["eval/nll"] for r in rows if "eval/nll" in r]
    assert step == 20 and len(nll) == 1 and np.isfinite(nll[0])
