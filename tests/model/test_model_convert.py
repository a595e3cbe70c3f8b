"""OpenAI / open_clip checkpoints: key conversion checked against an independent OpenAI-style CLIP.

The oracle below is a plain-torch CLIP written the way OpenAI's ``model.py`` is (conv1 patches,
class token, ``nn.MultiheadAttention`` with packed in_proj, QuickGELU, ln_pre/ln_post, EOT pooling
by argmax of the token ids). Its ``state_dict()`` has exactly the OpenAI key layout, so it both
produces the checkpoints and tells what their embeddings must be.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from transformers import CLIPModel

from finecliper.errors import FineCLIPERError
from finecliper.model.architectures import KNOWN_ARCHITECTURES, Architecture
from finecliper.model.backbone import (
    FrozenCLIP,
    backbone_config,
    clip_from_openai_checkpoint,
    load_clip,
)
from finecliper.model.convert import convert_openai_state_dict, infer_architecture, read_checkpoint

# Widths of 128 give two heads of 64, the OpenAI head width the converter assumes.
TINY = Architecture(128, 2, 8, 32, 128, 3, 16, vocab_size=60, context_length=20)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                c_fc=nn.Linear(width, 4 * width),
                gelu=QuickGELU(),
                c_proj=nn.Linear(4 * width, width),
            )
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x.permute(1, 0, 2)  # OpenAI's blocks work on (L, N, D)
        for block in self.resblocks:
            x = block(x, mask)
        return x.permute(1, 0, 2)


class VisionTransformer(nn.Module):
    def __init__(self, a: Architecture) -> None:
        super().__init__()
        width, grid = a.vision_width, a.image_size // a.patch_size
        self.conv1 = nn.Conv2d(3, width, a.patch_size, a.patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(width))
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, a.vision_layers, width // a.head_width)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.randn(width, a.embed_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.conv1(images).flatten(2).permute(0, 2, 1)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj


class OpenAICLIP(nn.Module):
    def __init__(self, a: Architecture) -> None:
        super().__init__()
        self.visual = VisionTransformer(a)
        self.transformer = Transformer(a.text_width, a.text_layers, a.text_width // a.head_width)
        self.token_embedding = nn.Embedding(a.vocab_size, a.text_width)
        self.positional_embedding = nn.Parameter(torch.randn(a.context_length, a.text_width))
        self.ln_final = nn.LayerNorm(a.text_width)
        self.text_projection = nn.Parameter(torch.randn(a.text_width, a.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        # integer metadata that OpenAI's TorchScript archives carry in their state dict
        self.register_buffer("input_resolution", torch.tensor(a.image_size))
        self.register_buffer("context_length", torch.tensor(a.context_length))
        self.register_buffer("vocab_size", torch.tensor(a.vocab_size))

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:length]
        mask = torch.full((length, length), float("-inf")).triu(1)
        x = self.ln_final(self.transformer(x, mask))
        return x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ self.text_projection

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.visual(images), self.encode_text(ids)


def make_oracle(architecture: Architecture, seed: int = 0) -> OpenAICLIP:
    """An OpenAI-layout CLIP with every weight random (layer norms too, to test their mapping)."""
    torch.manual_seed(seed)
    with torch.device("meta"):  # skip the default init: every value is set below
        oracle = OpenAICLIP(architecture).eval()
    oracle.to_empty(device="cpu")
    oracle.input_resolution.fill_(architecture.image_size)
    oracle.context_length.fill_(architecture.context_length)
    oracle.vocab_size.fill_(architecture.vocab_size)
    with torch.no_grad():
        for name, parameter in oracle.named_parameters():
            if name.endswith("weight") and ("ln_" in name or parameter.ndim == 1):
                parameter.copy_(1.0 + 0.1 * torch.randn_like(parameter))
            elif parameter.ndim >= 2:
                parameter.normal_(0.0, parameter.shape[-1] ** -0.5)
            else:
                parameter.normal_(0.0, 0.1)
    return oracle


def example_inputs(a: Architecture, batch: int = 3, length: int = 9):
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(batch, 3, a.image_size, a.image_size, generator=generator)
    ids = torch.randint(0, a.vocab_size - 2, (batch, length), generator=generator)
    ids[:, 0] = a.vocab_size - 2  # start of text
    ends = torch.tensor([length - 1, 4, 2][:batch])
    for row, end in enumerate(ends.tolist()):
        ids[row, end] = a.vocab_size - 1  # end of text, then OpenAI's zero padding
        ids[row, end + 1 :] = 0
    return images, ids


def pooled(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def assert_same_embeddings(clip: CLIPModel, oracle: OpenAICLIP, a: Architecture) -> None:
    images, ids = example_inputs(a)
    with torch.no_grad():
        image_ref, text_ref = oracle(images, ids)
        torch.testing.assert_close(
            pooled(clip.get_image_features(pixel_values=images)), image_ref, atol=1e-4, rtol=1e-4
        )
        torch.testing.assert_close(
            pooled(clip.get_text_features(input_ids=ids)), text_ref, atol=1e-4, rtol=1e-4
        )
        frozen = FrozenCLIP(clip)  # our adapter-aware loop over the converted weights
        torch.testing.assert_close(
            frozen.encode_images([(images, None)])[0], image_ref, atol=1e-4, rtol=1e-4
        )
        torch.testing.assert_close(
            frozen.encode_text(ids, None, None), text_ref, atol=1e-4, rtol=1e-4
        )


def test_converted_tiny_checkpoint_reproduces_openai_embeddings() -> None:
    oracle = make_oracle(TINY)
    state = oracle.state_dict()
    architecture = infer_architecture(state)
    assert dataclasses.replace(architecture, vision_mlp=0, text_mlp=0) == TINY
    clip = CLIPModel._from_config(architecture.to_config(), attn_implementation="sdpa").eval()
    result = clip.load_state_dict(convert_openai_state_dict(state), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert_same_embeddings(clip, oracle, TINY)
    torch.testing.assert_close(clip.logit_scale.detach(), oracle.logit_scale.detach())


@pytest.mark.slow  # ~3 s alone: two ViT-B/16 models and one forward of each on the CPU
def test_vit_b16_openai_layout_converts_exactly() -> None:
    b16 = KNOWN_ARCHITECTURES["ViT-B/16"]
    oracle = make_oracle(b16)
    state = oracle.state_dict()
    architecture = infer_architecture(state)
    assert architecture.to_config().to_dict() == b16.to_config().to_dict()
    clip = CLIPModel._from_config(b16.to_config(), attn_implementation="sdpa").eval()
    converted = convert_openai_state_dict(state)
    hf_shapes = {k: tuple(v.shape) for k, v in clip.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == hf_shapes
    result = clip.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    images, ids = example_inputs(b16, batch=1, length=12)
    with torch.no_grad():
        image_ref, text_ref = oracle(images, ids)
        image = pooled(clip.get_image_features(pixel_values=images))
        text = pooled(clip.get_text_features(input_ids=ids))
    torch.testing.assert_close(image, image_ref, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(text, text_ref, atol=1e-3, rtol=1e-3)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
def test_torchscript_archive_loads_like_openai_pt(tmp_path) -> None:
    oracle = make_oracle(TINY)
    path = tmp_path / "ViT-tiny.pt"
    torch.jit.trace(oracle, example_inputs(TINY)).save(str(path))
    assert "input_resolution" in read_checkpoint(path)
    assert_same_embeddings(clip_from_openai_checkpoint(path), oracle, TINY)


def test_wrapped_and_safetensors_state_dicts_load(tmp_path) -> None:
    oracle = make_oracle(TINY)
    state = oracle.state_dict()
    wrapped = tmp_path / "epoch_3.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    assert_same_embeddings(load_clip(str(wrapped)), oracle, TINY)
    safetensors = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(safetensors))
    assert_same_embeddings(load_clip(str(safetensors)), oracle, TINY)
    assert backbone_config(str(safetensors)).vision_config.num_hidden_layers == 2


def test_hf_directory_gives_the_same_model_as_the_converted_file(tmp_path) -> None:
    oracle = make_oracle(TINY)
    pt = tmp_path / "tiny.pt"
    torch.save(oracle.state_dict(), pt)
    converted = load_clip(str(pt))
    converted.save_pretrained(tmp_path / "hf")
    assert_same_embeddings(load_clip(str(tmp_path / "hf")), oracle, TINY)
    assert backbone_config(str(tmp_path / "hf")).projection_dim == TINY.embed_dim


def test_gelu_activation_option_reaches_the_config(tmp_path) -> None:
    path = tmp_path / "laion.pt"
    torch.save(make_oracle(TINY).state_dict(), path)
    assert load_clip(str(path), activation="gelu").config.vision_config.hidden_act == "gelu"


def test_bad_checkpoints_get_clear_errors(tmp_path) -> None:
    state = make_oracle(TINY).state_dict()
    with pytest.raises(FineCLIPERError, match=r"no place in a CLIP model, e\.g\. visual\.extra"):
        convert_openai_state_dict({**state, "visual.extra": torch.zeros(1)})
    missing = {k: v for k, v in state.items() if k != "visual.ln_post.bias"}
    with pytest.raises(FineCLIPERError, match=r"lacks 'visual\.ln_post\.bias'"):
        convert_openai_state_dict(missing)
    other = tmp_path / "resnet.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(FineCLIPERError, match="not an OpenAI/open_clip CLIP state dict"):
        load_clip(str(other))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(FineCLIPERError, match=r"broken\.pt: cannot read"):
        load_clip(str(broken))
    (tmp_path / "no_weights").mkdir()
    (tmp_path / "no_weights" / "config.json").write_text(
        backbone_config("ViT-B/32").to_json_string()
    )
    with pytest.raises(FineCLIPERError, match="cannot load CLIP weights"):
        load_clip(str(tmp_path / "no_weights"))
    with pytest.raises(FineCLIPERError, match=r"no config\.json"):
        load_clip(str(tmp_path))


def test_hub_id_offline_fails_clearly() -> None:
    with pytest.raises(FineCLIPERError, match="HF_HUB_OFFLINE is set"):
        load_clip("someone/not-downloaded-clip")
    with pytest.raises(FineCLIPERError, match="no such file"):
        load_clip("missing/ViT-B-16.pt")
