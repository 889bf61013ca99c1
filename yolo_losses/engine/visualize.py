"""A PNG grid of predictions on network inputs."""
from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np
import torch

from ..datasets.synthetic import SHAPE_PALETTE


def save_prediction_grid(model, dataloader: Iterable, out_file: str,
                         num_images: int = 16, score_thr: float = 0.3,
                         columns: int = 4) -> str:
    """Draw predictions (score >= ``score_thr``, with class and score) in
    colour and ground truth in white on the first ``num_images`` inputs of
    ``dataloader``, tiled ``columns`` wide, saved as ``out_file``."""
    if num_images < 1:
        raise ValueError(f'num_images must be >= 1, got {num_images}')
    module = getattr(model, 'module', model)
    classes = ()
    dataset = getattr(dataloader, 'dataset', None)
    if dataset is not None:
        classes = dataset.metainfo.get('classes', ())
    tiles = []
    module.eval()
    with torch.no_grad():
        for batch in dataloader:
            predictions = module.val_step(batch)
            images = batch['inputs'].permute(0, 2, 3, 1).cpu().numpy()
            for image, pred, meta in zip(images, predictions,
                                         batch['data_samples']['metas']):
                canvas = np.ascontiguousarray(image[..., ::-1])  # RGB -> BGR
                scale, (left, top) = meta['scale'], meta['pad']
                shift = np.array([left, top, left, top], np.float32)
                for box in np.asarray(meta['gt_bboxes']).reshape(-1, 4):
                    x1, y1, x2, y2 = (box * scale + shift).round().astype(int)
                    cv2.rectangle(canvas, (x1, y1), (x2, y2), (255, 255, 255), 1)
                boxes = pred['bboxes'].detach().cpu().numpy().reshape(-1, 4)
                scores = pred['scores'].detach().cpu().numpy()
                labels = pred['labels'].detach().cpu().numpy()
                for box, score, label in zip(boxes, scores, labels):
                    if score < score_thr:
                        continue
                    x1, y1, x2, y2 = (box * scale + shift).round().astype(int)
                    red, green, blue = SHAPE_PALETTE[int(label) % len(SHAPE_PALETTE)]
                    colour = (blue, green, red)
                    cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
                    name = (classes[label] if label < len(classes)
                            else str(int(label)))
                    cv2.putText(canvas, f'{name} {score:.2f}', (x1, max(8, y1 - 2)),
                                cv2.FONT_HERSHEY_SIMPLEX, 0.3, colour, 1)
                tiles.append(canvas)
                if len(tiles) >= num_images:
                    break
            if len(tiles) >= num_images:
                break
    if not tiles:
        raise ValueError('save_prediction_grid: the dataloader gave no images')
    height = max(t.shape[0] for t in tiles)
    width = max(t.shape[1] for t in tiles)
    columns = min(columns, len(tiles))
    rows = -(-len(tiles) // columns)
    grid = np.zeros((rows * height, columns * width, 3), np.uint8)
    for index, tile in enumerate(tiles):
        row, col = divmod(index, columns)
        grid[row * height:row * height + tile.shape[0],
             col * width:col * width + tile.shape[1]] = tile
    if not cv2.imwrite(out_file, grid):
        raise OSError(f'could not write {out_file!r}')
    return out_file
