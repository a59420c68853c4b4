"""Fault injection: bad command lines end in one line and exit status 2 (1 for a diverging
run), damaged checkpoints fall back or stop with one line, a full disk loses nothing, and the
run resumes bit-identically once the fault is gone. Most cases run `flowjax.cli.main`
in-process (they fail before any compute); a few go through the real subprocess."""

import json
import shutil
import subprocess

import jax.numpy as jnp
import pytest

from flowjax import cli
from flowjax.families import CFM
from flowjax.train.config import apply_overrides, load_config
from flowjax.train.guards import NonFiniteError
from flowjax.train.loop import train
from tests.shared_data import shared_data
from tests.train.helpers import CLI, SMALL, TOY, env, max_difference, metrics, restore, run_train

TRAIN = ["train", str(TOY), *SMALL]

# (arguments after `flowjax train CONFIG --workdir DIR`, what the one line says)
BAD_TRAIN = [
    (["--config.optim.lrr=1"], "unknown config key 'optim.lrr'"),
    (["--config.steps=ten"], "cannot read 'ten' as int"),
    (["--config.data.flip=maybe"], "cannot read 'maybe' as bool"),
    (["--config.optim=1"], "'optim' is a section"),
    (["--config.steps.x=1"], "'steps' has no fields"),
    (["--optim.lr=1"], "unrecognized arguments: --optim.lr=1"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--config.steps=0"], "config.steps must be positive"),
    (["--config.optim.lr=-1"], "config.optim.lr must be positive"),
    (["--config.optim.lr=inf"], "config.optim.lr must be finite, got inf"),
    (["--config.optim.lr=nan"], "config.optim.lr must be positive, got nan"),
    (["--config.optim.b1=1.5"], r"config.optim.b1 must be in [0, 1)"),
    (["--config.optim.b2=-0.1"], r"config.optim.b2 must be in [0, 1)"),
    (["--config.optim.eps=0"], "config.optim.eps must be positive"),
    (["--config.optim.ema_decay=1"], "ema_decay must be in [0, 1)"),
    (["--config.optim.grad_clip=0"], "grad_clip must be positive or None"),
    (["--config.optim.weight_decay=-1"], "weight_decay must be >= 0"),
    (["--config.optim.warmup_steps=-5"], "warmup_steps must be >= 0"),
    (["--config.optim.schedule=linear"], "config.optim.schedule = 'linear'; expected one of"),
    (["--config.optim.accumulate=0"], "config.optim.accumulate must be positive"),
    (["--config.optim.accumulate=3"], "must be divisible by devices x accumulate = 1 x 3"),
    (["--config.data.batch_size=0"], "config.data.batch_size must be positive"),
    (["--config.data.kind=imagenet"], "config.data.kind = 'imagenet'; expected one of"),
    (["--config.data.distribution=spirals"], "config.data.distribution = 'spirals'"),
    (["--config.data.kind=mnist"], "config.data.path is required for data.kind = 'mnist'"),
    (["--config.data.kind=mnist", "--config.data.path=/no/such"], "does not exist: /no/such"),
    (["--config.data.kind=tfds", "--config.data.path=/tmp"], "config.data.name is required"),
    (["--config.data.kind=text", "--config.data.path=/tmp"], "'/tmp': Is a directory"),
    (["--config.data.kind=text"], "config.data.path is required for data.kind = 'text'"),
    (["--config.data.workers=-1"], "config.data.workers must be >= 0"),
    (["--config.data.prefetch=0"], "config.data.prefetch must be positive"),
    (["--config.precision=fp16"], "config.precision = 'fp16'; expected one of"),
    (["--config.nonfinite=maybe"], "config.nonfinite = 'maybe'; expected one of"),
    (["--config.nonfinite_budget=-1"], "config.nonfinite_budget must be >= 0"),
    (["--config.distributed=yes"], "config.distributed = 'yes'; expected one of"),
    (["--config.family=ctmc"], "config.family: unknown family 'ctmc'"),
    (["--config.family=no.such:Family"], "cannot import family 'no.such:Family'"),
    (["--config.flow.scheduler=ot"], "config.flow.scheduler = 'ot'; expected one of"),
    (["--config.flow.parameterization=score"], "config.flow.parameterization = 'score'"),
    (["--config.flow.time_sampler=beta"], "config.flow.time_sampler = 'beta'"),
    (["--config.flow.time_eps=0.7"], r"config.flow.time_eps must be in [0, 0.5)"),
    (["--config.flow.coupling=hungarian"], "config.flow.coupling = 'hungarian'"),
    (["--config.flow.coupling=sinkhorn"], "coupling = 'sinkhorn' needs coupling_reg > 0"),
    (["--config.flow.coupling_scope=device"], "config.flow.coupling_scope = 'device'"),
    (["--config.flow.coupling_within=y"], "coupling_within need class labels"),
    (["--config.flow.label_dropout=0.5"], "label_dropout and coupling_within need class labels"),
    (["--config.flow.label_dropout=1"], r"config.flow.label_dropout must be in [0, 1)"),
    (["--config.flow.label_dropout_mode=epoch"], "config.flow.label_dropout_mode = 'epoch'"),
    (["--config.flow.weighting=sigma"], "config.flow.weighting = 'sigma'"),
    (["--config.flow.sigma_min=-1"], "config.flow.sigma_min must be >= 0"),
    (["--config.flow.sigma_min=1"], r"CondOT sigma_min must lie in [0, 1)"),
    (["--config.flow.endpoint_eps=0"], r"config.flow.endpoint_eps must be in (0, 0.5)"),
    (["--config.model.kind=resnet"], "config.model.kind = 'resnet'; expected one of"),
    (["--config.model.preset=huge"], "config.model.preset = 'huge'; expected one of"),
    (["--config.model.widht=3"], "unknown config key 'model.widht'; MLP takes"),
    (["--config.model.width=2.5"], "--config.model.width: cannot read '2.5' as int"),
    (["--config.model.depth=0"], "config.model (mlp): depth and width must be positive"),
    (["--config.model.activation=swish"], "config.model (mlp): unknown activation 'swish'"),
    (["--config.model.time_embedding=fourier"], "unknown time_embedding 'fourier'"),
    (["--config.model.num_classes=3"], "config.model.num_classes is set but toy2d data"),
    (["--config.model.kind=unet"], "config.model (unet): image_shape must be (H, W, C)"),
    (["--config.model.kind=unet", "--config.model.channel_mult=1,x"], "channel_mult: cannot"),
    (["--config.model.kind=dit", "--config.model.size=M"], "unknown DiT size 'M'"),
    (["--config.mesh.fsdp=0"], "config.mesh.fsdp must be positive"),
    (["--config.mesh.fsdp=3"], "config.mesh.fsdp = 3 does not divide the 1 devices"),
    (["--config.mesh.data=3"], "data x fsdp = 3 x 1 must equal the 1 devices"),
    (["--config.checkpoint.every=0"], "config.checkpoint.every must be positive"),
    (["--config.checkpoint.keep=0"], "config.checkpoint.keep must be positive"),
    (["--config.checkpoint.best_mode=up"], "config.checkpoint.best_mode = 'up'"),
    (["--config.checkpoint.best_metric=eval/nll"], "best_metric needs config.log.eval_every"),
    (["--config.log.every=-1"], "config.log.every must be >= 0"),
    (["--config.log.num_samples=0"], "config.log.num_samples must be positive"),
    (["--config.log.eval_steps=0"], "config.log.eval_steps must be positive"),
    (["--config.log.eval_method=rk45"], "config.log.eval_method = 'rk45'; expected one of"),
    (["--config.steps_per_call=0"], "config.steps_per_call must be positive"),
    (["--config.steps_per_call=3"], "config.steps = 5000 must be a multiple of steps_per_call = 3"),
    (["--config.profile.start=0"], "config.profile.start must be positive"),
    (["--config.profile.steps=-1"], "config.profile.steps must be >= 0"),
    (["--config.compilation_cache="], "config.compilation_cache must name a directory"),
]


def _run(argv, capsys):
    """`flowjax ARGV` in this process: (exit status, the lines written to stderr)."""
    try:
        status = cli.main(argv)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return status, lines


def _one_line(lines, message):
    errors = [line for line in lines if line.startswith("flowjax: ")]
    assert len(errors) == 1 and message in errors[0], lines[-5:]
    assert not any("Traceback" in line for line in lines)


@pytest.mark.parametrize(("args", "message"), BAD_TRAIN, ids=[" ".join(a) for a, _ in BAD_TRAIN])
def test_bad_train_arguments_are_one_line(args, message, tmp_path, capsys):
    status, lines = _run([*TRAIN, "--workdir", str(tmp_path / "run"), *args], capsys)
    assert status == 2
    _one_line(lines, message)
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing was started


def test_config_files_with_mistakes_are_one_line(tmp_path, capsys):
    cases = {
        "missing.py": (None, "config file not found"),
        "empty.py": ("x = 1\n", "must define get_config() -> TrainConfig"),
        "syntax.py": ("def get_config(:\n", "syntax.py:1: SyntaxError"),
        "raises.py": ("def get_config():\n    raise KeyError('lr')\n", "KeyError: 'lr'"),
        "wrong.py": ("def get_config():\n    return {}\n", "returned dict, not TrainConfig"),
    }
    for name, (text, message) in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        status, lines = _run(["train", str(tmp_path / name), "--workdir", str(tmp_path)], capsys)
        assert status == 2, name
        _one_line(lines, message)


def test_bad_command_lines_are_one_line(tmp_path, capsys):
    workdir = tmp_path / "run"
    run_train(workdir, "--config.steps=5")
    run = ["--workdir", str(workdir)]
    cases = [
        ([], "the following arguments are required: command"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["sample"], "the following arguments are required: --workdir"),
        (["sample", "--workdir", str(tmp_path / "none")], "holds no run (no config.json)"),
        (["sample", *run, "--num", "0"], "--num must be positive"),
        (["sample", *run, "--num", "ten"], "argument --num: invalid int value: 'ten'"),
        (["sample", *run, "--steps", "0"], "--steps must be positive"),
        (["sample", *run, "--method", "rk45"], "--method 'rk45'; the run's family has"),
        (["sample", *run, "--guidance", "2"], "--guidance needs a class-conditional run"),
        (["sample", *run, "--config.steps=3"], "--config.* overrides apply to `flowjax train`"),
        (["evaluate", *run, "--num", "3"], "unrecognized arguments: --num 3"),
        (["fid", *run, "--num", "1"], "--num and --reference must be at least 2"),
        (["fid", *run, "--batch", "0"], "--batch at least 1"),
        (["fid", *run], "FID needs an image run"),
        ([*TRAIN, *run, "--config.model.width=64"], "another config (model.width: 32 -> 64)"),
        ([*TRAIN, *run, "--config.optim.lr=0.01"], "other hyperparameters (optim.lr: 0.001"),
        ([*TRAIN, "--workdir", str(TOY)], "Not a directory"),  # a workdir that is a file
    ]
    for argv, message in cases:
        status, lines = _run(argv, capsys)
        assert status == 2, (argv, lines[-3:])
        _one_line(lines, message)
    # and through the real command: one line, exit status 2, no traceback
    out = subprocess.run(
        [*CLI, "sample", *run, "--method", "rk45"], env=env(1), capture_output=True, text=True
    )
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "flowjax: error: --method 'rk45'; the run's family has "
        "['dopri5', 'euler', 'midpoint', 'heun', 'rk4', 'tsit5', 'dopri8']"
    ]
    debug = subprocess.run(
        [*CLI, "sample", *run, "--method", "rk45", "--debug"],
        env=env(1),
        capture_output=True,
        text=True,
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr  # --debug shows it


def test_mnist_with_too_few_classes_is_refused_before_compute(tmp_path, capsys):
    mnist = [f"--config.data.path={shared_data() / 'mnist'}", "--config.model.num_classes=5"]
    status, lines = _run(
        [*TRAIN, "--workdir", str(tmp_path), "--config.data.kind=mnist", *mnist], capsys
    )
    assert status == 2
    _one_line(lines, "config.model.num_classes = 5, but the mnist labels go up to 9")
    split = ["--config.model.num_classes=10", "--config.data.split=valid"]
    status, lines = _run(
        [*TRAIN, "--workdir", str(tmp_path), "--config.data.kind=mnist", *mnist[:1], *split],
        capsys,
    )
    assert status == 2
    _one_line(lines, "MNIST has the splits 'train' and 'test', got 'valid'")


def _damage(step_dir, what):
    """Damage a checkpoint step: a missing item, or the largest state data file truncated,
    deleted or with 64 bytes flipped."""
    if what in ("meta", "state"):
        shutil.rmtree(step_dir / what)
        return
    files = sorted((step_dir / "state").rglob("d/*"))
    target = max(files, key=lambda f: f.stat().st_size)
    if what == "truncate":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif what == "delete":
        target.unlink()
    else:
        data = bytearray(target.read_bytes())
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(255 - b for b in data[middle : middle + 64])
        target.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The parameters of an uninterrupted 20-step run."""
    workdir = tmp_path_factory.mktemp("straight")
    run_train(workdir, "--config.steps=20")
    return restore(workdir)[1]


SLOW = pytest.mark.slow  # the default run keeps one missing item and one kind of bad data


@pytest.mark.parametrize(
    "what",
    [
        "meta",
        "flip",
        pytest.param("state", marks=SLOW),
        pytest.param("truncate", marks=SLOW),
        pytest.param("delete", marks=SLOW),
    ],
)
@pytest.mark.slow
def test_each_kind_of_damage_falls_back_to_the_newest_good_step(tmp_path, what, straight):
    """A missing meta or state item, or damaged data (a missing orbax `_CHECKPOINT_METADATA`
    file is no damage: orbax restores the step without it)."""
    run_train(tmp_path / "run", "--config.steps=15")
    _damage(tmp_path / "run" / "checkpoints" / "15", what)
    # read-only commands leave the damage where it is, and use the previous step
    out = subprocess.run(
        [*CLI, "sample", "--workdir", str(tmp_path / "run"), "--num", "10"],
        env=env(1),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "checkpoint step 15" in out.stderr and "left in place" in out.stderr
    assert (tmp_path / "run" / "checkpoints" / "15").exists()
    assert not (tmp_path / "run" / "checkpoints.damaged").exists()
    # training moves it aside and resumes from step 10: the same numbers as a straight run
    resumed = run_train(tmp_path / "run", "--config.steps=20", "--allow-changes")
    assert "checkpoint step 15" in resumed.stderr and "moved to" in resumed.stderr
    assert "falling back to the previous step" in resumed.stderr
    assert max_difference(restore(tmp_path / "run")[1], straight) == 0.0


@pytest.mark.slow
def test_every_step_damaged_stops_with_one_line_and_restart_starts_over(tmp_path):
    workdir = tmp_path / "run"
    run_train(workdir, "--config.steps=10")
    for step in (5, 10):
        _damage(workdir / "checkpoints" / str(step), "truncate")
    out = subprocess.run(
        [*CLI, *TRAIN, "--workdir", str(workdir), "--config.steps=10"],
        env=env(1),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("flowjax: error: every checkpoint of") and "--restart" in last
    assert "step 10 (moved to" in last and "step 5 (moved to" in last
    assert "Traceback" not in out.stderr
    assert not list((workdir / "checkpoints").glob("[0-9]*"))  # nothing restarted silently
    assert len(list((tmp_path / "run" / "checkpoints.damaged").iterdir())) == 2
    run_train(workdir, "--config.steps=10", "--restart")
    assert restore(workdir)[0] == 10
    aside = list(workdir.glob("restarted-*"))
    assert len(aside) == 1 and (aside[0] / "checkpoints.damaged").is_dir()  # kept, not deleted


@pytest.mark.slow
def test_a_leftover_temporary_checkpoint_is_cleaned_up(tmp_path):
    workdir = tmp_path / "run"
    run_train(workdir, "--config.steps=10")
    leftover = workdir / "checkpoints" / "15.orbax-checkpoint-tmp-1234"
    shutil.copytree(workdir / "checkpoints" / "10", leftover)
    run_train(workdir, "--config.steps=20", "--allow-changes")
    assert restore(workdir)[0] == 20 and not leftover.exists()


def test_resume_is_explicit_and_recorded(tmp_path, capsys):
    workdir = tmp_path / "run"
    run_train(workdir, "--config.steps=10")
    original = (workdir / "config.json").read_text()
    run_train(workdir, "--config.steps=20", "--config.optim.lr=3e-4", "--allow-changes")
    assert (workdir / "config.json").read_text() == original  # never rewritten
    (row,) = [json.loads(r) for r in (workdir / "history.jsonl").read_text().splitlines()]
    assert row["step"] == 10
    assert row["changes"] == {"optim.lr": [0.001, 0.0003], "steps": [10, 20]}
    from flowjax.train.resume import effective_config

    assert effective_config(workdir).optim.lr == 3e-4
    # operational settings change freely; asking for no more steps says so
    status, lines = _run(
        [
            *TRAIN,
            *["--workdir", str(workdir), "--config.steps=20", "--config.optim.lr=3e-4"],
            *["--config.log.every=10", "--config.checkpoint.every=7"],
        ],
        capsys,
    )
    assert status == 0 and "is at step 20, at or past config.steps = 20: nothing to train" in (
        " ".join(lines)
    )


def test_resume_compares_configs_as_saved(tmp_path):
    """Tuples come back from JSON as lists: the same config is no change, a changed tuple is."""
    from flowjax.configs.mnist import get_config
    from flowjax.train.config import ConfigError, to_json
    from flowjax.train.resume import changes

    config = get_config()
    saved = json.loads(to_json(config))
    assert changes(config, saved, tmp_path, allowed=False) == {}
    other = apply_overrides(config, ["--config.model.channel_mult=1,2"])
    with pytest.raises(ConfigError, match=r"model.channel_mult: \[1, 2, 2\] -> \[1.0, 2.0\]"):
        changes(other, saved, tmp_path, allowed=True)


def test_settings_added_since_a_run_started_resume_at_their_defaults(tmp_path):
    """A checkpoint's config saved before a setting existed had its default behaviour."""
    from flowjax.configs.mnist import get_config
    from flowjax.train.config import ConfigError, to_json
    from flowjax.train.resume import changes

    config = get_config()
    saved = json.loads(to_json(config))
    del saved["data"]["augment_p"], saved["optim"]["ema_every"]
    assert changes(config, saved, tmp_path, allowed=False) == {}
    other = apply_overrides(config, ["--config.optim.ema_every=16"])
    assert changes(other, saved, tmp_path, allowed=True) == {"optim.ema_every": (1, 16)}
    with pytest.raises(ConfigError, match=r"data.augment_p: 0.12 -> 0.5"):
        changes(apply_overrides(config, ["--config.data.augment_p=0.5"]), saved, tmp_path, True)


def test_settings_removed_since_a_run_started_are_dropped_on_resume(tmp_path):
    """A shortcut run saved when its section still had MeanFlow's time settings (which it never
    read) resumes, and its effective config rebuilds; a model argument is not dropped."""
    from flowjax.train.config import ConfigError, to_json
    from flowjax.train.resume import changes, effective_config

    config = apply_overrides(load_config(TOY), ["--config.family=shortcut"])
    saved = json.loads(to_json(config))
    saved["flow"] |= {"time_mean": 0.4, "power": 1.0}
    assert changes(config, saved, tmp_path, allowed=False) == {}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert effective_config(tmp_path) == config
    saved["model"]["time_every_layer"] = True
    with pytest.raises(ConfigError, match=r"model.time_every_layer: True -> None"):
        changes(config, saved, tmp_path, allowed=False)


@pytest.mark.slow
def test_metrics_stay_strict_json_without_repeated_steps(tmp_path):
    """A run killed after its checkpoint at step 10 logged steps 15 and 20; resumed, it logs
    them again: metrics.jsonl keeps one row per step, all strict JSON. Killed before its first
    checkpoint, it starts again from step 0 and keeps none of the old rows."""
    workdir = tmp_path / "run"
    run_train(workdir, "--config.steps=20", "--config.checkpoint.every=10")
    shutil.rmtree(workdir / "checkpoints" / "20")  # as if killed before the last save
    run_train(workdir, "--config.steps=20")
    rows = (workdir / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(r)["step"] for r in rows]
    assert steps == [5, 10, 15, 20]
    shutil.rmtree(workdir / "checkpoints")  # as if killed before the first save
    run_train(workdir, "--config.steps=20")
    assert [json.loads(r)["step"] for r in (workdir / "metrics.jsonl").open()] == steps
    for row in rows:
        json.loads(row, parse_constant=_not_strict)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(workdir / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [5, 10, 15, 20]


def test_a_diverging_run_writes_null_not_nan(tmp_path):
    workdir = tmp_path / "run"
    out = subprocess.run(
        [*CLI, *TRAIN, "--workdir", str(workdir), "--config.optim.lr=1e10", "--config.steps=30"],
        env=env(1),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1, out.stderr[-2000:]
    message = out.stderr.strip().splitlines()[-1]
    assert message.startswith("flowjax: training stopped: ") and "skipped in a row" in message
    for row in (workdir / "metrics.jsonl").read_text().splitlines():
        json.loads(row, parse_constant=_not_strict)
    assert any(m["grad_norm"] is None or m["loss"] is None for m in metrics(workdir))


def _not_strict(constant):
    pytest.fail(f"non-strict JSON constant {constant} in metrics.jsonl")


def _mount_tmpfs(path, size):
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return mounted.returncode == 0


@pytest.mark.slow
def test_a_full_disk_stops_with_one_line_and_loses_nothing(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "3m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        workdir = disk / "run"
        args = ["--config.steps=60", "--config.checkpoint.every=10", "--config.checkpoint.keep=2"]
        run_train(workdir, *args[1:], "--config.steps=20")
        filler = disk / "filler"
        free = shutil.disk_usage(disk).free
        filler.write_bytes(b"\0" * max(free - 40_000, 0))  # a few KB left: the next saves fail
        out = subprocess.run(
            train_command_for(workdir, *args, "--allow-changes"),
            env=env(1),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 2, out.stderr[-2000:]
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith("flowjax: error: ") and "No space left on device" in last, last
        assert "Traceback" not in out.stderr
        filler.unlink()
        run_train(workdir, *args, "--allow-changes")
        run_train(tmp_path / "straight", *args)
        assert max_difference(restore(workdir)[1], restore(tmp_path / "straight")[1]) == 0.0
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def train_command_for(workdir, *overrides):
    return [*CLI, *TRAIN, "--workdir", str(workdir), *overrides]


@pytest.mark.slow
def test_sigkill_at_random_moments_including_async_saves_resumes_exactly(tmp_path):
    """Saving at every step keeps an async save in flight most of the time; three kills at
    random moments, then the same command finishes with the straight run's numbers."""
    import random
    import signal
    import time

    args = ["--config.steps=80", "--config.checkpoint.every=1", "--config.checkpoint.keep=2"]
    run_train(tmp_path / "straight", *args)
    workdir = tmp_path / "killed"
    rng = random.Random(0)
    for _ in range(3):
        proc = subprocess.Popen(
            train_command_for(workdir, *args), env=env(1), stderr=subprocess.DEVNULL
        )
        time.sleep(4.0 + rng.uniform(0.0, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run_train(workdir, *args)
    step, params = restore(workdir)
    assert step == 80
    assert max_difference(params, restore(tmp_path / "straight")[1]) == 0.0


class FlakyCFM(CFM):
    """CFM whose loss is NaN at steps 3 and 4 (through the trainer's context)."""

    def loss(self, field, params, key, batch, context=None):
        loss, aux = super().loss(field, params, key, batch, context)
        return jnp.where((context.step == 2) | (context.step == 3), jnp.nan, loss), aux


def test_a_transient_skip_is_tolerated_within_the_budget(tmp_path):
    flaky = ["--config.family=tests.train.test_faults:FlakyCFM", "--config.steps=10"]
    config = apply_overrides(load_config(TOY), [*SMALL, *flaky])
    state = train(config, tmp_path / "tolerated")
    assert int(state.step) == 10
    assert sum(m["skipped_steps"] for m in metrics(tmp_path / "tolerated") if "loss" in m) == 2
    strict = apply_overrides(config, ["--config.nonfinite_budget=1"])
    with pytest.raises(
        NonFiniteError, match="2 steps skipped in a row from step 3, where the loss"
    ):
        train(strict, tmp_path / "strict")
