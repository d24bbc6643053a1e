"""Triage a folder or a CSV of images in one pass: ``sahay batch``.

Images are decoded by a pool of threads, ``batch_size`` at a time, and classified in batches by one
loaded model; each result is appended to the results file at once, so an interrupted run loses
nothing and a rerun skips the images already done. A file that cannot be read, or that the model
was not made for, is a row with its reason; it never stops the batch. Memory holds one chunk of
images at a time (two while the next decodes), whatever the input's size.

At the end the rows are ranked for triage, most urgent first: an image's score is the highest
``weight x probability`` over its positive findings (weights default to 1, ``--weights`` changes
them), and a summary counts images, positives per finding and errors.

Two engines run the same rows: ``local`` (threads on this machine) and ``ray`` (Ray Data: one actor
per worker loads the model once and reads and classifies its batches, on this machine or a cluster).
The driver writes every row to the same journal, so results, resume and triage are the same.

Example:
    >>> summary = run_batch(Path("films"), Path("results.csv"))   # doctest: +SKIP
    >>> summary.positives["Effusion"]                              # doctest: +SKIP
"""

from __future__ import annotations

import csv
import gc
import logging
import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sahay.errors import BadInput, OutOfDomain, SahayError
from sahay.fileio import atomic_write_text
from sahay.progress import Progress, report

if TYPE_CHECKING:
    from sahay.config import Settings
    from sahay.imaging import LoadedImage
    from sahay.models.bundle import Bundle, BundleManifest
    from sahay.models.predictor import Prediction, Predictor

FORMATS = (".csv", ".parquet")
ENGINES = ("local", "ray")
BASE_COLUMNS = (
    "path",
    "status",
    "reason",
    "sha256",
    "model",
    "modality",
    "view",
    "ood_score",
    "positives",
    "triage_score",
)
"""status: "ok", "refused" (not an image the model was made for) or "error" (unreadable)."""
HEATMAP_MAX_SIDE = 1024
ACTOR_CPUS = 1
"""CPUs each Ray actor reserves, and the threads its model runs on."""


@dataclass(frozen=True)
class BatchOptions:
    model: str | None = None
    """An installed model's name or a bundle folder; None: the one the first readable image picks."""
    workers: int = 2
    """Threads that decode images while the model runs."""
    batch_size: int = 8
    top_k: int = 3
    """With heatmaps: explain at most this many positive findings per image."""
    heatmaps: Path | None = None
    force: bool = False
    """Classify images the model was not made for (marked in the row) instead of refusing them."""
    weights: dict[str, float] = field(default_factory=dict)
    """Triage weight per finding; 1 for the others."""
    image_column: str | None = None
    engine: str = "local"
    """"local" (threads here) or "ray" (Ray Data actors, here or on a cluster)."""
    address: str | None = None
    """With the ray engine: the cluster to join ("host:6379", "ray://host:10001", "auto"); None starts
    a Ray instance on this machine."""


@dataclass
class BatchSummary:
    out: Path
    triage: Path
    model: str
    images: int
    analysed: int
    resumed: int
    refused: int
    errors: int
    positives: dict[str, int]
    seconds: float
    loading_seconds: float = 0.0
    """Of ``seconds``, the time spent loading the model (once per run; imports included)."""

    @property
    def images_per_second(self) -> float:
        """The rate once the model is loaded: what a larger batch keeps up."""
        working = self.seconds - self.loading_seconds
        return self.analysed / working if working > 0 else 0.0


def parse_weights(text: str | None) -> dict[str, float]:
    """``"Pneumothorax=3,Effusion=1.5"`` as a dict; a bad item is named in the error."""
    weights: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, _, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:  # no "=" or not a number
            weight = -1.0
        if not name.strip() or not weight >= 0:  # "not >=" also refuses nan
            raise BadInput(f"--weights item {item!r} is not FINDING=WEIGHT with a weight of 0 or more")
        weights[name.strip()] = weight
    return weights


def run_batch(
    source: Path,
    out: Path,
    options: BatchOptions | None = None,
    *,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> BatchSummary:
    """Classify every image of ``source`` (a folder or a CSV of paths) into ``out`` (.csv or .parquet)."""
    from sahay.config import get_settings
    from sahay.datasets.listing import list_images

    options = options or BatchOptions()
    settings = settings or get_settings()
    _check(out, options)
    listed = [path for path, _ in list_images(source, image_column=options.image_column)]
    journal = _journal(out)
    done = _done_paths(out, journal)
    todo = [path for path in listed if str(path) not in done]
    report(progress, f"{len(done)} images already done; {len(todo)} to go", log=bool(done))

    run = _Run(options, settings, journal, progress, len(todo))
    if todo:
        (_run_ray if options.engine == "ray" else _run_local)(run, todo)
    seconds = time.perf_counter() - run.started
    if not run.model and not done:
        raise BadInput(f"{source} holds no images to analyse")
    triage = _finish(out, journal)
    return BatchSummary(
        out=out,
        triage=triage,
        model=run.model or _model_of(out),
        images=len(listed),
        analysed=run.counts["ok"],
        resumed=len(done),
        refused=run.counts["refused"],
        errors=run.counts["error"],
        positives={label: run.positives[label] for label in run.labels}
        if run.labels
        else dict(run.positives),
        seconds=seconds,
        loading_seconds=run.loading,
    )


@dataclass
class _Run:
    """What both engines share: the journal the driver appends rows to, the counts and the progress."""

    options: BatchOptions
    settings: Settings
    journal: Path
    progress: Progress | None
    total: int
    model: str = ""
    labels: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    positives: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.perf_counter)
    loading: float = 0.0
    """Seconds spent loading the model, left out of the images/s."""

    @property
    def header(self) -> list[str]:
        return _header(self.labels, self.options.heatmaps is not None)

    def begin(self, manifest: BundleManifest) -> None:
        """The model is known: check the weights against its findings and open the journal."""
        self.model = manifest.name
        self.labels = list(manifest.labels)
        _check_weights(self.options.weights, self.labels)
        _start_journal(self.journal, self.header)

    def write(self, rows: list[list[str]]) -> None:
        """Append finished rows (in ``header`` order) to the journal at once, and count them."""
        status, positives = BASE_COLUMNS.index("status"), BASE_COLUMNS.index("positives")
        with self.journal.open("a", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(rows)
        for row in rows:
            self.counts[row[status]] += 1
            self.positives.update(label for label in row[positives].split(";") if label)
        analysed = self.counts["ok"] + self.counts["refused"]
        elapsed = time.perf_counter() - self.started - self.loading
        report(
            self.progress,
            "analysing images",
            self.counts.total(),
            self.total,
            unit="images",
            detail=f"{analysed / elapsed:.1f} images/s" if elapsed else "",
        )


def _run_local(run: _Run, todo: list[Path]) -> None:
    """Threads decode the next chunk while the one loaded model classifies this one."""
    from sahay.models.predictor import Predictor

    options, settings = run.options, run.settings
    predictor: Predictor | None = None
    chunks = list(_chunks(todo, options.batch_size * 2))
    with ThreadPoolExecutor(max_workers=options.workers) as pool:
        reading = [pool.submit(_read, path, settings) for path in chunks[0]]
        for number, chunk in enumerate(chunks):
            images = [future.result() for future in reading]
            if predictor is None:  # nothing decodes meanwhile, so the load's time is the load's alone
                first = next((image for image in images if not isinstance(image, str)), None)
                loading = time.perf_counter()
                predictor = Predictor(_bundle(options, first, settings))
                run.loading = time.perf_counter() - loading
                run.begin(predictor.manifest)
            # The next chunk decodes while the model runs on this one; at most two chunks in memory.
            following = chunks[number + 1] if number + 1 < len(chunks) else []
            reading = [pool.submit(_read, path, settings) for path in following]
            run.write(_rows_of(predictor, chunk, images, options))


def _run_ray(run: _Run, todo: list[Path]) -> None:
    """Ray Data: the paths stream through one actor per worker (each loads the model once, then reads
    and classifies ``batch_size`` images a call); the driver appends the rows as they come back."""
    ray = _import_ray()
    options, settings = run.options, run.settings
    first = None
    if options.model is None:  # the model is picked by the first readable image, as in the local engine
        readable = (image for image in (_read(path, settings) for path in todo) if not isinstance(image, str))
        first = next(readable, None)
    bundle = _bundle(options, first, settings)
    run.begin(bundle.manifest)
    started_here = _connect(ray, options.address)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the CLI draws its own
        paths = ray.data.from_items([{"path": str(path)} for path in todo])
        rows = paths.map_batches(
            RayClassifier,
            fn_constructor_kwargs={"bundle": str(bundle.path), "options": options, "settings": settings},
            batch_size=options.batch_size,
            compute=ray.data.ActorPoolStrategy(size=options.workers),
            num_cpus=ACTOR_CPUS,
        )
        header = run.header
        # Streaming: Ray Data holds back reading while the driver has not taken the finished batches.
        for batch in rows.iter_batches(batch_size=None, batch_format="numpy"):
            columns = [batch[name] for name in header]
            run.write([[str(value) for value in row] for row in zip(*columns, strict=True)])
    finally:
        if started_here:
            ray.shutdown()


class RayClassifier:
    """The Ray Data callable: one per actor, so the model loads once per worker, not per batch."""

    def __init__(self, bundle: str, options: BatchOptions, settings: Settings) -> None:
        from sahay.models.bundle import load_bundle
        from sahay.models.predictor import Predictor

        # One thread per CPU Ray gave this actor: N actors on an N-core node share it, not N x N threads.
        self.predictor = Predictor(load_bundle(Path(bundle)), threads=ACTOR_CPUS)
        self.options = options
        self.settings = settings
        self.header = _header(list(self.predictor.manifest.labels), options.heatmaps is not None)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        paths = [Path(str(path)) for path in batch["path"]]
        images = [_read(path, self.settings) for path in paths]
        rows = _rows_of(self.predictor, paths, images, self.options)
        return {name: [row[index] for row in rows] for index, name in enumerate(self.header)}


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise BadInput("--engine ray needs Ray Data: pip install 'sahay[ray]'") from None
    return ray


def _connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at ``address``, or start Ray here; True when this call started it."""
    if ray.is_initialized():  # a caller (a notebook, the tests) already runs Ray: use it
        return False
    if address and address not in ("auto", "local"):
        _check_reachable(address)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        with collection_paused_for_forks():
            ray.init(
                address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False
            )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise BadInput(f"--address {address}: cannot join a Ray cluster there: {exc}") from None
    return True


@contextmanager
def collection_paused_for_forks() -> Iterator[None]:
    """Collect garbage now and not in the processes that ``ray.init`` forks.

    Ray starts its head processes with a ``preexec_fn``, Python code that runs in the forked child.
    A garbage collection there that frees an ONNX Runtime session waits forever for thread-pool
    threads that exist only in the parent: ``ray.init`` hangs.
    """
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable address for minutes; a plain connection answers in seconds."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BadInput(
            f"--address {address} is not HOST:PORT (for example 10.0.0.5:6379, as `ray start --head` prints)"
        )
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise BadInput(
            f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); start one with "
            "`ray start --head` and give the address it prints"
        ) from None


def _check(out: Path, options: BatchOptions) -> None:
    if out.suffix.lower() not in FORMATS:
        raise BadInput(f"--out {out} must end in .csv or .parquet")
    if out.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise BadInput(
                "writing .parquet needs pyarrow: pip install 'sahay[batch]', or write .csv"
            ) from None
    if options.engine not in ENGINES:
        raise BadInput(f"--engine {options.engine!r} is not one of: {', '.join(ENGINES)}")
    if options.address is not None and options.engine != "ray":
        raise BadInput("--address names a Ray cluster; give it with --engine ray")
    if options.workers < 1 or options.batch_size < 1 or options.top_k < 1:
        raise BadInput("--workers, --batch-size and --top-k must be at least 1")
    if out.is_dir():
        raise BadInput(f"--out {out} is a folder; give a file name ending in .csv or .parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    if options.heatmaps is not None:
        options.heatmaps.mkdir(parents=True, exist_ok=True)


def _journal(out: Path) -> Path:
    """Rows are appended here as they come: the results file itself for CSV."""
    return out if out.suffix.lower() == ".csv" else out.with_name(out.name + ".partial.csv")


def _done_paths(out: Path, journal: Path) -> set[str]:
    done: set[str] = set()
    if journal.is_file():
        with journal.open(newline="", encoding="utf-8") as handle:
            done |= {row["path"] for row in csv.DictReader(handle) if row.get("path")}
    if out.suffix.lower() == ".parquet" and out.is_file():
        import pyarrow.parquet as pq

        done |= {str(p) for p in pq.read_table(out, columns=["path"]).column("path").to_pylist()}
    return done


def _chunks(paths: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(paths), size):
        yield paths[start : start + size]


def _read(path: Path, settings: Settings) -> LoadedImage | str:
    """The decoded image, or why it cannot be read (never an exception: a bad file is a row)."""
    from sahay.imaging import read_image

    try:
        return read_image(path, settings=settings)
    except SahayError as exc:
        return str(exc)
    except Exception as exc:  # a reader bug must not stop a night's batch; the row says what happened
        return f"internal error reading {path.name}: {type(exc).__name__}: {exc}"


def _bundle(options: BatchOptions, first: LoadedImage | str | None, settings: Settings) -> Bundle:
    """The model named by ``--model``, or the one the first readable image picks."""
    from sahay.models.registry import resolve

    info = first.info if first is not None and not isinstance(first, str) else None
    bundle, _ = resolve(options.model, info, settings)
    return bundle


def _check_weights(weights: dict[str, float], labels: list[str]) -> None:
    unknown = sorted(set(weights) - set(labels))
    if unknown:
        raise BadInput(
            f"--weights names findings the model lacks: {', '.join(unknown)}; it has: {', '.join(labels)}"
        )


def _header(labels: list[str], heatmaps: bool) -> list[str]:
    return [*BASE_COLUMNS, *(f"p_{label}" for label in labels)] + (["heatmaps"] if heatmaps else [])


def _start_journal(journal: Path, header: list[str]) -> None:
    if journal.is_file() and journal.stat().st_size:
        with journal.open(newline="", encoding="utf-8") as handle:
            existing = next(csv.reader(handle), [])
        if existing != header:
            raise BadInput(
                f"{journal} holds results of another model or layout ({len(existing)} columns); "
                "write to a new file to start afresh"
            )
        return
    atomic_write_text(journal, ",".join(_csv_cell(h) for h in header) + "\n")


def _csv_cell(text: str) -> str:
    return f'"{text}"' if any(c in text for c in ',"\n') else text


def _rows_of(
    predictor: Predictor, paths: list[Path], images: list[LoadedImage | str], options: BatchOptions
) -> list[list[str]]:
    """The journal rows of one chunk, in header order: what both engines write."""
    labels = list(predictor.manifest.labels)
    heatmaps = options.heatmaps is not None
    return [_row_values(row, labels, heatmaps) for row in _classify(predictor, paths, images, options)]


def _classify(
    predictor: Predictor, paths: list[Path], images: list[LoadedImage | str], options: BatchOptions
) -> list[dict[str, Any]]:
    from sahay.models.domain import metadata_problems

    rows: list[dict[str, Any]] = []
    runnable: list[tuple[dict[str, Any], LoadedImage]] = []
    for path, image in zip(paths, images, strict=True):
        row: dict[str, Any] = {"path": str(path), "positive_labels": [], "probabilities": {}}
        rows.append(row)
        if isinstance(image, str):
            row.update(status="error", reason=image)
            continue
        row.update(sha256=image.info.sha256, modality=image.info.modality, view=image.info.view_position)
        problems = metadata_problems(image.info, predictor.manifest, predictor.ood)
        if problems and not options.force:
            row.update(status="refused", reason="; ".join(problems))
            continue
        runnable.append((row, image))
    if runnable:
        predictions = predictor.predict(
            [image.pixels for _, image in runnable], batch_size=options.batch_size
        )
        for (row, image), prediction in zip(runnable, predictions, strict=True):
            _fill(row, predictor, image, prediction, options)
    return rows


def _fill(
    row: dict[str, Any],
    predictor: Predictor,
    image: LoadedImage,
    prediction: Prediction,
    options: BatchOptions,
) -> None:
    from sahay.services.analyze import classify

    try:
        analysis, _ = classify(image, predictor, force=options.force, prediction=prediction)
    except OutOfDomain as exc:
        row.update(status="refused", reason=str(exc))
        return
    positive = [f for f in analysis.findings if f.positive]
    row.update(
        status="ok",
        reason="; ".join(analysis.quality.checks) if analysis.quality and analysis.quality.forced else "",
        model=predictor.manifest.name,
        ood_score=analysis.quality.ood_score if analysis.quality else None,
        positive_labels=[f.label for f in positive],
        probabilities={f.label: f.probability for f in analysis.findings},
        triage_score=max((options.weights.get(f.label, 1.0) * f.probability for f in positive), default=0.0),
    )
    if options.heatmaps is not None and positive:
        row["heatmaps"] = _write_heatmaps(predictor, image, prediction, analysis.findings, options)


def _write_heatmaps(
    predictor: Predictor,
    image: LoadedImage,
    prediction: Prediction,
    findings: list[Any],
    options: BatchOptions,
) -> str:
    """Overlays of the top-K positive findings at display size; their file names, ';'-separated."""
    import cv2

    from sahay.explain.explainer import explain_prediction
    from sahay.explain.options import ExplainOptions
    from sahay.explain.overlay import render_overlay

    ranked = sorted((i for i, f in enumerate(findings) if f.positive), key=lambda i: -findings[i].probability)
    explained = explain_prediction(
        predictor, prediction, image, ranked[: options.top_k], ExplainOptions(faithfulness=False)
    )
    pixels = image.pixels
    scale = HEATMAP_MAX_SIDE / max(pixels.shape[:2])
    if scale < 1:
        pixels = cv2.resize(
            pixels,
            (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale)),
            interpolation=cv2.INTER_AREA,
        )
    names = []
    assert options.heatmaps is not None
    for item in explained.findings:
        finding = findings[item.index]
        name = f"{image.info.sha256[:16]}-{_safe(finding.label)}.png"
        picture = render_overlay(
            pixels,
            item.heatmap,
            caption=f"{finding.label}: p={finding.probability:.2f} - {explained.method.title}",
        )
        picture.save(options.heatmaps / name, optimize=False, compress_level=6)
        names.append(name)
    return ";".join(names)


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in label)


def _row_values(row: dict[str, Any], labels: list[str], heatmaps: bool) -> list[str]:
    probabilities = row["probabilities"]
    values = [
        row["path"],
        row["status"],
        row.get("reason", ""),
        row.get("sha256", ""),
        row.get("model", ""),
        row.get("modality") or "",
        row.get("view") or "",
        "" if row.get("ood_score") is None else f"{row['ood_score']:.4f}",
        ";".join(row["positive_labels"]),
        "" if row.get("triage_score") is None else f"{row['triage_score']:.4f}",
        *("" if label not in probabilities else f"{probabilities[label]:.4f}" for label in labels),
    ]
    return values + ([row.get("heatmaps", "")] if heatmaps else [])


def _finish(out: Path, journal: Path) -> Path:
    """Write the parquet file (from any earlier one and the journal) and the triage order."""
    if out.suffix.lower() == ".parquet" and journal.is_file():
        _write_parquet(out, journal)
    # Only (score, path, positives) of each row are held, so a large batch sorts in little memory.
    ranked = sorted(
        (
            (-float(row["triage_score"] or 0), str(row["path"]), str(row["positives"] or ""))
            for row in _rows(out, journal)
            if row["status"] == "ok"
        ),
    )
    triage = out.with_name(out.stem + ".triage.csv")
    lines = ["rank,path,triage_score,positives"]
    lines += [
        f"{rank},{_csv_cell(path)},{-score:.4f},{_csv_cell(positives)}"
        for rank, (score, path, positives) in enumerate(ranked, start=1)
    ]
    atomic_write_text(triage, "\n".join(lines) + "\n")
    return triage


def _write_parquet(out: Path, journal: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    with journal.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    numeric = {name for name in header if name.startswith("p_") or name in ("ood_score", "triage_score")}
    types = {name: pa.float64() if name in numeric else pa.string() for name in header}
    schema = pa.schema([(name, types[name]) for name in header])
    partial = out.with_name(out.name + ".tmp")
    with pq.ParquetWriter(partial, schema) as writer:
        if out.is_file():
            for batch in pq.ParquetFile(out).iter_batches():
                writer.write_table(pa.Table.from_batches([batch]).cast(schema))
        reader = pacsv.open_csv(
            journal,
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
        for batch in reader:
            writer.write_table(pa.Table.from_batches([batch]).cast(schema))
    partial.replace(out)
    journal.unlink()


def _rows(out: Path, journal: Path) -> Iterator[dict[str, Any]]:
    """Every result row, from the parquet file (batch by batch) and the journal."""
    if out.suffix.lower() == ".parquet" and out.is_file():
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(out).iter_batches(
            columns=["path", "status", "model", "positives", "triage_score"]
        ):
            yield from batch.to_pylist()
    if journal.is_file():
        with journal.open(newline="", encoding="utf-8") as handle:
            yield from csv.DictReader(handle)


def _model_of(out: Path) -> str:
    return next((str(row["model"]) for row in _rows(out, _journal(out)) if row.get("model")), "")
