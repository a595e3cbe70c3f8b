"""The CLIP tokenizer wrapper: vocabulary checked against the tower, padding and truncation."""

from __future__ import annotations

import pytest
from transformers import CLIPTokenizer

from finecliper.errors import FineCLIPERError
from finecliper.model.tokenizer import (
    CLIP_BPE,
    TextTokenizer,
    load_tokenizer,
    tokenizer_source,
)


def test_texts_are_right_padded_and_end_with_end_of_text(tokenizer: TextTokenizer) -> None:
    tokens = tokenizer(["no.", "the brows rise and the mouth opens."])
    eos = tokenizer.eos_token_id
    lengths = tokens.attention_mask.sum(dim=1).tolist()
    assert tokens.input_ids.shape == (2, max(lengths))
    assert tokens.input_ids[0, lengths[0] - 1] == eos
    assert tokens.attention_mask[0, lengths[0] :].eq(0).all()
    assert tokens.input_ids[0, 1] == tokenizer.tokenizer.convert_tokens_to_ids("no</w>")


def test_long_texts_are_truncated_keeping_the_end_token(bpe: CLIPTokenizer) -> None:
    short = TextTokenizer(bpe, len(bpe), context_length=8)
    tokens = short(["the brows rise and the mouth opens slowly."])
    assert tokens.input_ids.shape == (1, 8)
    assert tokens.input_ids[0, -1] == short.eos_token_id


def test_saved_tokenizer_loads_and_is_checked(tmp_path, bpe: CLIPTokenizer) -> None:
    bpe.save_pretrained(tmp_path / "tok")
    loaded = load_tokenizer(str(tmp_path / "tok"), len(bpe), 20)
    assert (
        loaded(["no."]).input_ids.tolist()
        == TextTokenizer(bpe, len(bpe), 20)(["no."]).input_ids.tolist()
    )
    with pytest.raises(
        FineCLIPERError, match=f"has {len(bpe)} tokens but the CLIP text tower has 49408"
    ):
        load_tokenizer(str(tmp_path / "tok"), 49408, 77)


def test_missing_tokenizer_files_are_not_silently_empty(tmp_path) -> None:
    # transformers v5 returns a 2-token tokenizer for an empty directory or an offline hub id
    (tmp_path / "empty").mkdir()
    with pytest.raises(FineCLIPERError, match="has 2 tokens"):
        load_tokenizer(str(tmp_path / "empty"), 49408, 77)
    with pytest.raises(FineCLIPERError, match=r"model\.tokenizer"):
        load_tokenizer("someone/not-downloaded-clip", 49408, 77)


def test_tokenizer_source_follows_the_backbone(tmp_path) -> None:
    checkpoint = tmp_path / "ViT-B-16.pt"
    checkpoint.write_bytes(b"")
    assert tokenizer_source(str(checkpoint)) == CLIP_BPE
    (tmp_path / "tokenizer.json").write_text("{}")
    assert tokenizer_source(str(tmp_path)) == str(tmp_path)
    assert tokenizer_source("ViT-L/14") == "openai/clip-vit-large-patch14"
    assert tokenizer_source("org/some-clip") == "org/some-clip"
    assert tokenizer_source(str(checkpoint), "my/tokenizer") == "my/tokenizer"


def test_one_string_is_refused(tokenizer: TextTokenizer) -> None:
    with pytest.raises(TypeError, match="list of texts"):
        tokenizer("no.")  # type: ignore[arg-type]
