"""The untiled reference path: one image in, the bundle's exact contract, one raster out.

This is the path the tiled job is compared against: no batching, no tiling, no TTA.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tilecast.bundle import Bundle
from tilecast.bundle.runtime import Inference, Prepared, infer, prepare
from tilecast.drift import DriftMode, DriftMonitor, DriftVerdict
from tilecast.errors import ContractError
from tilecast.io.bands import split_alpha
from tilecast.io.raster import RasterImage, read_raster, write_raster

log = logging.getLogger(__name__)

PROBABILITY_NODATA = -1.0


@dataclass(frozen=True)
class ConfidenceSummary:
    n_valid: int
    n_invalid: int
    min: float
    mean: float
    max: float
    fraction_above_threshold: float
    threshold: float


@dataclass(frozen=True)
class PredictResult:
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    channel_order: str
    mask: str  # GDAL's rule that said which input pixels are valid (tilecast.io.bands)
    sentinel_counts: Mapping[str, int]
    confidence: ConfidenceSummary
    input_drift: DriftVerdict


def positive_probability(bundle: Bundle, result: Inference) -> np.ndarray:
    """(H, W) probability of the class the threshold applies to."""
    return result.probabilities[bundle.contract.postprocessing.positive_index]


def summarise(bundle: Bundle, result: Inference) -> ConfidenceSummary:
    prob = positive_probability(bundle, result)[result.valid]
    threshold = bundle.threshold
    if prob.size == 0:
        return ConfidenceSummary(0, int(result.valid.size), np.nan, np.nan, np.nan, 0.0, threshold)
    return ConfidenceSummary(
        n_valid=int(prob.size),
        n_invalid=int(result.valid.size - prob.size),
        min=float(prob.min()),
        mean=float(prob.mean()),
        max=float(prob.max()),
        fraction_above_threshold=float((prob >= threshold).mean()),
        threshold=threshold,
    )


def resolve_channel_order(image: RasterImage, requested: str | None, *, default: str) -> str:
    """The data channels' order: asked for (an alpha ``A`` in it names the mask band, not a
    channel), else read from the file, else the count's usual one."""
    if requested:
        return split_alpha(requested)[0]
    if image.channel_order:
        return image.channel_order
    fallback = {1: "L", 3: "RGB"}.get(image.array.shape[0], default)
    log.warning(
        "%s: band colour interpretation does not name the channel order; assuming %s "
        "(pass channel_order to say otherwise)",
        image.uri,
        fallback,
    )
    return fallback


def prepare_raster(
    bundle: Bundle, image: RasterImage, *, channel_order: str | None
) -> tuple[str, Prepared]:
    """(the image's channel order, the image through the contract's host steps), with the
    reader's NoData and validity mask: what ``classify`` and the service run on each image."""
    order = resolve_channel_order(image, channel_order, default=bundle.contract.input.channel_order)
    prepared = prepare(
        bundle.contract,
        bundle.stats,
        image.array,
        channel_order=order,
        nodata=image.nodata,
        valid=image.valid,
    )
    return order, prepared


def probability_tags(
    bundle: Bundle,
    *,
    sentinel_counts: Mapping[str, int],
    channel_order: str,
    drift: DriftVerdict | None,
) -> dict[str, object]:
    """The tags of a probability GeoTIFF (``predict`` and the service write the same file)."""
    contract = bundle.contract
    tags: dict[str, object] = {
        "tilecast_model": f"{contract.name} {contract.version}",
        "tilecast_bundle_digest": bundle.digest,
        "tilecast_normalization_stats_md5": bundle.stats_md5,
        "tilecast_threshold": contract.postprocessing.threshold,
        "tilecast_sentinel_counts": dict(sentinel_counts),
        "tilecast_source_channel_order": channel_order,
    }
    if drift is not None:
        tags["tilecast_input_drift"] = drift.summary()
    return tags


def predict_image_file(
    bundle: Bundle,
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    channel_order: str | None = None,
    input_drift: DriftMode = "warn",
) -> PredictResult:
    """Predict one raster untiled and write the probabilities with the input's georeferencing.

    Pixels where the input has no valid value are NoData (-1) in the output: GDAL's dataset
    mask (the internal mask, else the alpha band, else NoData in every band) and the
    contract's sentinels. ``channel_order`` names every band of the file (``RGBA``: band 4 is
    the alpha band, a mask rather than a channel). The valid pixels' statistics are judged
    against the training statistics (:mod:`tilecast.drift`): a flag is logged and tagged on the
    output (``input_drift="warn"``) or raises :class:`InputDriftError` before anything is
    written.
    """
    if bundle.contract.task != "segmentation":
        raise ContractError(
            f"{bundle.uri}: a {bundle.contract.task} bundle; predict writes a probability "
            "raster for segmentation bundles (classify: tilecast classify)"
        )
    image = read_raster(source, channel_order=channel_order)
    order = resolve_channel_order(image, channel_order, default=bundle.contract.input.channel_order)
    contract = bundle.contract
    result = infer(
        contract,
        bundle.stats,
        bundle.model,
        image.array,
        channel_order=order,
        nodata=image.nodata,
        valid=image.valid,
    )
    drift = DriftMonitor.for_bundle(bundle, mode=input_drift)
    drift.observe(image.array, result.valid, channel_order=order)
    verdict = drift.enforce(os.fspath(source))
    out = result.probabilities.copy()
    out[:, ~result.valid] = PROBABILITY_NODATA
    labels = list(contract.postprocessing.labels)
    descriptions = labels[-out.shape[0] :] if len(labels) >= out.shape[0] else None
    summary = summarise(bundle, result)
    write_raster(
        destination,
        out,
        georef=image.georef,
        nodata=PROBABILITY_NODATA,
        band_descriptions=descriptions,
        tags=probability_tags(
            bundle, sentinel_counts=result.sentinel_counts, channel_order=order, drift=verdict
        ),
    )
    log.info(
        "input %s %s (%s) -> output %s", os.fspath(source), image.array.shape, order, out.shape
    )
    log.info(
        "confidence: valid %d, invalid %d, min %.3f mean %.3f max %.3f, %.2f%% >= %.2f",
        summary.n_valid,
        summary.n_invalid,
        summary.min,
        summary.mean,
        summary.max,
        100 * summary.fraction_above_threshold,
        summary.threshold,
    )
    return PredictResult(
        input_shape=tuple(image.array.shape),
        output_shape=tuple(out.shape),
        channel_order=order,
        mask=image.mask,
        sentinel_counts=dict(result.sentinel_counts),
        confidence=summary,
        input_drift=verdict,
    )
