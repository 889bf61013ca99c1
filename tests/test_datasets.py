"""Data of the training stack: synthetic generator, transforms, collate,
COCO-format dataset and the export round trip."""
import json

import numpy as np
import pytest
import torch
from mmengine.registry import DATASETS, FUNCTIONS, TRANSFORMS, DefaultScope

from yolo_losses.datasets import (SHAPE_CLASSES, LetterResize, PackYOLOInputs,
                                  SyntheticShapesDataset, YOLOCocoDataset,
                                  YOLOHSVRandomAug, export_coco,
                                  generate_sample, yolo_collate)

TEST_PIPELINE = [
    dict(type='LoadAnnotations', with_bbox=True, with_label=True),
    dict(type='LetterResize', scale=96),
    dict(type='PackYOLOInputs'),
]


@pytest.fixture()
def scope():
    with DefaultScope.overwrite_default_scope('yolo_losses'):
        yield


# --- generator -------------------------------------------------------------

def test_generator_is_a_function_of_seed_split_index():
    img_a, boxes_a, labels_a = generate_sample(3, 'train', 5, img_size=128)
    img_b, boxes_b, labels_b = generate_sample(3, 'train', 5, img_size=128)
    assert np.array_equal(img_a, img_b)
    assert np.array_equal(boxes_a, boxes_b)
    assert np.array_equal(labels_a, labels_b)
    for other in (generate_sample(4, 'train', 5, img_size=128),
                  generate_sample(3, 'val', 5, img_size=128),
                  generate_sample(3, 'train', 6, img_size=128)):
        assert not np.array_equal(other[0], img_a) or other[0].shape != img_a.shape


def test_generator_statistics_match_the_specification():
    counts, sizes, labels_seen = [], [], []
    shapes = set()
    for index in range(150):
        img, boxes, labels = generate_sample(0, 'train', index, img_size=128)
        height, width = img.shape[:2]
        shapes.add((height, width))
        assert img.dtype == np.uint8 and img.shape[2] == 3
        assert max(height, width) == 128 and min(height, width) >= 96
        assert boxes.dtype == np.float32 and boxes.shape == (len(labels), 4)
        assert labels.dtype == np.int64
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= width)
        assert np.all(boxes[:, 3] <= height)
        assert np.all(boxes[:, 2:] > boxes[:, :2])
        counts.append(len(labels))
        labels_seen.extend(labels.tolist())
        sizes.extend((np.maximum(boxes[:, 2] - boxes[:, 0],
                                 boxes[:, 3] - boxes[:, 1])
                      / min(height, width)).tolist())
    # 0..10 objects per image, every class present, varied image shapes
    assert min(counts) == 0 and max(counts) >= 9 and max(counts) <= 10
    assert set(labels_seen) == set(range(len(SHAPE_CLASSES)))
    assert len(shapes) > 10
    # the longer box side spans about 4 % .. 60 % of the shorter image side
    # (a rotated or elongated shape reaches somewhat past the nominal size)
    assert 0.02 < min(sizes) < 0.06
    assert 0.5 < max(sizes) < 1.0


@pytest.mark.parametrize('kwargs, match', [
    (dict(split='dev'), 'split'),
    (dict(index=-1), 'index'),
    (dict(img_size=16), 'img_size'),
    (dict(size_range=(0.5, 0.1)), 'size_range'),
])
def test_generator_bad_arguments(kwargs, match):
    args = dict(seed=0, split='train', index=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        generate_sample(**args)


# --- transforms ------------------------------------------------------------

def test_letter_resize_hand_case():
    img = np.zeros((50, 100, 3), np.uint8)
    img[:, :50] = 200
    results = dict(img=img, gt_bboxes=np.array([[10, 5, 30, 25]], np.float32))
    out = LetterResize(scale=200)(results)
    # ratio min(200/100, 200/50) = 2, resized 200x100, padded 50 rows each side
    assert out['img'].shape == (200, 200, 3)
    assert out['scale'] == 2.0 and out['pad'] == (0, 50)
    assert np.all(out['img'][:50] == 114) and np.all(out['img'][150:] == 114)
    assert np.all(out['img'][60:140, :90] == 200)
    assert np.all(out['img'][60:140, 110:] == 0)
    np.testing.assert_allclose(out['gt_bboxes'], [[20, 60, 60, 100]])


def test_letter_resize_without_scale_up_and_odd_padding():
    img = np.full((30, 41, 3), 7, np.uint8)
    out = LetterResize(scale=(64, 48), allow_scale_up=False)(dict(img=img))
    # no upscaling: ratio 1, pad left (64-41)//2 = 11, top (48-30)//2 = 9
    assert out['scale'] == 1.0 and out['pad'] == (11, 9)
    assert out['img'].shape == (48, 64, 3)
    assert np.all(out['img'][9:39, 11:52] == 7)
    with pytest.raises(ValueError, match='scale'):
        LetterResize(scale=(64, 0))
    with pytest.raises(ValueError, match='pad_val'):
        LetterResize(scale=64, pad_val=300)


def test_hsv_value_gain_on_grey():
    # grey pixels have no hue and no saturation: only the value gain acts,
    # V' = clip(V * (1 + u * value_delta)), with u the third uniform draw
    img = np.full((4, 4, 3), 100, np.uint8)
    np.random.seed(7)
    gains = np.random.uniform(-1, 1, 3) * np.array([0.015, 0.7, 0.4]) + 1
    expected = int(np.clip(100 * gains[2], 0, 255))
    np.random.seed(7)
    out = YOLOHSVRandomAug()(dict(img=img))['img']
    assert np.all(np.abs(out.astype(int) - expected) <= 1)
    with pytest.raises(ValueError, match='value_delta'):
        YOLOHSVRandomAug(value_delta=2)


def test_pack_converts_bgr_to_rgb_clips_and_drops_thin_boxes():
    img = np.zeros((32, 48, 3), np.uint8)
    img[..., 0] = 10  # blue in BGR
    img[..., 2] = 30  # red
    results = dict(img=img, img_id=4, ori_shape=(16, 24), scale=2.0,
                   pad=(0, 0),
                   gt_bboxes=np.array([[-5, 2, 20, 40], [3, 3, 3.5, 9]],
                                      np.float32),
                   gt_bboxes_labels=np.array([1, 2]),
                   instances=[dict(bbox=[0, 1, 10, 16], bbox_label=1),
                              dict(bbox=[1.5, 1.5, 1.75, 4.5], bbox_label=2)])
    packed = PackYOLOInputs()(results)
    inputs, sample = packed['inputs'], packed['data_samples']
    assert inputs.dtype == torch.uint8 and inputs.shape == (3, 32, 48)
    assert inputs[0].unique().tolist() == [30] and inputs[2].unique().tolist() == [10]
    # first box clipped to the image, second (0.5 px wide) dropped
    assert sample['bboxes'].tolist() == [[0, 2, 20, 32]]
    assert sample['labels'].tolist() == [1]
    assert sample['img_id'] == 4 and sample['ori_shape'] == (16, 24)
    assert sample['gt_bboxes'].shape == (2, 4)
    assert sample['gt_labels'].tolist() == [1, 2]


def test_collate_pads_to_32_and_normalises_to_the_padded_size():
    first = dict(inputs=torch.full((3, 64, 64), 1, dtype=torch.uint8),
                 data_samples=dict(bboxes=torch.tensor([[0., 0., 32., 32.]]),
                                   labels=torch.tensor([3]), img_id=0))
    second = dict(inputs=torch.full((3, 40, 70), 2, dtype=torch.uint8),
                  data_samples=dict(bboxes=torch.tensor([[10., 8., 30., 40.],
                                                         [0., 0., 96., 64.]]),
                                    labels=torch.tensor([0, 4]), img_id=1))
    batch = yolo_collate([first, second])
    inputs = batch['inputs']
    # max height 64, max width 70 -> 96
    assert inputs.shape == (2, 3, 64, 96) and inputs.dtype == torch.uint8
    assert torch.all(inputs[0, :, :, 64:] == 114)
    assert torch.all(inputs[1, :, 40:] == 114) and torch.all(inputs[1, :, :40, :70] == 2)
    expected = torch.tensor([
        [0, 3, 16 / 96, 16 / 64, 32 / 96, 32 / 64],
        [1, 0, 20 / 96, 24 / 64, 20 / 96, 32 / 64],
        [1, 4, 48 / 96, 32 / 64, 96 / 96, 64 / 64]])
    torch.testing.assert_close(batch['data_samples']['targets'], expected)
    assert batch['data_samples']['max_boxes'] == 2
    assert [m['img_id'] for m in batch['data_samples']['metas']] == [0, 1]


def test_collate_of_images_without_boxes():
    empty = dict(inputs=torch.zeros((3, 32, 32), dtype=torch.uint8),
                 data_samples=dict(bboxes=torch.zeros((0, 4)),
                                   labels=torch.zeros(0, dtype=torch.long)))
    batch = yolo_collate([empty, empty])
    assert batch['data_samples']['targets'].shape == (0, 6)
    assert batch['data_samples']['max_boxes'] == 0
    with pytest.raises(ValueError, match='non-empty'):
        yolo_collate([])
    with pytest.raises(TypeError, match='PackYOLOInputs'):
        yolo_collate([torch.zeros(3)])


def _sample(boxes, size=(64, 64)):
    return dict(inputs=torch.zeros((3, *size), dtype=torch.uint8),
                data_samples=dict(bboxes=torch.tensor(boxes, dtype=torch.float32),
                                  labels=torch.zeros(len(boxes), dtype=torch.long)))


def test_collate_rejects_targets_outside_the_input():
    """The data side of the target check: training runs the losses without
    value checks, so the collate function (CPU, once per batch) refuses
    boxes that normalise outside [0, 1]."""
    # a box from 10 to 200 px on a 64 px input (a transform that did not
    # clip): cx = 105 / 64 = 1.64, w = 190 / 64 = 2.97 (the worst value)
    with pytest.raises(ValueError, match=r'targets\[:, 2:6\] \(cx, cy, w, h\) must '
                                         r'be normalised to the input size.*'
                                         r'got a value of 2\.96875'):
        yolo_collate([_sample([[10., 10., 32., 32.]]),
                      _sample([[10., 10., 200., 60.]])])
    with pytest.raises(ValueError, match='targets.*got a value of nan'):
        yolo_collate([_sample([[float('nan'), 0., 8., 8.]])])
    # a box covering the whole input (edges at 0 and 1 exactly) is fine
    batch = yolo_collate([_sample([[0., 0., 64., 64.]])])
    assert batch['data_samples']['targets'][0, 2:].tolist() == [0.5, 0.5, 1., 1.]


def test_check_normalised_boxes_tolerance():
    """The same check (and tolerance) as the losses' with validation on."""
    from yolo_losses.ops.targets import NORMALISED_TOLERANCE, check_normalised_boxes

    assert NORMALISED_TOLERANCE == 1e-3
    check_normalised_boxes('targets', torch.zeros(0, 4))
    check_normalised_boxes('targets', torch.tensor([[1.0009, -0.0009, 1.0, 0.0]]))
    for value in (1.0011, -0.0011, 50.0, float('inf')):
        with pytest.raises(ValueError, match='boxes .*must be normalised'):
            check_normalised_boxes('boxes', torch.tensor([[0.5, 0.5, 0.2, value]]))
    with pytest.raises(ValueError, match=r'tolerance 0\.1\)'):
        check_normalised_boxes('t', torch.tensor([[1.2, 0.5, 0.1, 0.1]]), tol=0.1)
    check_normalised_boxes('t', torch.tensor([[1.05, 0.5, 0.1, 0.1]]), tol=0.1)


# --- datasets and registries --------------------------------------------------

def test_registries_resolve_our_and_mmcv_names(scope):
    assert TRANSFORMS.build(dict(type='LetterResize', scale=32)).scale == (32, 32)
    assert type(TRANSFORMS.build(dict(type='LoadImageFromFile'))).__module__ \
        .startswith('mmcv')
    assert FUNCTIONS.get('yolo_losses.yolo_collate') is yolo_collate
    dataset = DATASETS.build(dict(type='SyntheticShapesDataset', num_images=3,
                                  pipeline=TEST_PIPELINE))
    assert isinstance(dataset, SyntheticShapesDataset)
    with pytest.raises(KeyError, match='SyntheticShapesDataset'):
        from yolo_losses.registry import DATASETS as OURS
        OURS.build(dict(type='SyntheticShapeDataset'))


def test_synthetic_dataset_items_follow_the_generator(scope):
    dataset = SyntheticShapesDataset(num_images=4, split='val', seed=2,
                                     img_size=80, pipeline=TEST_PIPELINE)
    assert len(dataset) == 4
    assert dataset.metainfo['classes'] == SHAPE_CLASSES
    item = dataset[1]
    img, boxes, labels = generate_sample(2, 'val', 1, img_size=80)
    ratio = 96 / max(img.shape[:2])
    sample = item['data_samples']
    assert sample['scale'] == pytest.approx(ratio)
    left, top = sample['pad']
    expected = boxes * ratio + np.array([left, top, left, top], np.float32)
    np.testing.assert_allclose(sample['bboxes'].numpy(),
                               expected.clip(0, 96), rtol=0, atol=1e-4)
    assert sample['labels'].tolist() == labels.tolist()
    np.testing.assert_array_equal(sample['gt_bboxes'], boxes)
    with pytest.raises(ValueError, match='num_images'):
        SyntheticShapesDataset(num_images=-1)
    with pytest.raises(ValueError, match='split'):
        SyntheticShapesDataset(split='dev')


def test_cached_synthetic_dataset_gives_the_generated_samples(scope):
    cached = SyntheticShapesDataset(num_images=3, split='train', seed=4, img_size=64,
                                    cache=True)
    for index in range(3):
        img, boxes, labels = generate_sample(4, 'train', index, img_size=64)
        info = cached.get_data_info(index)
        np.testing.assert_array_equal(info['img'], img)
        assert [i['bbox'] for i in info['instances']] == boxes.tolist()
        assert [i['bbox_label'] for i in info['instances']] == labels.tolist()
        # a transform writing into the image must not reach the cache
        info['img'][:] = 0
        np.testing.assert_array_equal(cached.get_data_info(index)['img'], img)
    # another instance with the same generation arguments (tools/train.py's
    # preflight, then the Runner) reuses the generated images
    again = SyntheticShapesDataset(num_images=3, split='train', seed=4, img_size=64,
                                   cache=True)
    assert again._samples is cached._samples
    other = SyntheticShapesDataset(num_images=3, split='train', seed=5, img_size=64,
                                   cache=True)
    assert other._samples is not cached._samples
    with pytest.raises(TypeError, match='cache'):
        SyntheticShapesDataset(num_images=1, cache='yes')


def test_export_then_coco_dataset_gives_the_same_samples(tmp_path, scope):
    synthetic = SyntheticShapesDataset(num_images=5, split='val', seed=1,
                                       img_size=64, pipeline=TEST_PIPELINE)
    ann_file = export_coco(synthetic, str(tmp_path))
    content = json.loads(open(ann_file).read())
    assert [c['id'] for c in content['categories']] == [1, 2, 3, 4, 5]
    img, boxes, labels = synthetic.sample(0)
    first = [a for a in content['annotations'] if a['image_id'] == 0]
    assert len(first) == len(boxes)
    for ann, box, label in zip(first, boxes, labels):
        assert ann['bbox'] == pytest.approx(
            [box[0], box[1], box[2] - box[0], box[3] - box[1]])
        assert ann['category_id'] == label + 1

    coco = YOLOCocoDataset(
        data_root=str(tmp_path), ann_file='annotations/instances_val.json',
        data_prefix=dict(img='images/val/'),
        pipeline=[dict(type='LoadImageFromFile')] + TEST_PIPELINE)
    assert coco.metainfo['classes'] == SHAPE_CLASSES
    assert len(coco) == 5
    for index in range(5):
        a, b = synthetic[index], coco[index]
        assert torch.equal(a['inputs'], b['inputs'])  # PNG is lossless
        assert torch.equal(a['data_samples']['bboxes'], b['data_samples']['bboxes'])
        assert torch.equal(a['data_samples']['labels'], b['data_samples']['labels'])
        assert a['data_samples']['ori_shape'] == b['data_samples']['ori_shape']


def _write_json(path, content):
    path.write_text(json.dumps(content))
    return path


def test_coco_dataset_maps_classes_by_name_and_skips_crowds(tmp_path, scope):
    (tmp_path / 'img').mkdir()
    content = dict(
        images=[dict(id=7, file_name='a.png', height=20, width=30)],
        annotations=[
            dict(id=1, image_id=7, category_id=9, bbox=[1, 2, 3, 4], iscrowd=0),
            dict(id=2, image_id=7, category_id=4, bbox=[5, 5, 10, 10], iscrowd=0),
            dict(id=3, image_id=7, category_id=4, bbox=[0, 0, 30, 20], iscrowd=1)],
        categories=[dict(id=4, name='dog'), dict(id=9, name='cat')])
    _write_json(tmp_path / 'ann.json', content)
    dataset = YOLOCocoDataset(data_root=str(tmp_path), ann_file='ann.json',
                              data_prefix=dict(img='img/'),
                              metainfo=dict(classes=('cat', 'dog')))
    info = dataset.get_data_info(0)
    assert info['img_id'] == 7 and info['ori_shape'] == (20, 30)
    assert [(i['bbox'], i['bbox_label']) for i in info['instances']] == [
        ([1, 2, 4, 6], 0), ([5, 5, 15, 15], 1)]
    default = YOLOCocoDataset(data_root=str(tmp_path), ann_file='ann.json')
    assert default.metainfo['classes'] == ('dog', 'cat')  # by category id


def test_coco_dataset_bad_inputs(tmp_path, scope):
    with pytest.raises(FileNotFoundError, match='data_root'):
        YOLOCocoDataset(data_root=str(tmp_path / 'missing'), ann_file='a.json')
    with pytest.raises(FileNotFoundError, match='ann_file'):
        YOLOCocoDataset(data_root=str(tmp_path), ann_file='a.json')
    (tmp_path / 'broken.json').write_text('{"images": [')
    with pytest.raises(ValueError, match='not valid JSON'):
        YOLOCocoDataset(data_root=str(tmp_path), ann_file='broken.json')
    _write_json(tmp_path / 'partial.json', dict(images=[]))
    with pytest.raises(ValueError, match="not COCO format.*annotations"):
        YOLOCocoDataset(data_root=str(tmp_path), ann_file='partial.json')
    _write_json(tmp_path / 'badbox.json', dict(
        images=[dict(id=1, file_name='x.png', height=4, width=4)],
        annotations=[dict(id=1, image_id=1, category_id=1, bbox=[1, 2])],
        categories=[dict(id=1, name='a')]))
    with pytest.raises(ValueError, match='4-number bbox'):
        YOLOCocoDataset(data_root=str(tmp_path), ann_file='badbox.json')
    _write_json(tmp_path / 'ok.json', dict(
        images=[dict(id=1, file_name='x.png', height=4, width=4)],
        annotations=[], categories=[dict(id=1, name='a')]))
    with pytest.raises(ValueError, match="classes \\['b'\\]"):
        YOLOCocoDataset(data_root=str(tmp_path), ann_file='ok.json',
                        metainfo=dict(classes=('b',)))
    dataset = YOLOCocoDataset(data_root=str(tmp_path), ann_file='ok.json',
                              pipeline=[dict(type='LoadImageFromFile')])
    with pytest.raises(FileNotFoundError, match='x.png'):
        dataset[0]
