# Copyright (c) mmmaskdino contributors. Licensed under the Apache License 2.0.
# Class lists of the bundled synthetic shapes dataset
# (tools/misc/make_bundled_dataset.py); the one place configs take them from.
# Order matches the category order of the generated jsons (things first).
thing_classes = ('circle', 'square', 'triangle', 'star', 'ring')
stuff_classes = ('sky', 'grass', 'water')
thing_palette = [(220, 40, 40), (245, 150, 20), (240, 220, 30), (150, 60, 210),
                 (235, 60, 180)]
stuff_palette = [(160, 205, 240), (60, 140, 50), (30, 90, 140)]
num_things_classes = len(thing_classes)
num_stuff_classes = len(stuff_classes)
num_classes = num_things_classes + num_stuff_classes

# Panoptic and semantic datasets: things then stuff.
shapes_metainfo = dict(
    classes=thing_classes + stuff_classes,
    thing_classes=thing_classes,
    stuff_classes=stuff_classes,
    palette=thing_palette + stuff_palette)
# Instance and detection datasets: things only.
shapes_thing_metainfo = dict(classes=thing_classes, palette=thing_palette)
