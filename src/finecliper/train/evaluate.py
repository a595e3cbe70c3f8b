"""Run a model over a split and score it: probabilities, modality weights, UAR/WAR."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from finecliper.data.dataset import ClipDataset, collate_clips
from finecliper.data.records import ClipRecord
from finecliper.data.workers import init_worker
from finecliper.model.network import FineCLIPER
from finecliper.runtime.device import autocast
from finecliper.runtime.inputs import to_model_inputs
from finecliper.train.distributed import Context, ShardSampler, gather_objects
from finecliper.train.metrics import ClassificationReport, classification_report


@dataclass
class Predictions:
    """Per clip of a split, in dataset order; ``skipped`` clips could not be read."""

    indices: np.ndarray  # (N,) dataset positions that were evaluated
    probabilities: np.ndarray  # (N, C)
    weights: np.ndarray  # (N, M) adaptive modality weights
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def save(self, path: str) -> None:
        np.savez(path, indices=self.indices, probabilities=self.probabilities, weights=self.weights)

    @classmethod
    def load(cls, path: str) -> Predictions:
        with np.load(path) as data:
            return cls(data["indices"], data["probabilities"], data["weights"])


def eval_loader(dataset: ClipDataset, batch_size: int, workers: int, context: Context):
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ShardSampler(len(dataset), context),
        num_workers=workers,
        collate_fn=collate_clips,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        worker_init_fn=init_worker,
    )


@torch.no_grad()
def predict_split(
    model: FineCLIPER,
    loader: DataLoader,
    device: torch.device,
    *,
    precision: str = "auto",
    context: Context | None = None,
    progress: bool = False,
    description: str = "eval",
) -> Predictions:
    """Predictions for every clip of the loader's dataset, gathered over all ranks."""
    context = context or Context()
    model.eval()
    indices, probabilities, weights, skipped = [], [], [], []
    for batch in tqdm(loader, desc=description, leave=False, disable=not progress):
        skipped.extend(batch.failed)
        if len(batch.labels) == 0:
            continue
        inputs = to_model_inputs(
            batch, device, modalities=model.modalities, tokenizer=model.tokenizer
        )
        with autocast(device, precision):
            outputs = model(inputs)
        probabilities.append(outputs.logits.float().softmax(dim=-1).cpu().numpy())
        weights.append(outputs.weights.float().cpu().numpy())
        indices.append(batch.index.numpy())
    local = _concat(indices, probabilities, weights, len(model.modalities), model.num_classes)
    shards = gather_objects((local, skipped), context)
    return _merge(shards)


def _concat(indices, probabilities, weights, modalities: int, classes: int):
    if not indices:
        return np.zeros(0, np.int64), np.zeros((0, classes)), np.zeros((0, modalities))
    return np.concatenate(indices), np.concatenate(probabilities), np.concatenate(weights)


def _merge(shards) -> Predictions:
    indices = np.concatenate([s[0][0] for s in shards])
    order = np.argsort(indices, kind="stable")
    if len(np.unique(indices)) != len(indices):
        raise RuntimeError("a clip was evaluated twice: the evaluation shards overlap")
    return Predictions(
        indices=indices[order],
        probabilities=np.concatenate([s[0][1] for s in shards])[order],
        weights=np.concatenate([s[0][2] for s in shards])[order],
        skipped=sorted(item for s in shards for item in s[1]),
    )


def score(
    records: list[ClipRecord], predictions: Predictions, classes: tuple[str, ...]
) -> ClassificationReport:
    """UAR/WAR over every clip of the split: a clip that could not be read counts as wrong."""
    labels = np.array([records[i].label for i in predictions.indices], dtype=np.int64)
    unreadable = [records[i].label for i, _ in predictions.skipped]
    return classification_report(
        labels, predictions.probabilities.argmax(axis=1), classes, unreadable=unreadable
    )
