# Runtime shared by every runnable config: hooks, logging, seed, EMA, curves.
default_scope = 'yolo_losses'

# Value checks inside the losses cost one host sync each; the data pipeline
# already guarantees finite, in-range targets, so training runs without them.
# tools/train.py and tools/test.py apply it for the run only (as
# `with yolo_losses.validation(False):`; the process default stays).
yolo_losses_validate = False
# The fast path: fused Triton kernels for the element-wise losses, on CUDA
# when Triton imports (a CPU always runs the PyTorch path). False turns it off.
yolo_losses_fused = True
# ultralytics' cls_pw: > 0 weights each class's loss by (1 / its box count)
# ** power, normalised (ClassWeightsHook, computed once from the training
# labels); 0 = off
class_weight_power = 0.0

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # best (by val mAP@.5) and last checkpoints; older epoch checkpoints are pruned
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2,
                    save_last=True, save_best='coco/bbox_mAP_50',
                    rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'))

custom_hooks = [
    # YOLOv5/ultralytics ModelEMA: decay 0.9999 ramped over tau updates
    dict(type='EMAHook', ema_type='YOLOExpEMA', decay=0.9999, tau=2000,
         update_buffers=True, priority=49),
    dict(type='CurvesHook'),
    dict(type='ThroughputHook'),
    dict(type='EpochSeedHook'),
    # set_epoch(epoch, max_epochs) on stateful losses (E2ELoss's schedule)
    dict(type='LossEpochHook'),
    # class_weight_power > 0: class weights from the training labels
    dict(type='ClassWeightsHook'),
]

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to gloo when there is no CUDA
    dist_cfg=dict(backend='nccl'))

log_processor = dict(type='LogProcessor', window_size=10, by_epoch=True)
log_level = 'INFO'
# mmengine's Visualizer with a TensorBoard switch: tensorboard=True (or
# --cfg-options visualizer.tensorboard=True) also writes the logged scalars
# as TensorBoard event files to WORK_DIR/<timestamp>/vis_data/; needs
# `pip install tensorboard` (the package's `tensorboard` extra).
visualizer = dict(type='YOLOVisualizer',
                  vis_backends=[dict(type='LocalVisBackend')],
                  tensorboard=False)
randomness = dict(seed=0)
load_from = None
resume = False
