"""Runs built from ``train``: evaluation of a checkpoint, k-fold cross-validation, sweeps."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from finecliper.config import Config, apply_override, build_config
from finecliper.data.classes import prompt_names
from finecliper.data.run_data import make_dataset, read_run_data
from finecliper.errors import FineCLIPERError
from finecliper.io import read_text, write_json, write_text
from finecliper.runtime.device import resolve_device
from finecliper.runtime.hub import load_model
from finecliper.train.distributed import Context
from finecliper.train.evaluate import eval_loader, predict_split
from finecliper.train.loop import train
from finecliper.train.report.plots import plot_fixed_weight_sweep
from finecliper.train.report.tables import aggregate_folds, cv_markdown
from finecliper.train.results import report_predictions
from finecliper.train.state import STATE_FILE

FOLDS = {"dfew": [1, 2, 3, 4, 5], "mafw": [1, 2, 3, 4, 5], "synth": [1, 2, 3, 4, 5]}


def default_run_dir(config: Config, *, cv: bool = False, suffix: str = "") -> Path:
    parts = [config.data.dataset, config.model.variant]
    if not cv and config.data.fold is not None and not suffix:
        parts.append(f"fold{config.data.fold}")
    parts.append(suffix or ("cv" if cv else ""))
    return Path(config.train.out_dir) / "_".join(p for p in parts if p)


def with_overrides(config: Config, overrides: list[str]) -> Config:
    tree = config.model_dump(mode="json")
    for override in overrides:
        apply_override(tree, override)
    return build_config(tree, "overrides")


def default_eval_dir(model: str, split: str) -> Path:
    """RUN/eval_SPLIT for a checkpoint RUN/checkpoints/X, runs/eval_NAME_SPLIT otherwise (never
    inside a model folder, which may be the Hugging Face cache)."""
    path = Path(model)
    if path.is_file() and path.parent.name == "checkpoints":
        return path.parent.parent / f"eval_{split}"
    name = re.sub(r"[^\w.-]+", "_", model.strip("/")) or "model"
    return Path("runs") / f"eval_{name}_{split}"


def evaluate_checkpoint(
    model_source: str | Path, overrides: list[str], *, split: str = "test", out: Path
) -> dict[str, Any]:
    """Evaluate a checkpoint file, model folder or hub id on ``split`` of its dataset, or of
    the one the overrides name."""
    loaded, source = load_model(model_source)
    config = with_overrides(loaded.config, overrides)
    device = resolve_device(config.train.device, "train.device")
    data = read_run_data(config)
    records = {"test": data.test, "val": data.val, "train": data.train}[split]
    if not records:
        raise FineCLIPERError(f"split {split!r} of {config.data.dataset} has no clips")
    model = loaded.model.to(device)
    if data.classes != loaded.classes:  # another dataset: PN logits over its class names
        model.set_class_names(prompt_names(data.classes))
    loader = eval_loader(
        make_dataset(config, records, train=False),
        config.train.batch_size,
        config.data.num_workers,
        context=Context(),
    )
    predictions = predict_split(model, loader, device, precision=config.train.precision)
    metrics = report_predictions(
        out,
        records,
        predictions,
        data.classes,
        model.modalities,
        dataset=config.data.dataset,
        variant=config.model.variant,
        title=f"{Path(source.name).name} on {config.data.dataset} {split}",
    )
    metrics.update({"checkpoint": source.name, "split": split, "fold": config.data.fold})
    write_json(out / "metrics.json", metrics)
    _check_unreadable(metrics, config.data.max_unreadable, split, out)
    return metrics


def _check_unreadable(metrics: dict[str, Any], allowed: float, split: str, out: Path) -> None:
    """Fail (after the report is written) when more of the split was unreadable than allowed."""
    unreadable = metrics["skipped_test_clips"]
    if len(unreadable) <= allowed * metrics["test_clips"]:
        return
    listed = "; ".join(f"{c['clip_id']} ({c['error']})" for c in unreadable[:10])
    more = f" and {len(unreadable) - 10} more" if len(unreadable) > 10 else ""
    raise FineCLIPERError(
        f"{len(unreadable)} of {metrics['test_clips']} {split} clips could not be read (counted "
        f"as wrong in {out / 'metrics.json'}; data.max_unreadable={allowed:g} allows "
        f"{allowed:.1%}): {listed}{more}"
    )


def cross_validate(
    config: Config, out: Path, *, folds: list[int] | None = None, progress: bool = True
) -> dict[str, Any]:
    """Train every fold (resuming unfinished ones, skipping finished ones) and aggregate."""
    folds = folds or FOLDS.get(config.data.dataset, [config.data.fold])
    results = []
    for fold in folds:
        fold_config = config.model_copy(
            update={"data": config.data.model_copy(update={"fold": fold})}
        )
        fold_dir = out / f"fold{fold}" if fold is not None else out / "split"
        metrics = _finished(fold_dir)
        if metrics is None:
            resume = (fold_dir / STATE_FILE).is_file()
            metrics = train(fold_config, fold_dir, resume=resume, progress=progress)
        results.append({"fold": fold, **metrics["selection"]})
    summary = aggregate_folds(results)
    markdown = cv_markdown(
        config.data.dataset,
        config.model.variant,
        results,
        zero_shot=config.model.objective == "zero_shot",
    )
    write_text(out / "results.md", markdown)
    result = {
        "dataset": config.data.dataset,
        "variant": config.model.variant,
        "folds": results,
        "summary": summary,
    }
    write_json(out / "cv.json", result)
    return result


def _finished(fold_dir: Path) -> dict[str, Any] | None:
    metrics = fold_dir / "metrics.json"
    if not metrics.is_file():
        return None
    data = json.loads(read_text(metrics))
    return data if "selection" in data and "headline" in data else None


def fixed_weight_sweep(
    config: Config, out: Path, weights: list[float], *, progress: bool = True
) -> dict[str, Any]:
    """Seed Fig. 1: fixed video weights against adaptive weighting, same data and seed."""
    if config.model.variant == "base":
        raise FineCLIPERError("the weight sweep needs several modalities: use mid, high or full")
    points = []
    for weight in weights:
        run_config = with_overrides(
            config, ["model.weighting=fixed", f"model.fixed_video_weight={weight}"]
        )
        metrics = _train_or_reuse(run_config, out / f"video_weight_{weight:.2f}", progress)
        points.append({"video_weight": weight, "uar": metrics["uar"], "war": metrics["war"]})
    adaptive_metrics = _train_or_reuse(
        with_overrides(config, ["model.weighting=adaptive"]), out / "adaptive", progress
    )
    adaptive = {"uar": adaptive_metrics["uar"], "war": adaptive_metrics["war"]}
    plot_fixed_weight_sweep(points, adaptive, out / "fixed_weights.png")
    result = {"points": points, "adaptive": adaptive}
    write_json(out / "sweep.json", result)
    return result


def _train_or_reuse(config: Config, run_dir: Path, progress: bool) -> dict[str, Any]:
    finished = _finished(run_dir)
    if finished is not None:
        return finished
    resume = (run_dir / STATE_FILE).is_file()
    torch.manual_seed(config.train.seed)
    return train(config, run_dir, resume=resume, progress=progress)
