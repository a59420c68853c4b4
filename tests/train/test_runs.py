"""End-to-end runs of `flowjax train` in subprocesses: sharding equivalence, exact resume after
SIGKILL (also on another device count), SIGTERM, non-finite guard, damaged checkpoints, CLI."""

import json
import random
import signal
import subprocess
import time

import numpy as np
import pytest

from flowjax.train.guards import PREEMPTED
from tests.shared_data import shared_data
from tests.train.helpers import (
    CLI,
    cli_report,
    env,
    max_difference,
    metrics,
    restore,
    run_train,
    train_command,
)

SHARDING_TOL = 2e-5  # float32 reductions in another order, over 10 Adam steps


def test_data_parallel_and_fsdp_match_one_device(tmp_path):
    steps = ["--config.steps=10"]
    run_train(tmp_path / "one", *steps, devices=1)
    run_train(tmp_path / "dp", *steps, devices=8)
    run_train(
        tmp_path / "fsdp",
        *steps,
        "--config.mesh.fsdp=4",
        "--config.mesh.fsdp_min_size=1",
        devices=8,
    )
    _, one = restore(tmp_path / "one")
    for name in ("dp", "fsdp"):
        step, params = restore(tmp_path / name)
        assert step == 10
        assert max_difference(one, params) < SHARDING_TOL, name
    # FSDP really sharded the parameters: the saved state records a sharded layout
    sharding = json.loads(
        (tmp_path / "fsdp" / "checkpoints" / "10" / "state" / "_sharding").read_text()
    )
    assert any("fsdp" in json.dumps(v) for v in sharding.values())


@pytest.mark.slow
def test_ot_coupling_over_the_global_batch_or_per_shard(tmp_path):
    """Exact OT on the global batch gives the same run on 8 devices as on one; per-shard OT
    pairs within each device's 8 samples, a different (and still shorter-than-independent)
    coupling; the OT losses start below the independent coupling's."""
    ot = ["--config.steps=10", "--config.flow.coupling=exact"]
    run_train(tmp_path / "independent", "--config.steps=10", devices=8)
    run_train(tmp_path / "one", *ot, devices=1)
    run_train(tmp_path / "global", *ot, devices=8)
    run_train(tmp_path / "shard", *ot, "--config.flow.coupling_scope=shard", devices=8)
    _, one = restore(tmp_path / "one")
    _, whole = restore(tmp_path / "global")
    _, shard = restore(tmp_path / "shard")
    assert max_difference(one, whole) < SHARDING_TOL
    assert max_difference(one, shard) > 100 * SHARDING_TOL
    first = {name: metrics(tmp_path / name)[0]["loss"] for name in ("independent", "one", "shard")}
    assert first["one"] < first["shard"] < first["independent"], first


def _wait_for_checkpoint(workdir, proc, at_least, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = [int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit()]
        if done and max(done) >= at_least:
            return max(done)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    raise TimeoutError("no checkpoint")


@pytest.mark.parametrize("resume_devices", [1, 4])
def test_resume_after_sigkill_is_exact(tmp_path, resume_devices):
    args = ["--config.steps=600", "--config.checkpoint.every=100", "--config.log.every=50"]
    run_train(tmp_path / "straight", *args)
    proc = subprocess.Popen(
        train_command(tmp_path / "killed", *args),
        env=env(1),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_checkpoint(tmp_path / "killed", proc, 100)
    time.sleep(random.uniform(0.0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [
        int(p.name) for p in (tmp_path / "killed" / "checkpoints").glob("*") if p.name.isdigit()
    ]
    assert max(done) < 600  # it really was interrupted
    run_train(tmp_path / "killed", *args, devices=resume_devices)
    step_a, straight = restore(tmp_path / "straight")
    step_b, resumed = restore(tmp_path / "killed")
    assert step_a == step_b == 600
    if resume_devices == 1:
        assert max_difference(straight, resumed) == 0.0  # bit for bit
    else:
        assert max_difference(straight, resumed) < SHARDING_TOL
    # the same data order: the logged losses after the resume point agree
    after = {m["step"]: m["loss"] for m in metrics(tmp_path / "straight") if "loss" in m}
    again = {m["step"]: m["loss"] for m in metrics(tmp_path / "killed") if "loss" in m}
    np.testing.assert_allclose(
        [again[s] for s in (550, 600)], [after[s] for s in (550, 600)], rtol=1e-5
    )


def test_sigterm_saves_and_exits_as_preempted(tmp_path):
    workdir = tmp_path / "run"
    proc = subprocess.Popen(
        train_command(workdir, "--config.steps=1000000", "--config.checkpoint.every=200"),
        env=env(1),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_checkpoint(workdir, proc, 200)
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == PREEMPTED == 75, err[-2000:]
    assert time.time() - sent < 15
    assert "received SIGTERM" in out + err and "Traceback" not in err
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit())
    assert steps[-1] % 200 != 0 or steps[-1] > 200  # the stop step was saved, not only the periodic
    assert f"flowjax: preempted: stopped by SIGTERM at step {steps[-1]}; saved" in err
    last_step, _params = restore(workdir)
    assert last_step == steps[-1]


@pytest.mark.slow
def test_non_finite_runs_end_with_an_error_naming_the_first_bad_quantity(tmp_path):
    """An overflowing learning rate skips every step: the run fails (exit 1) with one line,
    whether it stops at once ("stop") or after its budget; nothing skipped is saved."""
    overflow = ["--config.steps=10", "--config.optim.lr=1e39"]
    cases = {
        "skip": (["--config.nonfinite_budget=3"], "4 steps skipped in a row from step 1"),
        "all": ([], "all 10 steps of this run were skipped, from step 1"),
        "stop": (["--config.nonfinite=stop"], "1 step skipped in a row from step 1"),
    }
    for name, (extra, message) in cases.items():
        out = subprocess.run(
            train_command(tmp_path / name, *overflow, *extra),
            env=env(1),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 1, out.stderr[-2000:]
        assert f"flowjax: training stopped: {message}" in out.stderr, out.stderr[-1000:]
        assert "the updated parameters first went non-finite" in out.stderr
        assert "Traceback" not in out.stderr
        assert not list((tmp_path / name / "checkpoints").glob("[0-9]*"))


@pytest.mark.slow
def test_cli_trains_samples_evaluates_and_reports_user_errors(tmp_path):
    workdir = tmp_path / "toy"
    run_train(
        workdir,
        "--config.steps=20",
        "--config.log.sample_every=10",
        "--config.log.eval_every=10",
        "--config.log.num_samples=256",
    )
    assert (workdir / "samples" / "step_00000020.png").stat().st_size > 5000
    logged = metrics(workdir)
    assert {"loss", "grad_norm", "lr", "steps_per_s"} <= set(logged[0]) and any(
        "eval/nll" in m for m in logged
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(workdir / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [5, 10, 15, 20]
    np.testing.assert_allclose(
        [e.value for e in events.Scalars("loss")],
        [m["loss"] for m in logged if "loss" in m],
        rtol=1e-6,
    )
    report = cli_report("sample", "--workdir", str(workdir), "--num", "300", "--method", "rk4")
    assert report["shape"] == [300, 2] and report["nfe"] == 400
    assert np.load(workdir / "samples.npz")["samples"].shape == (300, 2)
    assert {"eval/nll", "eval/w2"} <= set(cli_report("evaluate", "--workdir", str(workdir)))
    cli = CLI
    for argv, message in [
        (
            [*cli, "train", str(tmp_path / "nope.py"), "--workdir", str(tmp_path / "x")],
            "config file not found",
        ),
        (train_command(workdir, "--config.optim.lr=0"), "config.optim.lr must be positive"),
        (
            train_command(workdir, "--config.model.width=64"),
            "holds a run with another config (model.width: 32 -> 64)",
        ),
        ([*cli, "sample", "--workdir", str(tmp_path / "empty")], "holds no run"),
        ([*cli, "fid", "--workdir", str(workdir), "--num", "1"], "--num and --reference"),
        ([*cli, "sample", "--workdir", str(workdir), "--steps", "0"], "--steps must be positive"),
        (
            [*cli, "sample", "--workdir", str(workdir), "--method", "rk45"],
            "--method 'rk45'; the run's family has ['dopri5'",
        ),
        ([*cli, "fid", "--workdir", str(workdir)], "FID needs an image run"),
    ]:
        out = subprocess.run(argv, env=env(1), capture_output=True, text=True, timeout=300)
        assert out.returncode == 2 and message in out.stderr, out.stderr[-2000:]
        assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_mnist_run_resumes_the_data_iterator_exactly(tmp_path):
    mnist = [
        "--config.data.kind=mnist",
        f"--config.data.path={shared_data() / 'mnist'}",
        "--config.model.num_classes=10",
        "--config.data.flip=false",
    ]
    run_train(tmp_path / "straight", *mnist, "--config.steps=20")
    run_train(tmp_path / "resumed", *mnist, "--config.steps=10")
    state = json.loads(
        next((tmp_path / "resumed" / "checkpoints" / "10" / "data").glob("*.json")).read_text()
    )
    assert state["next_index"] == 10
    run_train(tmp_path / "resumed", *mnist, "--config.steps=20", "--allow-changes")
    assert (
        max_difference(restore(tmp_path / "straight")[1], restore(tmp_path / "resumed")[1]) == 0.0
    )
    # sampling needs the workdir alone: not the training data
    saved = json.loads((tmp_path / "resumed" / "config.json").read_text())
    saved["data"]["path"] = str(tmp_path / "moved-away")
    (tmp_path / "resumed" / "config.json").write_text(json.dumps(saved))
    resumed = str(tmp_path / "resumed")
    report = cli_report("sample", "--workdir", resumed, "--num", "12", "--method", "euler")
    assert report["shape"] == [12, 28, 28, 1]


@pytest.mark.slow
def test_tiny_class_conditional_unet_trains_on_mnist_and_samples_with_guidance(tmp_path):
    unet = [
        "--config.data.kind=mnist",
        f"--config.data.path={shared_data() / 'mnist'}",
        "--config.model.kind=unet",
        "--config.model.num_classes=10",
        "--config.model.model_channels=32",
        "--config.model.num_res_blocks=1",
        "--config.model.channel_mult=1,2",
        "--config.model.attention_resolutions=14",
        "--config.model.dropout=0.1",
        "--config.flow.label_dropout=0.2",
        "--config.data.batch_size=16",
    ]
    run_train(tmp_path, *unet, "--config.steps=6", timeout=600)
    assert all(np.isfinite(m["loss"]) for m in metrics(tmp_path) if "loss" in m)
    sample = ["sample", "--workdir", str(tmp_path), "--num", "20", "--method", "euler"]
    report = cli_report(*sample, "--guidance", "2", timeout=600)
    assert report["shape"] == [20, 28, 28, 1] and report["nfe"] == 100
    assert report["samples_per_s"] > 0 and report["compile_s"] > 0
    samples = np.load(tmp_path / "samples.npz")["samples"]
    assert np.isfinite(samples).all() and (tmp_path / "samples.png").stat().st_size > 1000
    fid = ["fid", "--workdir", str(tmp_path), "--num", "20", "--reference", "30"]
    fid += ["--method", "euler", "--steps", "5", "--batch", "10", "--guidance", "2"]
    report = cli_report(*fid, timeout=600)
    assert report["num"] == 20 and report["nfe"] == 5 and report["fid"] > 0
    assert (tmp_path / "fid" / "fid_reference_train_30.npz").is_file()
