# Short schedule for a CPU: AdamW (what ultralytics picks for short runs),
# linear warm-up over the first iterations, cosine decay per epoch.
max_epochs = 8
base_lr = 0.002
warmup_iters = 100

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs,
                 val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    # fused: one kernel for all parameters (PyTorch >= 2.4, CPU and CUDA),
    # about 4x faster steps than the per-tensor loop on this CPU
    optimizer=dict(type='AdamW', lr=base_lr, betas=(0.937, 0.999),
                   weight_decay=0.0005, fused=True),
    # no weight decay on BatchNorm and biases, as the references
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=10.0))

param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05, by_epoch=True,
         begin=0, end=max_epochs, T_max=max_epochs, convert_to_iter_based=True),
]
