"""Synthetic demo data: PlanetScope-like thaw-slump scenes, their files, and scoring."""

from tilecast.demo.metrics import ObjectScores, label_components, object_scores, pixel_iou
from tilecast.demo.scene import SyntheticScene, generate_scene

__all__ = [
    "ObjectScores",
    "SyntheticScene",
    "generate_scene",
    "label_components",
    "object_scores",
    "pixel_iou",
]
