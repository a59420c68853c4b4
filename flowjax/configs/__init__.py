"""Ready-made training configs: `flowjax train flowjax/configs/NAME.py --workdir DIR`."""
