"""The thaw-slump inference job: tile list in, fused per-tile predictions out, resumable.

This module sets up (bundle, basemap, plan, lease, run log) and records; the tiles flow through
:mod:`tilecast.apps.rts.pipeline` (read, prepare, predict, commit, in the shape the device
wants) and come back in plan order, each already written. The run log is checkpointed every
``checkpoint_every`` commits; it lists a tile only after its file is in place, so a killed run
restarted with the same arguments skips what was committed and ends with the same tiles as an
uninterrupted run.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tilecast.apps.rts.config import RtsConfig
from tilecast.apps.rts.pipeline import Committed, TilePipeline
from tilecast.apps.rts.plan import Plan, make_plan
from tilecast.apps.rts.sink import TileSink
from tilecast.apps.rts.tiles import RETRYABLE, SkippedTile
from tilecast.bundle import Bundle, load_bundle
from tilecast.bundle.runtime import activate
from tilecast.drift import DriftMonitor, DriftVerdict
from tilecast.errors import InputError
from tilecast.grid import Tile
from tilecast.io import preflight, storage
from tilecast.io.bands import MASK_DESCRIPTIONS
from tilecast.io.basemap import Basemap, ReadStats, open_basemap
from tilecast.predict.batched import BatchedPredictor
from tilecast.predict.views import tta_views
from tilecast.run import killpoints
from tilecast.run.lease import Lease, lease_uri_for
from tilecast.run.progress import ProgressCallback, ProgressTracker, no_progress
from tilecast.run.record import CompletedTiles
from tilecast.run.runlog import NOT_PROCESSED, RunLog, add_stage_seconds
from tilecast.run.stages import StageClock, StageTotals
from tilecast.run.success import clear_success

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobResult:
    output: str
    log_uri: str
    n_planned: int
    n_committed: int  # this run
    n_skipped: int  # this run (QC)
    n_already_done: int  # committed by an earlier run and skipped now
    elapsed_s: float
    read_stats: ReadStats
    model_passes: int
    complete: bool  # every tile done or skipped for good; else see not_done
    stage_seconds: dict[str, StageTotals]  # this run: where the time went
    pipeline_s: float  # wall seconds from the first tile read to the last tile recorded
    pipeline_cpu_s: float  # CPU seconds of the whole process (every thread) over that time
    not_done: dict[str, int]  # reason -> tiles not done (retried by the next run)
    input_drift: DriftVerdict | None = None  # the whole run's valid pixels against training


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def log_uri_for(output: str, shard: str | None) -> str:
    name = f"inference_log.{shard}.json" if shard else "inference_log.json"
    return storage.join(output, "logs", name)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def final_check(plan: Plan, record: CompletedTiles) -> dict[str, object]:
    """Every tile of the list is committed (its file checked at start) or skipped for good.

    ``not_done`` counts, per reason, the tiles that are neither: never processed (``not
    processed``) or skipped for a reason a rerun can fix (:data:`tiles.RETRYABLE`). The run is
    complete only when it is empty.
    """
    listed = [item.tile.tile_id for item in plan.items]
    missing = sorted(t for t in listed if t not in record)
    unexplained = [t for t in record.ids("skipped") if not record.reason_for(t)]
    retry = sorted(t for t in record.ids("skipped") if record.reason_for(t) in RETRYABLE)
    not_done = collections.Counter(record.reason_for(t) for t in retry)
    if missing:
        not_done[NOT_PROCESSED] = len(missing)
    return {
        "n_listed": len(listed),
        "n_done": len(record.ids("done")),
        "n_skipped": len(record.ids("skipped")),
        "missing": missing[:20],
        "n_missing": len(missing),
        "skipped_without_reason": unexplained[:20],
        "to_retry": retry[:20],
        "n_to_retry": len(retry),
        "not_done": dict(sorted(not_done.items())),
    }


class RtsJob:
    """One run (or restart) of the job over a tile list."""

    def __init__(
        self,
        config: RtsConfig,
        tiles: Sequence[Tile],
        *,
        shard: str | None = None,
        progress: ProgressCallback = no_progress,
        lease_ttl_s: float = 600.0,
    ) -> None:
        self.config = config
        self.tiles = tiles
        self.shard = shard
        self.progress = progress
        self.output = config.output.path.rstrip("/")
        self.log_uri = log_uri_for(self.output, shard)
        self.lease_ttl_s = lease_ttl_s
        self._lease: Lease | None = None

    # -- setup ---------------------------------------------------------------------------

    def _open(self) -> tuple[Bundle, Basemap, Plan, str]:
        cfg = self.config
        preflight.check_locations(  # a wrong URL or credential fails here, not mid-run
            inputs={"model.bundle": cfg.model.bundle, "input.basemap": cfg.input.basemap},
            outputs={"output.path": self.output},
        )
        bundle = load_bundle(cfg.model.bundle)
        basemap = open_basemap(
            cfg.input.basemap,
            channel_order=cfg.input.channel_order,
            block_cache_bytes=cfg.input.block_cache_mb << 20,
        )
        if not basemap.crs_matches(cfg.input.tile_list_crs):
            raise InputError(
                f"the tile list is in {cfg.input.tile_list_crs} (input.tile_list_crs), "
                f"the basemap {cfg.input.basemap} is in {basemap.crs}"
            )
        if basemap.count != bundle.contract.input.channels:
            raise InputError(
                f"the basemap has {basemap.count} band(s), the model takes "
                f"{bundle.contract.input.channels} ({bundle.contract.input.channel_order})"
            )
        if basemap.dtype.name != bundle.contract.input.dtype:
            raise InputError(
                f"the basemap {cfg.input.basemap} has {basemap.dtype.name} pixels, the model "
                f"takes {bundle.contract.input.dtype} ({bundle.contract.input.value_scaling} over "
                f"{list(bundle.contract.input.input_range)})"
            )
        order = basemap.channel_order  # of the data bands: config, else colour interpretation
        log.info(
            "%s: pixel validity from %s", cfg.input.basemap, MASK_DESCRIPTIONS[basemap.mask_rule]
        )
        if order is None:
            order = bundle.contract.input.channel_order
            log.warning(
                "%s: colour interpretation does not name the band order; assuming %s "
                "(set input.channel_order to say otherwise)",
                cfg.input.basemap,
                order,
            )
        plan = make_plan(
            self.tiles,
            grid=basemap.grid,
            scales=cfg.inference.scales,
            tile_size=cfg.inference.tile_size,
        )
        return bundle, basemap, plan, order

    def _settings(self, bundle: Bundle) -> dict[str, object]:
        inf = self.config.inference
        return {
            "bundle_digest": bundle.digest,
            "scales": list(inf.scales),
            "tta": inf.tta,
            "tile_size": inf.tile_size,
            "threshold": self.threshold(bundle),
            "basemap_version": self.config.input.basemap_version,
            "precision": self.config.model.precision,
            "tile_encoding": self.config.output.tile_encoding,
        }

    def threshold(self, bundle: Bundle) -> float:
        t = self.config.inference.threshold
        return bundle.threshold if t is None else t

    def _start_log(
        self, bundle: Bundle, plan: Plan, fingerprint: str, device: torch.device
    ) -> tuple[RunLog, CompletedTiles]:
        cfg = self.config
        if storage.exists(self.log_uri):
            previous = RunLog.model_validate_json(storage.read_text(self.log_uri))
            if previous.plan_fingerprint != fingerprint:
                raise InputError(
                    f"{self.log_uri}: this output holds a run with another tile list or settings "
                    f"(fingerprint {previous.plan_fingerprint[:12]}, now {fingerprint[:12]}); "
                    "use another output.path or remove the old run"
                )
            record = CompletedTiles.from_json(previous.tiles)
            record.forget([t for t in record.ids("skipped") if record.reason_for(t) in RETRYABLE])
            previous.status = "running"  # until this run's final check says otherwise
            previous.final_check = None
            previous.record_products(cfg.products.model_dump(mode="json"), uri=self.log_uri)
            return previous, self._drop_missing_files(record)
        runlog = RunLog(
            model_version=f"{bundle.contract.name} {bundle.contract.version}",
            model_checkpoint=bundle.model_file,
            bundle_digest=bundle.digest,
            normalization_stats_hash=bundle.stats_md5,
            inference_date=now_iso(),
            basemap=cfg.input.basemap,
            basemap_version=cfg.input.basemap_version,
            scales_used=list(cfg.inference.scales),
            tta_config=cfg.inference.tta,
            threshold=self.threshold(bundle),
            tile_size=cfg.inference.tile_size,
            precision=cfg.model.precision,
            plan_fingerprint=fingerprint,
            n_tiles_total=len(plan.items),
            gpu_type=device_name(device),
            products=cfg.products.model_dump(mode="json"),
        )
        return runlog, CompletedTiles()

    def _drop_missing_files(self, record: CompletedTiles) -> CompletedTiles:
        tiles_dir = storage.join(self.output, "tiles")
        stale = storage.remove_temporaries(tiles_dir)
        stale += storage.remove_temporaries(storage.join(self.output, "logs"))  # run log, lease
        if stale:
            log.info("removed %d temporary file(s) left by an interrupted run", stale)
        present = set(storage.list_files(tiles_dir)) if storage.exists(tiles_dir) else set()
        missing = [t for t in record.ids("done") if f"{t}.tif" not in present]
        if missing:
            log.warning("%d tile(s) recorded as done have no file; recomputing them", len(missing))
            record.forget(missing)
        return record

    def _model(self, bundle: Bundle, device: torch.device) -> None:
        cfg = self.config.model
        bundle.model.to(device)
        if cfg.channels_last and not bundle.model.exported:
            bundle.model.module.to(memory_format=torch.channels_last)
        if cfg.compile:
            bundle.model.module = torch.compile(bundle.model.module)

    # -- the run -------------------------------------------------------------------------

    def run(self) -> JobResult:
        """Run under a lease on the output (one run per output and shard at a time)."""
        try:
            return self._run()
        finally:
            if self._lease is not None:
                self._lease.release()
                self._lease = None

    def _take_lease(self) -> Lease:
        """Before anything is written: the lease, then a stale ``_SUCCESS`` goes."""
        lease = Lease(lease_uri_for(self.output, self.shard), ttl_s=self.lease_ttl_s)
        lease.acquire()
        self._lease = lease
        clear_success(self.output)
        return lease

    def _run(self) -> JobResult:
        start = time.monotonic()
        cfg = self.config
        bundle, basemap, plan, order = self._open()
        lease = self._take_lease()
        device = resolve_device(cfg.model.device)
        fingerprint = plan.fingerprint(**self._settings(bundle))
        runlog, record = self._start_log(bundle, plan, fingerprint, device)
        n_before = len(record)
        todo = [item for item in plan.items if item.tile.tile_id not in record]
        runlog.runs.append(
            {
                "started": now_iso(),
                "run_id": lease.owner,
                "tiles_already_recorded": n_before,
                "device": device_name(device),
            }
        )
        log.info(
            "%d tiles planned, %d already recorded, %d to do", len(plan.items), n_before, len(todo)
        )
        self._model(bundle, device)
        predictor = BatchedPredictor(
            bundle.model,
            activate=lambda logits: activate(bundle.contract, logits),
            views=tta_views(cfg.inference.tta),
            batch_size=cfg.inference.batch_size,
            positive_index=bundle.contract.postprocessing.positive_index,
            device=device,
            precision=cfg.model.precision,
            channels_last=cfg.model.channels_last,
            micro_batch=cfg.inference.micro_batch,
        )
        sink = TileSink(
            self.output,
            grid=basemap.grid,
            scales=plan.scales,
            threshold=self.threshold(bundle),
            tags={
                "tilecast_model": runlog.model_version,
                "tilecast_bundle_digest": bundle.digest,
                "scales": ",".join(str(s) for s in plan.scales),
                "tta": cfg.inference.tta,
            },
            encoding=cfg.output.tile_encoding,
        )
        clock = StageClock()
        tracker = ProgressTracker(len(todo), self.progress, stages=clock.snapshot)
        counts = collections.Counter(runlog.sentinel_counts)
        qc = collections.Counter(runlog.qc_errors)
        drift = DriftMonitor.for_bundle(bundle, mode=cfg.input.input_drift)
        drift.restore(runlog.input_drift)  # a restart adds to what the earlier runs saw
        since_checkpoint = 0
        previous_hours = runlog.processing_time_hours
        previous_stages = dict(runlog.stage_seconds)

        def checkpoint(final: bool = False) -> None:
            nonlocal runlog
            lease.check()  # another run took the output: stop before writing its log
            runlog = runlog.with_record(record)
            runlog.sentinel_counts = dict(sorted(counts.items()))
            runlog.qc_errors = dict(sorted(qc.items()))
            runlog.processing_time_hours = previous_hours + (time.monotonic() - start) / 3600
            runlog.stage_seconds = add_stage_seconds(previous_stages, clock.to_json())
            if final:
                runlog.runs[-1]["finished"] = now_iso()
                runlog.runs[-1]["stage_seconds"] = clock.to_json()
                runlog.final_check = final_check(plan, record)
                runlog.status = "incomplete" if runlog.final_check["not_done"] else "complete"
            runlog.input_drift = drift.to_json()
            stop = drift.mode == "fail" and runlog.input_drift["verdict"]["drifted"]
            if stop:  # recorded as such before the error stops the run
                runlog.status = "stopped"
            text = runlog.to_json()
            killpoints.reached("runlog.write")
            storage.write_text(self.log_uri, text)
            if final or stop:  # fail stops at the first flagged checkpoint; warn says it once
                drift.enforce(self.output)

        def record_result(result: Committed | SkippedTile) -> None:
            nonlocal since_checkpoint
            if isinstance(result, SkippedTile):
                log.warning("tile %s skipped: %s", result.item.tile.tile_id, result.reason)
                record.mark_skipped(
                    result.item.tile.tile_id, reason=result.reason, region=result.item.tile.region
                )
                tracker.advance(skipped=True)
                return
            done = result.tile
            record.mark_done(
                done.tile_id, sha256=done.sha256, detected=done.detected, region=done.region
            )
            counts.update(result.sentinel_counts)
            if result.drift is not None:
                drift.add(result.drift, key=done.region)
            if done.n_clipped:
                qc["clipped_predictions"] += done.n_clipped
            if done.n_non_finite:
                qc["non_finite_predictions"] += done.n_non_finite
            since_checkpoint += 1
            if since_checkpoint >= cfg.inference.checkpoint_every:
                since_checkpoint = 0
                checkpoint()
            tracker.advance()

        window = cfg.inference.prefetch_tiles or max(
            2 * cfg.inference.workers,
            -(-2 * cfg.inference.batch_size // (len(plan.scales) * len(predictor.views))),
        )
        pipeline = TilePipeline(
            basemap=basemap,
            bundle=bundle,
            predictor=predictor,
            sink=sink,
            channel_order=order,
            workers=cfg.inference.workers,
            window=window,
            clock=clock,
            before_commit=lease.check,
            shape=None if cfg.inference.pipeline == "auto" else cfg.inference.pipeline,
            drift=drift,
        )
        log.info(
            "pipeline: %s, %d worker(s), %d tile(s) in flight, device %s",
            pipeline.shape,
            pipeline.workers,
            window,
            device,
        )
        wall0, cpu0 = time.perf_counter(), time.process_time()
        results = pipeline.run(todo)
        try:
            for result in results:  # in plan order, each tile's file already in place
                with clock.stage("record"):
                    record_result(result)
        finally:
            results.close()  # an error: stop the workers before anything else is written
        pipeline_s, pipeline_cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
        runlog.runs[-1]["pipeline_s"] = round(pipeline_s, 3)
        runlog.runs[-1]["pipeline_cpu_s"] = round(pipeline_cpu_s, 3)
        checkpoint(final=True)
        basemap.close()
        return JobResult(
            output=self.output,
            log_uri=self.log_uri,
            n_planned=len(plan.items),
            n_committed=tracker.done - tracker.skipped,
            n_skipped=tracker.skipped,
            n_already_done=n_before,
            elapsed_s=time.monotonic() - start,
            read_stats=basemap.stats,
            model_passes=predictor.passes,
            stage_seconds=clock.snapshot(),
            pipeline_s=pipeline_s,
            pipeline_cpu_s=pipeline_cpu_s,
            complete=runlog.status == "complete",
            not_done=dict((runlog.final_check or {}).get("not_done", {})),
            input_drift=drift.verdict(),
        )
