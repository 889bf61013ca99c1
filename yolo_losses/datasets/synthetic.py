"""Built-in synthetic detection data: coloured shapes on cluttered backgrounds.

Every image is a pure function of ``(seed, split, index)``, so the data needs
no download and no disk, and two machines see the same pixels. The task is
meant to be a fair test that a detector learns, not a trivial one:

- five classes (rectangle, ellipse, triangle, cross, ring) drawn in random
  colours, rotations and aspect ratios;
- object sizes log-uniform between 4 % and 60 % of the shorter image side;
- 0 to 10 objects per image, allowed to overlap (an object may hide at most
  about half of another);
- textured backgrounds (smooth colour fields, gradients, pixel noise) and
  distractor clutter that is none of the classes: line segments, open arcs,
  small dots and text strokes;
- images of varying aspect ratio, so letterboxing is exercised.

Boxes are the tight extents of the drawn object (occluded parts included,
like an amodal box), in original-image pixels, ``xyxy``.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

SHAPE_CLASSES: Tuple[str, ...] = ('rectangle', 'ellipse', 'triangle', 'cross',
                                  'ring')
SHAPE_PALETTE: List[Tuple[int, int, int]] = [(220, 20, 60), (0, 130, 200),
                                             (60, 180, 75), (245, 130, 48),
                                             (145, 30, 180)]
SPLIT_CODES = {'train': 0, 'val': 1, 'test': 2}

# how much of an already placed object a new one may cover
_MAX_COVER = 0.5
_PLACEMENT_TRIES = 20


def split_code(split: str) -> int:
    if split not in SPLIT_CODES:
        raise ValueError(
            f'split must be one of {sorted(SPLIT_CODES)}, got {split!r}')
    return SPLIT_CODES[split]


def _background(rng: np.random.Generator, height: int,
                width: int) -> np.ndarray:
    """Smooth random colour field + linear gradient + pixel noise (uint8)."""
    grid = rng.uniform(20, 235, size=(rng.integers(2, 6), rng.integers(2, 6),
                                      3)).astype(np.float32)
    field = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    direction = rng.uniform(-1, 1, size=2).astype(np.float32) * 40
    xs = np.linspace(0, direction[0], width, dtype=np.float32)
    ys = np.linspace(0, direction[1], height, dtype=np.float32)
    field += (ys[:, None] + xs[None, :])[..., None]
    noise = rng.standard_normal(size=(height, width, 3), dtype=np.float32)
    field += noise * np.float32(rng.uniform(3, 14))
    return np.clip(field, 0, 255).astype(np.uint8)


def _random_colour(rng: np.random.Generator,
                   avoid: np.ndarray) -> Tuple[int, int, int]:
    """A colour at least some distance from ``avoid`` (the local mean)."""
    colour = rng.integers(0, 256, size=3)
    for _ in range(10):
        if np.abs(colour - avoid).sum() > 120:
            break
        colour = rng.integers(0, 256, size=3)
    return tuple(int(c) for c in colour)


def _rotated(points: np.ndarray, angle: float, center: np.ndarray) -> np.ndarray:
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    return (points - center) @ rotation.T + center


def _draw_shape(mask: np.ndarray, label: int, center: np.ndarray, size: float,
                rng: np.random.Generator) -> None:
    """Rasterise one object of class ``label`` into the uint8 ``mask``."""
    cx, cy = center
    aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    half_w = size / 2 * np.sqrt(aspect)
    half_h = size / 2 / np.sqrt(aspect)
    name = SHAPE_CLASSES[label]
    if name == 'rectangle':
        corners = np.array([[-half_w, -half_h], [half_w, -half_h],
                            [half_w, half_h], [-half_w, half_h]]) + center
        corners = _rotated(corners, rng.uniform(-np.pi / 6, np.pi / 6), center)
        cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 255)
    elif name == 'ellipse':
        cv2.ellipse(mask, (int(round(cx)), int(round(cy))),
                    (max(1, int(round(half_w))), max(1, int(round(half_h)))),
                    float(rng.uniform(0, 180)), 0, 360, 255, -1)
    elif name == 'triangle':
        base = np.array([[0.0, -1.0], [0.866, 0.5], [-0.866, 0.5]])
        base = base * np.array([half_w, half_h]) * 1.1 + center
        corners = _rotated(base, rng.uniform(0, 2 * np.pi), center)
        cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 255)
    elif name == 'cross':
        bar = rng.uniform(0.22, 0.38)
        arm = np.array([[-1, -bar], [1, -bar], [1, bar], [-1, bar]])
        angle = rng.uniform(-np.pi / 4, np.pi / 4)
        for part in (arm, arm[:, ::-1]):
            corners = part * np.array([half_w, half_h]) + center
            corners = _rotated(corners, angle, center)
            cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 255)
    elif name == 'ring':
        radius = max(2, int(round(min(half_w, half_h) * 1.2)))
        axes = (radius, max(2, int(round(radius * rng.uniform(0.7, 1.0)))))
        thickness = max(1, int(round(radius * rng.uniform(0.2, 0.4))))
        cv2.ellipse(mask, (int(round(cx)), int(round(cy))), axes,
                    float(rng.uniform(0, 180)), 0, 360, 255, thickness)
    else:  # pragma: no cover - SHAPE_CLASSES and this switch change together
        raise ValueError(f'unknown shape class {label}')


def _mask_box(mask: np.ndarray) -> Optional[np.ndarray]:
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    if len(cols) == 0:
        return None
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1],
                    dtype=np.float32)


def _draw_clutter(img: np.ndarray, rng: np.random.Generator) -> None:
    """Distractors that belong to no class."""
    height, width = img.shape[:2]
    side = min(height, width)
    for _ in range(rng.integers(2, 12)):
        kind = rng.integers(0, 4)
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        point = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if kind == 0:  # line segment
            end = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(img, point, end, colour, int(rng.integers(1, 4)))
        elif kind == 1:  # open arc, clearly not a closed ring
            radius = int(rng.integers(3, max(4, side // 5)))
            start = float(rng.uniform(0, 360))
            cv2.ellipse(img, point, (radius, radius), 0, start,
                        start + float(rng.uniform(40, 200)), colour,
                        int(rng.integers(1, 3)))
        elif kind == 2:  # small dots
            for _ in range(rng.integers(3, 10)):
                dot = (int(rng.integers(0, width)), int(rng.integers(0, height)))
                cv2.circle(img, dot, int(rng.integers(1, 3)), colour, -1)
        else:  # text strokes
            text = ''.join(chr(int(c)) for c in rng.integers(97, 123, size=3))
            cv2.putText(img, text, point, cv2.FONT_HERSHEY_SIMPLEX,
                        float(rng.uniform(0.3, 0.8)), colour, 1)


def _covered_fraction(box: np.ndarray, other: np.ndarray) -> float:
    """Fraction of ``other``'s area inside ``box``."""
    width = min(box[2], other[2]) - max(box[0], other[0])
    height = min(box[3], other[3]) - max(box[1], other[1])
    if width <= 0 or height <= 0:
        return 0.0
    area = (other[2] - other[0]) * (other[3] - other[1])
    return float(width * height / max(area, 1e-6))


def generate_sample(seed: int, split: str, index: int, img_size: int = 256,
                    max_objects: int = 10,
                    size_range: Sequence[float] = (0.04, 0.6)
                    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generate one image and its boxes deterministically.

    Args:
        seed: dataset seed; with ``split`` and ``index`` it fixes the sample.
        split: 'train', 'val' or 'test' (independent streams).
        index: sample index, >= 0.
        img_size: the longer image side in pixels; the shorter one is 75 to
            100 % of it.
        max_objects: objects per image are uniform in [0, max_objects].
        size_range: object size as a fraction of the shorter side (log-uniform).

    Returns:
        ``(img, bboxes, labels)``: uint8 ``[H, W, 3]`` in BGR order (what
        ``cv2.imread`` gives), float32 ``[K, 4]`` xyxy pixel boxes, int64
        ``[K]`` class indices into ``SHAPE_CLASSES``.
    """
    if index < 0:
        raise ValueError(f'index must be >= 0, got {index}')
    if img_size < 32:
        raise ValueError(f'img_size must be >= 32 pixels, got {img_size}')
    low, high = size_range
    if not 0 < low <= high <= 1:
        raise ValueError(
            f'size_range must satisfy 0 < low <= high <= 1, got {size_range}')
    rng = np.random.default_rng([int(seed), split_code(split), int(index)])
    long_side = img_size
    short_side = int(round(img_size * rng.uniform(0.75, 1.0)))
    height, width = ((long_side, short_side) if rng.random() < 0.5 else
                     (short_side, long_side))
    img = _background(rng, height, width)
    _draw_clutter(img, rng)

    side = min(height, width)
    boxes: List[np.ndarray] = []
    labels: List[int] = []
    for _ in range(int(rng.integers(0, max_objects + 1))):
        label = int(rng.integers(0, len(SHAPE_CLASSES)))
        size = side * float(np.exp(rng.uniform(np.log(low), np.log(high))))
        for _ in range(_PLACEMENT_TRIES):
            margin = size * 0.3
            center = np.array([rng.uniform(margin, width - margin),
                               rng.uniform(margin, height - margin)])
            mask = np.zeros((height, width), np.uint8)
            _draw_shape(mask, label, center, size, rng)
            box = _mask_box(mask)
            if box is None or box[2] - box[0] < 2 or box[3] - box[1] < 2:
                continue
            if all(_covered_fraction(box, other) <= _MAX_COVER
                   and _covered_fraction(other, box) <= _MAX_COVER
                   for other in boxes):
                break
        else:
            continue
        x1, y1, x2, y2 = (int(v) for v in box)
        local = img[y1:y2, x1:x2]
        colour = _random_colour(rng, local.reshape(-1, 3).mean(0))
        shade = rng.normal(0, 6, size=local.shape).astype(np.float32)
        painted = np.clip(np.array(colour, np.float32) + shade,
                          0, 255).astype(np.uint8)
        inside = mask[y1:y2, x1:x2] > 0
        local[inside] = painted[inside]
        boxes.append(box)
        labels.append(label)
    bboxes = (np.stack(boxes).astype(np.float32) if boxes else
              np.zeros((0, 4), np.float32))
    return img, bboxes, np.array(labels, dtype=np.int64)
