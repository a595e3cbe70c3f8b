"""``finecliper train``: fit a FineCLIPER variant on one fold and write an honest report.

Every epoch ends with an evaluation on the validation split (carved from the training fold)
and on the test split, the last and best-validation checkpoints, the test predictions of that
epoch, and the training state. Each epoch reseeds its shuffling, sampling and dropout from
``(seed, epoch)``, so ``--resume`` after a kill repeats the interrupted epoch exactly and ends
with the same metrics as an uninterrupted run.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from finecliper.config import Config, config_to_yaml, save_config
from finecliper.data.dataset import collate_clips
from finecliper.data.run_data import check_evaluated_text, make_dataset, read_run_data
from finecliper.data.workers import init_worker
from finecliper.errors import FineCLIPERError
from finecliper.io import read_text, write_json
from finecliper.model.network import build_model
from finecliper.runtime.checkpoint import save_checkpoint
from finecliper.runtime.device import autocast, resolve_device
from finecliper.runtime.inputs import to_model_inputs
from finecliper.train.distributed import Context, barrier, broadcast_object, init_distributed
from finecliper.train.divergence import check_finite_loss, check_finite_weights
from finecliper.train.evaluate import eval_loader, predict_split, score
from finecliper.train.results import write_results
from finecliper.train.run import Run, predictions_path, skipped_path
from finecliper.train.schedule import warmup_cosine
from finecliper.train.selection import improves_best_val
from finecliper.train.state import (
    STATE_FILE,
    load_training_state,
    refuse_legacy_state,
    restore_rng_states,
    save_training_state,
)
from finecliper.train.tensorboard import Curves, training_curves


def train(
    config: Config, out_dir: str | Path, *, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train, evaluate every epoch, write the report; returns the final metrics."""
    out = Path(out_dir)
    device = resolve_device(config.train.device, "train.device")
    context = init_distributed(device.type)
    if device.type == "cuda" and context.distributed:
        device = torch.device("cuda", context.local_rank)
        torch.cuda.set_device(device)
    torch.manual_seed(config.train.seed)
    data = read_run_data(config)
    check_evaluated_text(config, data)
    model = build_model(config.model, data.prompts, num_frames=config.data.num_frames).to(device)
    model.set_grad_checkpointing(config.train.grad_checkpointing)
    if config.train.compile:
        model.compile_image_tower()
    run = Run(config, out, data, model, device, context, progress and context.is_main)
    if context.is_main:
        _check_resume(out, config, resume)
        save_config(config, out)
    with training_curves(config, out, context.is_main) as curves:
        history = _fit(run, resume, curves)
    metrics = write_results(run, history) if context.is_main else {}
    barrier(context)
    return broadcast_object(metrics, context)


def _check_resume(out: Path, config: Config, resume: bool) -> None:
    state = out / STATE_FILE
    refuse_legacy_state(out)
    if resume and not state.is_file():
        raise FineCLIPERError(f"--resume: {state} does not exist (nothing to resume)")
    if not resume and state.is_file():
        raise FineCLIPERError(f"{out} already holds a run: pass --resume or another --out")
    saved = out / "config.yaml"
    if resume and saved.is_file() and read_text(saved) != config_to_yaml(config):
        raise FineCLIPERError(f"--resume: the config differs from the run's {saved}")


def _fit(run: Run, resume: bool, curves: Curves) -> list[dict[str, Any]]:
    config, model = run.config, run.model
    train_set = make_dataset(config, run.data.train, train=True)
    sampler = DistributedSampler(
        train_set,
        num_replicas=run.context.world,
        rank=run.context.rank,
        shuffle=True,
        seed=config.train.seed,
    )
    loader = DataLoader(
        train_set,
        batch_size=config.train.batch_size,
        sampler=sampler,
        num_workers=config.data.num_workers,
        collate_fn=collate_clips,
        pin_memory=run.device.type == "cuda",
        persistent_workers=config.data.num_workers > 0,
        worker_init_fn=init_worker,
    )
    accumulation = _accumulation_steps(config, run.context)
    steps_per_epoch = math.ceil(len(loader) / accumulation)
    optimizer = torch.optim.AdamW(
        model.optimizer_parameter_groups(config.train.weight_decay), lr=config.train.lr
    )
    scheduler = _schedule(optimizer, config, steps_per_epoch)
    trainer = (
        DistributedDataParallel(model, find_unused_parameters=True)
        if (run.context.distributed)
        else model
    )
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if resume:
        state = load_training_state(run.out / STATE_FILE)
        model.load_trainable_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, start_epoch = state["history"], state["epoch"]
        restore_rng_states(state)
    evaluators = _evaluators(run)
    for epoch in range(start_epoch, config.train.epochs):
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        torch.manual_seed(config.train.seed * 1000 + epoch)
        entry = _train_epoch(run, trainer, loader, optimizer, scheduler, accumulation, epoch)
        # On every rank, before this epoch's predictions and checkpoints are written.
        check_finite_weights(model.trainable_state_dict(), epoch, run.out, run.context)
        entry.update(_evaluate_epoch(run, evaluators, epoch))
        history.append(entry)
        if run.context.is_main:
            _save_epoch(run, optimizer, scheduler, history)
            curves.log_epoch(entry)
        barrier(run.context)
    return history


def _accumulation_steps(config: Config, context: Context) -> int:
    target = config.train.effective_batch_size
    per_step = config.train.batch_size * context.world
    return max(1, math.ceil(target / per_step)) if target else 1


def _schedule(optimizer: torch.optim.Optimizer, config: Config, steps_per_epoch: int):
    total = config.train.epochs * steps_per_epoch
    return warmup_cosine(optimizer, total, round(config.train.warmup_epochs * steps_per_epoch))


def _train_epoch(run, trainer, loader, optimizer, scheduler, accumulation, epoch) -> dict:
    model = run.model
    model.train()
    started = time.perf_counter()
    total_loss, clips, skipped = 0.0, 0, 0
    bar = tqdm(
        loader, desc=f"epoch {epoch + 1}/{run.config.train.epochs}", disable=not run.progress
    )
    optimizer.zero_grad(set_to_none=True)
    for step, batch in enumerate(bar):
        skipped += len(batch.failed)
        if len(batch.labels) == 0:
            continue
        inputs = to_model_inputs(
            batch, run.device, modalities=model.modalities, tokenizer=model.tokenizer
        )
        labels = batch.labels.to(run.device)
        with autocast(run.device, run.config.train.precision):
            outputs = trainer(inputs)
            loss = model.loss(outputs, labels).total
        check_finite_loss(loss, epoch, step, run.out, run.context)
        (loss / accumulation).backward()
        if (step + 1) % accumulation == 0 or step + 1 == len(loader):
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        total_loss += float(loss.detach()) * len(labels)
        clips += len(labels)
        rate = clips / (time.perf_counter() - started)
        bar.set_postfix(loss=f"{total_loss / clips:.3f}", clips_per_s=f"{rate:.1f}")
    seconds = time.perf_counter() - started
    return {
        "epoch": epoch + 1,
        "train_loss": total_loss / max(1, clips),
        "lr": optimizer.param_groups[0]["lr"],
        "seconds": round(seconds, 2),
        "clips_per_s": round(clips / seconds, 2) if seconds > 0 else None,
        "skipped_train_clips": skipped,
    }


def _evaluators(run: Run) -> dict[str, tuple[list, DataLoader]]:
    config = run.config
    splits = {"val": run.data.val, "test": run.data.test}
    return {
        name: (
            records,
            eval_loader(
                make_dataset(config, records, train=False),
                config.train.batch_size,
                config.data.num_workers,
                run.context,
            ),
        )
        for name, records in splits.items()
        if records
    }


def _evaluate_epoch(run: Run, evaluators, epoch: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"val": None, "test": None}
    for name, (records, loader) in evaluators.items():
        predictions = predict_split(
            run.model,
            loader,
            run.device,
            precision=run.config.train.precision,
            context=run.context,
            progress=run.progress,
            description=name,
        )
        report = score(records, predictions, run.data.classes)
        entry[name] = {
            "uar": report.uar,
            "war": report.war,
            "skipped": len(predictions.skipped),
            "modality_weights": _mean_weights(run.model.modalities, predictions.weights),
        }
        if name == "test" and run.context.is_main:
            predictions.save(str(predictions_path(run.out, epoch + 1)))
            write_json(
                skipped_path(run.out, epoch + 1),
                [{"index": i, "error": e} for i, e in predictions.skipped],
            )
    return entry


def _mean_weights(modalities: tuple[str, ...], weights: np.ndarray) -> dict[str, float]:
    """Mean adaptive weight of each modality over a split's clips (empty: none evaluated)."""
    if len(weights) == 0:
        return {}
    return dict(zip(modalities, weights.mean(axis=0).tolist(), strict=True))


def _save_epoch(run: Run, optimizer, scheduler, history: list[dict[str, Any]]) -> None:
    checkpoints = run.out / "checkpoints"
    classes = run.data.classes
    entry = history[-1]
    extra = {"epoch": entry["epoch"], "val": entry["val"], "test": entry["test"]}
    save_checkpoint(checkpoints / "last.safetensors", run.model, run.config, classes, extra)
    if improves_best_val(history):
        save_checkpoint(checkpoints / "best_val.safetensors", run.model, run.config, classes, extra)
    save_training_state(
        run.out / STATE_FILE,
        {
            "epoch": entry["epoch"],
            "model": run.model.trainable_state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "history": history,
        },
    )
