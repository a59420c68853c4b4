"""Performance mechanics of the loop: a profiler trace, FLOP utilization in the metrics, and
the persistent compilation cache of a relaunched run."""

import subprocess

import pytest

from tests.train.helpers import env, metrics, run_train, train_command


def test_a_profile_trace_is_written_and_utilization_is_logged(tmp_path):
    run_train(tmp_path, "--config.steps=10", "--config.profile.start=3", "--config.profile.steps=2")
    traces = list((tmp_path / "tensorboard" / "plugins" / "profile").rglob("*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 1000
    logged = [m for m in metrics(tmp_path) if "loss" in m]
    assert len(logged) == 2
    for m in logged:
        assert m["perf/tflops_per_device"] > 0 and 0 < m["perf/mfu"] < 1.5
        # FLOPs per step x steps/s: the two are consistent
        assert (
            abs(
                m["perf/tflops_per_device"] / m["steps_per_s"]
                - logged[0]["perf/tflops_per_device"] / logged[0]["steps_per_s"]
            )
            < 1e-12
        )


@pytest.mark.slow
def test_a_relaunched_run_loads_its_compiled_programs_from_the_cache(tmp_path):
    """A preempted job relaunched with the same command (here: its last checkpoint lost, so
    it resumes at step 5) compiles nothing: the train step comes from the cache."""
    import shutil

    args = ["--config.steps=10", "--config.checkpoint.every=5"]
    run_train(tmp_path / "run", *args)
    cache = tmp_path / "run" / "compilation_cache"
    assert len(list(cache.iterdir())) > 0
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "10")
    logging = env(1, JAX_DEBUG_LOG_MODULES="jax._src.compiler")
    out = subprocess.run(
        train_command(tmp_path / "run", *args),
        env=logging,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Persistent compilation cache hit for 'jit_train_step'" in out.stderr
    assert len(list(cache.glob("jit_train_step-*"))) == 1
    run_train(tmp_path / "off", "--config.steps=5", "--config.compilation_cache=off")
    assert not (tmp_path / "off" / "compilation_cache").exists()


@pytest.mark.slow
def test_steps_per_call_trains_the_same_run_and_resumes_exactly_after_sigkill(tmp_path):
    """Five steps per compiled call: the parameters of a K = 1 run (to float32 round-off),
    the same logging rows, and after a SIGKILL the same command ends bit-identical."""
    import random
    import signal
    import time

    from tests.train.helpers import max_difference, restore

    args = ["--config.steps=400", "--config.checkpoint.every=50", "--config.log.every=50"]
    run_train(tmp_path / "one", *args)
    five = [*args, "--config.steps_per_call=5"]
    run_train(tmp_path / "five", *five)
    assert max_difference(restore(tmp_path / "one")[1], restore(tmp_path / "five")[1]) < 1e-5
    steps = [m["step"] for m in metrics(tmp_path / "five") if "loss" in m]
    assert steps == list(range(50, 401, 50))

    def flops_per_step(run: str) -> float:  # TFLOP/s over steps/s
        row = [m for m in metrics(tmp_path / run) if "loss" in m][-1]
        return row["perf/tflops_per_device"] / row["steps_per_s"]

    assert abs(flops_per_step("five") / flops_per_step("one") - 1) < 1e-3
    proc = subprocess.Popen(
        train_command(tmp_path / "killed", *five), env=env(1), stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not list((tmp_path / "killed" / "checkpoints").glob("[0-9]*")):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 0.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_train(tmp_path / "killed", *five)
    step, resumed = restore(tmp_path / "killed")
    assert step == 400
    assert max_difference(resumed, restore(tmp_path / "five")[1]) == 0.0
