"""``finecliper bench``: the benchmark sections, the targets they are checked against, the report.

Sections: ``step`` (training-step and inference clips/s per variant and mode, peak memory, the
speed-up over the naive mode; :mod:`finecliper.bench.gpu`), ``pipeline`` (data-pipeline clips/s
per CPU worker from the packed cache; :mod:`finecliper.bench.pipeline`), ``latency`` (predict
against the bare backbone forward on one clip, on CPU; :mod:`finecliper.bench.latency`) and
``memory`` (training memory per clip measured on the CPU, projected to a GPU batch;
:mod:`finecliper.bench.memory`).
Every run records the machine, the date and the commit next to its figures.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from finecliper import __version__
from finecliper.errors import ConfigError
from finecliper.io import write_json

SECTIONS = ("step", "pipeline", "latency", "memory")
VARIANTS = ("base", "mid", "high", "full")
# The targets: (what, comparison, value).
TARGETS = {
    "pipeline_per_worker": (">=", 50.0),  # clips per CPU second, JPEG pack, full inputs
    "latency_ratio": ("<=", 1.25),  # predict / bare backbone forward, CPU time
    "train_full_b32": (">=", 90.0),  # clips/s, ViT-B/16, one H100/H200
    "train_base_b32": (">=", 250.0),
    "speedup_over_naive": (">=", 6.0),
    "memory_full_b32_gib": ("<=", 40.0),  # measured peak on the GPU
    "projected_memory_full_b32_gib": ("<=", 40.0),  # projected from the CPU measurement
}


@dataclass
class BenchOptions:
    device: str = "cpu"
    variants: tuple[str, ...] = ("base", "full")
    sections: tuple[str, ...] = ("pipeline", "latency")
    backbone: str = "ViT-B/16"
    image_size: int = 224
    frames: int = 16
    batch: int = 32
    steps: int = 10
    warmup: int = 3
    modes: tuple[str, ...] = ("naive", "bf16", "compiled")
    checkpointing: tuple[bool, ...] = (False,)
    phases: tuple[str, ...] = ("train", "infer")
    pipeline_sizes: tuple[int, ...] = (112, 224)
    pipeline_clips: int = 96
    synth_clips: int = 24
    pipeline_data: Path | None = None
    loader_workers: int = 0
    cpu_threads: int | None = None
    repeats: int = 3
    project_batch: int = 32
    workdir: Path | None = None

    def __post_init__(self) -> None:
        unknown = [s for s in self.sections if s not in SECTIONS]
        if unknown:
            raise ConfigError(f"bench: unknown section(s) {unknown} (known: {', '.join(SECTIONS)})")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("bench --device cuda: no CUDA device is available")
        if min(self.batch, self.steps, self.frames, self.repeats) < 1 or self.warmup < 0:
            raise ConfigError("bench: batch, steps, frames and repeats must be >= 1, warmup >= 0")


@dataclass
class Check:
    name: str
    value: float | None
    target: str
    ok: bool | None  # None: not measured in this run


def machine() -> dict[str, Any]:
    """What ran the benchmark: CPU, GPU, library versions, date, commit."""
    info: dict[str, Any] = {
        "cpu": _cpu_name(),
        "cpu_cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "finecliper": __version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": _commit(),
    }
    import transformers

    info["transformers"] = transformers.__version__
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str | None:
    """The checkout's commit, ``+dirty`` with local changes; FINECLIPER_COMMIT overrides."""
    if os.environ.get("FINECLIPER_COMMIT"):
        return os.environ["FINECLIPER_COMMIT"]
    here = Path(__file__).parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True
        )
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


@dataclass
class _Reporter:
    """The report so far; every finished case is published (and saved to ``out`` if given), so
    a run cut short keeps the figures it has."""

    report: dict[str, Any]
    note: Callable[[str], None]
    out: Path | None = None

    def publish(self, name: str, section: dict[str, Any]) -> None:
        self.report[name] = section
        self.report["checks"] = [asdict(c) for c in checks(self.report)]
        if self.out is not None:
            write_json(self.out, self.report)


def _step_section(options: BenchOptions, reporter: _Reporter) -> None:
    from finecliper.bench.gpu import StepSettings, run_step_benchmark, speedups

    settings = StepSettings(
        backbone=options.backbone,
        image_size=options.image_size,
        frames=options.frames,
        batch=options.batch,
        steps=options.steps,
        warmup=options.warmup,
        phases=options.phases,
    )
    device = torch.device(options.device)
    results = []
    for variant in options.variants:
        for mode in options.modes:
            for checkpointing in options.checkpointing:
                reporter.note(f"step: {variant} {mode}{' checkpointing' if checkpointing else ''}")
                results.append(
                    run_step_benchmark(variant, mode, settings, device, checkpointing=checkpointing)
                )
                section = {"results": [asdict(r) for r in results], "speedup": speedups(results)}
                reporter.publish("step", section)


def _pipeline_section(options: BenchOptions, reporter: _Reporter) -> None:
    from finecliper.bench.pipeline import run_pipeline

    report = run_pipeline(
        options.pipeline_sizes,
        synth_clips=options.synth_clips,
        clips=options.pipeline_clips,
        frames=options.frames,
        packed=options.pipeline_data,
        loader_workers=options.loader_workers,
        loader_batch=options.batch,
        workdir=options.workdir,
        progress=reporter.note,
    )
    loader = None if report.loader is None else asdict(report.loader)
    reporter.publish("pipeline", {"results": [asdict(r) for r in report.results], "loader": loader})


def _latency_section(options: BenchOptions, reporter: _Reporter) -> None:
    from finecliper.bench.latency import run_latency

    results = []
    for variant in options.variants:
        reporter.note(f"latency: {variant}")
        result = run_latency(
            variant,
            backbone=options.backbone,
            image_size=options.image_size,
            frames=options.frames,
            repeats=options.repeats,
            threads=options.cpu_threads,
        )
        results.append(asdict(result))
        reporter.publish("latency", {"results": results})


def _memory_section(options: BenchOptions, reporter: _Reporter) -> None:
    from finecliper.bench.memory import run_memory

    results = []
    for variant in options.variants:
        for checkpointing in options.checkpointing:
            reporter.note(f"memory: {variant}{' checkpointing' if checkpointing else ''}")
            result = run_memory(
                variant,
                backbone=options.backbone,
                image_size=options.image_size,
                frames=options.frames,
                checkpointing=checkpointing,
                target_batch=options.project_batch,
                threads=options.cpu_threads,
            )
            results.append(asdict(result))
            reporter.publish("memory", {"results": results})


def _check(name: str, value: float | None, key: str | None = None) -> Check:
    comparison, target = TARGETS[key or name]
    ok = None
    if value is not None:
        ok = value >= target if comparison == ">=" else value <= target
    return Check(name, value, f"{comparison} {target:g}", ok)


def _at_target(settings: dict[str, Any]) -> bool:
    """The issue's model configuration: ViT-B/16, 16 frames of 224 px."""
    return (settings["backbone"], settings["frames"], settings["image_size"]) == (
        "ViT-B/16",
        16,
        224,
    )


def checks(report: dict[str, Any]) -> list[Check]:
    """The issue's targets, checked against what this run measured at the issue's settings
    (model figures of other backbones or sizes are reported but not checked)."""
    found: list[Check] = []
    settings = report["settings"]
    pipeline = report.get("pipeline")
    if pipeline:
        for result in pipeline["results"]:
            if result["source"] == "pack-jpeg":
                name = f"pipeline_per_worker_{result['image_size']}"
                found.append(_check(name, result["clips_per_cpu_s"], "pipeline_per_worker"))
    if not _at_target(settings):
        return found
    for result in (report.get("latency") or {}).get("results", []):
        found.append(_check(f"latency_ratio_{result['variant']}", result["ratio"], "latency_ratio"))
    step = report.get("step")
    if step and settings["device"] == "cuda":
        found.extend(_step_checks(step, settings["batch"]))
    for result in (report.get("memory") or {}).get("results", []):
        if result["variant"] == "full" and result["target_batch"] == 32:
            suffix = "_checkpointing" if result["checkpointing"] else ""
            name = f"projected_memory_full_b32_gib{suffix}"
            found.append(_check(name, result["projected_gib"], "projected_memory_full_b32_gib"))
    return found


def _step_checks(step: dict[str, Any], batch: int) -> list[Check]:
    found = [
        _check(f"speedup_over_naive_{variant}", ratio, "speedup_over_naive")
        for variant, ratio in step["speedup"].items()
    ]
    if batch != 32:
        return found
    fast = [r for r in step["results"] if r["mode"] != "naive" and r["train_clips_per_s"]]
    for variant in ("base", "full"):
        rates = [r["train_clips_per_s"] for r in fast if r["variant"] == variant]
        if rates:
            found.append(_check(f"train_{variant}_b32", max(rates)))
    peaks = [r["train_peak_gib"] for r in fast if r["variant"] == "full" and r["batch"] == 32]
    if peaks:
        found.append(_check("memory_full_b32_gib", min(peaks)))
    return found


def run_suite(
    options: BenchOptions,
    note: Callable[[str], None] = lambda _: None,
    out: Path | None = None,
) -> dict[str, Any]:
    """Run the chosen sections; returns the report (machine, settings, results, checks).

    With ``out``, the report so far is written there (atomically) after every finished case.
    """
    sections = {
        "step": _step_section,
        "pipeline": _pipeline_section,
        "latency": _latency_section,
        "memory": _memory_section,
    }
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}
    reporter = _Reporter({"machine": machine(), "settings": settings, "checks": []}, note, out)
    for name in options.sections:
        sections[name](options, reporter)
    return reporter.report


@dataclass
class _Table:
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def render(self) -> str:
        widths = [max([len(c), *(len(r[i]) for r in self.rows)]) for i, c in enumerate(self.header)]
        lines = [self.header, *self.rows]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
        )


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_report(report: dict[str, Any]) -> str:
    """The report as text tables, machine first, checks last."""
    info = report["machine"]
    parts = [
        f"machine: {info['cpu']} ({info['cpu_cores']} cores), GPU {info['gpu'] or 'none'}, "
        f"torch {info['torch']}, {info['date']}, commit {info['commit'] or 'unknown'}"
    ]
    if "step" in report:
        parts.append(_format_step(report["step"]))
    if "pipeline" in report:
        parts.append(_format_pipeline(report["pipeline"]))
    if "latency" in report:
        parts.append(_format_latency(report["latency"]))
    if "memory" in report:
        parts.append(_format_memory(report["memory"]))
    table = _Table(["check", "value", "target", "ok"])
    for check in report["checks"]:
        ok = {True: "yes", False: "NO", None: "-"}[check["ok"]]
        table.rows.append([check["name"], _number(check["value"], 2), check["target"], ok])
    parts.append(table.render())
    return "\n\n".join(parts)


def _format_step(step: dict[str, Any]) -> str:
    table = _Table(
        [
            "variant",
            "mode",
            "ckpt",
            "batch",
            "train clips/s",
            "GiB",
            "infer clips/s",
            "GiB",
            "error",
        ]
    )
    for r in step["results"]:
        table.rows.append(
            [
                r["variant"],
                r["mode"],
                "yes" if r["checkpointing"] else "no",
                str(r["batch"]),
                _number(r["train_clips_per_s"]),
                _number(r["train_peak_gib"]),
                _number(r["infer_clips_per_s"]),
                _number(r["infer_peak_gib"]),
                r["error"] or "",
            ]
        )
    ratios = ", ".join(f"{v} {_number(x)}x" for v, x in step["speedup"].items())
    return f"{table.render()}\nspeed-up over naive (training): {ratios}"


def _format_pipeline(pipeline: dict[str, Any]) -> str:
    table = _Table(
        [
            "source",
            "px",
            "clips/s",
            "clips/CPU-s",
            "no render",
            "read",
            "sample",
            "render",
            "KB/clip",
        ]
    )
    for r in pipeline["results"]:
        size = None if r["bytes_per_clip"] is None else r["bytes_per_clip"] / 1024
        table.rows.append(
            [
                r["source"],
                str(r["image_size"]),
                _number(r["clips_per_s"]),
                _number(r["clips_per_cpu_s"]),
                _number(r["clips_per_cpu_s_no_render"]),
                _number(r["read_ms"], 2),
                _number(r["sample_ms"], 2),
                _number(r["render_ms"], 2),
                _number(size, 0),
            ]
        )
    text = (
        "data pipeline, one worker (one thread), full inputs; clips per CPU second with the "
        "rendering on the CPU, and without it (training renders on the GPU); read, sample and "
        f"render in CPU ms per clip:\n{table.render()}"
    )
    loader = pipeline.get("loader")
    if loader:
        text += (
            f"\nDataLoader, {loader['workers']} workers, batch {loader['batch']}, "
            f"{loader['source']}: {_number(loader['clips_per_s'])} clips/s"
        )
    return text


def _format_latency(latency: dict[str, Any]) -> str:
    table = _Table(
        ["variant", "threads", "bare ms", "predict ms", "uncached ms", "ratio", "ratio uncached"]
    )
    for r in latency["results"]:
        table.rows.append(
            [
                r["variant"],
                str(r["threads"]),
                _number(r["bare_ms"]),
                _number(r["predict_ms"]),
                _number(r["predict_uncached_ms"]),
                _number(r["ratio"], 3),
                _number(r["ratio_uncached"], 3),
            ]
        )
    return f"predict latency, one clip on CPU (ratios of CPU time):\n{table.render()}"


def _format_memory(memory: dict[str, Any]) -> str:
    headers = ["variant", "ckpt", "GiB/clip", "fixed GiB", "weights+AdamW GiB", "projected"]
    table = _Table([*headers, "RSS GiB/clip", "RSS projected"])
    for r in memory["results"]:
        table.rows.append(
            [
                r["variant"],
                "yes" if r["checkpointing"] else "no",
                _number(r["per_clip_gib"], 3),
                _number(r["fixed_gib"], 2),
                _number(r["resident_gib"], 2),
                f"{_number(r['projected_gib'])} GiB at batch {r['target_batch']}",
                _number(r["rss_per_clip_gib"], 3),
                f"{_number(r['rss_projected_gib'])} GiB",
            ]
        )
    title = "training memory (live tensors; RSS adds allocator slack), CPU bf16 autocast, projected"
    return f"{title}:\n{table.render()}"
