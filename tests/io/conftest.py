"""Session fixtures of tests/io: the synthetic basemaps of ``basemap_scenes``."""

from basemap_scenes import file_scene, quad_scene, vrt_scene

__all__ = ["file_scene", "quad_scene", "vrt_scene"]
