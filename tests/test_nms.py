"""Batched class-aware NMS against a brute-force greedy NMS written here with
plain Python loops over boxes."""
import numpy as np
import pytest
import torch

from yolo_losses.ops.nms import batched_nms, multiclass_nms


# --- brute-force reference -------------------------------------------------

def iou_plain(a, b):
    """IoU of two xyxy boxes given as Python floats (0 for an empty union)."""
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def greedy_nms_plain(boxes, scores, labels, iou_thr, max_keep, valid=None,
                     class_agnostic=False):
    """Indices kept by textbook greedy NMS, best first (one image)."""
    candidates = [i for i in range(len(boxes)) if valid is None or valid[i]]
    # Python's sort is stable: equal scores keep the index order
    candidates.sort(key=lambda i: -scores[i])
    kept = []
    for i in candidates:
        if all(not (class_agnostic or labels[i] == labels[k])
               or iou_plain(boxes[i], boxes[k]) <= iou_thr for k in kept):
            kept.append(i)
    return kept[:max_keep]


def random_boxes(rng, batch, num, size=100.0):
    """Clustered boxes so that many overlap."""
    centres = rng.uniform(0, size, (batch, num // 4 + 1, 2))
    pick = rng.integers(0, centres.shape[1], (batch, num))
    centre = np.take_along_axis(centres, pick[..., None], 1) + rng.normal(0, 4, (batch, num, 2))
    half = rng.uniform(3, 20, (batch, num, 2))
    return np.concatenate((centre - half, centre + half), -1).astype(np.float32)


def check_against_plain(result, boxes, scores, labels, iou_thr, max_per_img,
                        valid=None, class_agnostic=False):
    for b in range(boxes.shape[0]):
        expected = greedy_nms_plain(boxes[b].tolist(), scores[b].tolist(),
                                    labels[b].tolist(), iou_thr, max_per_img,
                                    None if valid is None else valid[b].tolist(),
                                    class_agnostic)
        count = int(result.mask[b].sum())
        assert count == len(expected)
        assert result.mask[b, :count].all() and not result.mask[b, count:].any()
        assert result.indices[b, :count].tolist() == expected
        torch.testing.assert_close(result.boxes[b, :count], torch.as_tensor(boxes[b][expected]))
        torch.testing.assert_close(result.scores[b, :count], torch.as_tensor(scores[b][expected]))
        assert result.labels[b, :count].tolist() == labels[b][expected].tolist()
        # empty slots are zeros
        assert (result.boxes[b, count:] == 0).all() and (result.scores[b, count:] == 0).all()


# --- hand-made cases -------------------------------------------------------

def test_suppressed_box_does_not_suppress():
    # A (0.9) overlaps B (0.8) with IoU 0.6; B overlaps C (0.7) with IoU 0.6
    # but A and C do not overlap: greedy NMS keeps A and C (Fast NMS would
    # wrongly drop C too).
    boxes = torch.tensor([[[0., 0, 10, 10], [2.5, 0, 12.5, 10], [5, 0, 15, 10]]])
    # IoU(A, B) = 75 / 125 = 0.6, IoU(B, C) = 0.6, IoU(A, C) = 50 / 150 = 1/3
    scores = torch.tensor([[0.9, 0.8, 0.7]])
    labels = torch.zeros(1, 3, dtype=torch.long)
    result = batched_nms(boxes, scores, labels, iou_thr=0.5, max_per_img=5)
    assert result.mask.tolist() == [[True, True, False, False, False]]
    assert result.indices[0, :2].tolist() == [0, 2]
    assert result.scores[0].tolist() == pytest.approx([0.9, 0.7, 0, 0, 0])
    # threshold above 0.6: nothing is suppressed
    result = batched_nms(boxes, scores, labels, iou_thr=0.6, max_per_img=5)
    assert result.indices[0, :3].tolist() == [0, 1, 2]


def test_iou_equal_to_threshold_is_kept_and_classes_are_separate():
    boxes = torch.tensor([[[0., 0, 4, 1], [0, 0, 2, 1]]])  # IoU exactly 0.5
    scores = torch.tensor([[0.9, 0.8]])
    same = torch.zeros(1, 2, dtype=torch.long)
    assert batched_nms(boxes, scores, same, 0.5, 10).mask.sum() == 2
    assert batched_nms(boxes, scores, same, 0.49, 10).mask.sum() == 1
    different = torch.tensor([[0, 1]])
    assert batched_nms(boxes, scores, different, 0.49, 10).mask.sum() == 2
    assert batched_nms(boxes, scores, different, 0.49, 10,
                       class_agnostic=True).mask.sum() == 1


def test_suppression_chain_is_greedy():
    # boxes shifted by 1 overlap their neighbours: a suppressed box must not
    # suppress (greedy order), which a one-shot "any higher overlap" rule
    # would get wrong
    num = 12
    boxes = torch.tensor([[[i, 0., i + 10, 10] for i in range(num)]])
    scores = torch.linspace(1.0, 0.5, num)[None]
    labels = torch.zeros(1, num, dtype=torch.long)
    # boxes two apart: IoU 8/12 > 0.5 too, three apart 7/13 > 0.5, four apart 6/14 < 0.5
    result = batched_nms(boxes, scores, labels, 0.5, num)
    assert result.indices[0, :int(result.mask.sum())].tolist() == [0, 4, 8]


def test_ties_keep_candidate_order_and_max_per_img_truncates():
    boxes = torch.tensor([[[0., 0, 1, 1], [5, 5, 6, 6], [10, 10, 11, 11], [20, 20, 21, 21]]])
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.5]])
    labels = torch.zeros(1, 4, dtype=torch.long)
    result = batched_nms(boxes, scores, labels, 0.5, 3)
    assert result.indices[0].tolist() == [1, 0, 2]
    assert result.mask.all()


def test_empty_and_all_invalid():
    result = batched_nms(torch.zeros(2, 0, 4), torch.zeros(2, 0),
                         torch.zeros(2, 0, dtype=torch.long), 0.5, 4)
    assert result.boxes.shape == (2, 4, 4) and not result.mask.any()
    boxes = torch.tensor([[[0., 0, 1, 1], [0, 0, 1, 1]]])
    result = batched_nms(boxes, torch.ones(1, 2), torch.zeros(1, 2, dtype=torch.long), 0.5, 4,
                         valid=torch.zeros(1, 2, dtype=torch.bool))
    assert not result.mask.any() and (result.scores == 0).all()
    out = multiclass_nms(torch.zeros(1, 0, 4), torch.zeros(1, 0, 3), 0.1, 0.5, 5)
    assert out.mask.shape == (1, 5) and not out.mask.any()


def test_zero_area_boxes_never_suppress():
    boxes = torch.tensor([[[1., 1, 1, 1], [1, 1, 1, 1], [0, 0, 2, 2]]])
    result = batched_nms(boxes, torch.tensor([[0.9, 0.8, 0.7]]),
                         torch.zeros(1, 3, dtype=torch.long), 0.0, 5)
    # IoU of a zero-area box with anything is 0, never > 0.0
    assert result.mask.sum() == 3


# --- seeded batches against the brute force --------------------------------

@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('class_agnostic', [False, True])
def test_batched_nms_matches_plain_loops(seed, class_agnostic):
    rng = np.random.default_rng(seed)
    batch, num = 3, 60
    boxes = random_boxes(rng, batch, num)
    scores = rng.uniform(0, 1, (batch, num)).astype(np.float32)
    labels = rng.integers(0, 3, (batch, num))
    valid = rng.uniform(0, 1, (batch, num)) > 0.2
    for iou_thr, max_per_img in ((0.5, 100), (0.3, 7), (0.7, 20)):
        result = batched_nms(torch.as_tensor(boxes), torch.as_tensor(scores),
                             torch.as_tensor(labels), iou_thr, max_per_img,
                             valid=torch.as_tensor(valid), class_agnostic=class_agnostic)
        assert result.boxes.shape == (batch, max_per_img, 4)
        check_against_plain(result, boxes, scores, labels, iou_thr, max_per_img,
                            valid, class_agnostic)


@pytest.mark.parametrize('multi_label', [True, False])
def test_multiclass_nms_matches_plain_loops(multi_label):
    rng = np.random.default_rng(7)
    batch, num, classes = 2, 50, 4
    boxes = random_boxes(rng, batch, num)
    scores = rng.uniform(0, 1, (batch, num, classes)).astype(np.float32) ** 3
    score_thr, iou_thr, max_per_img, nms_pre = 0.05, 0.5, 30, 80
    out = multiclass_nms(torch.as_tensor(boxes), torch.as_tensor(scores), score_thr,
                         iou_thr, max_per_img, nms_pre=nms_pre, multi_label=multi_label)
    for b in range(batch):
        # candidates written out: (box, class) pairs above the threshold
        cands = []
        for n in range(num):
            classes_of_box = range(classes) if multi_label else [int(scores[b, n].argmax())]
            for c in classes_of_box:
                if scores[b, n, c] > score_thr:
                    cands.append((float(scores[b, n, c]), n, c))
        cands.sort(key=lambda t: -t[0])
        cands = cands[:nms_pre]
        kept = greedy_nms_plain([boxes[b, n].tolist() for _, n, _ in cands],
                                [s for s, _, _ in cands], [c for _, _, c in cands],
                                iou_thr, max_per_img)
        count = int(out.mask[b].sum())
        assert count == len(kept) > 0
        assert out.indices[b, :count].tolist() == [cands[k][1] for k in kept]
        assert out.labels[b, :count].tolist() == [cands[k][2] for k in kept]
        assert out.scores[b, :count].tolist() == pytest.approx([cands[k][0] for k in kept])
        torch.testing.assert_close(out.boxes[b, :count],
                                   torch.as_tensor(boxes[b][[cands[k][1] for k in kept]]))


def test_bad_arguments():
    boxes, scores = torch.zeros(1, 2, 4), torch.zeros(1, 2)
    labels = torch.zeros(1, 2, dtype=torch.long)
    with pytest.raises(ValueError, match='iou_thr'):
        batched_nms(boxes, scores, labels, 1.5, 3)
    with pytest.raises(ValueError, match='max_per_img'):
        batched_nms(boxes, scores, labels, 0.5, 0)
    with pytest.raises(ValueError, match='scores'):
        batched_nms(boxes, torch.zeros(1, 3), labels, 0.5, 3)
    with pytest.raises(ValueError, match='boxes'):
        batched_nms(torch.zeros(2, 4), scores, labels, 0.5, 3)
    with pytest.raises(ValueError, match='nms_pre'):
        multiclass_nms(boxes, torch.zeros(1, 2, 3), 0.1, 0.5, 3, nms_pre=0)
    with pytest.raises(ValueError, match='scores'):
        multiclass_nms(boxes, torch.zeros(1, 3, 3), 0.1, 0.5, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_plain_loops():
    rng = np.random.default_rng(3)
    boxes = random_boxes(rng, 2, 40)
    scores = rng.uniform(0, 1, (2, 40)).astype(np.float32)
    labels = rng.integers(0, 2, (2, 40))
    result = batched_nms(torch.as_tensor(boxes).cuda(), torch.as_tensor(scores).cuda(),
                         torch.as_tensor(labels).cuda(), 0.5, 25)
    assert result.boxes.is_cuda
    check_against_plain(type(result)(*(t.cpu() for t in result)), boxes, scores, labels,
                        0.5, 25)


@pytest.mark.parametrize('crowded_top', [False, True])
def test_prefix_pass_and_its_fallback_match_plain_loops(crowded_top, monkeypatch):
    """The greedy pass runs on the top 4 * max_per_img ranks first and on
    the whole list only when that prefix keeps too few: both exact."""
    import yolo_losses.ops.nms as nms_module
    sizes = []
    original = nms_module._greedy_keep

    def spy(boxes, *args):
        sizes.append(boxes.shape[1])
        return original(boxes, *args)

    monkeypatch.setattr(nms_module, '_greedy_keep', spy)
    rng = np.random.default_rng(11)
    batch, num, max_per_img = 2, 120, 5
    boxes = random_boxes(rng, batch, num, size=300.0)
    scores = rng.uniform(0, 0.9, (batch, num)).astype(np.float32)
    labels = np.zeros((batch, num), dtype=np.int64)
    if crowded_top:
        # the 30 best of image 1 are one box: the prefix (20 ranks) keeps 1
        boxes[1, :30] = boxes[1, 0]
        scores[1, :30] = np.linspace(1.0, 0.95, 30, dtype=np.float32)
    result = batched_nms(torch.as_tensor(boxes), torch.as_tensor(scores),
                         torch.as_tensor(labels), 0.5, max_per_img)
    check_against_plain(result, boxes, scores, labels, 0.5, max_per_img)
    assert sizes == ([4 * max_per_img, num] if crowded_top else [4 * max_per_img])
