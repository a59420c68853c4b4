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
        cfg = dataclasses.replace(
            cfg, **{section: dataclasses.replace(getattr(cfg, section), **{field: value})}
        )
    return cfg


@pytest.mark.parametrize(
    ("cfg", "devices", "message"),
    [
        (_with(optim__lr=-1.0), 1, "config.optim.lr must be positive, got -1.0"),
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
        (
            _with(flow__coupling="sinkhorn"),
            1,
            "coupling = 'sinkhorn' needs config.flow.coupling_reg > 0",
        ),
        (_with(flow__coupling="hungarian"), 1, "config.flow.coupling = 'hungarian'; expected"),
        (_with(flow__coupling_within="y"), 1, "coupling_within needs labelled data"),
        (_with(flow__label_dropout=0.1), 1, "label_dropout needs a class-conditional"),
        (_with(flow__label_dropout=1.0), 1, r"label_dropout must be in \[0, 1\)"),
        (_with(model__width=2.5), 1, "config.model.width must be <class 'int'>, got 2.5"),
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
            "--config.model.kind=unet",
            "--config.model.unet.channel_mult=1,2,2",
            "--config.model.unet.attention_resolutions=16,8",
            "--config.model.unet.head_channels=none",
            "--config.model.dit.size=B",
        ],
    )
    assert cfg.model.unet.channel_mult == (1, 2, 2) and cfg.model.unet.head_channels is None
    assert cfg.model.unet.attention_resolutions == (16, 8) and cfg.model.dit.size == "B"
    cfglib.validate(cfg, 1)
    assert cfglib.from_dict(cfglib.TrainConfig, json.loads(cfglib.to_json(cfg))) == cfg
    with pytest.raises(cfglib.ConfigError, match="channel_mult: cannot read '1,x'"):
        cfglib.apply_overrides(cfg, ["--config.model.unet.channel_mult=1,x"])
    with pytest.raises(cfglib.ConfigError, match=r"model\.dit\.size = 'M'"):
        cfglib.validate(cfglib.apply_overrides(cfg, ["--config.model.dit.size=M"]), 1)
