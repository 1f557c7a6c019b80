"""Beyond classification: detection and segmentation, pruned and fine-tuned like the classifiers.

- `scenes`: scene data sets (images with boxes and masks): readers of Pascal VOC, COCO and mask
  folders, tiles, fixed splits, and the shipped sets (`digits-canvas`, `deepforest-trees`, `stardist-nuclei`).
- `metrics`: COCO-style mean average precision, and mean IoU.
- `networks`: the detector (Faster R-CNN) and the segmenter (SegNet), each with the part that is pruned.
- `training`: training, scoring and frames per second of either.
- `runs`: their runs in the run store (`SceneTrainConfig`, `ScenePruneConfig`, `run_scene_prune`).
- `views`: what the dashboard's Detection & segmentation page shows, and its background work.
"""

from plasticity.lazy import lazy_attributes

_EXPORTS = {
    "SceneBase": "plasticity.tasks.runs",
    "ScenePruneConfig": "plasticity.tasks.runs",
    "SceneTrainConfig": "plasticity.tasks.runs",
    "Scenes": "plasticity.tasks.scenes",
    "get_scene_base": "plasticity.tasks.runs",
    "list_networks": "plasticity.tasks.networks",
    "list_scene_datasets": "plasticity.tasks.scenes",
    "load_scenes": "plasticity.tasks.scenes",
    "mean_average_precision": "plasticity.tasks.metrics",
    "mean_iou": "plasticity.tasks.metrics",
    "prune_network": "plasticity.tasks.runs",
    "run_scene_prune": "plasticity.tasks.runs",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
