"""FineCLIPER end to end on a tiny CLIP: variants, gradients, sharing, weighting, losses, state."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPModel

from finecliper.errors import FineCLIPERError
from finecliper.model.batch import MODALITIES, VARIANT_MODALITIES
from finecliper.model.config import ModelConfig
from finecliper.model.heads import fixed_weights, info_nce
from finecliper.model.network import build_model, label_prompts

LABELS = torch.tensor([0, 2, 1, 2])


def pooled(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@pytest.mark.parametrize("variant", ["base", "mid", "high", "full"])
def test_every_variant_runs_forward_and_backward(make_model, make_inputs, variant: str) -> None:
    model = make_model(variant=variant).train()
    outputs = model(make_inputs(batch=4))
    assert outputs.modalities == VARIANT_MODALITIES[variant]
    assert outputs.logits.shape == (4, 3)
    assert outputs.weights.shape == (4, len(outputs.modalities))
    parts = model.loss(outputs, LABELS)
    assert torch.isfinite(parts.total)
    assert set(parts.modality) == (set(outputs.modalities) if variant != "base" else set())
    parts.total.backward()

    trainable = {name for name, _ in model.named_trainable_parameters()}
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    assert with_grad == trainable
    prefixes = ("visual_adapters.", "temporal.", "label_adapters.", "text_adapters.", "head.")
    assert trainable and all(name.startswith(prefixes) for name in trainable)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    # the adapters' up-projections (zero at start) are what the first step moves
    assert model.visual_adapters["video"].blocks[0].mlp.up.weight.grad.abs().sum() > 0
    assert model.label_adapters["positive"].blocks[0].attention.up.weight.grad.abs().sum() > 0


def test_untrained_model_gives_plain_clip_embeddings(make_model, make_inputs, clip) -> None:
    model = make_model(variant="full").eval()
    inputs = make_inputs(batch=2)
    streams = {"video": inputs.frames, "parsing": inputs.parsing, "landmark": inputs.landmarks}
    with torch.no_grad():
        per_frame = model.frame_embeddings(streams)
        outputs = model(inputs)
        for modality, frames in streams.items():
            reference = pooled(clip.get_image_features(pixel_values=frames.flatten(0, 1)))
            torch.testing.assert_close(
                per_frame[modality].flatten(0, 1), reference, atol=1e-5, rtol=1e-5
            )
            # the temporal module starts as mean pooling of the CLIP frame embeddings
            clip_level = F.normalize(reference.view(2, 4, -1).mean(dim=1), dim=-1)
            torch.testing.assert_close(outputs.features[modality], clip_level, atol=1e-5, rtol=1e-5)
        text = pooled(clip.get_text_features(input_ids=inputs.description_ids))
        torch.testing.assert_close(
            outputs.features["text"], F.normalize(text, dim=-1), atol=1e-5, rtol=1e-5
        )


def test_visual_branches_share_one_frozen_tower(make_model, make_inputs, clip: CLIPModel) -> None:
    model = make_model(variant="full")
    frozen_count = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert frozen_count == sum(p.numel() for p in clip.parameters())
    pointers = [p.data_ptr() for p in model.parameters()]
    assert len(pointers) == len(set(pointers))
    assert model.backbone.clip.vision_model.encoder.layers[0].self_attn.q_proj.weight is (
        clip.vision_model.encoder.layers[0].self_attn.q_proj.weight
    )
    calls: list[int] = []
    query = clip.vision_model.encoder.layers[0].self_attn.q_proj
    handle = query.register_forward_hook(lambda _m, args, _o: calls.append(args[0].shape[0]))
    try:
        model(make_inputs(batch=2, frames=4))
    finally:
        handle.remove()
    assert calls == [3 * 2 * 4]  # video, parsing and landmark frames in one pass


def test_weights_sum_to_one_and_ignore_missing_modalities(make_model, make_inputs) -> None:
    model = make_model(variant="full").eval()
    inputs = make_inputs(batch=3)
    present = torch.tensor(
        [[True, True, True, True], [True, False, True, False], [True, False, False, False]]
    )
    inputs.present = present
    with torch.no_grad():
        outputs = model(inputs)
        torch.testing.assert_close(outputs.weights.sum(dim=1), torch.ones(3))
        assert (outputs.weights[~present] == 0).all()
        assert (outputs.weights[present] > 0).all()
        assert outputs.weights[2, 0] == 1.0
        # what stands in for a missing modality cannot change the result
        garbage = dataclasses.replace(inputs, parsing=inputs.parsing.clone())
        garbage.parsing[1:] = 1e4
        garbage.description_ids = inputs.description_ids.clone()
        garbage.description_ids[1:, 1:3] = 5
        changed = model(garbage)
        torch.testing.assert_close(changed.logits[1:], outputs.logits[1:])
        torch.testing.assert_close(changed.weights, outputs.weights)


def test_inputs_left_out_are_absent_for_the_whole_batch(make_model, make_inputs) -> None:
    model = make_model(variant="full").eval()
    inputs = dataclasses.replace(make_inputs(batch=2), landmarks=None, description_ids=None)
    with torch.no_grad():
        outputs = model(inputs)
    assert outputs.available.tolist() == [[True, True, False, False]] * 2
    torch.testing.assert_close(outputs.weights[:, 2:], torch.zeros(2, 2))


def test_fixed_weights_are_exactly_the_requested_ones(make_model, make_inputs) -> None:
    model = make_model(variant="full", weighting="fixed", fixed_video_weight=0.3).eval()
    inputs = make_inputs(batch=3)
    inputs.present = torch.tensor(
        [[True, True, True, True], [True, True, False, False], [True, False, False, False]]
    )
    with torch.no_grad():
        weights = model(inputs).weights
    expected = torch.tensor(
        [[0.3, 0.7 / 3, 0.7 / 3, 0.7 / 3], [0.3, 0.7, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]
    )
    torch.testing.assert_close(weights, expected)
    no_video = fixed_weights(torch.tensor([[False, True, True]]), 0.9)
    torch.testing.assert_close(no_video, torch.tensor([[0.0, 0.5, 0.5]]))


def test_adaptive_weights_follow_the_softmax_of_best_label_logits(make_model, make_inputs) -> None:
    model = make_model(variant="full", weight_temperature=2.0).eval()
    with torch.no_grad():
        outputs = model(make_inputs(batch=2))
    logits = torch.stack([outputs.modality_logits[m] for m in outputs.modalities], dim=1)
    expected = torch.softmax(logits.max(dim=-1).values / 2.0, dim=-1)
    torch.testing.assert_close(outputs.weights, expected)
    mixed = (
        outputs.weights[..., None]
        * torch.stack([outputs.features[m] for m in outputs.modalities], dim=1)
    ).sum(dim=1)
    torch.testing.assert_close(outputs.features["fused"], F.normalize(mixed, dim=-1))


def test_logit_fusion_mixes_the_modalities_label_logits(make_model, make_inputs) -> None:
    model = make_model(variant="full", fusion="logits").eval()
    inputs = make_inputs(batch=2)
    inputs.present = torch.tensor([[True, True, True, True], [True, False, True, False]])
    with torch.no_grad():
        outputs = model(inputs)
        by_features = make_model(variant="full").eval()(inputs)
    logits = torch.stack([outputs.modality_logits[m] for m in outputs.modalities], dim=1)
    expected = (outputs.weights[..., None] * logits).sum(dim=1)
    torch.testing.assert_close(outputs.logits, expected)
    assert not torch.allclose(by_features.logits, expected)


def test_modality_dropout_keeps_video_and_only_acts_in_training(make_model, make_inputs) -> None:
    model = make_model(variant="full", modality_dropout=0.9)
    inputs = make_inputs(batch=16)
    torch.manual_seed(0)
    with torch.no_grad():
        trained = model.train()(inputs)
        evaluated = model.eval()(inputs)
    assert trained.present[:, 0].all()
    assert not trained.present[:, 1:].all()  # at 0.9, 48 draws all keeping is impossible
    assert trained.available.all() and evaluated.present.all()
    torch.testing.assert_close(trained.weights.sum(dim=1), torch.ones(16))


@pytest.mark.parametrize("logits", ["pn", "positive"])
def test_logits_are_cosine_differences_over_tau(make_model, make_inputs, logits: str) -> None:
    model = make_model(variant="base", logits=logits, tau_init=0.05).eval()
    assert ("negative" in model.label_adapters) == (logits == "pn")
    with torch.no_grad():
        outputs = model(make_inputs(batch=2))
        positive, negative = model.label_embeddings()
    feature = outputs.features["fused"]
    expected = feature @ positive.t()
    if logits == "pn":
        expected = expected - feature @ negative.t()
    torch.testing.assert_close(outputs.logits, expected / 0.05)


def test_supervised_loss_matches_the_formula(make_model, make_inputs) -> None:
    model = make_model(variant="high", lambda_align=0.5).eval()
    outputs = model(make_inputs(batch=4))
    parts = model.loss(outputs, LABELS)
    video_ce = F.cross_entropy(outputs.modality_logits["video"], LABELS, reduction="none")
    text_ce = F.cross_entropy(outputs.modality_logits["text"], LABELS, reduction="none")
    align = info_nce(outputs.features["video"], outputs.features["text"], model.head.tau)
    expected = (
        F.cross_entropy(outputs.logits, LABELS)
        + (outputs.weights[:, 0] * video_ce).mean()
        + (outputs.weights[:, 1] * text_ce).mean()
        + 0.5 * align
    )
    torch.testing.assert_close(parts.total, expected)
    assert set(parts.as_floats()) == {"loss", "ce", "align", "ce_video", "ce_text"}


def test_zero_shot_objective_uses_only_video_text_contrast(make_model, make_inputs) -> None:
    model = make_model(variant="high", objective="zero_shot").train()
    outputs = model(make_inputs(batch=4))
    parts = model.loss(outputs)  # no labels
    expected = info_nce(outputs.features["video"], outputs.features["text"], model.head.tau)
    torch.testing.assert_close(parts.total, expected)
    parts.total.backward()
    assert model.text_adapters.blocks[0].attention.up.weight.grad.abs().sum() > 0
    assert model.visual_adapters["video"].blocks[0].mlp.up.weight.grad.abs().sum() > 0
    assert model.label_adapters["positive"].blocks[0].attention.up.weight.grad is None


def test_label_free_zero_shot_encodes_prompts_with_the_description_adapters(
    make_model, make_inputs
) -> None:
    """The adapters the descriptions train also encode the label prompts, so prompts and video
    share the adapted space (the label adapters would get no gradient, issue #14)."""
    model = make_model(variant="high", objective="zero_shot", zero_shot_label_free=True).train()
    positive, negative = model.label_embeddings()
    ids, mask = model.positive_ids, model.positive_mask
    torch.testing.assert_close(positive, model.text_embedding(ids, mask))
    torch.testing.assert_close(
        negative, model.text_embedding(model.negative_ids, model.negative_mask)
    )
    outputs = model(make_inputs(batch=4))
    model.loss(outputs).total.backward()
    assert model.text_adapters.blocks[0].attention.up.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="zero_shot_label_free"):
        ModelConfig(zero_shot_label_free=True)


def test_alignment_skips_samples_without_description(make_model, make_inputs) -> None:
    model = make_model(variant="full").eval()
    inputs = make_inputs(batch=4)
    inputs.present = torch.ones(4, 4, dtype=torch.bool)
    inputs.present[3, 3] = False
    with torch.no_grad():
        outputs = model(inputs)
        parts = model.loss(outputs, LABELS)
        features = outputs.features
        expected = info_nce(features["video"][:3], features["text"][:3], model.head.tau)
    torch.testing.assert_close(parts.align, expected)


def test_trainable_state_round_trip(make_model, make_inputs) -> None:
    model = make_model(variant="full").eval()
    with torch.no_grad():
        for parameter in model.trainable_parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    state = model.trainable_state_dict()
    assert set(state) == {name for name, _ in model.named_trainable_parameters()}
    assert not any(name.startswith("backbone.") for name in state)
    fresh = make_model(variant="full").eval()
    fresh.load_trainable_state_dict(state)
    inputs = make_inputs(batch=2)
    with torch.no_grad():
        torch.testing.assert_close(fresh(inputs).logits, model(inputs).logits)
    with pytest.raises(FineCLIPERError, match="missing"):
        make_model(variant="base").load_trainable_state_dict(state)


def test_class_names_can_change_for_zero_shot_transfer(make_model, make_inputs) -> None:
    model = make_model(variant="high").eval()
    model.set_class_names(["happiness", "sadness", "neutral", "anger", "fear"])
    with torch.no_grad():
        assert model(make_inputs(batch=2)).logits.shape == (2, 5)


def test_label_prompts_use_templates_and_negation_word() -> None:
    positive, negative = label_prompts(["happiness", "sadness"], ModelConfig())
    assert positive[0] == "A person with an expression of happiness."
    assert negative[1] == "A person with an expression of no sadness."
    _, less = label_prompts(["happiness", "sadness"], ModelConfig(negation_word="less"))
    assert less[0] == "A person with an expression of less happiness."
    with pytest.raises(FineCLIPERError, match="not unique"):
        label_prompts(["happiness", "happiness"], ModelConfig())


def test_bad_inputs_get_clear_errors(make_model, make_inputs) -> None:
    model = make_model(variant="full")
    inputs = make_inputs(batch=2)
    with pytest.raises(FineCLIPERError, match="present must be a bool tensor"):
        model(dataclasses.replace(inputs, present=torch.ones(2, 3, dtype=torch.bool)))
    with pytest.raises(FineCLIPERError, match="parsing renderings"):
        model(dataclasses.replace(inputs, parsing=inputs.parsing[:, :2]))
    nothing = torch.zeros(2, len(MODALITIES), dtype=torch.bool)
    nothing[0] = True
    with pytest.raises(FineCLIPERError, match=r"samples \[1\]"):
        model(dataclasses.replace(inputs, present=nothing))
    with pytest.raises(FineCLIPERError, match="at most 4"):
        model(make_inputs(batch=1, frames=5))
    with pytest.raises(FineCLIPERError, match="labels"):
        model.loss(model(inputs))


def test_build_model_checks_the_tokenizer_against_the_tower(clip, tokenizer) -> None:
    model = build_model(ModelConfig(variant="mid"), ["a", "b"], 4, clip=clip, tokenizer=tokenizer)
    assert model.class_names == ("a", "b")
    tokenizer.tokenizer.add_tokens(["extra"])
    with pytest.raises(FineCLIPERError, match="has 61 tokens but the backbone's text tower has 60"):
        build_model(ModelConfig(), ["a", "b"], 4, clip=clip, tokenizer=tokenizer)


def test_separate_temporal_modules_and_mean_pooling(make_model, make_inputs) -> None:
    separate = make_model(variant="mid", shared_temporal=False)
    assert set(separate.temporal) == {"video", "parsing", "landmark"}
    mean = make_model(variant="mid", temporal="mean")
    assert sum(p.numel() for p in mean.temporal.parameters()) == 0
    with torch.no_grad():
        assert separate(make_inputs()).logits.shape == mean(make_inputs()).logits.shape


def test_motion_tokens_start_as_mean_pooling_and_take_part(make_model) -> None:
    plain = make_model(variant="base")
    motion = make_model(variant="base", temporal_motion=True)
    assert plain.temporal.motion_position is None
    frames = torch.randn(2, 4, plain.backbone.embed_dim)
    with torch.no_grad():
        torch.testing.assert_close(motion.temporal(frames), frames.mean(dim=1))
    _, no_decay = motion.optimizer_parameter_groups(0.05)
    assert any(p is motion.temporal.motion_position for p in no_decay["params"])
    # Once trained, the change tokens take part: without them the clip embedding differs.
    with torch.no_grad():
        for parameter in motion.temporal.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
        with_change = motion.temporal(frames)
        motion.temporal.motion_position = None
        assert not torch.allclose(motion.temporal(frames), with_change)


def test_learnable_weight_temperature_is_trained(make_model, make_inputs) -> None:
    model = make_model(variant="mid", learnable_weight_temperature=True, weight_temperature=2.0)
    assert "weighting.log_temperature" in model.trainable_state_dict()
    model.loss(model(make_inputs(batch=4)), LABELS).total.backward()
    assert model.weighting.log_temperature.grad is not None
    assert model.weighting.log_temperature.grad.abs() > 0


def test_label_embeddings_are_cached_only_for_inference(make_model) -> None:
    model = make_model()
    model.eval()
    with torch.no_grad():
        first = model.label_embeddings()
        assert model.label_embeddings()[0] is first[0]  # reused, not recomputed
    with torch.no_grad():
        for parameter in model.label_adapters.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    model.train()  # training invalidates the cache
    model.eval()
    with torch.no_grad():
        changed = model.label_embeddings()
    assert not torch.allclose(changed[0], first[0])
    assert model.label_embeddings()[0].requires_grad  # with grad enabled: never cached


def test_weight_decay_skips_biases_norms_tau_and_temporal_embeddings(
    make_model, make_inputs
) -> None:
    model = make_model(learnable_weight_temperature=True, shared_temporal=False)
    decay, no_decay = model.optimizer_parameter_groups(0.05)
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.05, 0.0)
    names = {id(p): n for n, p in model.named_trainable_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    exempt = {names[id(p)] for p in no_decay["params"]}
    assert decayed | exempt == set(names.values()) and not decayed & exempt
    assert {"head.log_tau", "weighting.log_temperature"} <= exempt
    for modality in model.temporal:
        assert {f"temporal.{modality}.cls_token", f"temporal.{modality}.position"} <= exempt
    embeddings = {n for n in exempt if n.endswith(("cls_token", "position"))}
    others = exempt - embeddings - {"head.log_tau", "weighting.log_temperature"}
    assert others and all(n.endswith("bias") or ".norm" in n for n in others)
    assert decayed and all(n.endswith("weight") and ".norm" not in n for n in decayed)
    # AdamW with these groups leaves an exempt tensor alone when its gradient is zero.
    optimizer = torch.optim.AdamW([decay, no_decay], lr=0.1)
    position = model.temporal["video"].position
    before = position.detach().clone()
    model.loss(model(make_inputs(batch=4)), LABELS).total.backward()
    position.grad = torch.zeros_like(position)
    optimizer.step()
    torch.testing.assert_close(position.detach(), before)
