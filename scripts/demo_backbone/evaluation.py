"""Evaluation of a pre-trained backbone: retrieval, zero-shot, face read-outs, linear probes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import CLIPModel, CLIPTokenizer

from demo_backbone.bpe import class_prompts
from demo_backbone.clips import ClipSet
from demo_backbone.pretraining import (
    FaceHeads,
    clip_movement,
    image_features,
    motion_embeddings,
    text_features,
    tokenize,
)
from demo_backbone.settings import PROBE_CS
from finecliper.data.transforms import (
    clip_normalize,
)
from finecliper.errors import FineCLIPERError
from finecliper.train.metrics import classification_report


@torch.inference_mode()
def frame_embeddings(model: CLIPModel, frames: torch.Tensor, batch_clips: int = 16) -> torch.Tensor:
    """Projected image embeddings (N, 16, D) of every clip's 16 frames, CLIP-normalised input."""
    model.eval()
    outputs = []
    for start in tqdm(range(0, len(frames), batch_clips), desc="encoding clips", leave=False):
        chunk = frames[start : start + batch_clips]
        features = image_features(model, clip_normalize(chunk.flatten(0, 1)))
        outputs.append(features.view(*chunk.shape[:2], -1))
    return torch.cat(outputs)


@torch.inference_mode()
def description_features(
    model: CLIPModel, tokenizer: CLIPTokenizer, clips: ClipSet, *, template: bool = False
) -> torch.Tensor:
    """Projected (not normalised) text embeddings of the clips' dataset (or template)
    descriptions."""
    model.eval()
    return text_features(
        model, *tokenize(tokenizer, clips.template_texts if template else clips.texts)
    )


@torch.inference_mode()
def caption_embeddings(
    model: CLIPModel, tokenizer: CLIPTokenizer, texts: Sequence[str]
) -> torch.Tensor:
    ids, mask = tokenize(tokenizer, texts)
    return F.normalize(text_features(model, ids, mask), dim=-1)


def retrieval(
    model: CLIPModel, tokenizer: CLIPTokenizer, clips: ClipSet, frame_features: torch.Tensor
) -> dict[str, float]:
    """Description <-> clip retrieval with motion embeddings; a hit is the clip's own pair (or
    a clip with the very same description text, since templated descriptions can repeat)."""
    video = motion_embeddings(frame_features)
    text = caption_embeddings(model, tokenizer, clips.texts)
    similarity = text @ video.t()
    same_text = torch.tensor([[a == b for b in clips.texts] for a in clips.texts], dtype=torch.bool)
    result = {"clips": len(clips.ids), "chance_top1": round(1 / len(clips.ids), 4)}
    for name, scores in (("text_to_clip", similarity), ("clip_to_text", similarity.t())):
        ranked = scores.argsort(dim=1, descending=True)
        hits = torch.gather(same_text, 1, ranked)
        for k in (1, 5):
            result[f"{name}_top{k}"] = round(hits[:, :k].any(dim=1).float().mean().item(), 4)
    return result


def zero_shot(
    model: CLIPModel, tokenizer: CLIPTokenizer, clips: ClipSet, frame_features: torch.Tensor
) -> dict[str, float]:
    """Classify clips by the class prompts alone: positive and PN (positive minus negative)."""
    video = motion_embeddings(frame_features)
    positive_prompts, negative_prompts = class_prompts(clips.classes)
    positive = caption_embeddings(model, tokenizer, positive_prompts)
    negative = caption_embeddings(model, tokenizer, negative_prompts)
    result = {}
    for name, scores in (
        ("positive", video @ positive.t()),
        ("pn", video @ positive.t() - video @ negative.t()),
    ):
        report = classification_report(clips.labels, scores.argmax(dim=1).numpy(), clips.classes)
        result[f"{name}_uar"], result[f"{name}_war"] = round(report.uar, 4), round(report.war, 4)
    return result


@torch.inference_mode()
def face_readout(
    heads: FaceHeads, clips: ClipSet, frame_features: torch.Tensor, text: torch.Tensor
) -> dict:
    """R^2 of the pre-training read-outs on held-out clips: how linearly the image embedding
    carries the action units and the landmarks, and the text embedding the movement."""
    size = clips.frames.shape[-1]
    points = clips.landmarks.flatten(0, 1).flatten(1) / (size / 2) - 1
    features = frame_features.flatten(0, 1)
    return {
        "action_units_r2": _r2(heads.aus(features), clips.aus.flatten(0, 1)),
        "landmarks_r2": _r2(heads.landmarks(features), points),
        "text_movement_r2": _r2(heads.text_movement(text), clip_movement(clips.aus)),
    }


def _r2(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over output columns of the coefficient of determination."""
    residual = ((predicted - target) ** 2).sum(dim=0)
    total = ((target - target.mean(dim=0)) ** 2).sum(dim=0).clamp_min(1e-8)
    return round((1 - residual / total).mean().item(), 4)


def linear_probe(clips: ClipSet, features: torch.Tensor) -> dict[str, object]:
    """Logistic regression on frozen clip features, trained on the train clips (its inverse
    regularisation C chosen by 5-fold cross-validation among them), scored on the test clips."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = _fold_split(clips)
    smallest = min(int(n) for n in np.bincount(clips.labels[train]) if n > 0)
    if smallest < 2:
        raise FineCLIPERError(
            "probe data too small: a class has a single training clip (generate more clips)"
        )
    probe = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        {"logisticregression__C": list(PROBE_CS)},
        scoring="balanced_accuracy",
        cv=StratifiedKFold(min(5, smallest), shuffle=True, random_state=0),
    )
    probe.fit(features[train].numpy(), clips.labels[train])
    predicted = probe.predict(features[test].numpy())
    report = classification_report(clips.labels[test], predicted, clips.classes)
    return {
        "c": probe.best_params_["logisticregression__C"],
        "train_clips": int(train.sum()),
        "test_clips": int(test.sum()),
        "uar": round(report.uar, 4),
        "war": round(report.war, 4),
        "chance_uar": round(1 / len(clips.classes), 4),
        "per_class_recall": {
            k: round(v, 4) for k, v in report.per_class_recall.items() if v is not None
        },
    }


def probe_features(frame_features: torch.Tensor) -> dict[str, torch.Tensor]:
    """Clip features for the probes: the mean over the 16 frames of the unit frame embeddings
    (the brief's check), and that mean next to the change from the first 2 frames to the last
    4 (what a temporal module can read; the expression unfolds over the clip)."""
    unit = F.normalize(frame_features, dim=-1)
    mean = unit.mean(dim=1)
    change = unit[:, -4:].mean(dim=1) - unit[:, :2].mean(dim=1)
    return {"mean_pooled": mean, "mean_and_change": torch.cat([mean, change], dim=1)}


def _fold_split(clips: ClipSet) -> tuple[np.ndarray, np.ndarray]:
    test = np.asarray(clips.splits) == "test"
    if not test.any() or test.all():
        raise FineCLIPERError("the probe data needs both training and test clips")
    return ~test, test
