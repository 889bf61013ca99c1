# Longer GPU schedule: SGD with Nesterov momentum 0.937, weight decay 5e-4,
# warm-up then cosine decay to 1 % (the YOLOv5/v8 recipe's shape).
max_epochs = 100
base_lr = 0.01
warmup_iters = 1000

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs,
                 val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=base_lr, momentum=0.937, nesterov=True,
                   weight_decay=0.0005),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=10.0))

param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.01, by_epoch=True,
         begin=0, end=max_epochs, T_max=max_epochs, convert_to_iter_based=True),
]
