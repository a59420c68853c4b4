"""What every token family checks of its run's data."""

from flowjax.contracts import DataSpec


def check_token_data(data: DataSpec, label_dropout: float, family: str, min_vocab: int = 1) -> None:
    """Raise ValueError unless `data` is integer tokens with a vocab_size of at least
    `min_vocab`, and (with `label_dropout`) carries class labels."""
    if data.is_float or data.vocab_size is None or data.vocab_size < min_vocab:
        raise ValueError(
            f"{family} needs integer tokens with a vocab_size >= {min_vocab}, got {data.dtype} "
            f"data (vocab_size {data.vocab_size})"
        )
    if data.num_classes is None and label_dropout:
        raise ValueError("label_dropout needs class labels in the data (model.num_classes)")
