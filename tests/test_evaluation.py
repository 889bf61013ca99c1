"""CocoMetric against hand-computed COCO APs.

pycocotools interpolates precision at 101 recall points (0, 0.01, ..., 1):
each point takes the best precision at any recall >= it, 0 past the last
recall reached; AP is their mean, mAP also averages over the IoU thresholds
0.50, 0.55, ..., 0.95 and the classes that have ground truth.
"""
import numpy as np
import pytest
import torch

from yolo_losses.datasets import SyntheticShapesDataset, export_coco
from yolo_losses.evaluation import CocoMetric, build_coco_ground_truth

pytest.importorskip('pycocotools')


def _meta(img_id, boxes, labels, shape=(200, 200)):
    return dict(img_id=img_id, ori_shape=shape,
                gt_bboxes=np.array(boxes, np.float32).reshape(-1, 4),
                gt_labels=np.array(labels, np.int64))


def _pred(img_id, boxes, scores, labels):
    return dict(img_id=img_id,
                bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                scores=torch.tensor(scores, dtype=torch.float32),
                labels=torch.tensor(labels, dtype=torch.long))


def evaluate(metas, preds, classes=('a', 'b'), **kwargs):
    metric = CocoMetric(**kwargs)
    metric.dataset_meta = dict(classes=classes)
    metric.process(dict(data_samples=dict(metas=metas)), preds)
    return metric.evaluate(len(metas))


def test_perfect_predictions_score_one():
    metas = [_meta(0, [[10, 10, 60, 60], [100, 20, 180, 90]], [0, 1]),
             _meta(1, [[5, 5, 150, 150]], [1])]
    preds = [_pred(0, [[10, 10, 60, 60], [100, 20, 180, 90]], [0.9, 0.8], [0, 1]),
             _pred(1, [[5, 5, 150, 150]], [0.7], [1])]
    result = evaluate(metas, preds)
    assert result['coco/bbox_mAP'] == pytest.approx(1.0)
    assert result['coco/bbox_mAP_50'] == pytest.approx(1.0)
    assert result['coco/AP_a'] == pytest.approx(1.0)
    assert result['coco/AP50_b'] == pytest.approx(1.0)


def test_iou_072_matches_half_of_the_thresholds():
    # IoU = 100*72 / (100*100) = 0.72: a hit at 0.50 .. 0.70 (5 of 10)
    metas = [_meta(0, [[0, 0, 100, 100]], [0])]
    preds = [_pred(0, [[0, 0, 100, 72]], [0.9], [0])]
    result = evaluate(metas, preds, classes=('a',))
    assert result['coco/bbox_mAP'] == pytest.approx(0.5)
    assert result['coco/bbox_mAP_50'] == pytest.approx(1.0)
    assert result['coco/bbox_mAP_75'] == pytest.approx(0.0)


def test_false_positive_ranked_first():
    # detections by score: FP, TP, TP -> (recall, precision) = (0, 0),
    # (.5, .5), (1, 2/3); interpolated precision is 2/3 at every recall point
    metas = [_meta(0, [[0, 0, 50, 50], [100, 100, 150, 150]], [0, 0])]
    preds = [_pred(0, [[60, 0, 90, 30], [0, 0, 50, 50], [100, 100, 150, 150]],
                   [0.9, 0.8, 0.7], [0, 0, 0])]
    result = evaluate(metas, preds, classes=('a',))
    assert result['coco/bbox_mAP'] == pytest.approx(2 / 3, abs=1e-6)
    assert result['coco/bbox_mAP_50'] == pytest.approx(2 / 3, abs=1e-6)


def test_half_recall_uses_51_of_101_points():
    # one of two objects found at precision 1: recall points 0 .. 0.50 (51
    # of 101) have precision 1, the rest 0
    metas = [_meta(0, [[0, 0, 50, 50], [100, 100, 150, 150]], [0, 0])]
    preds = [_pred(0, [[0, 0, 50, 50]], [0.9], [0])]
    result = evaluate(metas, preds, classes=('a',))
    assert result['coco/bbox_mAP_50'] == pytest.approx(51 / 101, abs=1e-6)


def test_per_class_ap_and_the_mean_over_classes():
    # class a: perfect (AP 1); class b: wrong class predicted, AP 0
    metas = [_meta(0, [[0, 0, 50, 50]], [0]), _meta(1, [[10, 10, 90, 90]], [1])]
    preds = [_pred(0, [[0, 0, 50, 50]], [0.9], [0]),
             _pred(1, [[10, 10, 90, 90]], [0.5], [0])]
    result = evaluate(metas, preds)
    assert result['coco/AP_a'] == pytest.approx(1.0)
    assert result['coco/AP_b'] == pytest.approx(0.0)
    # class a: its one FP (image 1) ranks below the TP -> AP 1 still
    assert result['coco/bbox_mAP'] == pytest.approx(0.5)


def test_no_detections_give_zero():
    metas = [_meta(0, [[0, 0, 50, 50]], [0])]
    preds = [_pred(0, np.zeros((0, 4)), [], [])]
    result = evaluate(metas, preds)
    assert result['coco/bbox_mAP'] == 0.0 and result['coco/bbox_mAP_50'] == 0.0
    assert result['coco/AP_a'] == 0.0


def test_repeated_images_from_a_ddp_sampler_count_once():
    metas = [_meta(0, [[0, 0, 50, 50]], [0]), _meta(0, [[0, 0, 50, 50]], [0])]
    preds = [_pred(0, [[0, 0, 50, 50]], [0.9], [0]),
             _pred(0, [[0, 0, 50, 50]], [0.9], [0])]
    result = evaluate(metas, preds, classes=('a',))
    assert result['coco/bbox_mAP'] == pytest.approx(1.0)


def test_ann_file_and_batch_ground_truth_agree(tmp_path):
    dataset = SyntheticShapesDataset(num_images=6, split='val', seed=3,
                                     img_size=96)
    ann_file = export_coco(dataset, str(tmp_path))
    rng = np.random.default_rng(0)
    metas, preds = [], []
    for index in range(6):
        img, boxes, labels = dataset.sample(index)
        metas.append(_meta(index, boxes, labels, img.shape[:2]))
        # ground truth jittered by up to 4 px, plus one random false positive
        noisy = boxes + rng.uniform(-4, 4, size=boxes.shape).astype(np.float32)
        fp = np.array([[5, 5, 25, 25]], np.float32)
        preds.append(_pred(index, np.concatenate([noisy, fp]),
                           rng.uniform(0.1, 1, size=len(boxes) + 1),
                           np.concatenate([labels, [2]])))
    classes = dataset.metainfo['classes']
    from_batch = evaluate(metas, preds, classes=classes)
    from_file = evaluate(metas, preds, classes=classes, ann_file=ann_file)
    assert from_batch.keys() == from_file.keys()
    for key in from_batch:
        assert from_batch[key] == pytest.approx(from_file[key], abs=1e-12), key
    assert 0.2 < from_batch['coco/bbox_mAP'] < 1.0


def test_build_coco_ground_truth_layout():
    gt = build_coco_ground_truth([_meta(3, [[1, 2, 11, 7]], [1], (40, 50))],
                                 ('x', 'y'))
    assert gt['images'] == [dict(id=3, width=50, height=40)]
    assert gt['annotations'] == [dict(id=1, image_id=3, category_id=2,
                                      bbox=[1.0, 2.0, 10.0, 5.0], area=50.0,
                                      iscrowd=0)]
    assert [c['name'] for c in gt['categories']] == ['x', 'y']


def test_bad_inputs():
    with pytest.raises(FileNotFoundError, match='ann_file'):
        CocoMetric(ann_file='/nonexistent/instances.json')
    metric = CocoMetric()
    with pytest.raises(TypeError, match='bboxes, scores and labels'):
        metric.process(dict(data_samples=dict(metas=[_meta(0, [], [])])),
                       [torch.zeros(3)])
    with pytest.raises(ValueError, match='2 predictions for a batch of 1'):
        metric.process(dict(data_samples=dict(metas=[_meta(0, [], [])])),
                       [_pred(0, [], [], [])] * 2)
    with pytest.raises(KeyError, match='gt_bboxes'):
        metric.process(dict(data_samples=dict(metas=[dict(img_id=0)])),
                       [_pred(0, [], [], [])])
    with pytest.raises(ValueError, match='label 5'):
        evaluate([_meta(0, [[0, 0, 5, 5]], [0])],
                 [_pred(0, [[0, 0, 5, 5]], [0.5], [5])])


def test_images_without_an_id_are_refused_not_merged():
    """Two images without ids used to be evaluated as one image (id -1):
    a ValueError names img_id instead."""
    metric = CocoMetric()
    metric.dataset_meta = dict(classes=('a',))
    no_id = [dict(_meta(0, [[0, 0, 10, 10]], [0]), img_id=-1)] * 2
    preds = [_pred(0, [[0, 0, 10, 10]], [0.9], [0]) for _ in range(2)]
    for pred in preds:
        del pred['img_id']
    with pytest.raises(ValueError, match='img_id >= 0.*got -1'):
        metric.process(dict(data_samples=dict(metas=no_id)), preds)
    missing = [{k: v for k, v in m.items() if k != 'img_id'} for m in no_id]
    with pytest.raises(ValueError, match='img_id >= 0.*got None'):
        metric.process(dict(data_samples=dict(metas=missing)), preds)
    with pytest.raises(ValueError, match="got 'x'"):
        metric.process(dict(data_samples=dict(metas=missing)),
                       [dict(p, img_id='x') for p in preds])
    # the first image of a batch is not kept when the second has no id
    with pytest.raises(ValueError, match='got None'):
        metric.process(dict(data_samples=dict(metas=[no_id[0], missing[1]])),
                       [dict(preds[0], img_id=1), preds[1]])
    assert metric.results == []
    # the id may come from the prediction alone, as a numpy or tensor scalar
    metric.process(dict(data_samples=dict(metas=missing)),
                   [dict(preds[0], img_id=np.int64(3)),
                    dict(preds[1], img_id=torch.tensor(4))])
    assert [r['img_id'] for r in metric.results] == [3, 4]
