"""Many machines on Ray: ``tilecast rts launch``.

The tile list is split into compact chunks (:func:`tilecast.apps.rts.split.split_tiles`); each
chunk runs as one Ray task that is the ordinary job with ``--shard`` (:class:`RtsJob`, its own
run log ``logs/inference_log.<shard>.json`` and lease), with the resources asked for (GPUs, CPUs,
custom resources). A task whose worker or node dies is retried by Ray; the shard's run log makes
the retry resume (committed tiles are skipped), and a lease the dead worker left is taken over
(at once on the same host, else when it expires: the shards hold short leases). The driver shows
one progress line over all shards, read from their run logs, then runs the products as Ray tasks
(each region cut into bands of rows merged and polygonised by separate tasks, its COGs assembled
one task per layer; then the polygons joined and measured; then the report) and writes
``_SUCCESS`` only when every shard is complete.

The driver's storage and tilecast settings (``TILECAST_*``, ``AWS_*``, ``GOOGLE_*``, GDAL's
endpoint variables, ``STORAGE_EMULATOR_HOST``) are passed to the tasks, so a cluster reaches the
same buckets the same way. Ray is the optional ``ray`` extra, imported here only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tilecast.apps.rts.config import RtsConfig
from tilecast.apps.rts.split import split_tiles
from tilecast.grid import Tile
from tilecast.grid.windows import as_positive_int
from tilecast.io import storage
from tilecast.optional import import_optional
from tilecast.run.lease import LeaseHeldError, LeaseRecord, lease_uri_for
from tilecast.run.progress import ProgressCallback, ProgressEvent, no_progress
from tilecast.run.runlogs import Completeness, read_completeness
from tilecast.run.success import clear_success, write_success

log = logging.getLogger(__name__)

#: Environment variables the tasks inherit from the driver (by prefix or exact name).
FORWARDED_PREFIXES = ("TILECAST_", "AWS_", "GOOGLE_", "GCSFS_", "GDAL_", "CPL_", "GS_", "VSI_")
FORWARDED_NAMES = ("STORAGE_EMULATOR_HOST",)

#: Lease lifetime of a shard task: a worker lost with its node frees its shard this fast.
SHARD_LEASE_TTL_S = 60.0


@dataclass(frozen=True)
class LaunchSettings:
    shards: int
    address: str | None = None  # None: start a local Ray here; "auto" or ray://...: join one
    gpus_per_shard: float = 0.0
    cpus_per_shard: float = 1.0
    resources: Mapping[str, float] = field(default_factory=dict)  # custom resources per shard
    max_retries: int = 3  # per shard, for workers or nodes that die
    poll_s: float = 2.0
    product_bands: int | None = None  # row bands per region for the products; None: the CPUs


@dataclass(frozen=True)
class LaunchResult:
    output: str
    shards: tuple[str, ...]
    tiles_per_shard: tuple[int, ...]
    completeness: Completeness
    products: tuple[str, ...]  # product files made (relative to the output)
    success: bool  # _SUCCESS written
    elapsed_s: float


def shard_names(n: int) -> list[str]:
    return [f"s{i:04d}" for i in range(n)]


def forwarded_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    return {
        k: v for k, v in env.items() if k.startswith(FORWARDED_PREFIXES) or k in FORWARDED_NAMES
    }


def _tile_rows(tiles: Sequence[Tile]) -> list[tuple[Any, ...]]:
    return [(t.tile_id, t.minx, t.miny, t.maxx, t.maxy, t.region) for t in tiles]


def run_shard(config_json: dict[str, Any], rows: list[tuple[Any, ...]], shard: str) -> dict:
    """One shard, inside a Ray task: the ordinary job with ``shard``; waits out a lease that a
    lost worker left on another host (a worker on this host that died is taken over at once)."""
    from tilecast.apps.rts.job import RtsJob

    config = RtsConfig.model_validate(config_json)
    tiles = [Tile(*row) for row in rows]
    deadline = time.monotonic() + 3 * SHARD_LEASE_TTL_S
    while True:
        try:
            result = RtsJob(config, tiles, shard=shard, lease_ttl_s=SHARD_LEASE_TTL_S).run()
            break
        except LeaseHeldError:
            if time.monotonic() > deadline:
                raise
            wait = _lease_wait_s(config.output.path, shard)
            log.warning("shard %s: its lease is held; waiting %.0f s for it to expire", shard, wait)
            time.sleep(wait)
    return {
        "shard": shard,
        "n_committed": result.n_committed,
        "n_skipped": result.n_skipped,
        "n_already_done": result.n_already_done,
        "complete": result.complete,
        "not_done": result.not_done,
        "pipeline_s": result.pipeline_s,
    }


def _lease_wait_s(output: str, shard: str) -> float:
    uri = lease_uri_for(output.rstrip("/"), shard)
    try:
        record = LeaseRecord.model_validate_json(storage.read_text(uri))
    except Exception:  # gone or unreadable: just try again soon
        return 1.0
    return min(max(1.0, record.expires_unix - time.time() + 1.0), SHARD_LEASE_TTL_S)


def _progress(output: str, names: Sequence[str]) -> tuple[int, int]:
    """(tiles done or skipped, of them skipped) over the shards' run logs, as checkpointed."""
    import json

    done = skipped = 0
    for name in names:
        uri = storage.join(output, "logs", f"inference_log.{name}.json")
        try:
            data = json.loads(storage.read_text(uri))
        except Exception:  # not written yet, or mid-replace on a store that shows neither
            continue
        done += int(data.get("n_tiles_processed") or 0) + int(data.get("n_tiles_skipped") or 0)
        skipped += int(data.get("n_tiles_skipped") or 0)
    return done, skipped


def _init_ray(ray: Any, address: str | None) -> bool:
    """Join ``address`` or start a local Ray; True when this call started it (and stops it)."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(include_dashboard=False, **kwargs)
    return True


def launch(
    config: RtsConfig,
    tiles: Sequence[Tile],
    settings: LaunchSettings,
    *,
    progress: ProgressCallback = no_progress,
) -> LaunchResult:
    """Run the job as ``settings.shards`` Ray tasks, then the products; see the module notes."""
    ray = import_optional("ray", extra="ray", purpose="tilecast rts launch")
    start = time.monotonic()
    output = config.output.path.rstrip("/")
    chunks = split_tiles(tiles, settings.shards)
    names = shard_names(len(chunks))
    started_here = _init_ray(ray, settings.address)
    try:
        clear_success(output)
        options: dict[str, Any] = {
            "num_cpus": settings.cpus_per_shard,
            "num_gpus": settings.gpus_per_shard,
            "max_retries": settings.max_retries,
            "runtime_env": {"env_vars": forwarded_env()},
        }
        if settings.resources:
            options["resources"] = dict(settings.resources)
        task = ray.remote(run_shard).options(**options)
        config_json = config.model_dump(mode="json")
        refs = {
            task.remote(config_json, _tile_rows(chunk), name): name
            for name, chunk in zip(names, chunks, strict=True)
        }
        log.info("launched %d shard(s) of %d tiles on Ray", len(refs), len(tiles))
        pending = list(refs)
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=settings.poll_s)
            done, skipped = _progress(output, names)
            progress(ProgressEvent(done, len(tiles), skipped, time.monotonic() - start))
        failures = []
        for ref, name in refs.items():
            try:
                ray.get(ref)
            except Exception as exc:  # a shard that failed after its retries
                failures.append(f"shard {name}: {type(exc).__name__}: {exc}")
        if failures:
            raise RuntimeError("; ".join(failures))
        completeness = read_completeness(output)
        made = (
            _products_on_ray(ray, config, output, bands=settings.product_bands)
            if completeness.n_listed
            else ()
        )
        success = write_success(output) is not None
    finally:
        if started_here:
            ray.shutdown()
    return LaunchResult(
        output=output,
        shards=tuple(names),
        tiles_per_shard=tuple(len(c) for c in chunks),
        completeness=completeness,
        products=made,
        success=success,
        elapsed_s=time.monotonic() - start,
    )


#: Measuring tasks per band of a region's polygons: small ones, so that workers that finish
#: early take more (one per band left a worker idle while the other measured the dearer chunk).
MEASURE_CHUNKS_PER_BAND = 4


def _cluster_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _await_all(ray: Any, refs: Sequence[Any]) -> list[Any]:
    """Every result; on the first failure the tasks still pending are cancelled (so none
    writes into a scratch folder that is being removed) and the failure is raised."""
    try:
        return ray.get(list(refs))
    except BaseException:
        _cancel_all(ray, refs)
        raise


def _cancel_all(ray: Any, refs: Sequence[Any]) -> None:
    for ref in refs:
        ray.cancel(ref)


def _select_regions(output: str, threshold: float | None) -> tuple[float, dict[str, list[str]]]:
    from tilecast.merge.job import select_regions

    return select_regions(output, threshold=threshold)


def _prepare_merge(
    output: str,
    region: str,
    tile_ids: list[str],
    threshold: float,
    scratch: Any,
    strategy: Any,
    budget: int,
    block: int,
    bands: int,
) -> Any:
    from tilecast.merge.job import merged_paths, region_plan
    from tilecast.merge.region import prepare_merge

    paths = merged_paths(output, region)
    return prepare_merge(
        region_plan(output, region, tile_ids),
        out_prob=paths["prob"],
        out_binary=paths["binary"],
        out_scale=paths["scale"],
        threshold=threshold,
        scratch=scratch,
        strategy=strategy,
        memory_budget_bytes=budget,
        block=block,
        bands=bands,
    )


def _merge_band(job: Any, index: int) -> Any:
    from tilecast.merge.region import merge_band

    return merge_band(job, index)


def _assemble_layer(job: Any, layer: str, *bands_done: Any) -> str:
    """One layer's COG, once every band is done (``bands_done``: their results, which Ray
    waits for before it starts this task)."""
    from tilecast.merge.region import assemble_layer

    return assemble_layer(job, layer)


def _merge_on_ray(
    ray: Any,
    output: str,
    settings: Any,
    threshold: float | None,
    scratches: contextlib.ExitStack,
    *,
    block: int,
    bands: int,
    env: dict,
) -> dict[str, dict[str, Any]]:
    """Per region a planning task, a task per band, then a task per layer (the COG); the COG
    tasks' references by region and layer, not awaited (the region's scratch folder lives until
    ``scratches`` closes)."""
    from tilecast.io import merge_scratch
    from tilecast.merge.job import merged_paths
    from tilecast.merge.region import MOSAIC_LAYERS

    used, groups = ray.get(ray.remote(_select_regions).options(**env).remote(output, threshold))
    merge_scratch.remove_leftovers(storage.join(output, "merged"))
    prepare = ray.remote(_prepare_merge).options(**env)
    band_task = ray.remote(_merge_band).options(**env)
    assemble = ray.remote(_assemble_layer).options(**env)
    budget = settings.memory_budget_mb << 20
    job_refs = {
        region: prepare.remote(
            output,
            region,
            tile_ids,
            used,
            scratches.enter_context(
                merge_scratch.shared_scratch(merged_paths(output, region)["prob"])
            ),
            settings.merge_strategy,
            budget,
            block,
            bands,
        )
        for region, tile_ids in groups.items()
    }
    jobs = _await_all(ray, list(job_refs.values()))
    # the binary layer first: polygons are made from it while the others are written
    order = sorted(MOSAIC_LAYERS, key=lambda layer: layer != "binary")
    layers: dict[str, dict[str, Any]] = {}
    for (region, job_ref), job in zip(job_refs.items(), jobs, strict=True):
        done = [band_task.remote(job_ref, index) for index in range(len(job.bands))]
        layers[region] = {layer: assemble.remote(job_ref, layer, *done) for layer in order}
    log.info(
        "merging %d region(s) on Ray: %s",
        len(jobs),
        ", ".join(f"{job.plan.name} ({len(job.bands)} bands)" for job in jobs),
    )
    return layers


def _plan_vectorize(
    output: str,
    threshold: float | None,
    min_area_m2: float,
    block: int,
    bands: int,
    *binaries_done: Any,
) -> Any:
    """The vectorising plan, once every region's binary mosaic is written (``binaries_done``:
    the tasks that wrote them, when this run merged; the other mosaics may still be being
    written)."""
    from tilecast.vector.job import plan_vectorize

    storage.remove_temporaries(storage.join(output, "vectors"))  # a killed run's
    return plan_vectorize(
        output,
        threshold=threshold,
        min_area_m2=min_area_m2,
        block=block,
        bands=bands,
        pending=bool(binaries_done),
    )


def _polygonize_band(region: Any, index: int) -> Any:
    from tilecast.vector.job import polygonize_band

    return polygonize_band(region, index)


def _join_region(region: Any, chunks: int, *bands: Any) -> Any:
    from tilecast.vector.job import join_region

    joined = join_region(region, bands, chunks=chunks)
    return joined[0] if chunks == 1 else tuple(joined)  # one Ray object per chunk


def _measure_polygons(region: Any, geoms: Any, *mosaics_done: Any) -> Any:
    """One chunk's records, once the region's probability and scale mosaics are written
    (``mosaics_done``: the tasks that wrote them, when this run merged)."""
    from tilecast.vector.job import measure_polygons

    return measure_polygons(region, geoms)


def _write_vectorized(output: str, plan: Any, counts: list[int], *chunks: Any) -> int:
    from tilecast.apps.rts.products import record_total_area
    from tilecast.vector.job import write_vectorized

    per_region, rest = [], list(chunks)
    for count in counts:
        per_region.append([record for chunk in rest[:count] for record in chunk])
        rest = rest[count:]
    result = write_vectorized(plan, per_region)
    record_total_area(output, result.total_area_km2)
    return result.n_polygons


def _vectorize_on_ray(
    ray: Any,
    output: str,
    settings: Any,
    threshold: float | None,
    *,
    block: int,
    bands: int,
    env: dict,
    layers: dict[str, dict[str, Any]],
) -> Any:
    """A planning task; per region a task per band, one joining task, measuring tasks
    (``MEASURE_CHUNKS_PER_BAND`` per band: small ones, so that workers that finish early
    take more); one writing task, whose reference is returned. ``layers``: the COG tasks of
    this run's merge by region and layer: planning waits for the binary mosaics only,
    measuring for the others."""
    binaries = [refs["binary"] for refs in layers.values()]
    plan = ray.get(
        ray.remote(_plan_vectorize)
        .options(**env)
        .remote(output, threshold, settings.min_area_m2, block, bands, *binaries)
    )
    polygonize = ray.remote(_polygonize_band).options(**env)
    chunks_per_region = MEASURE_CHUNKS_PER_BAND * bands
    join = ray.remote(_join_region).options(**env, num_returns=chunks_per_region)
    measure = ray.remote(_measure_polygons).options(**env)
    measured: list[list[Any]] = []
    for region in plan.regions:
        region_ref = ray.put(region)
        pieces = [polygonize.remote(region_ref, index) for index in range(len(region.bands))]
        chunks = join.remote(region_ref, chunks_per_region, *pieces)
        chunks = [chunks] if chunks_per_region == 1 else chunks
        written = [ref for layer, ref in layers.get(region.region, {}).items() if layer != "binary"]
        measured.append([measure.remote(region_ref, chunk, *written) for chunk in chunks])
    write = ray.remote(_write_vectorized).options(**env)
    flat = [ref for refs in measured for ref in refs]
    return write.remote(output, plan, [len(refs) for refs in measured], *flat)


def _report(output: str, basemap: str | None) -> str:
    from tilecast.apps.rts.report import make_report

    return make_report(output, basemap=basemap).path


def _products_on_ray(
    ray: Any,
    config: RtsConfig,
    output: str,
    *,
    bands: int | None = None,
    merge_block: int = 1024,
    vector_block: int = 2048,
) -> tuple[str, ...]:
    """The products as Ray tasks, each region cut into ``bands`` bands of rows (default: the
    cluster's CPUs) so that one region uses the whole cluster: the merge (per region, a task
    per band of ``merge_block`` rows, then a task per layer's COG), the polygons (a task per
    band of ``vector_block`` rows, a join per region, measuring chunks, one write; polygons
    are made once the binary COGs are written, measured once the other two are), then the
    report. Each step reads what the step before wrote, as ``tilecast rts
    products`` does in one process (with the same default blocks), and the files are
    byte-identical to its (the GeoPackage's features equal)."""
    from tilecast.merge.job import group_done_tiles
    from tilecast.run.runlogs import read_run_logs

    settings = config.products
    threshold = config.inference.threshold
    groups = group_done_tiles(read_run_logs(output))
    if not groups:
        log.warning("%s: no tile is done: no products", output)
        return ()
    n = _cluster_cpus(ray) if bands is None else as_positive_int("product_bands", bands)
    env = {"runtime_env": {"env_vars": forwarded_env()}}
    with contextlib.ExitStack() as scratches:
        layers: dict[str, dict[str, Any]] = {}
        if settings.merge:
            layers = _merge_on_ray(
                ray, output, settings, threshold, scratches, block=merge_block, bands=n, env=env
            )
        pending = [ref for refs in layers.values() for ref in refs.values()]
        try:
            if settings.vectorize:
                pending.append(
                    _vectorize_on_ray(
                        ray,
                        output,
                        settings,
                        threshold,
                        block=vector_block,
                        bands=n,
                        env=env,
                        layers=layers,
                    )
                )
        except BaseException:
            _cancel_all(ray, pending)  # none may write into a scratch folder being removed
            raise
        _await_all(ray, pending)
    if settings.report:
        ray.get(ray.remote(_report).options(**env).remote(output, config.input.basemap))
    made = []
    for folder in ("merged", "vectors", "report"):
        try:
            made += [
                f"{folder}/{name}" for name in storage.list_files(storage.join(output, folder))
            ]
        except Exception:
            continue
    return tuple(sorted(made))
