"""FineCLIPER: the full model over one frozen CLIP (docs/method.md sections 2 and 4).

Branches (docs/method.md 2.3), all on the same :class:`FrozenCLIP` instance:

- video, parsing, landmark: the image tower with the branch's adapter set on every frame, then
  the temporal module. The three streams run as one concatenated batch through the frozen
  layers. One temporal module serves all three by default [ours]: docs/method.md 2.7's arithmetic
  (19M for FineCLIPER*) counts it once; ``shared_temporal=False`` gives each its own.
- label encoder: the text tower with a Positive and a Negative adapter set on the 2C prompts
  (``A person with an expression of {label}.`` / ``... of no {label}.``), encoded once per forward
  pass, not per sample. ``logits=positive`` builds and encodes only the positive side.
- fine-grained text encoder: the text tower with its own adapter set on one description per clip.

Text adapter sets have one adapter per block (docs/method.md 2.7: 12 x 131,712 parameters at
512 -> 128 -> 512), serial after the attention by default [ours].

Fusion and losses (docs/method.md 2.5): per-modality PN logits, adaptive (or fixed) weights over the
modalities present for each sample, the fused feature's logits, and ``CE(fused) + sum_m w_m.detach()
CE(m) + lambda_align InfoNCE(video, text)``. The per-modality sum is skipped for FineCLIPER (video
only), where it would repeat the fused term. In training, modality dropout removes each non-video
modality of a sample with probability ``modality_dropout`` (video never, so never all).
The zero-shot objective (docs/method.md 4) is the video-description InfoNCE alone; labels are
unused. With ``zero_shot_label_free`` the label prompts are encoded by the description adapters.

Missing inputs: ``present`` (B, 4) over ``MODALITIES`` marks what each sample has; an input left
as None is absent for the whole batch (and not computed). Inputs of modalities the variant does
not use are ignored.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPModel

from finecliper.errors import FineCLIPERError
from finecliper.model.adapters import AdapterSet
from finecliper.model.backbone import FrozenCLIP, load_clip
from finecliper.model.batch import (
    MODALITIES,
    VARIANT_MODALITIES,
    VISUAL_MODALITIES,
    LossParts,
    ModelInputs,
    ModelOutputs,
)
from finecliper.model.config import ModelConfig
from finecliper.model.heads import ModalityWeighting, PNHead, info_nce
from finecliper.model.temporal import build_temporal
from finecliper.model.tokenizer import TextTokenizer, load_tokenizer, tokenizer_source

# Top-level submodules -> component names of the parameter summary.
COMPONENTS = {
    "visual_adapters.video": "video_adapters",
    "visual_adapters.parsing": "parsing_adapters",
    "visual_adapters.landmark": "landmark_adapters",
    "temporal": "temporal",
    "label_adapters.positive": "label_positive_adapters",
    "label_adapters.negative": "label_negative_adapters",
    "text_adapters": "text_adapters",
    "head": "heads",
    "weighting": "heads",
    "backbone": "frozen_backbone",
}


def label_prompts(class_names: Sequence[str], config: ModelConfig) -> tuple[list[str], list[str]]:
    """Positive and negative prompts of every class (docs/method.md 2.3)."""
    names = [str(name).strip() for name in class_names]
    if len(names) < 2 or any(not name for name in names):
        raise FineCLIPERError(f"need at least two non-empty class names, got {list(class_names)}")
    if len(set(names)) != len(names):
        raise FineCLIPERError(f"class names are not unique: {names}")

    def fill(template: str) -> list[str]:
        return [template.format(label=name, negation=config.negation_word) for name in names]

    return fill(config.positive_template), fill(config.negative_template)


class FineCLIPER(nn.Module):
    def __init__(
        self,
        config: ModelConfig,
        clip: CLIPModel,
        num_frames: int = 16,
        tokenizer: TextTokenizer | None = None,
    ) -> None:
        super().__init__()
        vocab_size = clip.config.text_config.vocab_size
        if tokenizer is not None and tokenizer.vocab_size != vocab_size:
            raise FineCLIPERError(
                f"tokenizer {tokenizer.source!r} has {tokenizer.vocab_size} tokens but the "
                f"backbone's text tower has {vocab_size}"
            )
        self.config = config
        self.modalities = VARIANT_MODALITIES[config.variant]
        self.tokenizer = tokenizer
        self.backbone = FrozenCLIP(clip)
        self.visual_adapters = nn.ModuleDict(
            {m: self._visual_adapter_set(m) for m in self.modalities if m in VISUAL_MODALITIES}
        )
        self.temporal = self._build_temporal(num_frames)
        sides = ("positive", "negative") if config.logits == "pn" else ("positive",)
        self.label_adapters = nn.ModuleDict(
            {side: self._text_adapter_set(config.label_adapter_ratio) for side in sides}
        )
        self.text_adapters = (
            self._text_adapter_set(config.text_adapter_ratio) if "text" in self.modalities else None
        )
        self.head = PNHead(config.tau_init)
        self.weighting = ModalityWeighting(
            config.weighting,
            config.weight_temperature,
            config.learnable_weight_temperature,
            config.fixed_video_weight,
        )
        self.class_names: tuple[str, ...] = ()
        self._label_cache: tuple[tuple, tuple[torch.Tensor, torch.Tensor | None]] | None = None
        for name in ("positive_ids", "positive_mask", "negative_ids", "negative_mask"):
            self.register_buffer(name, None, persistent=False)

    def _visual_adapter_set(self, modality: str) -> AdapterSet:
        ratio = getattr(self.config, f"{modality}_adapter_ratio")
        backbone = self.backbone
        return AdapterSet(
            backbone.vision_width,
            backbone.vision_layers,
            ratio,
            mlp_scale=self.config.mlp_adapter_scale,
        )

    def _text_adapter_set(self, ratio: float) -> AdapterSet:
        return AdapterSet(
            self.backbone.text_width,
            self.backbone.text_layers,
            ratio,
            placements=(self.config.text_adapter_position,),
            mlp_scale=self.config.mlp_adapter_scale,
        )

    def _build_temporal(self, num_frames: int) -> nn.Module:
        config = self.config

        def build() -> nn.Module:
            return build_temporal(
                config.temporal,
                self.backbone.embed_dim,
                num_frames,
                config.temporal_layers,
                config.temporal_mlp_ratio,
                config.temporal_motion,
            )

        if config.shared_temporal:
            return build()
        visual = [m for m in self.modalities if m in VISUAL_MODALITIES]
        return nn.ModuleDict({m: build() for m in visual})

    # ---- class prompts -------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def set_class_names(self, class_names: Sequence[str]) -> None:
        """Tokenize the PN prompts of these classes (any dataset's, e.g. for zero-shot)."""
        if self.tokenizer is None:
            raise FineCLIPERError("set_class_names needs the model's tokenizer (build_model)")
        positive, negative = label_prompts(class_names, self.config)
        device = self.head.log_tau.device
        tokens = self.tokenizer(positive).to(device)
        self.positive_ids, self.positive_mask = tokens.input_ids, tokens.attention_mask
        if "negative" in self.label_adapters:
            tokens = self.tokenizer(negative).to(device)
            self.negative_ids, self.negative_mask = tokens.input_ids, tokens.attention_mask
        self.class_names = tuple(str(name).strip() for name in class_names)
        self._label_cache = None

    def label_embeddings(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Normalised positive (C, D) and negative (C, D) label embeddings (None: positive mode).

        In inference (eval mode, no grad) they are computed once and reused until the model
        trains, loads weights or changes classes, devices or autocast state again.
        """
        if self.positive_ids is None:
            raise FineCLIPERError("no class names set: call set_class_names first")
        if self.training or torch.is_grad_enabled():
            return self._encode_labels()
        device = self.positive_ids.device
        key = (device, torch.is_autocast_enabled(device.type))
        if self._label_cache is None or self._label_cache[0] != key:
            self._label_cache = (key, self._encode_labels())
        return self._label_cache[1]

    def _encode_labels(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        encode = self.backbone.encode_text
        # Label-free zero-shot: only the description adapters learn, so the prompts go through
        # them and land in the space the video was aligned to.
        label_free = self.config.zero_shot_label_free
        adapters = {
            kind: self.text_adapters if label_free else adapter
            for kind, adapter in self.label_adapters.items()
        }
        positive = encode(self.positive_ids, self.positive_mask, adapters["positive"])
        if "negative" not in adapters:
            return F.normalize(positive, dim=-1), None
        negative = encode(self.negative_ids, self.negative_mask, adapters["negative"])
        return F.normalize(positive, dim=-1), F.normalize(negative, dim=-1)

    # ---- encoders ------------------------------------------------------------------------

    def frame_embeddings(self, streams: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-frame embeddings (B, T, D) of each visual modality's frames (B, T, 3, H, W)."""
        if not streams:
            return {}
        shapes = {m: frames.shape[:2] for m, frames in streams.items()}
        batches = [(frames.flatten(0, 1), self.visual_adapters[m]) for m, frames in streams.items()]
        embedded = self.backbone.encode_images(batches)
        return {m: out.view(*shapes[m], -1) for m, out in zip(streams, embedded, strict=True)}

    def _pool(self, modality: str, frames: torch.Tensor) -> torch.Tensor:
        temporal = self.temporal
        module = temporal[modality] if isinstance(temporal, nn.ModuleDict) else temporal
        return module(frames)

    def text_embedding(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Normalised description embeddings (B, D)."""
        if self.text_adapters is None:
            raise FineCLIPERError(f"variant {self.config.variant!r} has no description branch")
        return F.normalize(
            self.backbone.encode_text(input_ids, attention_mask, self.text_adapters), dim=-1
        )

    # ---- forward -------------------------------------------------------------------------

    def forward(self, inputs: ModelInputs) -> ModelOutputs:
        available = self._available(inputs)
        present = self._modality_dropout(available) if self.training else available
        features = self._modality_features(inputs, available)
        stacked = torch.stack([features[m] for m in self.modalities], dim=1)  # (B, M, D)
        positive, negative = self.label_embeddings()
        per_modality = self.head(stacked, positive, negative)  # (B, M, C)
        weights = self.weighting(per_modality, present)
        mixed = torch.where(present[..., None], weights[..., None] * stacked, 0.0).sum(dim=1)
        fused = F.normalize(mixed, dim=-1)
        features["fused"] = fused
        if self.config.fusion == "logits":
            logits = torch.where(present[..., None], weights[..., None] * per_modality, 0.0)
            logits = logits.sum(dim=1)
        else:
            logits = self.head(fused, positive, negative)
        return ModelOutputs(
            logits=logits,
            modality_logits={m: per_modality[:, i] for i, m in enumerate(self.modalities)},
            weights=weights,
            modalities=self.modalities,
            features=features,
            available=available,
            present=present,
        )

    def _inputs_by_modality(self, inputs: ModelInputs) -> dict[str, torch.Tensor | None]:
        return {
            "video": inputs.frames,
            "parsing": inputs.parsing,
            "landmark": inputs.landmarks,
            "text": inputs.description_ids,
        }

    def _available(self, inputs: ModelInputs) -> torch.Tensor:
        frames = inputs.frames
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise FineCLIPERError(f"frames must be (B, T, 3, H, W), got {tuple(frames.shape)}")
        batch = frames.shape[0]
        given = self._inputs_by_modality(inputs)
        for name in ("parsing", "landmark"):
            tensor = given[name]
            if name in self.modalities and tensor is not None and tensor.shape != frames.shape:
                raise FineCLIPERError(
                    f"{name} renderings {tuple(tensor.shape)} differ from frames "
                    f"{tuple(frames.shape)}"
                )
        present = inputs.present
        if present is None:
            present = torch.ones(batch, len(MODALITIES), dtype=torch.bool, device=frames.device)
        elif present.shape != (batch, len(MODALITIES)) or present.dtype != torch.bool:
            raise FineCLIPERError(
                f"present must be a bool tensor of shape ({batch}, {len(MODALITIES)}) over "
                f"{MODALITIES}, got {present.dtype} {tuple(present.shape)}"
            )
        columns = [MODALITIES.index(m) for m in self.modalities]
        has_input = torch.tensor(
            [given[m] is not None for m in self.modalities], device=frames.device
        )
        available = present[:, columns] & has_input
        if not bool(available.any(dim=1).all()):
            empty = (~available.any(dim=1)).nonzero().flatten().tolist()
            raise FineCLIPERError(f"samples {empty} of the batch have no modality present")
        return available

    def _modality_dropout(self, available: torch.Tensor) -> torch.Tensor:
        rate = self.config.modality_dropout
        if rate == 0.0 or available.shape[1] == 1:
            return available
        drop = torch.rand(available.shape, device=available.device) < rate
        drop[:, 0] = False  # never the video modality
        kept = available & ~drop
        # A sample without video must keep something: fall back to what it had.
        return torch.where(kept.any(dim=1, keepdim=True), kept, available)

    def _modality_features(
        self, inputs: ModelInputs, available: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Normalised clip-level features (B, D) per modality; zeros where nobody has it."""
        given = self._inputs_by_modality(inputs)
        needed = {
            m: given[m] is not None and bool(available[:, i].any())
            for i, m in enumerate(self.modalities)
        }
        streams = {
            m: frames
            for m in self.modalities
            if m in VISUAL_MODALITIES and needed[m] and (frames := given[m]) is not None
        }
        features = {
            m: F.normalize(self._pool(m, frames), dim=-1)
            for m, frames in self.frame_embeddings(streams).items()
        }
        ids = inputs.description_ids
        if "text" in self.modalities and needed["text"] and ids is not None:
            features["text"] = self.text_embedding(ids, inputs.description_mask)
        batch = inputs.frames.shape[0]
        for m in self.modalities:
            if m not in features:
                features[m] = inputs.frames.new_zeros(batch, self.backbone.embed_dim)
        return features

    # ---- losses --------------------------------------------------------------------------

    def loss(self, outputs: ModelOutputs, labels: torch.Tensor | None = None) -> LossParts:
        """The training objective of ``model.objective`` (labels unused for zero_shot)."""
        align = self._alignment(outputs)
        if self.config.objective == "zero_shot":
            zero = align.new_zeros(())
            return LossParts(total=align, classification=zero, align=align)
        if labels is None:
            raise FineCLIPERError("the supervised objective needs labels")
        classification = F.cross_entropy(outputs.logits, labels)
        modality: dict[str, torch.Tensor] = {}
        if len(self.modalities) > 1:
            weights = outputs.weights.detach()
            for i, m in enumerate(self.modalities):
                ce = F.cross_entropy(outputs.modality_logits[m], labels, reduction="none")
                modality[m] = torch.where(outputs.present[:, i], weights[:, i] * ce, 0.0).mean()
        align_term = self.config.lambda_align * align
        total = classification + sum(modality.values(), align_term)
        return LossParts(total=total, classification=classification, align=align, modality=modality)

    def _alignment(self, outputs: ModelOutputs) -> torch.Tensor:
        """Video-description InfoNCE over the samples that have both (0 without two pairs)."""
        video = outputs.features["video"]
        if "text" not in self.modalities:
            return video.new_zeros(())
        both = outputs.available[:, 0] & outputs.available[:, self.modalities.index("text")]
        if int(both.sum()) < 2:
            return video.sum() * 0.0  # keeps the graph for a uniform backward
        return info_nce(video[both], outputs.features["text"][both], self.head.tau)

    # ---- trainable state -----------------------------------------------------------------

    def named_trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in self.named_parameters() if p.requires_grad)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Adapters, temporal module(s), tau and the weighting temperature."""
        return [p for _, p in self.named_trainable_parameters()]

    def optimizer_parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW groups as nanoGPT splits them: weight matrices decay; biases, norms, log tau,
        the weighting temperature and the temporal CLS token and positional embeddings do not."""
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        exempt = self._no_weight_decay_names()
        for name, parameter in self.named_trainable_parameters():
            keep = parameter.ndim < 2 or name in exempt
            (no_decay if keep else decay).append(parameter)
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def _no_weight_decay_names(self) -> set[str]:
        """Full names of the parameters that modules declare exempt (``no_weight_decay()``)."""
        names: set[str] = set()
        for prefix, module in self.named_modules():
            if hasattr(module, "no_weight_decay"):
                names.update(
                    f"{prefix}.{name}" if prefix else name for name in module.no_weight_decay()
                )
        return names

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the trained weights: what a checkpoint needs next to the backbone's name."""
        return {n: p.detach().clone() for n, p in self.named_trainable_parameters()}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load :meth:`trainable_state_dict` output; keys and shapes must match exactly."""
        expected = dict(self.named_trainable_parameters())
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise FineCLIPERError(
                f"trainable weights do not fit this model (variant {self.config.variant!r}): "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        for name, value in state.items():
            if value.shape != expected[name].shape:
                raise FineCLIPERError(
                    f"trainable weight {name}: shape {tuple(value.shape)} in the checkpoint, "
                    f"{tuple(expected[name].shape)} in the model"
                )
        with torch.no_grad():
            for name, value in state.items():
                expected[name].copy_(value)
        self._label_cache = None

    def component_parameter_counts(self) -> dict[str, int]:
        """Parameters per component (see ``COMPONENTS``), frozen backbone included."""
        counts = dict.fromkeys(dict.fromkeys(COMPONENTS.values()), 0)
        for name, parameter in self.named_parameters():
            prefix = max((p for p in COMPONENTS if name.startswith(p + ".")), key=len)
            counts[COMPONENTS[prefix]] += parameter.numel()
        return counts

    def train(self, mode: bool = True) -> FineCLIPER:
        self._label_cache = None
        return super().train(mode)

    def _apply(self, fn, recurse: bool = True):  # .to(), .cuda(), .half(): stale cache
        self._label_cache = None
        return super()._apply(fn, recurse)

    def compile_image_tower(self) -> None:
        """``torch.compile`` the frozen tower's image encoder: nearly all of a step's arithmetic,
        and one graph (the rest of the model checks inputs with Python conditions that would
        split a whole-model graph into many small ones)."""
        self.backbone.encode_images = torch.compile(self.backbone.encode_images)  # type: ignore[method-assign]

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each frozen block in backward instead of storing its activations."""
        self.backbone.grad_checkpointing = enabled


def build_model(
    config: ModelConfig,
    class_names: Sequence[str],
    num_frames: int = 16,
    *,
    clip: CLIPModel | None = None,
    tokenizer: TextTokenizer | None = None,
) -> FineCLIPER:
    """Load the backbone and tokenizer named by ``config`` (unless given) and build the model."""
    if clip is None:
        clip = load_clip(config.backbone, config.backbone_activation)
    if tokenizer is None:
        text_config = clip.config.text_config
        source = tokenizer_source(config.backbone, config.tokenizer)
        tokenizer = load_tokenizer(
            source, text_config.vocab_size, text_config.max_position_embeddings
        )
    model = FineCLIPER(config, clip, num_frames, tokenizer)
    model.set_class_names(class_names)
    return model
