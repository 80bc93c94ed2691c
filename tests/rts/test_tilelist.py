"""The tile-list CSV: exact errors with line numbers, and an exact round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tilecast.apps.rts.tilelist import TileListError, format_tile_list, parse_tile_list
from tilecast.errors import InputError
from tilecast.grid import NAME_PATTERN, Tile

GOOD = """\
# shard 3 of 40
tile_id,minx,miny,maxx,maxy,region

r0000012_c0000034,-2379648.0,-311520.0,-2378112.0,-309984.0,alaska
# a comment between rows
r0000012_c0000035,-2378880.0,-311520.0,-2377344.0,-309984.0,
"""


def test_parse_keeps_order_and_optional_region() -> None:
    tiles = parse_tile_list(GOOD)
    assert tiles == [
        Tile("r0000012_c0000034", -2379648.0, -311520.0, -2378112.0, -309984.0, "alaska"),
        Tile("r0000012_c0000035", -2378880.0, -311520.0, -2377344.0, -309984.0, None),
    ]
    reordered = "maxy,tile_id,minx,miny,maxx\n2,b,0,1,1\n2,a,0,1,1\n"
    assert [t.tile_id for t in parse_tile_list(reordered)] == ["b", "a"]


def test_bom_crlf_spaces_and_quotes() -> None:
    text = '\ufefftile_id, minx ,miny,maxx,maxy\r\n "t1", 0 ,1e3, 5.5 ,2000\r\n'
    assert parse_tile_list(text) == [Tile("t1", 0.0, 1000.0, 5.5, 2000.0)]


def error(text: str) -> str:
    with pytest.raises(TileListError) as info:
        parse_tile_list(text, source="gs://b/tiles.csv")
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)
    return str(info.value)


HEADER = "# comment\ntile_id,minx,miny,maxx,maxy\n"  # header on line 2, data from line 3


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            "t1,0,0,1,1\n\nt2,0,0,1\n",
            "gs://b/tiles.csv line 5: expected 5 fields (tile_id,minx,miny,maxx,maxy), found 4",
        ),
        ("t1,0,0,1,1,9\n", "gs://b/tiles.csv line 3: expected 5 fields"),
        ('t1,0,0,1,1\n"t2,0,0,1,1\n', "gs://b/tiles.csv line 4: malformed line"),
        ("t1,abc,0,1,1\n", "gs://b/tiles.csv line 3: minx 'abc' is not a number"),
        ("t1,0,0,1,nan\n", "gs://b/tiles.csv line 3: maxy 'nan' is not finite"),
        ("t1,0,0,inf,1\n", "gs://b/tiles.csv line 3: maxx 'inf' is not finite"),
        ("t1,0,0,1,1\nt2,5,0,5,1\n", "gs://b/tiles.csv line 4: tile t2: minx 5.0 >= maxx 5.0"),
        ("t1,0,2,1,1\n", "gs://b/tiles.csv line 3: tile t1: miny 2.0 >= maxy 1.0"),
        (
            "t1,0,0,1,1\n#\nt2,0,0,1,1\n  t1 ,0,0,2,2\n",
            "gs://b/tiles.csv line 6: duplicate tile_id 't1' (first on line 3)",
        ),
        (",0,0,1,1\n", "gs://b/tiles.csv line 3: empty tile_id"),
        ("a/../b,0,0,1,1\n", "gs://b/tiles.csv line 3: tile_id 'a/../b' is not allowed"),
        ("", "gs://b/tiles.csv has no tiles"),
        ("# only comments\n\n", "gs://b/tiles.csv has no tiles"),
    ],
)
def test_errors_name_source_and_line(rows: str, expected: str) -> None:
    assert error(HEADER + rows).startswith(expected)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("tile_id,minx,miny,maxx,maxy,score,notes", "unknown columns ['score', 'notes']"),
        ("tile_id,minx,miny,maxx", "missing columns ['maxy']"),
        ("tile_id,minx,miny,maxx,maxy,minx", "repeated columns ['minx']"),
        ("t1,0,0,1,1", "missing columns ['tile_id', 'minx', 'miny', 'maxx', 'maxy']"),
    ],
)
def test_header_errors(header: str, expected: str) -> None:
    message = error(f"\n{header}\nt1,0,0,1,1\n")
    assert message.startswith("gs://b/tiles.csv line 2: bad header")
    assert expected in message


def test_empty_text() -> None:
    assert error("") == (
        "gs://b/tiles.csv is empty: expected a header line tile_id,minx,miny,maxx,maxy[,region]"
    )
    assert error("# nothing\n").startswith("gs://b/tiles.csv is empty")


def test_bad_region() -> None:
    text = "tile_id,minx,miny,maxx,maxy,region\nt1,0,0,1,1,north slope\n"
    assert error(text).startswith(
        "gs://b/tiles.csv line 2: tile t1: region 'north slope' is not allowed"
    )


def test_default_source_name() -> None:
    with pytest.raises(TileListError, match=r"^<tile list> has no tiles"):
        parse_tile_list("tile_id,minx,miny,maxx,maxy\n")


def test_format_writes_region_column_only_when_needed() -> None:
    plain = [Tile("a", 0.1, 0.2, 0.30000000000000004, 1e300)]
    assert (
        format_tile_list(plain)
        == "tile_id,minx,miny,maxx,maxy\na,0.1,0.2,0.30000000000000004,1e+300\n"
    )
    mixed = [*plain, Tile("b", 0, 0, 1, 1, "yamal")]
    assert format_tile_list(mixed).splitlines() == [
        "tile_id,minx,miny,maxx,maxy,region",
        "a,0.1,0.2,0.30000000000000004,1e+300,",
        "b,0.0,0.0,1.0,1.0,yamal",
    ]
    with pytest.raises(TileListError, match="duplicate tile_id 'a'"):
        format_tile_list([plain[0], plain[0]])


coordinate = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def tiles(draw: st.DrawFn) -> Tile:
    xs = sorted(draw(st.lists(coordinate, min_size=2, max_size=2, unique=True)))
    ys = sorted(draw(st.lists(coordinate, min_size=2, max_size=2, unique=True)))
    tile_id = draw(st.from_regex(NAME_PATTERN, fullmatch=True))
    region = draw(st.none() | st.from_regex(NAME_PATTERN, fullmatch=True))
    return Tile(tile_id, xs[0], ys[0], xs[1], ys[1], region)


@given(st.lists(tiles(), min_size=1, max_size=20, unique_by=lambda t: t.tile_id))
def test_round_trip(listed: list[Tile]) -> None:
    back = parse_tile_list(format_tile_list(listed))
    assert back == listed
    assert all(
        (a.minx, a.miny, a.maxx, a.maxy) == (b.minx, b.miny, b.maxx, b.maxy)
        for a, b in zip(back, listed, strict=True)
    )
