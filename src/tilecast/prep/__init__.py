"""Pure preprocessing ops: sentinel guard, fill, value scaling, channel order, normalise,
pad/crop, resize.

Everything here is pure: arrays in, arrays out (numpy, or torch where a function says so),
no file or network I/O, no logging, no printing, no global state. The bundle's ordered
preprocessing names these ops; the serving path runs exactly those.
"""

from tilecast.prep.channels import channel_names, channel_permutation, reorder_channels
from tilecast.prep.fill import FillPolicy, fill_invalid
from tilecast.prep.normalize import normalize, valid_statistics
from tilecast.prep.pad import Padding, PadMode, crop_padding, pad_to_multiple, padding_for
from tilecast.prep.resize import Interpolation, resize_bilinear, resize_image
from tilecast.prep.resize_policy import ResizePlan, Size, fixed_size_plan, shorter_side_plan
from tilecast.prep.scaling import ValueScaling, default_input_range, scale_values
from tilecast.prep.sentinels import (
    DEFAULT_SENTINEL_STRINGS,
    DEFAULT_SENTINEL_VALUES,
    GuardResult,
    SentinelPolicy,
    guard_pixels,
    is_sentinel,
    parse_number,
)

__all__ = [
    "DEFAULT_SENTINEL_STRINGS",
    "DEFAULT_SENTINEL_VALUES",
    "FillPolicy",
    "GuardResult",
    "Interpolation",
    "PadMode",
    "Padding",
    "ResizePlan",
    "SentinelPolicy",
    "Size",
    "ValueScaling",
    "channel_names",
    "channel_permutation",
    "crop_padding",
    "default_input_range",
    "fill_invalid",
    "fixed_size_plan",
    "guard_pixels",
    "is_sentinel",
    "normalize",
    "pad_to_multiple",
    "padding_for",
    "parse_number",
    "reorder_channels",
    "resize_bilinear",
    "resize_image",
    "scale_values",
    "shorter_side_plan",
    "valid_statistics",
]
