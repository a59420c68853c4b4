"""EDM's non-leaking augmentation (Karras et al. 2022, "Elucidating the Design Space of
Diffusion-Based Generative Models"; the geometric transformations of StyleGAN2-ADA's pipeline,
Karras et al. 2020), one image at a time on the host.

Each transformation is applied with probability `p` times its multiplier, and what was applied
goes to the network as *augmentation labels* (zero where nothing was): the network learns the
augmented images conditioned on their labels and, sampled without labels (the same as zero
labels: `flowjax.models.SongUNet`'s projection has no bias), draws un-augmented images.

Images are `[H, W, C]` float32. Coordinates are in pixels, centred on the image, x along the
width (columns) and y along the height (rows, downward). A 3x3 homogeneous matrix `g_inv` maps
each output coordinate to the input coordinate it reads. The labels, in this order, of each
enabled transformation (multiplier > 0), as EDM orders and scales them:

  xflip           1  1 where the image was mirrored left to right, else 0
  yflip           1  1 where mirrored top to bottom
  rotate_int      2  ((k == 1) | (k == 2), (k == 2) | (k == 3)) after k quarter turns
                     counterclockwise as displayed (`np.rot90(image, k)`; square images)
  translate_int   2  (tx / (W m), ty / (H m)) after an integer shift by tx pixels right and ty
                     up (m = translate_int_max; EDM's signs), reflected at the edges
  scale           1  w: magnified by 2^(w scale_std) about the centre
  rotate_frac     2  (cos w - 1, sin w): rotated by w counterclockwise as displayed,
                     w ~ U[-pi, pi] rotate_frac_max
  aniso           2  (w cos r, w sin r): magnified by 2^(w aniso_std) along the axis at angle r
                     (counterclockwise as displayed; r ~ U[-pi, pi], or 0, the x axis, with
                     probability 1 - aniso_rotate_prob) and shrunk as much across it;
                     (w, r) and (-w, r + pi) share labels, as in EDM
  translate_frac  2  (wx, wy): shifted by (wx W, wy H) translate_frac_std pixels right and down

Draws: flips and quarter turns uniform, integer shifts U[-1, 1], scale, aniso and translate_frac
w ~ N(0, 1). The geometric transformations (scale, rotate_frac, aniso, translate_frac) compose
into one `g_inv` and are resampled as EDM resamples (`resample`).
Like EDM's, the resampled images are not clipped: where the filter rings at sharp edges they
leave [-1, 1] a little (CIFAR-10 test images at p = 1: at most 1.15, 0.8% of the pixels; pixel
noise, the worst case: about 1.5). One core here takes 0.4 ms per CIFAR-10 image at p = 0.12
(about 1.5 ms at p = 1): a batch of 1,024 needs a few `data.workers` to keep up with a GPU
step.

What differs from EDM's `AugmentPipe` (its `training/augment.py`), all in numbers, not in the
distribution of images and labels:
- the draws come from the record's own generator (the pipeline seeds it from the run's seed and
  the record), not from torch's batch draws;
- the reflection padding is the margin this image's transformation needs; EDM pads every image
  of a batch by the largest margin of the batch, so a pixel that a zooming-out transformation
  reads just beyond its own margin is reflected there when another image needed more padding,
  and zero here;
- an image with no geometric transformation applied is not resampled; EDM resamples all of
  them once a geometric transformation is enabled, which reproduces them to float32 rounding
  (the upsampling and downsampling filters are one orthonormal wavelet's);
- EDM's colour transformations (brightness, contrast, luma flip, hue, saturation) are not
  here: its CIFAR-10 setting uses none. The geometry runs in float64, EDM's in float32.
"""

import dataclasses
import functools

import numpy as np

from flowjax._utils import check_choice

# The symlet-6 wavelet's low-pass filter (Daubechies 1992), in the order EDM applies it
SYM6 = np.array(
    [
        0.015404109327027373,
        0.0034907120842174702,
        -0.11799011114819057,
        -0.048311742585633,
        0.4910559419267466,
        0.787641141030194,
        0.3379294217276218,
        -0.07263752278646252,
        -0.021060292512300564,
        0.04472490177066578,
        0.0017677118642428036,
        -0.007800708325034148,
    ]
)
DELAY = (len(SYM6) - 1) // 2  # 5, its largest tap: upsampled sample 2j lies on pixel j
REACH = len(SYM6) // 4  # 3 pixels: half the filter's length at twice the resolution

# Labels per transformation, in the order the pipeline applies them
LABELS = {
    "xflip": 1,
    "yflip": 1,
    "rotate_int": 2,
    "translate_int": 2,
    "scale": 1,
    "rotate_frac": 2,
    "aniso": 2,
    "translate_frac": 2,
}


def _translate(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def _scale(sx: float, sy: float) -> np.ndarray:
    return np.diag([sx, sy, 1.0])


def _rotate(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _reflect(index: np.ndarray, size: int) -> np.ndarray:
    """Integer indices folded into `[0, size)` by reflection about the edge pixels."""
    period = 2 * size - 2
    return size - 1 - np.abs(size - 1 - np.mod(index, period))


@functools.cache
def _upsampler(n: int) -> np.ndarray:
    """`[2n, n]`: 2x upsampling by `SYM6` (zeros between the samples, then the filter), sample
    2j on pixel j; its transpose is the matching 2x downsampling."""
    tap = np.arange(2 * n)[:, None] - 2 * np.arange(n)[None, :] + DELAY
    inside = (tap >= 0) & (tap < len(SYM6))
    return np.where(inside, SYM6[np.clip(tap, 0, len(SYM6) - 1)], 0.0)


def _separable(rows: np.ndarray, image: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """`rows [h, H] @ image [H, W, C] @ columns [w, W]^T` per channel: `[h, w, C]`."""
    return np.einsum("iy,yxc,jx->ijc", rows, image, columns, optimize=True)


def _bilinear(image: np.ndarray, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
    """`image [H, W, C]` at fractional indices `iy, ix [...]` -> `[..., C]`, bilinearly, each
    neighbour outside the image read as 0."""
    height, width = image.shape[:2]
    framed = np.pad(image, ((1, 1), (1, 1), (0, 0)))  # indices -1 and H (or W) read 0

    def at(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        return framed[np.clip(y, -1, height).astype(int) + 1, np.clip(x, -1, width).astype(int) + 1]

    y0, x0 = np.floor(iy), np.floor(ix)
    fy, fx = (iy - y0)[..., None], (ix - x0)[..., None]
    top = (1.0 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)
    bottom = (1.0 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1)
    return (1.0 - fy) * top + fy * bottom


def resample(image: np.ndarray, g_inv: np.ndarray) -> np.ndarray:
    """`image [H, W, C]` transformed by `g_inv` (3x3: output coordinate -> the input coordinate
    it reads), as EDM resamples: reflection padding by the margin the transformed corners need
    plus `2 * REACH` (at most H - 1, W - 1), 2x upsampling by `SYM6`, bilinear sampling (zero
    outside the padding) on a 2x grid of the output widened by `REACH` on each side, 2x
    downsampling by `SYM6` and the crop. Returns float32 `[H, W, C]`."""
    height, width = image.shape[:2]
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    corners = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]) * centre
    reached = corners @ g_inv[:2, :2].T + g_inv[:2, 2]  # [4 corners, xy]
    needed = np.concatenate([-reached.min(axis=0), reached.max(axis=0)])  # x0, y0, x1, y1
    needed = needed + np.tile(2 * REACH - centre, 2)
    margin = np.ceil(np.clip(needed, 0, np.tile([width - 1, height - 1], 2))).astype(int)
    left, top, right, bottom = margin
    padded = np.pad(image, ((top, bottom), (left, right), (0, 0)), mode="reflect")
    upsampled = _separable(_upsampler(padded.shape[0]), padded, _upsampler(padded.shape[1]))

    # the output's 2x grid: sample g at output pixel g / 2 - REACH, centred
    x = np.arange(2 * (width + 2 * REACH)) / 2 - REACH - centre[0]
    y = np.arange(2 * (height + 2 * REACH)) / 2 - REACH - centre[1]
    x, y = np.meshgrid(x, y)  # [2 (H + 2 REACH), 2 (W + 2 REACH)]
    source_x = g_inv[0, 0] * x + g_inv[0, 1] * y + g_inv[0, 2]
    source_y = g_inv[1, 0] * x + g_inv[1, 1] * y + g_inv[1, 2]
    sampled = _bilinear(
        upsampled, 2 * (source_y + centre[1] + top), 2 * (source_x + centre[0] + left)
    )
    rows = _upsampler(height + 2 * REACH).T[REACH : REACH + height]
    columns = _upsampler(width + 2 * REACH).T[REACH : REACH + width]
    return _separable(rows, sampled, columns).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class AugmentPipe:
    """EDM's augmentation pipeline (geometric part), called as `pipe(image, rng) -> (image,
    labels)` on one float32 image `[H, W, C]` with a `numpy.random.Generator`; labels float32
    `[num_labels]` (module docstring). `p`: the overall probability; each multiplier > 0
    enables its transformation, applied with probability `min(1, multiplier * p)`; the rest
    are EDM's ranges."""

    p: float
    xflip: float = 0.0
    yflip: float = 0.0
    rotate_int: float = 0.0
    translate_int: float = 0.0
    scale: float = 0.0
    rotate_frac: float = 0.0
    aniso: float = 0.0
    translate_frac: float = 0.0
    translate_int_max: float = 0.125
    scale_std: float = 0.2
    rotate_frac_max: float = 1.0
    aniso_std: float = 0.2
    aniso_rotate_prob: float = 0.5
    translate_frac_std: float = 0.125

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"augmentation probability p must be in [0, 1], got {self.p}")
        negative = [name for name in LABELS if getattr(self, name) < 0]
        if negative:
            raise ValueError(f"augmentation multipliers must be >= 0, got {negative} < 0")

    @property
    def num_labels(self) -> int:
        """The length of the labels: the network's `augment_dim`."""
        return sum(count for name, count in LABELS.items() if getattr(self, name) > 0)

    def __call__(
        self, image: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        height, width = image.shape[:2]
        labels: list[float] = []

        def chosen(multiplier: float) -> bool:
            return bool(rng.random() < multiplier * self.p)

        if self.xflip > 0:
            flip = int(rng.integers(2)) * chosen(self.xflip)
            image = image[:, ::-1] if flip else image
            labels.append(flip)
        if self.yflip > 0:
            flip = int(rng.integers(2)) * chosen(self.yflip)
            image = image[::-1] if flip else image
            labels.append(flip)
        if self.rotate_int > 0:
            if height != width:
                raise ValueError(f"rotate_int needs square images, got {height}x{width}")
            k = int(rng.integers(4)) * chosen(self.rotate_int)
            image = np.rot90(image, k)
            labels += [k in (1, 2), k in (2, 3)]
        if self.translate_int > 0:
            w = rng.uniform(-1.0, 1.0, 2) * chosen(self.translate_int)
            reach = np.array([width, height]) * self.translate_int_max
            tx, ty = (int(shift) for shift in np.round(w * reach))
            rows = _reflect(np.arange(height) + ty, height)
            columns = _reflect(np.arange(width) - tx, width)
            image = image[rows][:, columns]
            labels += [tx / reach[0], ty / reach[1]]

        g_inv, geometric = np.eye(3), False
        if self.scale > 0:
            w = rng.standard_normal() * chosen(self.scale)
            s = 2.0 ** (w * self.scale_std)
            g_inv, geometric = g_inv @ _scale(1 / s, 1 / s), geometric or w != 0
            labels.append(w)
        if self.rotate_frac > 0:
            w = rng.uniform(-1.0, 1.0) * np.pi * self.rotate_frac_max * chosen(self.rotate_frac)
            g_inv, geometric = g_inv @ _rotate(w), geometric or w != 0
            labels += [np.cos(w) - 1.0, np.sin(w)]
        if self.aniso > 0:
            w = rng.standard_normal() * chosen(self.aniso)
            r = rng.uniform(-np.pi, np.pi) * (rng.random() < self.aniso_rotate_prob)
            s = 2.0 ** (w * self.aniso_std)
            g_inv = g_inv @ _rotate(-r) @ _scale(1 / s, s) @ _rotate(r)
            geometric = geometric or w != 0
            labels += [w * np.cos(r), w * np.sin(r)]
        if self.translate_frac > 0:
            w = rng.standard_normal(2) * chosen(self.translate_frac)
            shift = w * np.array([width, height]) * self.translate_frac_std
            g_inv, geometric = g_inv @ _translate(-shift[0], -shift[1]), geometric or w.any()
            labels += [w[0], w[1]]

        if geometric:
            image = resample(image, g_inv)
        return image, np.asarray(labels, np.float32)


# Named pipelines for `data.augment` (each called with `data.augment_p`)
AUGMENTS = {
    # EDM's CIFAR-10 setting (its train.py, `--augment 0.12`): 9 labels
    "edm": dict(xflip=1e8, yflip=1, scale=1, rotate_frac=1, aniso=1, translate_frac=1),
    # py-meanflow's and SoFlow's CIFAR-10 pipeline: EDM's without the y-flip and the rotation
    # (images stay upright): 6 labels
    "edm_upright": dict(xflip=1e8, scale=1, aniso=1, translate_frac=1),
}


def augment_pipe(name: str, p: float) -> AugmentPipe:
    """The pipeline `AUGMENTS[name]` at overall probability `p`."""
    check_choice(name, AUGMENTS, "augmentation")
    return AugmentPipe(p=p, **AUGMENTS[name])
