"""Training objectives: the conditional FM regression loss, and the discrete FM losses of
mixture and metric paths (cross-entropy, generalized KL) with their ELBO, the Riemannian FM
loss in the metric, and the MeanFlow family's objectives of average-velocity (one-step)
models."""

from flowjax.losses.cfm import LOSS_TARGETS, cfm_loss
from flowjax.losses.discrete import (
    DISCRETE_LOSSES,
    bits_per_token,
    dfm_elbo,
    dfm_loss,
    generalized_kl,
    path_cross_entropy,
    path_generalized_kl,
    rate_generalized_kl,
    token_cross_entropy,
)
from flowjax.losses.flow_maps import (
    alpha_flow_loss,
    consistency_fm_loss,
    shortcut_loss,
    soflow_loss,
    split_meanflow_loss,
    terminal_velocity_loss,
)
from flowjax.losses.meanflow import instantaneous, meanflow_loss
from flowjax.losses.riemannian import premetric_rfm_loss, rfm_loss

__all__ = [
    "DISCRETE_LOSSES",
    "LOSS_TARGETS",
    "alpha_flow_loss",
    "bits_per_token",
    "cfm_loss",
    "consistency_fm_loss",
    "dfm_elbo",
    "dfm_loss",
    "generalized_kl",
    "instantaneous",
    "meanflow_loss",
    "path_cross_entropy",
    "path_generalized_kl",
    "premetric_rfm_loss",
    "rate_generalized_kl",
    "rfm_loss",
    "shortcut_loss",
    "soflow_loss",
    "split_meanflow_loss",
    "terminal_velocity_loss",
    "token_cross_entropy",
]
