"""The tiny CLIP model, the face read-out heads, the losses and the pre-training loop."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from demo_backbone.bpe import adjective_prompts, class_prompts
from demo_backbone.clips import ClipSet
from demo_backbone.settings import BACKBONE
from finecliper.data.transforms import (
    ClipSample,
    ClipTransform,
    clip_normalize,
)
from finecliper.face.render import render_landmarks, render_parsing
from finecliper.face.schema import NUM_LANDMARKS, PARSING_CLASSES
from finecliper.train.schedule import warmup_cosine


def build_model(tokenizer: CLIPTokenizer, seed: int) -> CLIPModel:
    """The backbone with random weights, its text tower sized to ``tokenizer``."""
    architecture = replace(BACKBONE, vocab_size=len(tokenizer))
    config = architecture.to_config()
    # Also on the towers, so CLIP{Text,Vision}ModelWithProjection load the same projections.
    config.text_config.projection_dim = architecture.embed_dim
    config.vision_config.projection_dim = architecture.embed_dim
    torch.manual_seed(seed)
    return CLIPModel(config)


def image_features(model: CLIPModel, pixels: torch.Tensor) -> torch.Tensor:
    """Projected image embeddings (written out: get_image_features' return type varies)."""
    return model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)


def text_features(model: CLIPModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    pooled = model.text_model(input_ids=ids, attention_mask=mask).pooler_output
    return model.text_projection(pooled)


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    batch_size: int
    frames_per_sample: int
    lr: float
    prompt_fraction: float
    render_fraction: float
    parsing_weight: float
    landmark_weight: float
    movement_weight: float
    text_weight: float
    expression_weight: float
    frame_prompt_weight: float
    seed: int


class FaceHeads(torch.nn.Module):
    """Read-outs used only while pre-training (not saved): parsing classes of 4x4-pixel cells
    from each patch token, landmarks and action units from the image embedding, the clip's
    movement (peak rise of each action unit) from its description's text embedding, and the
    expression class from the change between a clip's first and later frame embeddings."""

    cell = 4

    def __init__(self, config: CLIPConfig, num_aus: int, num_classes: int) -> None:
        super().__init__()
        vision = config.vision_config
        self.cells_per_patch = (vision.patch_size // self.cell) ** 2
        self.num_classes = len(PARSING_CLASSES)
        self.parsing = torch.nn.Linear(vision.hidden_size, self.cells_per_patch * self.num_classes)
        self.landmarks = torch.nn.Linear(config.projection_dim, 2 * NUM_LANDMARKS)
        self.aus = torch.nn.Linear(config.projection_dim, num_aus)
        self.text_movement = torch.nn.Linear(config.projection_dim, num_aus)
        self.expression = torch.nn.Linear(2 * config.projection_dim, num_classes)

    def expression_logits(self, unit_frames: torch.Tensor) -> torch.Tensor:
        """(N, k, D) unit embeddings, first frame first -> (N, classes): from the mean of the
        later frames and its change from the first."""
        later = unit_frames[:, 1:].mean(dim=1)
        # x4: unit-vector differences are small; this keeps the linear head's logits in range
        return self.expression(4 * torch.cat([later - unit_frames[:, 0], later], dim=-1))

    def parsing_logits(self, patch_tokens: torch.Tensor) -> torch.Tensor:
        """(N, patches, width) -> (N, patches, cells, classes)."""
        logits = self.parsing(patch_tokens)
        return logits.view(*patch_tokens.shape[:2], self.cells_per_patch, self.num_classes)


def parsing_cell_targets(maps: torch.Tensor, patch: int, cell: int) -> torch.Tensor:
    """(N, H, W) class ids -> (N, patches, cells, classes): class shares of each cell, with
    patches and cells in row-major order (the ViT's patch order)."""
    classes = len(PARSING_CLASSES)
    onehot = F.one_hot(maps.long().clamp_max(classes - 1), classes).permute(0, 3, 1, 2)
    shares = F.avg_pool2d(onehot.float(), cell)  # (N, classes, H / cell, W / cell)
    n, _, rows, cols = shares.shape
    per = patch // cell
    shares = shares.view(n, classes, rows // per, per, cols // per, per)
    return shares.permute(0, 2, 4, 3, 5, 1).reshape(n, -1, per * per, classes)


@dataclass(frozen=True)
class Captions:
    """Every caption of the pre-training set, tokenised once: the distinct descriptions, then
    the class prompts (positive template for each class, then adjective template)."""

    ids: torch.Tensor
    mask: torch.Tensor
    description_of_clip: torch.Tensor  # (N, 2) caption rows: dataset and template description
    prompts_of_clip: torch.Tensor  # (N, 2) caption rows of each clip's class prompts
    prompt_rows: torch.Tensor  # (2C,) caption rows of the prompts
    prompt_movement: torch.Tensor  # (2C, AUs) mean movement of each prompt's class

    def features(self, model: CLIPModel, rows: torch.Tensor) -> torch.Tensor:
        """Projected text embeddings of caption ``rows``, padding trimmed to the longest."""
        length = int(self.mask[rows].sum(dim=1).max())
        return text_features(model, self.ids[rows, :length], self.mask[rows, :length])


def build_captions(tokenizer: CLIPTokenizer, clips: ClipSet) -> Captions:
    unique = sorted(set(clips.texts) | set(clips.template_texts))
    position = {text: i for i, text in enumerate(unique)}
    prompts = class_prompts(clips.classes)[0] + adjective_prompts(clips.classes)
    ids, mask = tokenize(tokenizer, unique + prompts)
    num_classes = len(clips.classes)
    label = torch.from_numpy(clips.labels)
    movement = clip_movement(clips.aus)
    class_movement = torch.stack([movement[label == c].mean(dim=0) for c in range(num_classes)])
    return Captions(
        ids=ids,
        mask=mask,
        description_of_clip=torch.tensor(
            [
                [position[a], position[b]]
                for a, b in zip(clips.texts, clips.template_texts, strict=True)
            ]
        ),
        prompts_of_clip=torch.stack([len(unique) + label, len(unique) + num_classes + label], 1),
        prompt_rows=torch.arange(len(unique), len(unique) + len(prompts)),
        prompt_movement=class_movement.repeat(2, 1),
    )


def tokenize(tokenizer: CLIPTokenizer, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    batch = tokenizer(list(texts), padding="max_length", truncation=True, return_tensors="pt")
    return batch.input_ids, batch.attention_mask


def sample_frames(num_frames: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """One frame from the clip's start (still neutral) and k - 1 from its last three quarters,
    where the expression unfolds and peaks."""
    early = torch.randint(0, max(1, num_frames // 8), (1,), generator=generator)
    late = torch.randint(num_frames // 4, num_frames, (k - 1,), generator=generator)
    return torch.cat([early, late.sort().values])


def augmented_batch(
    clips: ClipSet,
    batch: torch.Tensor,
    frame_index: torch.Tensor,
    render_fraction: float,
    generator: torch.Generator,
) -> ClipSample:
    """The demo's train transform (random resized crop + flip, shared by a sample's frames,
    parsing maps and landmarks); a share of the samples become parsing or landmark renderings,
    the middle-level inputs the demo also runs through this tower."""
    rows, cols = batch[:, None], frame_index
    sample = ClipSample(
        clips.frames[rows, cols], clips.parsing[rows, cols], clips.landmarks[rows, cols]
    )
    sample = ClipTransform(clips.frames.shape[-1], train=True)(sample, generator)
    frames = sample.frames
    stream = torch.rand(len(batch), generator=generator)[:, None, None, None, None]
    frames = torch.where(
        stream < render_fraction / 2, render_parsing(frames, sample.parsing), frames
    )
    as_landmarks = (stream >= render_fraction / 2) & (stream < render_fraction)
    frames = torch.where(as_landmarks, render_landmarks(frames, sample.landmarks), frames)
    return ClipSample(frames, sample.parsing, sample.landmarks)


def clip_movement(aus: torch.Tensor) -> torch.Tensor:
    """(..., T, AUs) -> (..., AUs): how far each action unit rises above its first frame."""
    return (aus.amax(dim=-2) - aus[..., 0, :]).clamp_min(0)


def motion_embeddings(frame_features: torch.Tensor) -> torch.Tensor:
    """Unit clip embeddings of the expression change: mean of the unit embeddings of the later
    frames minus that of the first frame(s) of each clip (frames on dim 1, in time order)."""
    unit = F.normalize(frame_features, dim=-1)
    early = max(1, unit.shape[1] // 8)
    return F.normalize(unit[:, early:].mean(dim=1) - unit[:, :early].mean(dim=1), dim=-1)


def soft_clip_loss(logits: torch.Tensor, caption_ids: torch.Tensor) -> torch.Tensor:
    """Symmetric CLIP loss; samples sharing a caption are all positives of each other."""
    same = (caption_ids[:, None] == caption_ids[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)
    image_loss = torch.sum(-targets * F.log_softmax(logits, dim=1), dim=1).mean()
    text_loss = torch.sum(-targets * F.log_softmax(logits.t(), dim=1), dim=1).mean()
    return (image_loss + text_loss) / 2


def pretrain(
    model: CLIPModel, tokenizer: CLIPTokenizer, clips: ClipSet, settings: TrainSettings
) -> tuple[list[dict[str, float]], FaceHeads]:
    """Pre-train the whole model; returns the mean losses of every 25 steps and the heads."""
    captions = build_captions(tokenizer, clips)
    heads = FaceHeads(model.config, clips.aus.shape[-1], len(clips.classes))
    generator = torch.Generator().manual_seed(settings.seed)
    parameters = [*model.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=0.05)
    schedule = warmup_cosine(optimizer, settings.steps, max(1, settings.steps // 20))
    weights = {
        "contrastive": 1.0,
        "parsing": settings.parsing_weight,
        "landmarks": settings.landmark_weight,
        "movement": settings.movement_weight,
        "text": settings.text_weight,
        "expression": settings.expression_weight,
        "frame_prompt": settings.frame_prompt_weight,
    }
    model.train()
    history, window = [], []
    batches = _batches(len(clips.ids), settings, generator)
    progress = tqdm(batches, desc="pre-training", unit="step", total=settings.steps)
    for step, batch in enumerate(progress):
        losses = _step_losses(model, heads, clips, captions, batch, settings, generator)
        loss = sum(weights[name] * value for name, value in losses.items())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        with torch.no_grad():  # CLIP's cap on the logit scale (temperature >= 0.01)
            model.logit_scale.clamp_(0, math.log(100))
        window.append({name: value.item() for name, value in losses.items()})
        if len(window) == 25 or step == settings.steps - 1:
            means = {name: round(float(np.mean([w[name] for w in window])), 5) for name in losses}
            history.append({"step": step + 1, **means})
            progress.set_postfix(means)
            window = []
    model.eval()
    return history, heads


def _batches(
    num_clips: int, settings: TrainSettings, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """``settings.steps`` batches of clip indices, walking through shuffled epochs."""
    order, cursor = torch.randperm(num_clips, generator=generator), 0
    for _ in range(settings.steps):
        if cursor + settings.batch_size > num_clips:
            order, cursor = torch.randperm(num_clips, generator=generator), 0
        yield order[cursor : cursor + settings.batch_size]
        cursor += settings.batch_size


def _step_losses(
    model: CLIPModel,
    heads: FaceHeads,
    clips: ClipSet,
    captions: Captions,
    batch: torch.Tensor,
    settings: TrainSettings,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    num_frames = clips.frames.shape[1]
    frame_index = torch.stack(
        [sample_frames(num_frames, settings.frames_per_sample, generator) for _ in batch]
    )
    sample = augmented_batch(clips, batch, frame_index, settings.render_fraction, generator)
    aus = clips.aus[batch[:, None], frame_index].flatten(0, 1)
    pixels = clip_normalize(sample.frames.flatten(0, 1))
    tokens = model.vision_model(pixel_values=pixels)
    features = model.visual_projection(tokens.pooler_output)
    patch = model.config.vision_config.patch_size
    cells = parsing_cell_targets(sample.parsing.flatten(0, 1), patch, heads.cell)
    parsing_logits = heads.parsing_logits(tokens.last_hidden_state[:, 1:])
    points = sample.landmarks.flatten(0, 1).flatten(1) / (pixels.shape[-1] / 2) - 1
    seen = torch.isfinite(points)  # frames without a face have NaN landmarks
    # Each sample is paired with one of its two descriptions (the dataset's, in the role of the
    # MLLM's, or the landmark template's), or for a share with its class prompt.
    use_prompt = torch.rand(len(batch), generator=generator) < settings.prompt_fraction
    which = torch.randint(0, 2, (len(batch),), generator=generator)
    style = torch.randint(0, 2, (len(batch),), generator=generator)
    description = captions.description_of_clip[batch, style]
    caption = torch.where(use_prompt, captions.prompts_of_clip[batch, which], description)
    motion = motion_embeddings(features.view(*frame_index.shape, -1))
    text_rows = torch.cat([description, captions.prompt_rows])
    text_targets = torch.cat([clip_movement(clips.aus[batch]), captions.prompt_movement])
    labels = torch.from_numpy(clips.labels[batch.numpy()])
    unit_frames = F.normalize(features, dim=-1).view(*frame_index.shape, -1)
    return {
        "contrastive": _contrastive_loss(model, captions, motion, caption),
        "parsing": torch.sum(-cells * F.log_softmax(parsing_logits, dim=-1), dim=-1).mean(),
        "landmarks": F.mse_loss(heads.landmarks(features)[seen], points[seen]),
        "movement": F.mse_loss(heads.aus(features), aus),
        "text": F.mse_loss(heads.text_movement(captions.features(model, text_rows)), text_targets),
        "expression": F.cross_entropy(heads.expression_logits(unit_frames), labels),
        "frame_prompt": _frame_prompt_loss(model, captions, unit_frames[:, 1:], labels),
    }


def _frame_prompt_loss(
    model: CLIPModel, captions: Captions, unit_frames: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Each later frame on its own against the class prompts (the demo's positive label
    prompts), so that single frame embeddings, and their mean over a clip, carry the
    expression: the demo pools frames by their mean plus a temporal transformer."""
    num_classes = captions.prompt_rows.numel() // 2
    prompts = F.normalize(captions.features(model, captions.prompt_rows[:num_classes]), dim=-1)
    logits = model.logit_scale.exp() * unit_frames @ prompts.t()
    return F.cross_entropy(logits.flatten(0, 1), labels.repeat_interleave(unit_frames.shape[1]))


def _contrastive_loss(
    model: CLIPModel, captions: Captions, motion: torch.Tensor, caption: torch.Tensor
) -> torch.Tensor:
    """CLIP loss between each sample's motion embedding and its caption; the text tower
    encodes each distinct caption of the batch once."""
    unique, inverse = torch.unique(caption, return_inverse=True)
    text = F.normalize(captions.features(model, unique), dim=-1)
    logits = model.logit_scale.exp() * motion @ text[inverse].t()
    return soft_clip_loss(logits, inverse)
