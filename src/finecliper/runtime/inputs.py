"""Turn a collated :class:`ClipBatch` into the model's inputs, on the training device.

Rendering the parsing overlay and the landmark dots, and CLIP normalisation, are per-pixel
work on whole batches: they run here, after the batch is moved to the device, so CPU workers
only decode and crop. Descriptions are tokenized once per batch.
"""

from __future__ import annotations

import torch

from finecliper.data.dataset import ClipBatch
from finecliper.data.transforms import clip_normalize
from finecliper.face.render import render_landmarks, render_parsing
from finecliper.model.batch import MODALITIES, ModelInputs
from finecliper.model.tokenizer import TextTokenizer


def to_model_inputs(
    batch: ClipBatch,
    device: torch.device,
    *,
    modalities: tuple[str, ...],
    tokenizer: TextTokenizer | None,
) -> ModelInputs:
    frames = batch.frames.to(device, non_blocking=True)
    present = torch.zeros(len(batch.labels), len(MODALITIES), dtype=torch.bool)
    present[:, 0] = True
    inputs = ModelInputs(frames=clip_normalize(frames))
    if "parsing" in modalities or "landmark" in modalities:
        has_middle = batch.has_middle
        present[:, 1] = present[:, 2] = has_middle
        if bool(has_middle.any()):
            maps = batch.parsing.to(device, non_blocking=True)
            points = batch.landmarks.to(device, non_blocking=True)
            inputs.parsing = clip_normalize(render_parsing(frames, maps))
            inputs.landmarks = clip_normalize(render_landmarks(frames, points))
    if "text" in modalities and tokenizer is not None:
        has_text = torch.tensor([text is not None for text in batch.descriptions])
        present[:, 3] = has_text
        if bool(has_text.any()):
            tokens = tokenizer([text or "" for text in batch.descriptions])
            inputs.description_ids = tokens.input_ids.to(device, non_blocking=True)
            inputs.description_mask = tokens.attention_mask.to(device, non_blocking=True)
    inputs.present = present.to(device)
    return inputs
