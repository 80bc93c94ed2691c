"""ONNX bundles (``format: onnx``) serve what the same model's torch bundle serves.

A tiny U-Net bundled both ways (the ONNX one by ``tilecast bundle create --format onnx`` from a
training layout) runs through ``runtime.infer``, ``tilecast predict``, the tiled
job and (a 1-channel well-log model) the digitiser, within 1e-4 of each other. A channels-last
graph made outside tilecast goes in through ``tilecast bundle import``. Tampering with the
graph's metadata or bytes is refused.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import rasterio
import torch
import yaml
from click.testing import CliRunner

from rts.rts_support import make_config, smooth_rgb, tiles_for, write_quad_basemap
from support import rgb_draft, stats_bytes, tiny_unet
from support_tamper import rehash_manifest, set_contract
from tilecast.apps.rts.job import RtsJob
from tilecast.apps.welllog.digitise import digitise, predict_scan
from tilecast.bundle import ContractDraft, create_bundle, load_bundle
from tilecast.bundle.contract import Contract, default_steps
from tilecast.bundle.golden import GoldenPair
from tilecast.bundle.onnx_format import OPSET, StagedGroupNorm, stamp
from tilecast.bundle.runtime import infer
from tilecast.cli.main import cli
from tilecast.demo.welllog_scan import generate_scan
from tilecast.errors import BundleError, BundleIntegrityError, ContractError, InputError
from tilecast.io.raster import Georef, write_raster
from tilecast.optional import MissingExtraError

ATOL = 1e-4
REPO = Path(__file__).resolve().parents[2]
WELLLOG_DEMO = REPO / "models" / "welllog-demo"


def run_cli(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    assert np.array_equal(np.isnan(a), np.isnan(b))
    both = ~np.isnan(a)
    return float(np.abs(a[both] - b[both]).max())


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory) -> Path:
    """``make_bundle("export")``'s U-Net, weights and draft as a training layout, bundled by
    ``tilecast bundle create --format onnx``."""
    root = tmp_path_factory.mktemp("onnx")
    net, draft = tiny_unet(), rgb_draft()
    (root / "train").mkdir()
    torch.save(net.state_dict(), root / "train" / "best_model.pth")
    (root / "train" / "normalization_stats.json").write_bytes(stats_bytes())
    config = {
        "model_name": draft.name,
        "model_version": draft.version,
        "architecture": {"name": "unet", "params": net.config},
        "input": draft.input.model_dump(mode="json"),
        "postprocessing": draft.postprocessing.model_dump(mode="json"),
    }
    (root / "train" / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_cli("bundle", "create", root / "train", "--out", root / "b", "--format", "onnx")
    assert result.exit_code == 0, result.output
    return root / "b"


@pytest.fixture(scope="module")
def bundles(make_bundle, onnx_dir) -> dict[str, Path]:
    return {"export": make_bundle("export"), "onnx": onnx_dir}


@pytest.fixture(scope="module")
def pair(bundles):
    """The same tiny U-Net and contract draft as a torch.export and as an ONNX bundle."""
    return load_bundle(bundles["export"]), load_bundle(bundles["onnx"])


def test_the_onnx_bundle_declares_and_stamps_its_contract(pair):
    torch_bundle, onnx_bundle = pair
    c = onnx_bundle.contract
    assert (c.model.format, c.model.file) == ("onnx", "model.onnx")
    assert c.model.architecture == "unet"  # what was exported, for the record
    assert c.golden.source == "bundle" and onnx_bundle.golden_max_error <= ATOL
    assert c.baked_steps == ("scale_values", "normalize") == torch_bundle.contract.baked_steps
    graph = onnx.load(Path(onnx_bundle.uri) / "model.onnx")
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["tilecast/contract_digest"] == c.digest()
    assert json.loads(meta["tilecast/baked_steps"]) == ["scale_values", "normalize"]
    assert [o.version for o in graph.opset_import if o.domain == ""] == [OPSET]
    dims = [d.dim_param or d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))


@pytest.mark.parametrize(
    ("shape", "order"), [((3, 20, 20), "RGB"), ((3, 75, 103), "BGR"), ((3, 200, 130), "RGB")]
)
def test_runtime_infer_matches_the_torch_bundle(pair, shape, order):
    """Off-stride sizes (reflect padding, a 1 x 1 bottleneck at 20 px), another channel
    order, NoData: the contract runs on the host the same way, the graph like the program."""
    torch_bundle, onnx_bundle = pair
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(1, 255, size=shape, dtype=np.uint8)
    image[:, :5, :7] = 0
    results = [
        infer(b.contract, b.stats, b.model, image, channel_order=order, nodata=0)
        for b in (torch_bundle, onnx_bundle)
    ]
    assert np.array_equal(results[0].valid, results[1].valid) and not results[0].valid.all()
    assert max_diff(results[0].probabilities, results[1].probabilities) <= ATOL


def test_a_batch_and_a_channels_last_tensor_run_as_the_program_does(pair):
    torch_bundle, onnx_bundle = pair
    x = torch.rand(3, 3, 64, 96) * 255
    expected = torch_bundle.model(x)
    got = onnx_bundle.model(x.contiguous(memory_format=torch.channels_last))
    assert got.shape == expected.shape == (3, 1, 64, 96)
    assert float((got - expected).abs().max()) <= ATOL
    with pytest.raises(
        InputError, match=r"multiples of 32 \(the contract's alignment\), got 48 x 64"
    ):
        onnx_bundle.model(torch.zeros(1, 3, 48, 64))


def test_tilecast_predict_writes_the_same_raster(bundles, tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(1, 255, size=(3, 70, 90), dtype=np.uint8)
    image[:, :10, :] = 0
    georef = Georef(crs="EPSG:3413", transform=rasterio.Affine(3, 0, -2e6, 0, -3, -5e5))
    write_raster(tmp_path / "scene.tif", image, georef=georef, nodata=0)
    outputs = []
    for fmt in ("export", "onnx"):
        result = run_cli("predict", bundles[fmt], tmp_path / "scene.tif", tmp_path / f"{fmt}.tif")
        assert result.exit_code == 0, result.output
        with rasterio.open(tmp_path / f"{fmt}.tif") as src:
            outputs.append(src.read(1))
    torch_out, onnx_out = outputs
    assert np.array_equal(torch_out == -1, onnx_out == -1) and (onnx_out[:10] == -1).all()
    assert float(np.abs(torch_out - onnx_out).max()) <= ATOL


def test_the_tiled_job_writes_the_same_tiles(bundles, tmp_path):
    image = smooth_rgb(11, 200, 230)
    image[:, 150:, :60] = 0  # a NoData corner
    basemap = write_quad_basemap(tmp_path / "basemap", image, quad=128)
    tiles = tiles_for(image, tile_size=64, stride=32)
    read = {}
    for fmt in ("export", "onnx"):
        out = tmp_path / fmt
        config = make_config(bundle=bundles[fmt], basemap=basemap, out=out)  # 2 scales, TTA
        result = RtsJob(config, tiles).run()
        assert result.n_committed > 0.8 * len(tiles)
        read[fmt] = {}
        for path in sorted((out / "tiles").glob("*.tif")):
            with rasterio.open(path) as src:
                read[fmt][path.stem] = src.read()
    assert read["export"].keys() == read["onnx"].keys()
    worst = 0.0
    for tile_id, expected in read["export"].items():
        got = read["onnx"][tile_id]
        assert np.array_equal(expected[0] == -1, got[0] == -1), tile_id
        worst = max(worst, float(np.abs(expected[0] - got[0]).max()))
    assert worst <= ATOL


def test_the_welllog_digitiser_reads_the_same_curves_from_an_onnx_bundle(tmp_path):
    """The shipped, trained well-log model as ONNX: it reproduces the training code's golden
    pairs at create time, and digitises a scan as the shipped bundle does."""
    shipped = load_bundle(WELLLOG_DEMO)
    c = shipped.contract
    net = shipped_network(c)
    draft = ContractDraft(
        name=c.name,
        version=c.version,
        input=c.input,
        sentinels=c.sentinels,
        preprocessing=c.preprocessing,
        pad_mode=c.alignment.pad_mode,
        postprocessing=c.postprocessing,
        golden_atol=c.golden.atol,
    )
    golden = [
        GoldenPair.from_bytes(
            name, (WELLLOG_DEMO / "golden" / name).read_bytes(), default_order="L"
        )
        for name in c.golden.files
    ]
    converted = create_bundle(
        net,
        draft,
        stats_bytes=(WELLLOG_DEMO / "normalization_stats.json").read_bytes(),
        out=tmp_path / "welllog-onnx",
        model_format="onnx",
        architecture=c.model.architecture,
        training_golden=golden,
    )
    assert converted.contract.golden.source == "training"
    assert converted.golden_max_error <= ATOL
    scan = generate_scan(31, width=420, height=150, missing=True)
    expected = predict_scan(shipped, scan.image)
    got = predict_scan(converted, scan.image)
    assert np.array_equal(expected.valid, got.valid) and not got.valid.all()
    assert max_diff(expected.probabilities, got.probabilities) <= ATOL
    a, b = (digitise(bundle, scan.image, scan.record) for bundle in (shipped, converted))
    assert a.counts == b.counts
    for name in a.values:
        assert np.allclose(a.values[name], b.values[name], equal_nan=True, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 32, 24, 40), (3, 32, 50)])
@pytest.mark.parametrize("affine", [True, False])
def test_the_exported_group_norm_is_group_norm(shape, affine):
    """What ``export_onnx`` puts in GroupNorm's place (its sums staged for onnxruntime)."""
    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(4, 32, affine=affine)
    if affine:
        torch.nn.init.normal_(norm.weight)
        torch.nn.init.normal_(norm.bias)
    x = torch.randn(shape) * 3 + 5
    with torch.no_grad():
        assert float((StagedGroupNorm(norm)(x) - norm(x)).abs().max()) <= 1e-5


def shipped_network(contract: Contract) -> torch.nn.Module:
    """The shipped well-log network, its weights read out of the exported program."""
    from tilecast.models import build_model

    program = torch.export.load(WELLLOG_DEMO / "model.pt2")
    net = build_model(contract.model.architecture, contract.model.params)
    weights = {
        k.removeprefix("net."): v for k, v in program.state_dict.items() if k.startswith("net.")
    }
    net.load_state_dict(weights)
    return net.eval()


# -- a graph made elsewhere: bundle import --------------------------------------------------


class ChannelsLast(torch.nn.Module):
    """What a Keras model looks like from outside: (N, H, W, C) in, (N, H, W, K) out."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


@pytest.fixture(scope="module")
def channels_last_graph(tmp_path_factory) -> Path:
    """The tiny U-Net taking normalised NHWC input, exported by plain torch.onnx (no tilecast)."""
    from torch.export import Dim

    root = tmp_path_factory.mktemp("elsewhere")
    net = ChannelsLast(tiny_unet()).eval()
    dims = {0: Dim("batch", min=1, max=64), 1: 32 * Dim("h", min=1), 2: 32 * Dim("w", min=1)}
    with torch.no_grad():
        program = torch.onnx.export(
            net, (torch.zeros(2, 64, 64, 3),), dynamo=True, dynamic_shapes=(dims,)
        )
    program.save(root / "seg.onnx", external_data=False)
    (root / "stats.json").write_bytes(stats_bytes())
    draft = rgb_draft(alignment_multiple=32).model_dump(mode="json", exclude={"preprocessing"})
    (root / "draft.yaml").write_text(yaml.safe_dump(draft))
    return root


def test_bundle_import_reads_the_layout_and_serves_like_the_torch_bundle(
    channels_last_graph, make_bundle, tmp_path
):
    src = channels_last_graph
    result = run_cli(
        "bundle", "import", src / "seg.onnx", "--draft", src / "draft.yaml",
        "--stats", src / "stats.json", "--out", tmp_path / "imported",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "model.onnx, NHWC" in result.output and "from bundle" in result.output
    imported = load_bundle(tmp_path / "imported")
    c = imported.contract
    assert c.model.params == {"layout": "NHWC"} and c.alignment.multiple == 32
    # no `preprocessing` in the draft: nothing is assumed to be in the graph
    assert c.baked_steps == () and c.host_steps == tuple(s.op for s in default_steps())
    host_only = load_bundle(make_bundle("export", baked=()))
    image = np.random.default_rng(4).integers(1, 255, size=(3, 75, 103), dtype=np.uint8)
    expected, got = (
        infer(b.contract, b.stats, b.model, image, channel_order="RGB").probabilities
        for b in (host_only, imported)
    )
    assert max_diff(expected, got) <= ATOL


def test_bundle_import_refuses_a_layout_the_graph_contradicts(channels_last_graph, tmp_path):
    src = channels_last_graph
    result = run_cli(
        "bundle", "import", src / "seg.onnx", "--draft", src / "draft.yaml",
        "--stats", src / "stats.json", "--out", tmp_path / "b", "--layout", "NCHW",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "--layout NCHW given" in result.output and "is NHWC for 3 channel(s)" in result.output
    assert not (tmp_path / "b").exists()


def test_bundle_import_needs_the_alignment_in_the_draft(channels_last_graph, tmp_path):
    src = channels_last_graph
    draft = yaml.safe_load((src / "draft.yaml").read_text())
    draft.pop("alignment_multiple")
    (tmp_path / "draft.yaml").write_text(yaml.safe_dump(draft))
    from tilecast.bundle.importer import import_onnx

    with pytest.raises(ContractError, match="set alignment_multiple"):
        import_onnx(
            src / "seg.onnx", draft=tmp_path / "draft.yaml", stats=src / "stats.json",
            out=tmp_path / "b",
        )  # fmt: skip


# -- tampering ------------------------------------------------------------------------------


@pytest.fixture
def onnx_copy(onnx_dir, tmp_path) -> Path:
    dst = tmp_path / "onnx-bundle"
    shutil.copytree(onnx_dir, dst)
    return dst


def set_metadata(bundle: Path, key: str, value: str) -> None:
    graph = onnx.load(bundle / "model.onnx")
    for prop in graph.metadata_props:
        if prop.key == key:
            prop.value = value
    (bundle / "model.onnx").write_bytes(graph.SerializeToString())
    rehash_manifest(bundle)


def test_baked_steps_in_the_metadata_that_differ_from_the_contract_are_refused(onnx_copy):
    set_metadata(onnx_copy, "tilecast/baked_steps", json.dumps(["scale_values"]))
    with pytest.raises(BundleIntegrityError) as err:
        load_bundle(onnx_copy)
    message = str(err.value)
    assert "model.onnx" in message
    assert "bakes in ['scale_values']" in message
    assert "declares model-side steps ['scale_values', 'normalize']" in message


def test_a_graph_stamped_for_another_contract_is_refused(onnx_copy):
    set_metadata(onnx_copy, "tilecast/contract_digest", "0" * 64)
    with pytest.raises(BundleIntegrityError, match=r"records contract digest 0{64}.*hashes to"):
        load_bundle(onnx_copy)


def test_a_changed_byte_in_the_graph_is_refused_by_the_manifest(onnx_copy):
    path = onnx_copy / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match=r"model\.onnx.*sha256"):
        load_bundle(onnx_copy)


def test_a_layout_the_graph_does_not_take_is_refused(onnx_copy):
    """Even re-stamped for the edited contract: the graph's static channel axis says NCHW."""
    set_contract(onnx_copy, "model.params", {"layout": "NHWC"})
    contract = Contract.model_validate_json((onnx_copy / "contract.json").read_text())
    graph = onnx.load(onnx_copy / "model.onnx")
    (onnx_copy / "model.onnx").write_bytes(stamp(graph, contract, where="test"))
    rehash_manifest(onnx_copy)
    with pytest.raises(BundleError, match=r"declares layout NHWC \(N, H, W, C\) with 3 channel"):
        load_bundle(onnx_copy)


def test_without_onnxruntime_loading_says_which_extra_to_install(onnx_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(
        MissingExtraError, match=r"needs onnxruntime.*pip install 'tilecast\[onnx\]'"
    ):
        load_bundle(onnx_dir)
