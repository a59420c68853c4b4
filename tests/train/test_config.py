import dataclasses
import json

import pytest

from flowjax.train import config as cfglib


def test_overrides_parse_by_field_type():
    cfg = cfglib.apply_overrides(
        cfglib.TrainConfig(),
        [
            "--config.optim.lr=1e-4",
            "--config.steps=200",
            "--config.data.flip=true",
            "--config.optim.grad_clip=1.0",
            "--config.model.num_classes=10",
            "--config.data.path=/tmp",
            "config.optim.grad_clip=none",
        ],
    )
    assert cfg.optim.lr == 1e-4 and cfg.steps == 200 and cfg.data.flip is True
    assert cfg.model.num_classes == 10 and cfg.data.path == "/tmp" and cfg.optim.grad_clip is None
    assert isinstance(cfg.steps, int)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--config.optim.lrr=1", r"unknown config key 'optim.lrr'; OptimConfig has \["),
        ("--config.steps=ten", "--config.steps: cannot read 'ten' as int"),
        ("--config.data.flip=maybe", "cannot read 'maybe' as bool"),
        ("--config.optim=1", "'optim' is a section"),
        ("--optim.lr=1", "overrides look like --config.optim.lr=1e-4"),
        ("--config.steps.x=1", "'steps' has no fields"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(cfglib.ConfigError, match=message):
        cfglib.apply_overrides(cfglib.TrainConfig(), [override])


def _with(**sections):
    cfg = cfglib.TrainConfig()
    for dotted, value in sections.items():
        section, field = dotted.split("__")
        current = getattr(cfg, section)
        new = (
            current.replace(**{field: value})
            if isinstance(current, cfglib.ModelConfig)
            else dataclasses.replace(current, **{field: value})
        )
        cfg = dataclasses.replace(cfg, **{section: new})
    return cfg


@pytest.mark.parametrize(
    ("cfg", "devices", "message"),
    [
        (_with(optim__lr=-1.0), 1, "config.optim.lr must be positive, got -1.0"),
        (_with(data__bins=1), 1, "config.data.bins must be at least 2, got 1"),
        (
            _with(data__batch_size=100),
            8,
            "batch_size = 100 must be divisible by devices x accumulate = 8 x 1",
        ),
        (
            _with(data__batch_size=64, optim__accumulate=3),
            1,
            "divisible by devices x accumulate = 1 x 3",
        ),
        (_with(mesh__fsdp=3), 8, "mesh.fsdp = 3 does not divide the 8 devices"),
        (_with(mesh__data=2, mesh__fsdp=2), 8, "data x fsdp = 2 x 2 must equal the 8 devices"),
        (_with(data__kind="mnist"), 1, "config.data.path is required for data.kind = 'mnist'"),
        (
            _with(data__kind="mnist", data__path="/no/such/dir"),
            1,
            "config.data.path does not exist: /no/such/dir",
        ),
        (
            _with(data__distribution="spirals"),
            1,
            "config.data.distribution = 'spirals'; expected one of",
        ),
        (
            _with(flow__scheduler="ot"),
            1,
            r"config.flow.scheduler = 'ot'; expected one of \['condot'",
        ),
        (_with(optim__ema_decay=1.0), 1, r"ema_decay must be in \[0, 1\)"),
        (_with(optim__ema_every=0), 1, "config.optim.ema_every must be positive, got 0"),
        (
            _with(flow__coupling="sinkhorn"),
            1,
            "config.flow.coupling = 'sinkhorn' needs coupling_reg > 0",
        ),
        (_with(flow__coupling="hungarian"), 1, "config.flow.coupling = 'hungarian'; expected"),
        (_with(flow__label_dropout=1.0), 1, r"config.flow.label_dropout must be in \[0, 1\)"),
        (_with(model__width=2.5), 1, "config.model.width must be <class 'int'>, got 2.5"),
        (_with(model__widht=3), 1, r"MLP takes no argument 'widht'; it takes \["),
        (_with(model__kind="resnet"), 1, r"config.model.kind = 'resnet'; expected one of \["),
        (_with(model__preset="huge"), 1, "config.model.preset = 'huge'; expected one of"),
        (
            dataclasses.replace(cfglib.TrainConfig(), family="ctmc"),
            1,
            "config.family: unknown family 'ctmc'; expected one of",
        ),
        (_with(log__eval_method="rk45"), 1, "config.log.eval_method = 'rk45'; expected one of"),
        (
            _with(checkpoint__best_metric="eval/nll"),
            1,
            "best_metric needs config.log.eval_every > 0",
        ),
    ],
)
def test_validation_messages(cfg, devices, message):
    with pytest.raises(cfglib.ConfigError, match=message):
        cfglib.validate(cfg, devices)


def test_model_config_is_a_frozen_value():
    import copy
    import pickle

    model = cfglib.ModelConfig("unet", preset="mnist", dropout=0.1, channel_mult=(1, 2))
    assert model == cfglib.ModelConfig("unet", channel_mult=(1, 2), dropout=0.1, preset="mnist")
    assert hash(model) == hash(
        cfglib.ModelConfig("unet", dropout=0.1, channel_mult=(1, 2), preset="mnist")
    )
    assert copy.deepcopy(model) == model == pickle.loads(pickle.dumps(model))
    assert model.model_channels == 32 and model.dropout == 0.1  # from the preset, then args
    with pytest.raises(AttributeError, match="does not set 'width'"):
        _ = model.width
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.kind = "mlp"
    assert dataclasses.asdict(cfglib.TrainConfig())["model"]["kind"] == "mlp"


def test_defaults_validate_and_json_round_trips():
    cfg = cfglib.load_config(cfglib.__file__.replace("train/config.py", "configs/toy2d.py"))
    cfglib.validate(cfg, 8)
    import json

    assert cfglib.from_dict(cfglib.TrainConfig, json.loads(cfglib.to_json(cfg))) == cfg


def test_load_config_errors(tmp_path):
    with pytest.raises(cfglib.ConfigError, match="config file not found"):
        cfglib.load_config(tmp_path / "missing.py")
    (tmp_path / "bad.py").write_text("x = 1\n")
    with pytest.raises(cfglib.ConfigError, match="must define get_config"):
        cfglib.load_config(tmp_path / "bad.py")


def test_model_sections_and_tuple_overrides_round_trip():
    cfg = cfglib.apply_overrides(
        cfglib.TrainConfig(),
        [
            "--config.model.width=64",  # an MLP argument, dropped with the new kind
            "--config.model.kind=unet",
            "--config.model.channel_mult=1,2,2",
            "--config.model.attention_resolutions=16,8",
            "--config.model.num_head_channels=none",
        ],
    )
    assert cfg.model.kind == "unet" and cfg.model.channel_mult == (1, 2, 2)
    assert "width" not in dict(cfg.model.args)
    assert cfg.model.attention_resolutions == (16, 8) and cfg.model.num_head_channels is None
    cfglib.validate(cfg, 1)
    assert cfglib.from_dict(cfglib.TrainConfig, json.loads(cfglib.to_json(cfg))) == cfg
    with pytest.raises(cfglib.ConfigError, match="channel_mult: cannot read '1,x'"):
        cfglib.apply_overrides(cfg, ["--config.model.channel_mult=1,x"])
    with pytest.raises(cfglib.ConfigError, match=r"UNet takes \[.*'num_res_blocks'"):
        cfglib.apply_overrides(cfg, ["--config.model.res_blocks=3"])
    dit = cfglib.apply_overrides(cfg, ["--config.model.kind=dit", "--config.model.size=B"])
    assert dit.model == cfglib.ModelConfig("dit", size="B")  # a new kind starts afresh
    from flowjax.contracts import NetworkSpec
    from flowjax.train import build

    bad = cfglib.apply_overrides(dit, ["--config.model.size=M"])
    with pytest.raises(cfglib.ConfigError, match=r"config.model \(dit\): unknown DiT size 'M'"):
        build.network(bad, NetworkSpec((8, 8, 3), (8, 8, 3)), abstract=True)


def test_choices_come_from_the_registries(monkeypatch):
    """A scheduler or sampler method added to its registry is accepted at once."""
    from flowjax import paths, solvers

    cfg = cfglib.apply_overrides(cfglib.TrainConfig(), ["--config.flow.scheduler=mine"])
    with pytest.raises(cfglib.ConfigError, match=r"config\.flow\.scheduler = 'mine'"):
        cfglib.validate(cfg, 1)
    monkeypatch.setitem(paths.SCHEDULERS, "mine", paths.Cosine)
    cfglib.validate(cfg, 1)
    assert set(solvers.METHODS) <= set(cfglib.family_class("cfm").sampler_methods)


def test_family_section_follows_the_family():
    cfg = cfglib.TrainConfig()
    same = cfglib.apply_overrides(cfg, ["--config.flow.sigma_min=0.1", "--config.family=cfm"])
    assert same.flow.sigma_min == 0.1  # the same family keeps its section
    path = "tests.train.test_family_contract:X1Family"
    overrides = [f"--config.family={path}", "--config.flow.power=2", "--config.log.eval_method=rk4"]
    other = cfglib.apply_overrides(cfg, overrides)
    assert type(other.flow).__name__ == "X1Config" and other.flow.power == 2.0
    cfglib.validate(other, 1)
    assert cfglib.from_dict(cfglib.TrainConfig, json.loads(cfglib.to_json(other))) == other
    with pytest.raises(cfglib.ConfigError, match=r"unknown config key 'flow.scheduler'"):
        cfglib.apply_overrides(other, ["--config.flow.scheduler=vp"])
    with pytest.raises(cfglib.ConfigError, match="must be a X1Config for family"):
        cfglib.validate(dataclasses.replace(other, flow=cfg.flow), 1)
