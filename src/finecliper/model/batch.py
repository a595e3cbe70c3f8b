"""What goes into and comes out of FineCLIPER: the modalities, one batch of inputs, the outputs
and the loss parts (docs/method.md 2). Plain torch, so the data and runtime layers can use them
without loading the model's libraries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

MODALITIES = ("video", "parsing", "landmark", "text")
VISUAL_MODALITIES = ("video", "parsing", "landmark")
VARIANT_MODALITIES: dict[str, tuple[str, ...]] = {
    "base": ("video",),
    "mid": ("video", "parsing", "landmark"),
    "high": ("video", "text"),
    "full": MODALITIES,
}


@dataclass
class ModelInputs:
    """One batch. Frames and renderings are CLIP-normalised float (B, T, 3, H, W).

    ``description_ids``/``description_mask``: right-padded tokens (B, L) from
    :class:`~finecliper.model.tokenizer.TextTokenizer`. ``present``: bool (B, 4) over
    ``MODALITIES``; None means every given input is present for every sample.
    """

    frames: torch.Tensor
    parsing: torch.Tensor | None = None
    landmarks: torch.Tensor | None = None
    description_ids: torch.Tensor | None = None
    description_mask: torch.Tensor | None = None
    present: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ModelInputs:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return ModelInputs(
            frames=self.frames.to(device, non_blocking=non_blocking),
            parsing=move(self.parsing),
            landmarks=move(self.landmarks),
            description_ids=move(self.description_ids),
            description_mask=move(self.description_mask),
            present=move(self.present),
        )


@dataclass
class ModelOutputs:
    """Fused logits (B, C); per-modality logits {m: (B, C)}; weights (B, M) over ``modalities``;
    normalised features {m: (B, D), "fused": (B, D)}; ``available`` (B, M): inputs present;
    ``present`` (B, M): what the fusion used (after modality dropout)."""

    logits: torch.Tensor
    modality_logits: dict[str, torch.Tensor]
    weights: torch.Tensor
    modalities: tuple[str, ...]
    features: dict[str, torch.Tensor]
    available: torch.Tensor
    present: torch.Tensor


@dataclass
class LossParts:
    """Total loss and its parts (all scalar tensors); ``modality`` maps modality -> weighted CE."""

    total: torch.Tensor
    classification: torch.Tensor
    align: torch.Tensor
    modality: dict[str, torch.Tensor] = field(default_factory=dict)

    def as_floats(self) -> dict[str, float]:
        values = {"loss": self.total, "ce": self.classification, "align": self.align}
        values.update({f"ce_{name}": value for name, value in self.modality.items()})
        return {name: float(value.detach()) for name, value in values.items()}
