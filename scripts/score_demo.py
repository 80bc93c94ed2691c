"""Score predictions against the synthetic ground truth.

    python scripts/score_demo.py --vectors demo_out/inference/vectors/rts_predictions.gpkg \
        --truth demo_out/truth.gpkg
    python scripts/score_demo.py --bundle models/rts-demo --prediction demo_out/prediction.tif \
        --truth demo_out/truth.gpkg

With --vectors: per-object precision and recall of the polygons (a predicted polygon matches a
true one at area IoU >= 0.5, one to one). With --prediction: the raster is thresholded with the
bundle's calibrated threshold; pixel IoU and per-object scores of 8-connected components.
NoData pixels are ignored.
"""

from __future__ import annotations

import argparse
import json

import rasterio
from rasterio.features import rasterize

from tilecast.demo.metrics import object_scores, pixel_iou, polygon_scores
from tilecast.io.vector import read_polygons


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--truth", required=True)
    parser.add_argument("--vectors", help="polygons to score (GeoPackage)")
    parser.add_argument("--bundle", help="with --prediction: the bundle whose threshold to use")
    parser.add_argument("--prediction", help="probability raster to score")
    parser.add_argument("--threshold", type=float, default=None, help="default: the bundle's")
    args = parser.parse_args()
    truth_polygons = read_polygons(args.truth)
    if args.vectors:
        pred = read_polygons(args.vectors)
        s = polygon_scores(list(pred.geometry), list(truth_polygons.geometry), iou_threshold=0.5)
        print(
            f"polygons   precision {s.precision:.3f}  recall {s.recall:.3f}  "
            f"({s.n_matched} matched of {s.n_pred} predicted, {s.n_truth} true; IoU >= 0.5)"
        )
        return
    if not (args.prediction and args.bundle):
        parser.error("give --vectors, or --prediction with --bundle")
    with open(f"{args.bundle}/contract.json") as fh:
        threshold = args.threshold or json.load(fh)["postprocessing"]["threshold"]
    with rasterio.open(args.prediction) as src:
        prob = src.read(1)
        nodata = prob == src.nodata
        shape, transform = src.shape, src.transform
    truth = rasterize(
        ((g, 1) for g in truth_polygons.geometry),
        out_shape=shape,
        transform=transform,
        dtype="uint8",
    ).astype(bool)
    pred = (prob >= threshold) & ~nodata
    scores = object_scores(pred, truth, iou_threshold=0.5, ignore=nodata)
    print(
        f"threshold  {threshold:.3f} (bundle calibrated)"
        if args.threshold is None
        else f"threshold  {threshold:.3f}"
    )
    print(f"pixel IoU  {pixel_iou(pred, truth, ignore=nodata):.3f}")
    print(
        f"objects    precision {scores.precision:.3f}  recall {scores.recall:.3f}  "
        f"({scores.n_matched} matched of {scores.n_pred} predicted, {scores.n_truth} true; IoU >= 0.5)"
    )


if __name__ == "__main__":
    main()
