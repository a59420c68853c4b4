"""The main job end to end at toy sizes: training, dopri5 sampling, NLL, figure and results."""

import dataclasses
import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments.checkerboard import main as checkerboard
from experiments.heldout import train_seconds


def test_training_seconds_sum_the_logged_windows_of_every_invocation(tmp_path):
    """Steps 0-20 at 2 steps/s, then an invocation killed after logging 30 (at 1 step/s)
    resumed from 20, logging 30 again at 5 steps/s and 40 at 10: 5 + 5 + 2 + 1 = 13 s."""
    rows = [(10, 2.0), (20, 2.0), (30, 1.0), (30, 5.0), (40, 10.0)]
    lines = [json.dumps({"step": s, "steps_per_s": r, "loss": 1.0}) for s, r in rows]
    lines.insert(2, json.dumps({"step": 20, "eval/nll": 3.0}))
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert train_seconds(tmp_path) == pytest.approx(13.0)


@pytest.mark.slow
def test_checkerboard_job_writes_results_and_figure(tmp_path):
    argv = [
        "--steps",
        "60",
        "--batch",
        "256",
        "--width",
        "32",
        "--depth",
        "2",
        "--num-samples",
        "500",
        "--num-test",
        "200",
        "--grid",
        "16",
        "--workdir",
        str(tmp_path),
    ]
    results = checkerboard.main(argv)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == results
    assert (tmp_path / "checkerboard.png").stat().st_size > 10_000
    assert saved["sampling_nfe_dopri5"] > 0 and saved["likelihood_nfe_dopri5"] > 0
    assert math.isfinite(saved["test_nll_nats"]) and saved["true_entropy_nats"] == round(
        math.log(32), 4
    )
    assert saved["test_nll_nats"] > saved["true_entropy_nats"] - 0.05  # no model beats the entropy


@pytest.mark.slow
def test_tong_table_reduced_run_writes_markdown_and_figure(tmp_path):
    from experiments.tong2024_2d import run

    out = run.main(
        [
            "--seeds",
            "1",
            "--steps",
            "200",
            "--tasks",
            "gaussian-moons",
            "gaussian-scurve",
            "--workdir",
            str(tmp_path),
        ]
    )
    assert len(out["results"]) == 10  # 2 tasks x 5 methods
    table = (tmp_path / "results.md").read_text()
    assert "| OT-CFM |" in table and "0.130±0.016" in table  # ours beside the published value
    assert (tmp_path / "samples.png").stat().st_size > 10_000
    assert all(np.isfinite(r["w2"]) and np.isfinite(r["npe"]) for r in out["results"])


@pytest.mark.slow
def test_pooladian_checkerboard_reduced_run_writes_table_and_figure(tmp_path):
    from experiments.pooladian2023_checkerboard import run

    out = run.main(
        ["--steps", "200", "--regs", "1.0", "--points", "500", "--workdir", str(tmp_path)]
    )
    objective = {name: r["objective"] for name, r in out["results"].items()}
    # even after 200 steps, OT pairs cross far less than independent ones
    assert objective["exact"] < objective["sinkhorn (reg=1)"] < objective["independent"]
    assert "| exact |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "samples.png").stat().st_size > 10_000


@pytest.mark.slow
def test_mnist_guidance_reduced_run_writes_table_and_figures(tmp_path):
    from experiments.mnist import run
    from tests.shared_data import shared_data

    argv = ["--workdir", str(tmp_path), "--data", str(shared_data() / "mnist"), "--steps", "20"]
    argv += ["--num", "100", "--reference", "100", "--guidance", "0,2", "--tolerances", "1e-2"]
    out = run.main(argv)
    assert sorted(out["fids"]) == [0.0, 2.0]
    assert all(
        np.isfinite(r["fid"]) and r["fid"] > 0 and r["nfe"] >= 6 for r in out["fids"].values()
    )
    assert out["floor"] < min(r["fid"] for r in out["fids"].values())  # real digits beat 20 steps
    (row,) = out["tolerances"]
    assert row["tol"] == 1e-2 and row["nfe"] >= 6 and np.isfinite(row["rms"])
    assert "| 2 |" in (tmp_path / "results.md").read_text()
    for name in ("fid_vs_guidance.png", "grid_w0.png", "grid_w2.png"):
        assert (tmp_path / name).stat().st_size > 1_000
    assert run.main(argv)["fids"] == out["fids"]  # a rerun reads the cached results


@pytest.mark.slow
def test_one_step_mnist_reduced_run_scores_each_method_at_its_nfe(tmp_path):
    from experiments.one_step_mnist import run
    from tests.shared_data import shared_data

    argv = ["--workdir", str(tmp_path), "--data", str(shared_data() / "mnist"), "--steps", "20"]
    argv += ["--num", "100", "--reference", "100", "--methods", "FM", "MeanFlow"]
    out = run.main(argv)
    fm, meanflow = out["results"]["FM"], out["results"]["MeanFlow"]
    assert {"NFE 1", "NFE 2", "NFE 10"} <= set(fm) and {"NFE 1", "NFE 2"} <= set(meanflow)
    fids = [row[k]["fid"] for row in (fm, meanflow) for k in row if k.startswith("NFE")]
    assert all(np.isfinite(fids)) and out["floor"] < min(fids)  # real digits beat 20 steps
    assert fm["train_seconds"] > 0 and meanflow["train_seconds"] > 0
    assert "| MeanFlow |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "samples.png").stat().st_size > 1_000
    assert run.main(argv) == json.loads((tmp_path / "results.json").read_text())  # cached


# App. Table 3 networks; the counts are TorchCFM's UNetModelWrapper's for the same settings
LIPMAN_NETWORKS = {
    "cifar10_fm_ot": ((32, 32, 3), 142_861_315),
    "cifar10_fm_diffusion": ((32, 32, 3), 142_861_315),
    "imagenet32_fm_ot": ((32, 32, 3), 196_069_123),
    "imagenet64_fm_ot": ((64, 64, 3), 264_904_515),
}


@pytest.mark.parametrize("name", sorted(LIPMAN_NETWORKS))
def test_lipman_table1_configs_validate_and_build_the_paper_network(name, tmp_path):
    from flowjax.contracts import NetworkSpec
    from flowjax.models import parameter_count
    from flowjax.train import build
    from flowjax.train.config import load_config, validate

    folder = Path(__file__).parents[1] / "experiments" / "lipman2023_table1"
    config = load_config(folder / f"{name}.py")
    # the data path is relative to the checkout or the user's; any existing folder validates
    validate(
        dataclasses.replace(config, data=dataclasses.replace(config.data, path=str(tmp_path))), 8
    )
    assert config.flow.scheduler == ("vp" if "diffusion" in name else "condot")
    image_shape, count = LIPMAN_NETWORKS[name]
    _, params = build.network(config, NetworkSpec(image_shape, image_shape), abstract=True)
    assert parameter_count(params) == count


def test_cifar10_jpeg_config_validates_and_builds_a_cpu_sized_unet():
    from flowjax.contracts import NetworkSpec
    from flowjax.models import parameter_count
    from flowjax.train import build
    from flowjax.train.config import load_config, validate
    from tests.shared_data import shared_data

    config = load_config(Path(__file__).parents[1] / "experiments" / "cifar10_jpeg" / "config.py")
    path = str(shared_data() / "cifar10-jpeg")
    validate(dataclasses.replace(config, data=dataclasses.replace(config.data, path=path)), 1)
    spec = NetworkSpec((32, 32, 3), (32, 32, 3))
    _, params = build.network(config, spec, abstract=True)
    assert parameter_count(params) < 2_000_000  # a CPU-sized network


def test_discrete_checkerboard_law_and_scores():
    from experiments.discrete_checkerboard import run

    p = run.data_histogram()
    assert p.shape == (128, 128) and np.isclose(p.sum(), 1.0)
    assert (p > 0).sum() == 128 * 64 and np.allclose(p[p > 0], 1 / (128 * 64))
    # quantized checkerboard points follow that law: exact samples score near the noise floor
    x = run.toy.quantize(run.toy.sample_toy("checkerboard", jax.random.key(0), 400_000), 128)
    exact = run.scores(np.asarray(x), p)
    assert exact["off_board"] == 0.0 and exact["tv"] < 0.07 and exact["kl"] < 0.03
    uniform = run.scores(np.asarray(jax.random.randint(jax.random.key(1), (400_000, 2), 0, 128)), p)
    assert uniform["off_board"] == pytest.approx(0.5, abs=0.01)
    assert uniform["tv"] == pytest.approx(0.5, abs=0.01) and uniform["kl"] > 0.6


@pytest.mark.slow
def test_discrete_checkerboard_reduced_run_writes_table_and_figure(tmp_path):
    from experiments.discrete_checkerboard import run

    argv = [
        "--workdir",
        str(tmp_path),
        "--steps",
        "30",
        "--num",
        "20000",
        "--sampling-steps",
        "2,8",
    ]
    out = run.main(argv)
    assert len(out["results"]) == 4 and all(np.isfinite(r["elbo_bits"]) for r in out["results"])
    rows = [row for r in out["results"] for row in r["rows"]]
    assert len(rows) == 2 * (2 + 2 + 1 + 1)  # the mask models also with the corrector
    assert "| mask | cross entropy | beta = 1 |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "checkerboard_dfm.png").stat().st_size > 10_000


@pytest.mark.slow
def test_shakespeare_char_reduced_run_compares_dfm_with_the_ar_baseline(tmp_path):
    from experiments.shakespeare_char import run
    from tests.shared_data import shared_data

    text = shared_data() / "tiny-shakespeare" / "input.txt"
    out = run.main(["--workdir", str(tmp_path), "--data", str(text), "--steps", "20"])
    assert set(out) == {"ar", "dfm"}
    for r in out.values():  # below the uniform code of the 65 characters
        assert 0 < r["bits_per_char"] < np.log2(65) and len(r["samples"]) == 4
    table = (tmp_path / "cpu" / "results.md").read_text()
    assert "| nanoGPT published" in table and "gap to AR" in table


@pytest.mark.slow
def test_dirichlet_simplex_reduced_run_writes_table_and_figure(tmp_path):
    from experiments.dirichlet_simplex import run

    argv = ["--workdir", str(tmp_path), "--ks", "4", "--steps", "200", "--num", "4000"]
    out = run.main([*argv, "--sampling-steps", "10"])
    cells = out["results"]["4"]
    assert set(cells) == set(run.METHODS) and all(np.isfinite(c["kl"]) for c in cells.values())
    assert out["floor"]["4"] < 0.01 and min(c["kl"] for c in cells.values()) < 0.1
    assert "| 4 |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "kl_vs_k.png").stat().st_size > 10_000


@pytest.mark.slow
def test_rfm_earth_reduced_run_writes_table_and_validation_curves(tmp_path):
    from experiments.rfm_earth import run
    from tests.shared_data import shared_data

    data = shared_data() / "earth-sphere"
    argv = ["--workdir", str(tmp_path), "--data", str(data), "--datasets", "volcano"]
    out = run.main([*argv, "--seeds", "0,1", "--steps", "100", "--every", "50", "--tag", "t"])
    seeds = out["volcano"]
    assert set(seeds) == {0, 1} and all(r["test_points"] == 82 for r in seeds.values())
    # better than the uniform law on S^2 (log 4 pi = 2.53 nats) after 100 steps
    assert all(
        np.isfinite(r["test_nll"]) and r["test_nll"] < np.log(4 * np.pi) for r in seeds.values()
    )
    assert all(len(r["validation"]) == 2 for r in seeds.values())
    assert "Chen & Lipman 2024" in (tmp_path / "t" / "results.md").read_text()
    assert (tmp_path / "t" / "validation.png").stat().st_size > 10_000


@pytest.mark.slow
def test_rfm_so3_reduced_run_scores_against_the_entropy(tmp_path):
    from experiments.rfm_so3 import run

    out = run.main(["--workdir", str(tmp_path), "--steps", "100", "--every", "50", "--tag", "t"])
    # the mixture's density scores the test points at its entropy; the model beats Haar
    assert abs(out["true_density_test_nll"] - out["entropy"]) < 0.1
    assert out["uniform_nll"] == pytest.approx(np.log(8 * np.pi**2))
    assert out["entropy"] < out["test_nll"] < out["uniform_nll"]
    assert len(out["validation"]) == 2 and out["test_points"] == 2000
    assert "entropy" in (tmp_path / "t" / "results.md").read_text()
    for name in ("samples.png", "data.png", "validation.png"):
        assert (tmp_path / "t" / name).stat().st_size > 10_000


@pytest.mark.slow
def test_rfm_torus_reduced_run_beats_the_uniform_law(tmp_path):
    from experiments.rfm_torus import run
    from tests.shared_data import shared_data

    data = shared_data() / "rna-torsions" / "rna.tsv"
    argv = ["--workdir", str(tmp_path), "--data", str(data), "--seeds", "0"]
    out = run.main([*argv, "--steps", "100", "--every", "50", "--tag", "t"])
    assert out[0]["test_points"] == 947 and len(out[0]["validation"]) == 2
    assert np.isfinite(out[0]["test_nll"]) and out[0]["test_nll"] < 7 * np.log(2 * np.pi)
    assert "Chen & Lipman 2024" in (tmp_path / "t" / "results.md").read_text()
    assert (tmp_path / "t" / "validation.png").stat().st_size > 5_000


@pytest.mark.slow
def test_rfm_mesh_reduced_run_scores_against_the_exact_entropy(tmp_path):
    from experiments.rfm_mesh import run

    out = run.main(["--workdir", str(tmp_path), "--steps", "40", "--every", "40", "--tag", "t"])
    # the target's density scores the test points near its exact entropy; the model sits
    # between the entropy and the uniform law after a few steps of premetric paths
    assert abs(out["true_density_test_nll"] - out["entropy"]) < 0.05
    assert out["entropy"] < out["test_nll"] < out["uniform_nll"]
    assert len(out["validation"]) == 1 and out["test_points"] == 2000
    assert 0.3 < out["support_area_fraction"] < 0.7
    # the likelihood check: the model's density integrates to one
    assert abs(out["integral"] - 1) < 4 * out["integral_error"] + 0.05
    for name in ("samples.png", "data.png", "validation.png"):
        assert (tmp_path / "t" / name).stat().st_size > 5_000


@pytest.mark.slow
def test_rfm_torus_scaling_reduced_run_reports_per_dimension(tmp_path):
    from experiments.rfm_torus import scaling

    argv = ["--workdir", str(tmp_path), "--dims", "2", "8", "--steps", "60", "--every", "30"]
    out = scaling.main([*argv, "--tag", "t"])
    for d in (2, 8):  # the target's log-density per dimension is that of N(0, 0.2^2)
        assert -out[d]["true_nll"] / d == pytest.approx(
            -np.log(0.2 * np.sqrt(2 * np.pi * np.e)), abs=0.05
        )
        assert out[d]["test_nll"] < d * np.log(2 * np.pi)  # better than the uniform law
    assert "| 8 |" in (tmp_path / "t" / "results.md").read_text()
    assert (tmp_path / "t" / "scaling.png").stat().st_size > 5_000


@pytest.mark.slow
def test_one_step_2d_reduced_run_scores_every_method_and_nfe(tmp_path):
    from experiments.one_step_2d import run

    out = run.main(["--workdir", str(tmp_path), "--steps", "60", "--tag", "t"])
    for distribution in run.DISTRIBUTIONS:
        fm, meanflow = out[distribution]["FM (Euler)"], out[distribution]["MeanFlow"]
        assert [fm[f"NFE {k}"]["nfe"] for k in run.NFES] == list(run.NFES)
        assert [meanflow[f"NFE {k}"]["nfe"] for k in run.NFES] == list(run.NFES)
        assert [meanflow[f"renoise {k}"]["nfe"] for k in run.NFES[1:]] == list(run.NFES[1:])
        assert fm["dopri5"]["nfe"] > 4 and np.isfinite(fm["dopri5"]["w2"])
        # one Euler step of FM lands on the data's mean; one MeanFlow jump does better
        assert meanflow["NFE 1"]["w2"] < fm["NFE 1"]["w2"]
    assert "MeanFlow" in (tmp_path / "t" / "results.md").read_text()
    assert (tmp_path / "t" / "samples.png").stat().st_size > 10_000
