"""YOLOv5Assigner: yolov5 7.0 ``build_targets`` with fixed-size slots."""
import numpy as np
import pytest
import torch

from yolo_losses.assigners.yolov5_assigner import YOLOv5Assigner
from yolo_losses.ops.targets import pad_targets
from yolo_losses.registry import TASK_UTILS

CENTRE, LEFT, UP, RIGHT, DOWN = range(5)


def assign_rows(targets, batch, grids, anchors_px, strides, assigner=None):
    """Every positive as (level, image, anchor, cell_y, cell_x, tx, ty, tw, th),
    sorted, like the flat lists of yolov5's build_targets."""
    assigner = assigner or YOLOv5Assigner()
    targets = torch.as_tensor(targets, dtype=torch.float32).view(-1, 6)
    padded = pad_targets(targets, batch, max(1, targets.shape[0]))
    rows = []
    for level, (grid, anchors, stride) in enumerate(zip(grids, anchors_px, strides)):
        anchors = torch.tensor(anchors, dtype=torch.float32) / stride
        out = assigner.assign(padded.boxes, padded.mask, anchors, grid)
        for b, m, a, k in out.valid.nonzero().tolist():
            rows.append((level, b, a, int(out.cell_y[b, m, a, k]), int(out.cell_x[b, m, a, k]),
                         *out.target_boxes[b, m, a, k].tolist()))
    return sorted(rows)


def single_box(cx, cy, w, h, grid=(8, 8), anchors=((2.0, 2.0),)):
    """Assignment of one box (normalised) on one level; anchors in grid units."""
    boxes = torch.tensor([[[cx, cy, w, h]]])
    out = YOLOv5Assigner().assign(boxes, torch.ones(1, 1, dtype=torch.bool),
                                  torch.tensor(anchors), grid)
    return out


def test_registered_and_built_from_config():
    assigner = TASK_UTILS.build(dict(type='YOLOv5Assigner', prior_match_thr=3.0))
    assert isinstance(assigner, YOLOv5Assigner) and assigner.prior_match_thr == 3.0


def test_hand_case_ratio_match_and_nearest_neighbours():
    # 8 x 8 grid, box centre (2.4, 5.6) cells, size 2 x 2 cells.
    # anchors (grid units): (2, 2) ratio 1 -> match; (8, 8) ratio 1/4 -> 4 is
    # not < 4 -> no match; (1, 5) ratios (2, 0.4) -> max(2, 2.5) < 4 -> match.
    out = single_box(0.3, 0.7, 0.25, 0.25, anchors=((2.0, 2.0), (8.0, 8.0), (1.0, 5.0)))
    # x fraction 0.4 < 0.5 and x > 1 -> left neighbour; y fraction 0.6 ->
    # distance from the bottom 2.4 has fraction 0.4 -> lower neighbour.
    expected_cells = {CENTRE: (2, 5), LEFT: (1, 5), DOWN: (2, 6)}
    for anchor, matched in enumerate((True, False, True)):
        for k in range(5):
            assert bool(out.valid[0, 0, anchor, k]) == (matched and k in expected_cells)
    for k, (x, y) in expected_cells.items():
        assert (int(out.cell_x[0, 0, 0, k]), int(out.cell_y[0, 0, 0, k])) == (x, y)
        # centre relative to the cell's corner: 2.4 - x, 5.6 - y
        torch.testing.assert_close(out.target_boxes[0, 0, 0, k],
                                   torch.tensor([2.4 - x, 5.6 - y, 2.0, 2.0]))


def test_ratio_threshold_is_strict():
    # ratio exactly 4 on one side is not a match, just below is
    assert not bool(single_box(0.5, 0.55, 1.0, 0.25, anchors=((2.0, 2.0),)).valid.any())
    assert bool(single_box(0.5, 0.55, 0.999, 0.25, anchors=((2.0, 2.0),)).valid.any())
    assert not bool(single_box(0.5, 0.55, 0.0625, 0.25, anchors=((2.0, 2.0),)).valid.any())


def test_centre_exactly_on_a_cell_border_takes_both_neighbours():
    # centre (4.0, 4.0) cells: fraction 0 on both axes -> all five cells,
    # the left/upper neighbours at cell 3 with offset 1.0 (yolov5 behaviour)
    out = single_box(0.5, 0.5, 0.25, 0.25)
    assert out.valid[0, 0, 0].tolist() == [True] * 5
    cells = list(zip(out.cell_x[0, 0, 0].tolist(), out.cell_y[0, 0, 0].tolist()))
    assert cells == [(4, 4), (3, 4), (4, 3), (4, 4), (4, 4)]
    torch.testing.assert_close(out.target_boxes[0, 0, 0, :, :2], torch.tensor(
        [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]))


def test_half_fraction_takes_no_neighbour_and_image_border_limits():
    # fraction exactly 0.5: neither neighbour (strict < 0.5)
    assert single_box(0.5625, 0.5625, 0.25, 0.25).valid[0, 0, 0].tolist() == \
        [True, False, False, False, False]
    # centre x 0.4 cells: fraction < 0.5 but x <= 1 -> no left neighbour;
    # centre y 7.6: distance to the bottom 0.4 <= 1 -> no lower neighbour
    out = single_box(0.05, 0.95, 0.25, 0.25)
    assert out.valid[0, 0, 0].tolist() == [True, False, False, False, False]


def test_centre_on_the_far_border_is_clamped_like_yolov5():
    # cx = 1.0 -> x = 8.0 cells: centre cell 8 is clamped to 7; yolov5 7.0
    # clamps gij in place before computing gxy - gij, so the offset is 1.0
    # (y = 2.4 cells: upper neighbour; x: no right neighbour past the border)
    out = single_box(1.0, 0.3, 0.25, 0.25)
    assert out.valid[0, 0, 0].tolist() == [True, True, True, False, False]
    assert out.cell_x[0, 0, 0].tolist() == [7, 7, 7, 7, 7]
    torch.testing.assert_close(out.target_boxes[0, 0, 0, CENTRE, :2], torch.tensor([1.0, 0.4]))
    torch.testing.assert_close(out.target_boxes[0, 0, 0, LEFT, :2], torch.tensor([1.0, 0.4]))


def test_non_square_grid_scales_x_by_width_and_y_by_height():
    # grid H=6, W=10: centre (0.33*10, 0.5*6) = (3.3, 3.0), size (2.0, 1.2)
    out = single_box(0.33, 0.5, 0.2, 0.2, grid=(6, 10), anchors=((2.0, 1.0),))
    assert out.valid[0, 0, 0].tolist() == [True, True, True, False, True]
    assert int(out.cell_x[0, 0, 0, CENTRE]) == 3 and int(out.cell_y[0, 0, 0, CENTRE]) == 3
    torch.testing.assert_close(out.target_boxes[0, 0, 0, CENTRE],
                               torch.tensor([0.3, 0.0, 2.0, 1.2]))


def test_padding_and_empty_images_give_no_candidates():
    targets = torch.tensor([[1.0, 0.0, 0.55, 0.55, 0.2, 0.2]])
    padded = pad_targets(targets, 3, 4)
    out = YOLOv5Assigner().assign(padded.boxes, padded.mask,
                                  torch.tensor([[1.6, 1.6], [3.0, 3.0]]), (8, 8))
    assert out.valid.shape == (3, 4, 2, 5)
    assert not bool(out.valid[0].any()) and not bool(out.valid[2].any())
    assert not bool(out.valid[1, 1:].any())
    assert int(out.valid[1, 0].sum()) == 2 * 3      # 2 anchors x (centre + 2)


# yolov5 7.0.14 ComputeLoss.build_targets (sort of its flat lists) on the
# seeded targets below, levels of 6x10 and 3x5 cells, strides 8 and 16 and
# the first two levels of the default anchors; computed in a scratch venv.
# Rows: (level, image, anchor, gj, gi, tx, ty, tw, th), values rounded to 5
# digits. Note the repeated rows: yolov5 emits a cell twice when a centre on
# a cell border makes a neighbour coincide with the clamped centre cell.
YOLOV5_ROWS = [
    (0, 0, 0, 5, 3, 1.0, 0.7, 3.48865, 1.56136),
    (0, 0, 0, 5, 4, 0.0, 0.7, 3.48865, 1.56136),
    (0, 0, 0, 5, 4, 0.0, 0.7, 3.48865, 1.56136),
    (0, 0, 1, 5, 3, 1.0, 0.7, 3.48865, 1.56136),
    (0, 0, 1, 5, 4, 0.0, 0.7, 3.48865, 1.56136),
    (0, 0, 1, 5, 4, 0.0, 0.7, 3.48865, 1.56136),
    (0, 0, 2, 5, 3, 1.0, 0.7, 3.48865, 1.56136),
    (0, 0, 2, 5, 4, 0.0, 0.7, 3.48865, 1.56136),
    (0, 0, 2, 5, 4, 0.0, 0.7, 3.48865, 1.56136),
    (0, 1, 0, 0, 4, 1.0, 0.9, 1.59066, 2.37922),
    (0, 1, 0, 0, 5, 0.0, 0.9, 1.59066, 2.37922),
    (0, 1, 0, 0, 5, 0.0, 0.9, 1.59066, 2.37922),
    (0, 1, 0, 0, 5, 0.5, 0.3, 4.22285, 1.08003),
    (0, 1, 0, 0, 6, 1.0, 0.0, 3.93371, 4.12213),
    (0, 1, 0, 0, 7, 0.0, 0.0, 3.93371, 4.12213),
    (0, 1, 0, 0, 7, 0.0, 0.0, 3.93371, 4.12213),
    (0, 1, 0, 0, 7, 0.0, 0.0, 3.93371, 4.12213),
    (0, 1, 0, 1, 5, 0.0, -0.1, 1.59066, 2.37922),
    (0, 1, 0, 3, 4, 1.1139, 0.97706, 3.6842, 3.45228),
    (0, 1, 0, 3, 5, 0.1139, 0.97706, 3.6842, 3.45228),
    (0, 1, 0, 4, 5, 0.1139, -0.02294, 3.6842, 3.45228),
    (0, 1, 0, 5, 0, 1.29774, 0.68997, 2.0721, 0.68291),
    (0, 1, 0, 5, 1, 0.29774, 0.68997, 2.0721, 0.68291),
    (0, 1, 1, 0, 4, 1.0, 0.9, 1.59066, 2.37922),
    (0, 1, 1, 0, 5, 0.0, 0.9, 1.59066, 2.37922),
    (0, 1, 1, 0, 5, 0.0, 0.9, 1.59066, 2.37922),
    (0, 1, 1, 0, 5, 0.5, 0.3, 4.22285, 1.08003),
    (0, 1, 1, 0, 6, 1.0, 0.0, 3.93371, 4.12213),
    (0, 1, 1, 0, 7, 0.0, 0.0, 3.93371, 4.12213),
    (0, 1, 1, 0, 7, 0.0, 0.0, 3.93371, 4.12213),
    (0, 1, 1, 0, 7, 0.0, 0.0, 3.93371, 4.12213),
    (0, 1, 1, 1, 5, 0.0, -0.1, 1.59066, 2.37922),
    (0, 1, 1, 1, 6, 0.21884, 1.21396, 5.55867, 2.85507),
    (0, 1, 1, 2, 5, 1.21884, 0.21396, 5.55867, 2.85507),
    (0, 1, 1, 2, 6, 0.21884, 0.21396, 5.55867, 2.85507),
    (0, 1, 1, 3, 4, 1.1139, 0.97706, 3.6842, 3.45228),
    (0, 1, 1, 3, 5, 0.1139, 0.97706, 3.6842, 3.45228),
    (0, 1, 1, 4, 5, 0.1139, -0.02294, 3.6842, 3.45228),
    (0, 1, 2, 0, 4, 1.0, 0.9, 1.59066, 2.37922),
    (0, 1, 2, 0, 5, 0.0, 0.9, 1.59066, 2.37922),
    (0, 1, 2, 0, 5, 0.0, 0.9, 1.59066, 2.37922),
    (0, 1, 2, 0, 5, 0.5, 0.3, 4.22285, 1.08003),
    (0, 1, 2, 0, 6, 1.0, 0.0, 3.93371, 4.12213),
    (0, 1, 2, 0, 7, 0.0, 0.0, 3.93371, 4.12213),
    (0, 1, 2, 0, 7, 0.0, 0.0, 3.93371, 4.12213),
    (0, 1, 2, 0, 7, 0.0, 0.0, 3.93371, 4.12213),
    (0, 1, 2, 1, 5, 0.0, -0.1, 1.59066, 2.37922),
    (0, 1, 2, 1, 6, 0.21884, 1.21396, 5.55867, 2.85507),
    (0, 1, 2, 2, 5, 1.21884, 0.21396, 5.55867, 2.85507),
    (0, 1, 2, 2, 6, 0.21884, 0.21396, 5.55867, 2.85507),
    (0, 1, 2, 3, 4, 1.1139, 0.97706, 3.6842, 3.45228),
    (0, 1, 2, 3, 5, 0.1139, 0.97706, 3.6842, 3.45228),
    (0, 1, 2, 4, 5, 0.1139, -0.02294, 3.6842, 3.45228),
    (1, 0, 1, 2, 1, 1.0, 0.85, 1.74432, 0.78068),
    (1, 0, 1, 2, 2, 0.0, 0.85, 1.74432, 0.78068),
    (1, 0, 1, 2, 2, 0.0, 0.85, 1.74432, 0.78068),
    (1, 1, 0, 0, 2, 0.5, 0.45, 0.79533, 1.18961),
    (1, 1, 0, 0, 3, 0.10942, 1.10698, 2.77933, 1.42754),
    (1, 1, 0, 0, 3, 0.5, 0.0, 1.96686, 2.06106),
    (1, 1, 0, 0, 3, 0.5, 0.0, 1.96686, 2.06106),
    (1, 1, 0, 1, 2, 0.55695, 0.98853, 1.8421, 1.72614),
    (1, 1, 0, 1, 2, 1.10942, 0.10698, 2.77933, 1.42754),
    (1, 1, 0, 1, 3, -0.44305, 0.98853, 1.8421, 1.72614),
    (1, 1, 0, 1, 3, 0.10942, 0.10698, 2.77933, 1.42754),
    (1, 1, 0, 2, 2, 0.55695, -0.01147, 1.8421, 1.72614),
    (1, 1, 1, 0, 3, 0.10942, 1.10698, 2.77933, 1.42754),
    (1, 1, 1, 0, 3, 0.5, 0.0, 1.96686, 2.06106),
    (1, 1, 1, 0, 3, 0.5, 0.0, 1.96686, 2.06106),
    (1, 1, 1, 1, 2, 0.55695, 0.98853, 1.8421, 1.72614),
    (1, 1, 1, 1, 2, 1.10942, 0.10698, 2.77933, 1.42754),
    (1, 1, 1, 1, 3, -0.44305, 0.98853, 1.8421, 1.72614),
    (1, 1, 1, 1, 3, 0.10942, 0.10698, 2.77933, 1.42754),
    (1, 1, 1, 2, 2, 0.55695, -0.01147, 1.8421, 1.72614),
    (1, 1, 2, 0, 3, 0.5, 0.0, 1.96686, 2.06106),
    (1, 1, 2, 0, 3, 0.5, 0.0, 1.96686, 2.06106),
]


def seeded_border_targets():
    rng = np.random.default_rng(11)
    n = 7
    centre = rng.integers(0, 21, (n, 2)) / 20.0     # many on cell borders / halves
    centre[:3] = rng.uniform(0, 1, (3, 2))
    size = rng.uniform(0.02, 0.7, (n, 2))
    return np.concatenate([rng.integers(0, 2, (n, 1)), rng.integers(0, 3, (n, 1)),
                           centre, size], 1).astype(np.float32)


def test_matches_yolov5_build_targets_on_seeded_border_cases():
    targets = seeded_border_targets()
    anchors = [[(10, 13), (16, 30), (33, 23)], [(30, 61), (62, 45), (59, 119)]]
    rows = assign_rows(targets, 2, [(6, 10), (3, 5)], anchors, (8, 16))
    assert len(rows) == len(YOLOV5_ROWS)
    np.testing.assert_allclose(np.array(rows), np.array(YOLOV5_ROWS), atol=2e-5, rtol=0)
    # the row order of the targets does not matter
    shuffled = targets[np.random.default_rng(0).permutation(len(targets))]
    assert assign_rows(shuffled, 2, [(6, 10), (3, 5)], anchors, (8, 16)) == rows


def test_constructor_rejects_bad_arguments():
    with pytest.raises(ValueError, match='prior_match_thr'):
        YOLOv5Assigner(prior_match_thr=1.0)
    with pytest.raises(ValueError, match='neighbour_offset'):
        YOLOv5Assigner(neighbour_offset=0.7)
    with pytest.raises(ValueError, match='anchors'):
        YOLOv5Assigner().assign(torch.zeros(1, 1, 4), torch.ones(1, 1, dtype=torch.bool),
                                torch.ones(3), (4, 4))
