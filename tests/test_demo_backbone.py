"""The bundled demo backbone: complete, loadable offline, a consistent tokenizer, small."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from transformers import CLIPModel, CLIPTokenizer, CLIPVisionModelWithProjection

import finecliper.assets_paths as assets_paths
from finecliper.assets_paths import DEMO_BACKBONE_FILES, demo_backbone_dir
from finecliper.errors import FineCLIPERError

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pretrain_demo_backbone.py"
NOUNS = ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear")
ADJECTIVES = ("happy", "sad", "angry", "surprised", "disgusted", "fearful")


@pytest.fixture(scope="module")
def backbone() -> tuple[CLIPModel, CLIPTokenizer]:
    directory = demo_backbone_dir()
    return CLIPModel.from_pretrained(directory).eval(), CLIPTokenizer.from_pretrained(directory)


@pytest.fixture(scope="module")
def script():
    """The pre-training script, loaded as ``python scripts/pretrain_demo_backbone.py`` runs it:
    with scripts/ on the path, where its ``demo_backbone`` modules are."""
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("pretrain_demo_backbone", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(SCRIPT.parent))


@pytest.fixture(scope="module")
def bpe(script):
    return importlib.import_module("demo_backbone.bpe")


@pytest.fixture(scope="module")
def pretraining(script):
    return importlib.import_module("demo_backbone.pretraining")


def test_directory_is_complete_and_small():
    directory = demo_backbone_dir()
    assert all((directory / name).is_file() for name in DEMO_BACKBONE_FILES)
    size = sum(file.stat().st_size for file in directory.rglob("*") if file.is_file())
    assert size < 10 * 2**20, f"demo backbone is {size / 2**20:.1f} MiB"


def test_incomplete_directory_names_missing_files(tmp_path, monkeypatch):
    monkeypatch.setattr(assets_paths, "assets_dir", lambda: tmp_path)
    with pytest.raises(FineCLIPERError, match="missing: no directory"):
        demo_backbone_dir()
    (tmp_path / "demo_backbone").mkdir()
    (tmp_path / "demo_backbone" / "config.json").write_text("{}")
    with pytest.raises(FineCLIPERError, match=r"incomplete: missing model\.safetensors"):
        demo_backbone_dir()


def test_tokenizer_matches_text_tower(backbone):
    model, tokenizer = backbone
    text = model.config.text_config
    assert len(tokenizer) == text.vocab_size
    assert tokenizer.model_max_length == text.max_position_embeddings
    # The text tower pools the first <|endoftext|>; id 2 would trigger transformers' legacy path.
    assert tokenizer.eos_token_id == text.eos_token_id != 2
    assert tokenizer.bos_token_id == text.bos_token_id


@pytest.mark.parametrize(
    "template", ["A person with an expression of {}.", "A person with an expression of no {}."]
)
def test_label_prompts_are_real_tokens(backbone, template):
    _, tokenizer = backbone
    for noun in NOUNS:
        sentence = template.format(noun)
        ids = tokenizer(sentence).input_ids
        assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
        inner = ids[1:-1]
        assert tokenizer.unk_token_id not in inner  # unk is <|endoftext|> in CLIP
        assert tokenizer.convert_ids_to_tokens(inner)[-2] == f"{noun}</w>"
        decoded = tokenizer.decode(ids, skip_special_tokens=True).replace(" .", ".")
        assert decoded == sentence.lower()
    for word in ADJECTIVES:
        assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1


def test_vocab_and_merges_files_give_the_same_tokenizer(backbone, tmp_path):
    _, tokenizer = backbone
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(demo_backbone_dir() / name, tmp_path / name)
    from_bpe_files = CLIPTokenizer.from_pretrained(tmp_path)
    assert len(from_bpe_files) == len(tokenizer)
    for sentence in (
        "The inner brows rise; the jaw drops.",
        "A person with an expression of no fear.",
    ):
        assert from_bpe_files(sentence).input_ids == tokenizer(sentence).input_ids


def test_image_and_text_forward(backbone):
    model, tokenizer = backbone
    size = model.config.vision_config.image_size
    pixels = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    prompts = [f"A person with an expression of {noun}." for noun in NOUNS]
    batch = tokenizer(prompts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = model(
            pixel_values=pixels, input_ids=batch.input_ids, attention_mask=batch.attention_mask
        )
    assert out.image_embeds.shape == (2, model.config.projection_dim)
    assert out.text_embeds.shape == (len(NOUNS), model.config.projection_dim)
    assert out.logits_per_image.isfinite().all()
    assert next(model.parameters()).dtype == torch.float32
    # The trained text tower tells the class prompts apart.
    similarity = out.text_embeds @ out.text_embeds.t()
    assert similarity.fill_diagonal_(-1).max() < 0.99


def test_towers_load_alone_with_their_projections(backbone):
    model, _ = backbone
    vision = CLIPVisionModelWithProjection.from_pretrained(demo_backbone_dir()).eval()
    pixels = torch.randn(1, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        alone = vision(pixel_values=pixels).image_embeds
        inside = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
    torch.testing.assert_close(alone, inside)


def test_metadata_records_the_pretraining():
    metadata = json.loads((demo_backbone_dir() / "metadata.json").read_text())
    pretraining = metadata["pretraining"]
    assert pretraining["data_seed"] != 0  # never the demo's data
    first, last = pretraining["losses"][0], pretraining["losses"][-1]
    for name in ("contrastive", "parsing", "landmarks", "text"):
        assert last[name] < first[name], name
    for name in ("expression", "frame_prompt"):  # the expression losses of the later stages
        assert last[name] < first[name], name
    stage = pretraining
    while "initialised_from" in stage:  # every earlier stage: never the demo's data either
        stage = stage["initialised_from"]
        assert stage["data_seed"] != 0 and stage["steps"] > 0
    assert {"text_to_clip_top1", "clip_to_text_top5"} <= set(metadata["retrieval"])
    probe = metadata["probe"]
    assert "pretrained_mean_pooled" in probe
    # Pre-trained on both description styles: its text features beat random ones on each.
    for text in ("text", "template_text"):
        assert probe[f"pretrained_{text}"]["uar"] > probe[f"random_init_{text}"]["uar"]


def test_bpe_learner_merges_frequent_words_whole(bpe):
    counts = Counter({"brow": 5, "brows": 3, "jaw": 1})
    merges = bpe.learn_merges(counts, max_merges=100)
    vocab = bpe.build_vocab(merges)
    assert "brow</w>" in vocab and "brows</w>" in vocab
    assert "jaw</w>" not in vocab  # seen once: below min_frequency
    assert len(vocab) == 512 + len(set(a + b for a, b in merges)) + 2
    assert list(vocab)[-2:] == ["<|startoftext|>", "<|endoftext|>"]


def test_trained_tokenizer_round_trips(bpe):
    texts = ["The outer brows lift and the lips part.", "Lips press; the brows lower."] * 3
    tokenizer = bpe.train_tokenizer(texts, context_length=32)
    ids = tokenizer(texts[0]).input_ids
    assert tokenizer.convert_ids_to_tokens(ids[1:4]) == ["the</w>", "outer</w>", "brows</w>"]
    unseen = tokenizer("Zygomatic 7 ☺").input_ids  # falls back to bytes, never unknown
    assert tokenizer.unk_token_id not in unseen[1:-1]
    assert tokenizer.decode(unseen, skip_special_tokens=True) == "zygomatic 7 ☺"


def test_script_builds_the_bundled_architecture(pretraining, backbone):
    model, tokenizer = backbone
    built = pretraining.build_model(tokenizer, seed=0).config
    keys = (
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "num_hidden_layers",
        "projection_dim",
        "hidden_act",
    )
    for tower in ("text_config", "vision_config"):
        bundled, rebuilt = getattr(model.config, tower), getattr(built, tower)
        assert {k: getattr(rebuilt, k) for k in keys} == {k: getattr(bundled, k) for k in keys}
    text_keys = ("vocab_size", "max_position_embeddings", "bos_token_id", "eos_token_id")
    for key in text_keys:
        assert getattr(built.text_config, key) == getattr(model.config.text_config, key)
    assert built.vision_config.image_size == model.config.vision_config.image_size
    assert built.projection_dim == model.config.projection_dim


def test_script_prompts_are_the_demo_models(bpe):
    from finecliper.data.classes import DFEW_CLASSES, prompt_names
    from finecliper.model.config import ModelConfig
    from finecliper.model.network import label_prompts

    positive, negative = label_prompts(prompt_names(DFEW_CLASSES), ModelConfig())
    sentences = bpe.prompt_sentences()
    assert set(positive) | set(negative) <= set(sentences)
    assert bpe.prompt_adjectives(DFEW_CLASSES) == [
        "happy",
        "sad",
        "neutral",
        "angry",
        "surprised",
        "disgusted",
        "fearful",
    ]


def test_expression_read_out_sees_the_change_from_the_first_frame(pretraining, backbone):
    model, _ = backbone
    heads = pretraining.FaceHeads(model.config, num_aus=15, num_classes=7)
    frames = torch.nn.functional.normalize(torch.randn(2, 4, model.config.projection_dim), dim=-1)
    logits = heads.expression_logits(frames)
    assert logits.shape == (2, 7)
    moved = frames.clone()
    moved[:, 0] = -moved[:, 0]  # same later frames, another starting face
    assert not torch.allclose(heads.expression_logits(moved), logits)


def test_frame_prompt_loss_is_low_on_the_own_class_prompt(pretraining):
    from types import SimpleNamespace

    classes, width = 7, 16
    prompts = torch.nn.functional.normalize(torch.randn(2 * classes, width), dim=-1)
    captions = SimpleNamespace(
        prompt_rows=torch.arange(2 * classes), features=lambda model, rows: prompts[rows]
    )
    model = SimpleNamespace(logit_scale=torch.tensor(math.log(30.0)))
    labels = torch.tensor([0, 3, 6])
    own = prompts[labels][:, None].expand(3, 2, width)  # two later frames per clip
    other = prompts[(labels + 1) % classes][:, None].expand(3, 2, width)
    loss_own = pretraining._frame_prompt_loss(model, captions, own, labels)
    loss_other = pretraining._frame_prompt_loss(model, captions, other, labels)
    assert loss_own < 0.5 < loss_other
