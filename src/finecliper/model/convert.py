"""OpenAI / open_clip CLIP checkpoints -> ``transformers.CLIPModel`` state dicts, by key conversion.

Reads OpenAI's ``ViT-B-16.pt`` (a TorchScript archive, the file most DFER codebases use),
plain state dicts in the same layout (``.pt``/``.pth``/``.bin``, possibly wrapped in
``{"state_dict": ...}`` and prefixed ``module.`` by DataParallel training) and open_clip's
``.safetensors`` files, whose keys are OpenAI's. The architecture (widths, depths, patch and
image size, context length, vocabulary, embedding size) is read off the tensor shapes; the
activation cannot be, so it is a parameter (OpenAI: QuickGELU; most LAION open_clip: GELU).
Attention heads cannot be read off shapes either: OpenAI and open_clip use 64-wide heads.

Every key of the source must be used, except OpenAI's three integer metadata entries: an unknown
key is an error naming it, never silently dropped.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch

from finecliper.errors import FineCLIPERError
from finecliper.model.architectures import Architecture

StateDict = dict[str, torch.Tensor]

# Integer metadata stored next to the weights in OpenAI's TorchScript archives.
_METADATA_KEYS = {"input_resolution", "context_length", "vocab_size"}
_BLOCK = re.compile(r"^(visual\.)?transformer\.resblocks\.(\d+)\.")
_WRAPPER_KEYS = ("state_dict", "model", "module")

# (OpenAI suffix inside a residual block, HF suffix inside an encoder layer)
_BLOCK_RENAMES = (
    ("attn.out_proj.weight", "self_attn.out_proj.weight"),
    ("attn.out_proj.bias", "self_attn.out_proj.bias"),
    ("ln_1.weight", "layer_norm1.weight"),
    ("ln_1.bias", "layer_norm1.bias"),
    ("ln_2.weight", "layer_norm2.weight"),
    ("ln_2.bias", "layer_norm2.bias"),
    ("mlp.c_fc.weight", "mlp.fc1.weight"),
    ("mlp.c_fc.bias", "mlp.fc1.bias"),
    ("mlp.c_proj.weight", "mlp.fc2.weight"),
    ("mlp.c_proj.bias", "mlp.fc2.bias"),
)
# (OpenAI key, HF key, transpose)
_TOP_RENAMES = (
    ("visual.class_embedding", "vision_model.embeddings.class_embedding", False),
    ("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight", False),
    ("visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight", False),
    ("visual.ln_pre.weight", "vision_model.pre_layrnorm.weight", False),
    ("visual.ln_pre.bias", "vision_model.pre_layrnorm.bias", False),
    ("visual.ln_post.weight", "vision_model.post_layernorm.weight", False),
    ("visual.ln_post.bias", "vision_model.post_layernorm.bias", False),
    ("visual.proj", "visual_projection.weight", True),
    ("token_embedding.weight", "text_model.embeddings.token_embedding.weight", False),
    ("positional_embedding", "text_model.embeddings.position_embedding.weight", False),
    ("ln_final.weight", "text_model.final_layer_norm.weight", False),
    ("ln_final.bias", "text_model.final_layer_norm.bias", False),
    ("text_projection", "text_projection.weight", True),
    ("logit_scale", "logit_scale", False),
)


def read_checkpoint(path: str | Path) -> StateDict:
    """The OpenAI-layout state dict stored in ``path`` (TorchScript, pickle or safetensors)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded: object = load_file(str(path), device="cpu")
        elif _is_torchscript(path):
            with warnings.catch_warnings():  # TorchScript is deprecated; OpenAI's files are it
                warnings.simplefilter("ignore", DeprecationWarning)
                loaded = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        detail = (str(exc).splitlines() or [""])[0]
        raise FineCLIPERError(
            f"{path}: cannot read CLIP checkpoint ({type(exc).__name__}: {detail})"
        ) from None
    return unwrap_state_dict(loaded, str(path))


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") for name in archive.namelist())


def unwrap_state_dict(loaded: object, source: str) -> StateDict:
    """Unwrap ``{"state_dict": ...}`` training checkpoints and strip ``module.`` prefixes."""
    if isinstance(loaded, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(loaded.get(key), dict) and "visual.conv1.weight" not in loaded:
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
        raise FineCLIPERError(f"{source}: not a state dict (got {type(loaded).__name__})")
    state = {k.removeprefix("module."): v for k, v in loaded.items()}
    if not is_openai_layout(state):
        sample = ", ".join(sorted(state)[:5])
        raise FineCLIPERError(
            f"{source}: not an OpenAI/open_clip CLIP state dict (no visual.conv1.weight and "
            f"token_embedding.weight; first keys: {sample}); for a Hugging Face model, give "
            "its directory"
        )
    return state


def is_openai_layout(state: StateDict) -> bool:
    return "visual.conv1.weight" in state and "token_embedding.weight" in state


def _count_blocks(state: StateDict, visual: bool) -> int:
    indices = {
        int(match.group(2))
        for key in state
        if (match := _BLOCK.match(key)) and bool(match.group(1)) == visual
    }
    if indices != set(range(len(indices))) or not indices:
        tower = "image" if visual else "text"
        raise FineCLIPERError(f"{tower} tower blocks are not numbered 0..N-1: {sorted(indices)}")
    return len(indices)


def infer_architecture(state: StateDict, activation: str = "quick_gelu") -> Architecture:
    """Read the CLIP architecture off the tensor shapes of an OpenAI-layout state dict."""
    try:
        conv = state["visual.conv1.weight"]
        vision_width, patch_size = conv.shape[0], conv.shape[-1]
        grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        return Architecture(
            vision_width=vision_width,
            vision_layers=_count_blocks(state, visual=True),
            patch_size=patch_size,
            image_size=grid * patch_size,
            text_width=state["ln_final.weight"].shape[0],
            text_layers=_count_blocks(state, visual=False),
            embed_dim=state["text_projection"].shape[1],
            vision_mlp=state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            text_mlp=state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            vocab_size=state["token_embedding.weight"].shape[0],
            context_length=state["positional_embedding"].shape[0],
            activation=activation,
        )
    except KeyError as exc:
        raise FineCLIPERError(f"CLIP state dict lacks {exc.args[0]!r}") from None


def _convert_block(state: StateDict, src: str, dst: str, out: StateDict, used: set[str]) -> None:
    for kind in ("weight", "bias"):
        key = f"{src}attn.in_proj_{kind}"
        query, key_, value = state[key].chunk(3, dim=0)
        out[f"{dst}self_attn.q_proj.{kind}"] = query
        out[f"{dst}self_attn.k_proj.{kind}"] = key_
        out[f"{dst}self_attn.v_proj.{kind}"] = value
        used.add(key)
    for src_suffix, dst_suffix in _BLOCK_RENAMES:
        out[dst + dst_suffix] = state[src + src_suffix]
        used.add(src + src_suffix)


def convert_openai_state_dict(state: StateDict) -> StateDict:
    """HF ``CLIPModel`` keys for an OpenAI-layout state dict (float32, contiguous)."""
    architecture = infer_architecture(state)
    out: StateDict = {}
    used: set[str] = set()
    try:
        for src, dst, transpose in _TOP_RENAMES:
            out[dst] = state[src].t() if transpose else state[src]
            used.add(src)
        for i in range(architecture.vision_layers):
            src, dst = f"visual.transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."
            _convert_block(state, src, dst, out, used)
        for i in range(architecture.text_layers):
            src, dst = f"transformer.resblocks.{i}.", f"text_model.encoder.layers.{i}."
            _convert_block(state, src, dst, out, used)
    except KeyError as exc:
        raise FineCLIPERError(f"CLIP state dict lacks {exc.args[0]!r}") from None
    leftover = sorted(set(state) - used - _METADATA_KEYS)
    leftover = [key for key in leftover if not key.endswith("attn_mask")]
    if leftover:
        raise FineCLIPERError(
            f"CLIP state dict has {len(leftover)} keys with no place in a CLIP model, e.g. "
            f"{', '.join(leftover[:5])} (not a plain CLIP ViT checkpoint?)"
        )
    return {key: value.float().contiguous() for key, value in out.items()}
