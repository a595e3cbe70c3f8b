"""The bundled CLIP BPE tokenizer against OpenAI's algorithm, and a .pt backbone built offline.

``OpenAIReference`` is a line-by-line transcription of OpenAI's published
``clip/simple_tokenizer.py`` and ``clip.tokenize(truncate=True)`` (MIT): its own byte table,
merge loop and truncation, written independently of ``finecliper.model.bpe``; it shares only the
vocabulary file. The expected ids of the paper's prompt were produced by open_clip 3.3.0's
``SimpleTokenizer``.
"""

from __future__ import annotations

import gzip
import html
import random

import ftfy
import pytest
import regex as re
import torch
from test_model_convert import make_oracle

from finecliper.assets_paths import assets_dir
from finecliper.errors import FineCLIPERError
from finecliper.model.architectures import Architecture
from finecliper.model.bpe import ClipBPE, bundled_bpe
from finecliper.model.config import ModelConfig
from finecliper.model.network import build_model
from finecliper.model.summary import summarize_parameters
from finecliper.model.tokenizer import CLIP_BPE, load_tokenizer, tokenizer_source


def bytes_to_unicode() -> dict[int, str]:
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def get_pairs(word: tuple[str, ...]) -> set[tuple[str, str]]:
    pairs = set()
    prev_char = word[0]
    for char in word[1:]:
        pairs.add((prev_char, char))
        prev_char = char
    return pairs


class OpenAIReference:
    def __init__(self) -> None:
        self.byte_encoder = bytes_to_unicode()
        bpe_path = assets_dir() / "bpe_simple_vocab_16e6.txt.gz"
        with gzip.open(bpe_path) as handle:
            merges = handle.read().decode("utf-8").split("\n")
        merges = merges[1 : 49152 - 256 - 2 + 1]
        merges = [tuple(merge.split()) for merge in merges]
        vocab = list(bytes_to_unicode().values())
        vocab = vocab + [v + "</w>" for v in vocab]
        for merge in merges:
            vocab.append("".join(merge))
        vocab.extend(["<|startoftext|>", "<|endoftext|>"])
        self.encoder = dict(zip(vocab, range(len(vocab)), strict=True))
        self.bpe_ranks = dict(zip(merges, range(len(merges)), strict=True))
        self.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}
        self.pat = re.compile(
            r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            re.IGNORECASE,
        )

    def bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word = (*tuple(token[:-1]), token[-1] + "</w>")
        pairs = get_pairs(word)
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word: list[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new_word.extend(word[i:j])
                    i = j
                except ValueError:
                    new_word.extend(word[i:])
                    break
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        joined = " ".join(word)
        self.cache[token] = joined
        return joined

    def encode(self, text: str) -> list[int]:
        text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
        text = re.sub(r"\s+", " ", text).strip().lower()
        bpe_tokens: list[int] = []
        for token in re.findall(self.pat, text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            bpe_tokens.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return bpe_tokens

    def tokenize(self, texts: list[str], context_length: int = 77) -> torch.Tensor:
        """``clip.tokenize(texts, truncate=True)``: zero padding to the full context."""
        sot, eot = self.encoder["<|startoftext|>"], self.encoder["<|endoftext|>"]
        result = torch.zeros(len(texts), context_length, dtype=torch.long)
        for i, text in enumerate(texts):
            tokens = [sot, *self.encode(text), eot]
            if len(tokens) > context_length:
                tokens = tokens[:context_length]
                tokens[-1] = eot
            result[i, : len(tokens)] = torch.tensor(tokens)
        return result


AWKWARD = [
    "A person with an expression of happiness.",
    "Ünïcödé naïve café — “curly” ‘quotes’ ﬁne ＦＵＬＬ width",
    "emoji 😀🤯👍🏽 and a family 👨‍👩‍👧 🇫🇷",
    "&amp;lt;b&amp;gt; bold &lt;i&gt; &quot;x&quot; &#39;s &nbsp; &eacute;",
    "  tabs\tand\nnewlines \u00a0 and\u2003spaces   ",
    "日本語のテキスト 中文 한국어 العربية עברית ελληνικά",
    "it's we'll they'd I'M YOU'VE",
    "Ã©mojibake cafÃ© â€œquotedâ€\x9d",
    "<|endoftext|> in the middle <|startoftext|>",
    "",
    "1234567 3.14 -42e10",
    "x" * 500,
    " ".join(["the brows rise and the lip corners pull upwards"] * 20),
    "supercalifragilisticexpialidocious" * 8,
]


@pytest.fixture(scope="module")
def reference() -> OpenAIReference:
    return OpenAIReference()


def assert_same_tokens(texts: list[str], reference: OpenAIReference) -> None:
    ids, mask = bundled_bpe().tokenize(texts, 77)
    expected = reference.tokenize(texts)
    for row, text in enumerate(texts):
        length = int(mask[row].sum())
        assert ids[row, :length].tolist() == expected[row, :length].tolist(), text
        assert expected[row, length:].eq(0).all(), f"{text!r}: ours stops early"
        assert ids[row, length:].eq(bundled_bpe().eos_token_id).all()


def test_awkward_texts_tokenize_as_openai(reference: OpenAIReference) -> None:
    assert_same_tokens(AWKWARD, reference)


def test_random_unicode_tokenizes_as_openai(reference: OpenAIReference) -> None:
    rng = random.Random(0)
    ranges = [(32, 126), (0xA0, 0x2FFF), (0x3040, 0x9FFF), (0x1F300, 0x1FAFF)]
    texts = [
        "".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(rng.randint(1, 90)))
        for _ in range(200)
    ]
    assert_same_tokens(texts, reference)


def test_known_ids_and_truncation_keep_the_end_token() -> None:
    bpe = bundled_bpe()
    assert (len(bpe), bpe.sot_token_id, bpe.eos_token_id) == (49408, 49406, 49407)
    ids, mask = bpe.tokenize(["A person with an expression of happiness.", "x" * 500], 77)
    assert ids[0, :10].tolist() == [49406, 320, 2533, 593, 550, 11357, 539, 5096, 269, 49407]
    assert mask[0].sum() == 10
    assert ids.shape == (2, 77) and ids[1, -1] == bpe.eos_token_id and mask[1].all()


def test_a_broken_vocabulary_file_is_named(tmp_path) -> None:
    broken = tmp_path / "bpe.txt.gz"
    with gzip.open(broken, "wt") as handle:
        handle.write("#version\na b\n")
    with pytest.raises(FineCLIPERError, match=r"bpe\.txt\.gz is not CLIP's BPE merges file"):
        ClipBPE(broken)
    with pytest.raises(FineCLIPERError, match="cannot read CLIP's BPE vocabulary"):
        ClipBPE(tmp_path / "missing.txt.gz")


def test_files_and_bare_directories_get_the_bundled_tokenizer(tmp_path) -> None:
    checkpoint = tmp_path / "ViT-B-16.pt"
    checkpoint.write_bytes(b"")
    assert tokenizer_source(str(checkpoint)) == CLIP_BPE
    assert tokenizer_source(str(tmp_path / "open_clip_model.safetensors")) != CLIP_BPE  # absent
    (tmp_path / "bare").mkdir()
    assert tokenizer_source(str(tmp_path / "bare")) == CLIP_BPE
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / name).write_text("{}")
    assert tokenizer_source(str(tmp_path)) == str(tmp_path)
    with pytest.raises(FineCLIPERError, match="has 49408 tokens but the CLIP text tower has 60"):
        load_tokenizer(CLIP_BPE, 60, 77)


# Tiny widths, but OpenAI's vocabulary and context, so that the bundled tokenizer fits the tower.
SMALL_OPENAI = Architecture(128, 2, 8, 32, 128, 2, 32, vocab_size=49408, context_length=77)


def test_openai_pt_builds_full_offline_with_openai_tokens_and_embeddings(
    tmp_path, reference: OpenAIReference
) -> None:
    oracle = make_oracle(SMALL_OPENAI)
    path = tmp_path / "ViT-small.pt"
    torch.save(oracle.state_dict(), path)
    model = build_model(ModelConfig(backbone=str(path)), ["happiness", "sadness"], num_frames=4)
    assert model.tokenizer is not None and model.tokenizer.source == CLIP_BPE
    texts = [AWKWARD[1], AWKWARD[2], AWKWARD[12], "the brows rise."]
    tokens = model.tokenizer(texts)
    expected = reference.tokenize(texts)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        text = model.backbone.encode_text(tokens.input_ids, tokens.attention_mask, None)
        image = model.backbone.encode_images([(images, None)])[0]
        text_ref = oracle.encode_text(expected)
        image_ref = oracle.visual(images)
    lengths = tokens.attention_mask.sum(dim=1)
    for row, length in enumerate(lengths.tolist()):
        assert tokens.input_ids[row, :length].tolist() == expected[row, :length].tolist()
    torch.testing.assert_close(text, text_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(image, image_ref, rtol=1e-4, atol=1e-5)
    summary = summarize_parameters("full", str(path))
    assert summary["tunable_params"] > 0 and summary["backbone"] == str(path)
