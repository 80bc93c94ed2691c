"""Which bands of a raster are data, which band is alpha, and which pixels are valid: GDAL's view.

GDAL's dataset mask (rasterio's ``dataset_mask()``) is the reference. Its rules, in their
order of precedence, are the only validity rules tilecast's readers apply:

1. ``"mask"``: an internal per-dataset mask (a TIFF mask band or a ``.msk`` side-car): a pixel
   is valid where the mask is non-zero;
2. ``"alpha"``: an alpha band (colour interpretation *alpha*, or the ``A`` of an explicit
   channel order such as ``RGBA``): valid where alpha is non-zero. The alpha band says which
   pixels are valid and is never a data channel: an RGBA raster feeds a 3-channel RGB model;
3. ``"nodata"``: per-band NoData: a pixel is invalid only when *every* band holds NoData, so a
   dark pixel with one band at 0 (water, shadow) is data;
4. ``"none"``: every pixel is valid.

NaN, infinities and sentinel values (-999 ...) are not the reader's business: the contract's
``guard_sentinels`` step finds them in any band.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import RasterioError
from rasterio.windows import Window as RioWindow

from tilecast.errors import InputError, StorageError
from tilecast.prep.channels import channel_names
from tilecast.prep.sentinels import nodata_hits

MaskKind = Literal["mask", "alpha", "nodata", "none"]

ALPHA = "A"  # the letter that names the alpha band in a source channel order

#: What each rule means, for logs and messages.
MASK_DESCRIPTIONS: dict[str, str] = {
    "mask": "its internal mask",
    "alpha": "its alpha band",
    "nodata": "NoData in every band",
    "none": "none (every pixel valid)",
}

INTERP_LETTERS = {
    ColorInterp.red: "R",
    ColorInterp.green: "G",
    ColorInterp.blue: "B",
    ColorInterp.gray: "L",
}


def channel_order_of(interp: Sequence[ColorInterp]) -> str | None:
    """'RGB', 'BGR', 'L' ... when every band's colour interpretation is known, else None."""
    letters = [INTERP_LETTERS.get(ci) for ci in interp]
    if not letters or any(letter is None for letter in letters):
        return None
    order = "".join(letters)  # type: ignore[arg-type]
    if len(interp) > 1 and "L" in order:
        return None
    return order


def split_alpha(order: str) -> tuple[str, int | None]:
    """``("RGB", 3)`` for ``"RGBA"``: the data channels' order and the alpha band's position."""
    names = channel_names(order)
    if ALPHA not in names:
        return order, None
    data = [n for n in names if n != ALPHA]
    if not data:
        raise InputError(f"channel order {order!r} names only an alpha band, no data channel")
    return "".join(data), names.index(ALPHA)


@dataclass(frozen=True)
class BandLayout:
    """The roles of a raster's bands and the mask rule that applies to it."""

    data_bands: tuple[int, ...]  # 1-based indexes of the data channels, in file order
    alpha_band: int | None  # 1-based index of the alpha band, if any
    mask: MaskKind
    channel_order: str | None  # of the data bands: asked for, or their colour interpretation
    interp: tuple[str, ...]  # colour interpretation of every band, for messages

    @property
    def n_bands(self) -> int:
        return len(self.interp)

    def describe(self) -> str:
        """``4 bands (red, green, blue, alpha)``."""
        return f"{self.n_bands} band{'s' if self.n_bands != 1 else ''} ({', '.join(self.interp)})"


def band_layout(src: Any, *, channel_order: str | None = None, where: str) -> BandLayout:
    """The :class:`BandLayout` of an open rasterio dataset.

    ``channel_order`` (e.g. ``RGBA``, ``BGR``), when given, names every band of the file in
    order, ``A`` for the alpha band; otherwise the bands' colour interpretation decides. An
    order whose length differs from the band count is an :class:`InputError` naming ``where``.
    """
    interp = tuple(src.colorinterp)
    names = tuple(ci.name for ci in interp)
    if channel_order:
        data_order, alpha_pos = split_alpha(channel_order)
        if len(channel_names(channel_order)) != len(interp) and channel_order.upper() not in (
            "L",
            "GRAY",
        ):
            hint = (
                f"; name the alpha band too ({data_order}A)"
                if ColorInterp.alpha in interp and alpha_pos is None
                else ""
            )
            raise InputError(
                f"{where}: channel order {channel_order!r} names "
                f"{len(channel_names(channel_order))} band(s), the raster has "
                f"{len(interp)} band(s) ({', '.join(names)}){hint}"
            )
        alpha = None if alpha_pos is None else alpha_pos + 1
    else:
        alphas = [i + 1 for i, ci in enumerate(interp) if ci == ColorInterp.alpha]
        if len(alphas) > 1:
            raise InputError(f"{where}: {len(alphas)} bands are tagged alpha, expected one")
        alpha = alphas[0] if alphas else None
        data_order = None
    data = tuple(i + 1 for i in range(len(interp)) if i + 1 != alpha)
    if not data:
        raise InputError(f"{where}: the raster has no data band besides its alpha band")
    if data_order is None:
        data_order = channel_order_of([interp[i - 1] for i in data])
    return BandLayout(
        data_bands=data,
        alpha_band=alpha,
        mask=_mask_kind(src, alpha),
        channel_order=data_order,
        interp=names,
    )


def _mask_kind(src: Any, alpha: int | None) -> MaskKind:
    """GDAL's precedence: per-dataset mask, then alpha, then NoData, then none."""
    flags = set(src.mask_flag_enums[0]) if src.count else set()
    if MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags:
        return "mask"
    if alpha is not None:
        return "alpha"
    if src.nodata is not None:
        return "nodata"
    return "none"


def nodata_valid(data: np.ndarray, nodata: float | None) -> np.ndarray:
    """GDAL's per-band NoData rule on ``(C, H, W)`` data: valid unless every band is NoData."""
    if nodata is None:
        return np.ones(data.shape[-2:], dtype=bool)
    return ~nodata_hits(data, float(nodata))


def gdal_error_text(exc: BaseException) -> str:
    """The GDAL messages behind a rasterio error, innermost detail last, in one line.

    rasterio raises ``Read failed. See previous exception for details.`` and chains GDAL's own
    messages as causes; those say what failed (which block, how many bytes).
    """
    parts: list[str] = []
    seen = exc
    while seen is not None:
        text = " ".join(str(seen).split())
        generic = text.startswith("Read failed. See previous exception")
        if text and not generic and not any(text in p for p in parts):
            parts.append(text)
        seen = seen.__cause__ or (seen.__context__ if not seen.__suppress_context__ else None)
    return "; ".join(parts) or type(exc).__name__


def read_window(
    src: Any,
    layout: BandLayout,
    *,
    nodata: float | None,
    window: RioWindow | None = None,
    where: str,
) -> tuple[np.ndarray, np.ndarray]:
    """``(data (C, h, w), valid (h, w))`` of a window (None: the whole raster), GDAL's mask rule.

    A decode failure is a :class:`StorageError` naming ``where``, the window (width x height
    at column, row) and GDAL's own message.
    """
    indexes = list(layout.data_bands)
    if layout.mask == "alpha":
        assert layout.alpha_band is not None
        indexes.append(layout.alpha_band)
    try:
        pixels = src.read(indexes=indexes, window=window)
        gdal_mask = src.dataset_mask(window=window) if layout.mask == "mask" else None
    except RasterioError as exc:
        raise StorageError(
            f"{where}: block decode failed {describe_window(window, src)} ({gdal_error_text(exc)})"
        ) from exc
    if layout.mask == "alpha":
        data, valid = pixels[:-1], pixels[-1] != 0
    elif layout.mask == "mask":
        assert gdal_mask is not None
        data, valid = pixels, gdal_mask != 0
    elif layout.mask == "nodata":
        data, valid = pixels, nodata_valid(pixels, nodata)
    else:
        data, valid = pixels, np.ones(pixels.shape[-2:], dtype=bool)
    return data, valid


def describe_window(window: RioWindow | None, src: Any) -> str:
    """``at cols 0:256, rows 256:384 (256 x 128 px)``: where a read failed, width first."""
    if window is None:
        return f"reading the whole raster ({src.width} x {src.height} px)"
    col, row = int(window.col_off), int(window.row_off)
    w, h = int(window.width), int(window.height)
    return f"at cols {col}:{col + w}, rows {row}:{row + h} ({w} x {h} px)"
