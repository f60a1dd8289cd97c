# Mask DINO R50 trained on boxes only (no mask annotations): the mask terms of
# the loss are skipped for images without masks; box AP is evaluated.
_base_ = './maskdino_r50_4xb4-lsj-50e_coco.py'

train_pipeline = {{_base_.box_train_pipeline}}
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_evaluator = dict(metric='bbox')
test_evaluator = val_evaluator
