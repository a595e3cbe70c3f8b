"""The frozen CLIP backbone: loading, and adapter-aware forward passes over its towers.

Loading (:func:`load_clip`): a known architecture name (its OpenAI weights from the hub), a
local Hugging Face directory (``config.json`` + weights), an OpenAI ``.pt`` / open_clip file
(converted by key, see :mod:`finecliper.model.convert`), or a hub id (needs the network or the
local HF cache; offline it fails with a clear error instead of hanging or returning an empty
model). Weights a checkpoint lacks are an error, not randomly initialised.
:func:`backbone_config` gives only the architecture, without weights, for the meta-device summary.

Forward (:class:`FrozenCLIP`): our own loop over HF's encoder layers (``layer_norm1``,
``self_attn``'s projections through ``scaled_dot_product_attention``, ``layer_norm2``, ``mlp``)
that adds a branch's adapters (:mod:`finecliper.model.adapters`) at the AIM positions. Every
branch uses this one tower instance, so the frozen weights exist once in memory. Several image
streams (video, parsing, landmark frames) run as one concatenated batch through the frozen
layers, each chunk with its own adapter set. Per-block gradient checkpointing is a flag.

Memory: the MLP's QuickGELU (``x * sigmoid(1.702 x)``) runs as one autograd function that keeps
only its input for the backward pass and recomputes the sigmoid there; autograd would keep the
input and the sigmoid, two tensors of the MLP's width (4x the model's), a fifth of all the
activations a block keeps (docs/benchmarks.md). The forward values are HF's, op for op.

The tower is frozen: no parameter requires a gradient and it stays in eval mode even when the
model around it is put in train mode.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import CLIPConfig, CLIPModel
from transformers.activations import QuickGELUActivation

from finecliper.assets_paths import resolve_backbone
from finecliper.errors import FineCLIPERError
from finecliper.model.adapters import Adapter, AdapterSet, BlockAdapters
from finecliper.model.architectures import architecture_config, known_architecture
from finecliper.model.convert import convert_openai_state_dict, infer_architecture, read_checkpoint

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def _offline_hint(source: str, exc: Exception) -> FineCLIPERError:
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    why = "HF_HUB_OFFLINE is set" if offline else "is the network reachable?"
    detail = (str(exc).splitlines() or [""])[0]
    return FineCLIPERError(
        f"backbone {source!r}: not a local directory or checkpoint file, and the Hugging Face "
        f"hub could not provide it ({why}; {type(exc).__name__}: {detail}); download it first "
        f"(`hf download {source} --local-dir DIR`) and pass the directory"
    )


def backbone_config(source: str, activation: str = "quick_gelu") -> CLIPConfig:
    """The ``CLIPConfig`` of a backbone source, reading no weights where it can."""
    path = Path(source).expanduser()
    if path.is_dir():
        return _read_dir_config(path)
    if path.is_file():
        return infer_architecture(read_checkpoint(path), activation).to_config()
    if known_architecture(source) is not None:
        return architecture_config(source)
    _refuse_missing_file(source)
    try:
        config = CLIPConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise _offline_hint(source, exc) from None
    config._attn_implementation = "sdpa"
    return config


def _read_dir_config(path: Path) -> CLIPConfig:
    if not (path / "config.json").is_file():
        raise FineCLIPERError(f"{path}: not a Hugging Face CLIP directory (no config.json)")
    try:
        config = CLIPConfig.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise FineCLIPERError(f"{path}/config.json: not a CLIP config: {exc}") from None
    config._attn_implementation = "sdpa"
    return config


def _refuse_missing_file(source: str) -> None:
    if source.endswith(CHECKPOINT_SUFFIXES) or source.startswith((".", "/", "~")):
        raise FineCLIPERError(f"backbone {source!r}: no such file or directory")


def load_clip(source: str, activation: str = "quick_gelu") -> CLIPModel:
    """A float32 ``CLIPModel`` with pretrained weights from a directory, checkpoint or hub id."""
    source = resolve_backbone(source)
    path = Path(source).expanduser()
    if path.is_file():
        return clip_from_openai_checkpoint(path, activation)
    if path.is_dir():
        _read_dir_config(path)
        return _from_pretrained(str(path))
    _refuse_missing_file(source)
    architecture = known_architecture(source)
    return _from_pretrained(architecture.hub_id if architecture else source)


def _from_pretrained(location: str) -> CLIPModel:
    try:
        model, info = CLIPModel.from_pretrained(
            location, attn_implementation="sdpa", output_loading_info=True
        )
    except (OSError, ValueError) as exc:
        if Path(location).is_dir():
            raise FineCLIPERError(f"{location}: cannot load CLIP weights: {exc}") from None
        raise _offline_hint(location, exc) from None
    missing = info.get("missing_keys") or []
    if missing:  # HF would fill them with random values: a silently broken backbone
        shown = ", ".join(sorted(missing)[:5])
        raise FineCLIPERError(f"{location}: {len(missing)} CLIP weights missing, e.g. {shown}")
    return model.float().eval()


def clip_from_openai_checkpoint(path: str | Path, activation: str = "quick_gelu") -> CLIPModel:
    """Load an OpenAI ``.pt`` or open_clip state dict into a ``CLIPModel`` by key conversion."""
    state = read_checkpoint(path)
    config = infer_architecture(state, activation).to_config()
    model = CLIPModel._from_config(config, attn_implementation="sdpa")
    converted = convert_openai_state_dict(state)
    try:
        model.load_state_dict(converted, strict=True)
    except RuntimeError as exc:
        raise FineCLIPERError(f"{path}: converted weights do not fit CLIP: {exc}") from None
    return model.float().eval()


def _attention(
    attn: nn.Module, x: torch.Tensor, mask: torch.Tensor | None, causal: bool
) -> torch.Tensor:
    """HF ``CLIPAttention`` weights through PyTorch SDPA (flash / memory-efficient kernels)."""
    batch, length, width = x.shape
    heads, head_dim = attn.num_heads, attn.head_dim

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(batch, length, heads, head_dim).transpose(1, 2)

    query, key, value = split(attn.q_proj(x)), split(attn.k_proj(x)), split(attn.v_proj(x))
    out = F.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, is_causal=causal, scale=attn.scale
    )
    return attn.out_proj(out.transpose(1, 2).reshape(batch, length, width))


class _QuickGELU(torch.autograd.Function):
    """``x * sigmoid(1.702 x)`` that keeps only ``x`` for backward (recomputes the sigmoid)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x * torch.sigmoid(1.702 * x)  # HF's QuickGELUActivation, op for op

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        gate = torch.sigmoid(1.702 * x)
        # grad * gate * (1 + 1.702 x (1 - gate)), in place: one MLP-wide temporary, not five
        out = torch.sub(1.0, gate).mul_(x).mul_(1.702).add_(1.0)
        return out.mul_(gate).mul_(grad)


def _mlp(mlp: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """HF's ``CLIPMLP`` (fc1, activation, fc2), with QuickGELU through :class:`_QuickGELU`."""
    if not isinstance(mlp.activation_fn, QuickGELUActivation):
        return mlp(x)
    return mlp.fc2(_QuickGELU.apply(mlp.fc1(x)))


def _chunked_residual(
    x: torch.Tensor, sizes: list[int], adapters: list[Adapter | None], scales: list[float]
) -> torch.Tensor | None:
    """Each batch chunk through its own adapter (None: no residual for that chunk)."""
    if all(adapter is None for adapter in adapters):
        return None
    if len(sizes) == 1:
        return adapters[0](x) * scales[0]  # type: ignore[misc]
    parts = x.split(sizes)
    outs = [
        adapter(part) * scale if adapter is not None else torch.zeros_like(part)
        for part, adapter, scale in zip(parts, adapters, scales, strict=True)
    ]
    return torch.cat(outs)


def _block(
    layer: nn.Module,
    x: torch.Tensor,
    adapters: list[BlockAdapters | None],
    scales: list[float],
    sizes: list[int],
    mask: torch.Tensor | None,
    causal: bool,
) -> torch.Tensor:
    """One encoder block with adapters at the AIM positions (docs/method.md 2.2)."""
    attended = _attention(layer.self_attn, layer.layer_norm1(x), mask, causal)
    serial = [a.attention if a is not None else None for a in adapters]
    delta = _chunked_residual(attended, sizes, serial, [1.0] * len(sizes))
    x = x + (attended if delta is None else attended + delta)
    normed = layer.layer_norm2(x)
    parallel = [a.mlp if a is not None else None for a in adapters]
    delta = _chunked_residual(normed, sizes, parallel, scales)
    mlp = _mlp(layer.mlp, normed)
    return x + (mlp if delta is None else mlp + delta)


class FrozenCLIP(nn.Module):
    """A frozen ``CLIPModel`` whose towers run with whichever adapter set a branch passes."""

    def __init__(self, clip: CLIPModel) -> None:
        super().__init__()
        self.clip = clip
        self.clip.requires_grad_(False)
        self.clip.eval()
        self.grad_checkpointing = False

    def train(self, mode: bool = True) -> FrozenCLIP:
        super().train(mode)
        self.clip.eval()  # frozen: no dropout, eval-mode norms, whatever the wrapper does
        return self

    @property
    def config(self) -> CLIPConfig:
        return self.clip.config

    @property
    def embed_dim(self) -> int:
        return self.clip.config.projection_dim

    @property
    def vision_width(self) -> int:
        return self.clip.config.vision_config.hidden_size

    @property
    def vision_layers(self) -> int:
        return self.clip.config.vision_config.num_hidden_layers

    @property
    def text_width(self) -> int:
        return self.clip.config.text_config.hidden_size

    @property
    def text_layers(self) -> int:
        return self.clip.config.text_config.num_hidden_layers

    @property
    def context_length(self) -> int:
        return self.clip.config.text_config.max_position_embeddings

    @property
    def vocab_size(self) -> int:
        return self.clip.config.text_config.vocab_size

    def _run_layers(
        self,
        layers: nn.ModuleList,
        x: torch.Tensor,
        adapter_sets: list[AdapterSet | None],
        sizes: list[int],
        mask: torch.Tensor | None = None,
        causal: bool = False,
    ) -> torch.Tensor:
        for adapters in adapter_sets:
            if adapters is not None and len(adapters) != len(layers):
                raise FineCLIPERError(
                    f"adapter set has {len(adapters)} blocks but the tower has {len(layers)}"
                )
        scales = [a.mlp_scale if a is not None else 0.0 for a in adapter_sets]
        use_checkpoint = self.grad_checkpointing and torch.is_grad_enabled()
        for index, layer in enumerate(layers):
            block_adapters = [a.block(index) if a is not None else None for a in adapter_sets]
            args = (layer, x, block_adapters, scales, sizes, mask, causal)
            x = checkpoint(_block, *args, use_reentrant=False) if use_checkpoint else _block(*args)
        return x

    def encode_images(
        self, streams: Sequence[tuple[torch.Tensor, AdapterSet | None]]
    ) -> list[torch.Tensor]:
        """Projected CLS embeddings (N_i, embed_dim) of each (images (N_i, 3, H, W), adapters).

        All streams go through the frozen layers as one batch; each chunk gets its own adapters.
        Images whose size differs from the tower's get interpolated position embeddings.
        """
        vision = self.clip.vision_model
        pixels = torch.cat([images for images, _ in streams]) if len(streams) > 1 else streams[0][0]
        sizes = [images.shape[0] for images, _ in streams]
        size = self.clip.config.vision_config.image_size
        resize = tuple(pixels.shape[-2:]) != (size, size)
        x = vision.embeddings(pixels, interpolate_pos_encoding=resize)
        x = vision.pre_layrnorm(x)
        x = self._run_layers(vision.encoder.layers, x, [a for _, a in streams], sizes)
        # A copy: the norm keeps its input for backward, and a view would keep all tokens alive.
        cls = x[:, 0].clone()
        embeddings = self.clip.visual_projection(vision.post_layernorm(cls))
        return list(embeddings.split(sizes))

    def encode_text(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        adapters: AdapterSet | None,
    ) -> torch.Tensor:
        """Projected end-of-text embeddings (N, embed_dim), pooled as HF's CLIPTextModel does."""
        text = self.clip.text_model
        length = input_ids.shape[-1]
        if length > self.context_length:
            raise FineCLIPERError(
                f"text of {length} tokens exceeds the context length {self.context_length}"
            )
        x = text.embeddings(input_ids=input_ids)
        mask = _causal_padding_mask(attention_mask, length)
        x = self._run_layers(
            text.encoder.layers, x, [adapters], [x.shape[0]], mask, causal=mask is None
        )
        # Pool, then norm (per token, so the same values): the norm keeps only the pooled tokens.
        pooled = x[torch.arange(x.shape[0], device=x.device), self._eos_positions(input_ids)]
        return self.clip.text_projection(text.final_layer_norm(pooled))

    def _eos_positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        eos = self.clip.config.text_config.eos_token_id
        if eos == 2:  # legacy HF configs: the end-of-text token is the largest id (as OpenAI)
            return input_ids.argmax(dim=-1)
        is_eos = input_ids == eos
        if not bool(is_eos.any(dim=-1).all()):
            raise FineCLIPERError(
                f"a text has no end-of-text token (id {eos}); tokenize with the backbone's "
                "tokenizer (finecliper.model.tokenizer)"
            )
        return is_eos.int().argmax(dim=-1)


def _causal_padding_mask(attention_mask: torch.Tensor | None, length: int) -> torch.Tensor | None:
    """Boolean (N, 1, L, L) causal-and-not-padding mask, or None (plain causal) without padding."""
    if attention_mask is None:
        return None
    keep = attention_mask.bool()
    causal = torch.ones(length, length, dtype=torch.bool, device=keep.device).tril()
    return causal[None, None] & keep[:, None, None, :]
