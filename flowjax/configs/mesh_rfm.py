"""Riemannian FM on a generated mesh (the bumpy sphere of `flowjax.manifolds.mesh`) with the
RFM code's mesh settings (its `bunny10` experiment): the biharmonic distance of 200
eigenpairs, 300 path times per pair, a 6 x 512 SiLU MLP on the ambient coordinates, batch
128, Adam lr 1e-4 with gradient clipping at 10, 100k iterations; the held-out NLL by the
exact divergence in 100 RK4 steps (the RFM code takes 1,000 Euler steps). `data.path` is a
`.npy` of points on the mesh (`experiments/rfm_mesh` writes one from a known density).

flowjax train flowjax/configs/mesh_rfm.py --workdir work/mesh \
    --config.data.path=work/rfm_mesh/cpu/target.npy
"""

from flowjax.families import RFMConfig
from flowjax.train.config import (
    CheckpointConfig,
    DataConfig,
    LogConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)


def get_config() -> TrainConfig:
    return TrainConfig(
        steps=100_000,
        family="rfm",
        data=DataConfig(kind="bumpy_sphere", batch_size=128),
        model=ModelConfig("mlp", width=512, depth=6, activation="silu"),
        flow=RFMConfig(premetric_times=300, nll_method="rk4", nll_steps=100),
        optim=OptimConfig(lr=1e-4, grad_clip=10.0, ema_decay=0.999),
        checkpoint=CheckpointConfig(every=2000, keep=2, best_metric="eval/nll", best_mode="min"),
        log=LogConfig(
            every=500, sample_every=10_000, eval_every=2000, num_samples=4096, eval_method="rk4"
        ),
    )
