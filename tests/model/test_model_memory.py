"""Memory-saving forward paths of the frozen tower give the same values as the plain ones."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPModel

from finecliper.model import backbone
from finecliper.model.adapters import AdapterSet
from finecliper.model.backbone import FrozenCLIP


def _randomise(module: torch.nn.Module, seed: int = 3) -> None:
    """Trained-looking adapters: the zero-initialised up-projections would hide the MLP path."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)


def _saved_shapes(run) -> list[tuple[int, ...]]:
    """Shapes of the distinct tensors autograd keeps while ``run()`` builds its graph."""
    shapes: dict[int, tuple[int, ...]] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        shapes[tensor.untyped_storage().data_ptr()] = tuple(tensor.shape)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return list(shapes.values())


def test_quick_gelu_mlp_is_hf_op_for_op_and_keeps_one_wide_tensor(clip: CLIPModel) -> None:
    mlp = clip.vision_model.encoder.layers[0].mlp.requires_grad_(False)  # frozen, as in FrozenCLIP
    x = torch.randn(2, 5, 32, requires_grad=True)
    ours = backbone._mlp(mlp, x)
    reference = mlp(x)
    assert torch.equal(ours, reference)
    grad = torch.randn_like(ours)
    (ours_grad,) = torch.autograd.grad(ours, x, grad)
    (reference_grad,) = torch.autograd.grad(reference, x, grad)
    torch.testing.assert_close(ours_grad, reference_grad, atol=1e-6, rtol=1e-5)
    wide = (2, 5, mlp.fc1.out_features)
    assert _saved_shapes(lambda: backbone._mlp(mlp, x)).count(wide) == 1
    assert _saved_shapes(lambda: mlp(x)).count(wide) == 2  # what autograd alone keeps


def test_pooling_before_the_final_norms_gives_the_same_embeddings(
    clip: CLIPModel, tokenizer
) -> None:
    frozen = FrozenCLIP(clip)
    adapters = AdapterSet(32, 2, 0.25)
    _randomise(adapters)
    images = torch.randn(3, 3, 32, 32)
    vision = clip.vision_model
    x = vision.pre_layrnorm(vision.embeddings(images))
    x = frozen._run_layers(vision.encoder.layers, x, [adapters], [3])
    plain = clip.visual_projection(vision.post_layernorm(x[:, 0]))
    assert torch.equal(frozen.encode_images([(images, adapters)])[0], plain)

    tokens = tokenizer(["the brows rise.", "a long description of the mouth and the eyes."])
    text_adapters = AdapterSet(32, 2, 0.25, ("attention",))
    _randomise(text_adapters)
    text = clip.text_model
    x = text.embeddings(input_ids=tokens.input_ids)
    mask = backbone._causal_padding_mask(tokens.attention_mask, x.shape[1])
    x = text.final_layer_norm(
        frozen._run_layers(text.encoder.layers, x, [text_adapters], [2], mask)
    )
    eos = frozen._eos_positions(tokens.input_ids)
    plain = clip.text_projection(x[torch.arange(2), eos])
    ours = frozen.encode_text(tokens.input_ids, tokens.attention_mask, text_adapters)
    assert torch.equal(ours, plain)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_model_outputs_and_gradients_match_the_autograd_mlp(
    make_model, make_inputs, monkeypatch, checkpointing: bool
) -> None:
    model = make_model(variant="full", modality_dropout=0.0)
    _randomise(model.visual_adapters)
    _randomise(model.text_adapters)
    model.set_grad_checkpointing(checkpointing)
    inputs = make_inputs()
    labels = torch.tensor([0, 2])

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        outputs = model(inputs)
        model.loss(outputs, labels).total.backward()
        return outputs.logits.detach(), [p.grad.clone() for p in model.trainable_parameters()]

    logits, grads = run()
    monkeypatch.setattr(backbone, "_mlp", lambda mlp, x: mlp(x))
    plain_logits, plain_grads = run()
    assert torch.equal(logits, plain_logits)
    for ours, plain in zip(grads, plain_grads, strict=True):
        torch.testing.assert_close(ours, plain, atol=1e-5, rtol=1e-3)  # fp32 reassociation
