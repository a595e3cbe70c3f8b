"""The frozen tower with adapters: equals plain CLIP before training, adapters act, frozen stays."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPModel

from finecliper.errors import FineCLIPERError
from finecliper.model.adapters import Adapter, AdapterSet
from finecliper.model.backbone import FrozenCLIP
from finecliper.model.tokenizer import TextTokenizer

TEXTS = ["A person with an expression of happiness.", "no.", "the brows rise, the mouth opens."]


def pooled(output) -> torch.Tensor:
    """``get_*_features`` returns a tensor in transformers 4 and an output object in 5."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def randomize(adapters: AdapterSet, seed: int = 0) -> None:
    """Give the zero-initialised up-projections values, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in adapters.modules():
            if isinstance(module, Adapter):
                module.up.weight.copy_(torch.randn(module.up.weight.shape, generator=generator))


def test_adapter_sizes_match_the_method_budget() -> None:
    # docs/method.md 2.7: 768 -> 192 -> 768, 512 -> 128 -> 512 and 768 -> 96 -> 768 adapters
    for width, ratio, expected in (
        (768, 0.25, 295_872),
        (512, 0.25, 131_712),
        (768, 0.125, 148_320),
    ):
        adapter = Adapter(width, round(width * ratio))
        assert sum(p.numel() for p in adapter.parameters()) == expected


def test_untrained_adapters_give_plain_clip_image_embeddings(clip: CLIPModel) -> None:
    frozen = FrozenCLIP(clip)
    images = torch.randn(6, 3, 32, 32)
    sets = [AdapterSet(32, 2, ratio) for ratio in (0.25, 0.125, 0.5)]
    # three streams through the frozen layers as one batch, plus a stream without adapters
    streams = [
        (images[:2], sets[0]),
        (images[2:3], sets[1]),
        (images[3:5], sets[2]),
        (images[5:], None),
    ]
    ours = torch.cat(frozen.encode_images(streams))
    with torch.no_grad():
        reference = pooled(clip.get_image_features(pixel_values=images))
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_image_size_other_than_the_towers_interpolates_positions(clip: CLIPModel) -> None:
    frozen = FrozenCLIP(clip)
    images = torch.randn(2, 3, 48, 48)
    ours = frozen.encode_images([(images, AdapterSet(32, 2, 0.25))])[0]
    with torch.no_grad():
        output = clip.get_image_features(pixel_values=images, interpolate_pos_encoding=True)
    torch.testing.assert_close(ours, pooled(output), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("placement", ["attention", "mlp"])
@pytest.mark.parametrize("with_mask", [True, False])
def test_untrained_text_adapters_give_plain_clip_text_embeddings(
    clip: CLIPModel, tokenizer: TextTokenizer, placement: str, with_mask: bool
) -> None:
    frozen = FrozenCLIP(clip)
    tokens = tokenizer(TEXTS)
    assert (tokens.attention_mask == 0).any(), "the test needs padded texts"
    mask = tokens.attention_mask if with_mask else None
    ours = frozen.encode_text(tokens.input_ids, mask, AdapterSet(32, 2, 0.25, (placement,)))
    with torch.no_grad():
        reference = clip.get_text_features(
            input_ids=tokens.input_ids, attention_mask=tokens.attention_mask
        )
    torch.testing.assert_close(ours, pooled(reference), atol=1e-5, rtol=1e-5)


def test_legacy_eos_config_pools_at_the_largest_id(clip: CLIPModel, tokenizer) -> None:
    clip.config.text_config.eos_token_id = 2
    clip.text_model.eos_token_id = 2
    tokens = tokenizer(TEXTS)
    ours = FrozenCLIP(clip).encode_text(tokens.input_ids, tokens.attention_mask, None)
    with torch.no_grad():
        reference = clip.get_text_features(
            input_ids=tokens.input_ids, attention_mask=tokens.attention_mask
        )
    torch.testing.assert_close(ours, pooled(reference), atol=1e-5, rtol=1e-5)


def test_text_without_end_token_is_refused(clip: CLIPModel) -> None:
    ids = torch.zeros(1, 5, dtype=torch.long)
    with pytest.raises(FineCLIPERError, match="end-of-text"):
        FrozenCLIP(clip).encode_text(ids, None, None)


@pytest.mark.parametrize("placement", ["attention", "mlp"])
def test_trained_adapters_change_the_output(clip: CLIPModel, placement: str) -> None:
    frozen = FrozenCLIP(clip)
    images = torch.randn(2, 3, 32, 32)
    adapters = AdapterSet(32, 2, 0.25, (placement,))
    before = frozen.encode_images([(images, adapters)])[0]
    randomize(adapters)
    after = frozen.encode_images([(images, adapters)])[0]
    assert not torch.allclose(before, after, atol=1e-3)
    # the scale s multiplies only the MLP-parallel adapter
    adapters.mlp_scale = 0.0
    unscaled = frozen.encode_images([(images, adapters)])[0]
    assert torch.allclose(unscaled, before, atol=1e-5) == (placement == "mlp")


def test_streams_in_one_batch_keep_their_own_adapters(clip: CLIPModel) -> None:
    frozen = FrozenCLIP(clip)
    images = torch.randn(4, 3, 32, 32)
    first, second = AdapterSet(32, 2, 0.25), AdapterSet(32, 2, 0.125)
    randomize(first, seed=1)
    randomize(second, seed=2)
    together = frozen.encode_images([(images[:2], first), (images[2:], second)])
    alone = [
        frozen.encode_images([(images[:2], first)])[0],
        frozen.encode_images([(images[2:], second)])[0],
    ]
    for batched, single in zip(together, alone, strict=True):
        torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


def test_tower_is_frozen_and_stays_in_eval_mode(clip: CLIPModel) -> None:
    frozen = FrozenCLIP(clip)
    frozen.train()
    assert not any(p.requires_grad for p in frozen.parameters())
    assert not any(module.training for module in clip.modules())


def test_gradient_checkpointing_gives_the_same_gradients(clip: CLIPModel) -> None:
    frozen = FrozenCLIP(clip)
    adapters = AdapterSet(32, 2, 0.25)
    randomize(adapters)
    images = torch.randn(2, 3, 32, 32)

    def gradients(checkpointing: bool) -> list[torch.Tensor]:
        frozen.grad_checkpointing = checkpointing
        adapters.zero_grad()
        frozen.encode_images([(images, adapters)])[0].square().sum().backward()
        return [p.grad.clone() for p in adapters.parameters()]

    for plain, recomputed in zip(gradients(False), gradients(True), strict=True):
        torch.testing.assert_close(plain, recomputed)


def test_adapter_set_must_match_tower_depth(clip: CLIPModel) -> None:
    with pytest.raises(FineCLIPERError, match="3 blocks but the tower has 2"):
        FrozenCLIP(clip).encode_images([(torch.randn(1, 3, 32, 32), AdapterSet(32, 3, 0.25))])
