"""A byte-level BPE tokenizer in CLIP's format, learnt from the descriptions and label prompts."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from transformers import CLIPTokenizer

from demo_backbone.settings import ADJECTIVE_TEMPLATE, BOS, END_OF_WORD, EOS
from finecliper.data.classes import DFEW_CLASSES, PROMPT_NAMES, prompt_names
from finecliper.errors import FineCLIPERError
from finecliper.io import write_json, write_text
from finecliper.model.config import ModelConfig
from finecliper.model.network import label_prompts


def byte_alphabet() -> list[str]:
    """GPT-2/CLIP's reversible byte -> printable character table, in CLIP's vocabulary order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes = list(printable)
    shifted = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + shifted)
            shifted += 1
    return [chr(code) for code in codes]


def split_words(texts: Iterable[str]) -> Counter[str]:
    """Word counts after CLIPTokenizer's own normaliser and pre-tokeniser (byte-level words)."""
    backend = CLIPTokenizer().backend_tokenizer  # empty vocabulary: used for its pipeline only
    counts: Counter[str] = Counter()
    for text in texts:
        normalized = backend.normalizer.normalize_str(text)
        counts.update(word for word, _ in backend.pre_tokenizer.pre_tokenize_str(normalized))
    return counts


def learn_merges(
    word_counts: Counter[str], max_merges: int, min_frequency: int = 2
) -> list[tuple[str, str]]:
    """Byte-pair merges, most frequent pair first (ties broken by the pair itself)."""
    words = {word: [*word[:-1], word[-1] + END_OF_WORD] for word in word_counts}
    merges: list[tuple[str, str]] = []
    while len(merges) < max_merges:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, symbols in words.items():
            for pair in itertools.pairwise(symbols):
                pairs[pair] += word_counts[word]
        if not pairs:
            break
        best, frequency = max(pairs.items(), key=lambda item: (item[1], item[0]))
        if frequency < min_frequency:
            break
        merges.append(best)
        for symbols in words.values():
            _merge_in_place(symbols, best)
    return merges


def _merge_in_place(symbols: list[str], pair: tuple[str, str]) -> None:
    i = 0
    while i < len(symbols) - 1:
        if (symbols[i], symbols[i + 1]) == pair:
            symbols[i : i + 2] = [pair[0] + pair[1]]
        i += 1


def build_vocab(merges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """CLIP's layout: 256 bytes, the same with "</w>", one token per merge, then BOS, EOS."""
    alphabet = byte_alphabet()
    tokens = [*alphabet, *(char + END_OF_WORD for char in alphabet)]
    tokens += [left + right for left, right in merges]
    tokens += [BOS, EOS]
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    return vocab


def class_prompts(classes: Sequence[str]) -> tuple[list[str], list[str]]:
    """The positive and negative prompt of each class, as the demo's model words them."""
    return label_prompts(prompt_names(classes), ModelConfig())


def prompt_adjectives(classes: Sequence[str]) -> list[str]:
    """Each class as an adjective: the inverse of the prompt nouns ("happiness" -> "happy")."""
    adjectives = {noun: adjective for adjective, noun in PROMPT_NAMES.items()}
    return [adjectives.get(noun, noun) for noun in prompt_names(classes)]


def adjective_prompts(classes: Sequence[str]) -> list[str]:
    return [ADJECTIVE_TEMPLATE.format(label=word) for word in prompt_adjectives(classes)]


def prompt_sentences() -> list[str]:
    """Every prompt of DFEW's classes: the label-prompt vocabulary the tokenizer must cover."""
    positive, negative = class_prompts(DFEW_CLASSES)
    return positive + negative + adjective_prompts(DFEW_CLASSES)


def train_tokenizer(
    descriptions: Sequence[str], context_length: int, max_merges: int = 6000
) -> CLIPTokenizer:
    """A CLIP BPE tokenizer whose merges make every prompt word and frequent word one token."""
    counts = split_words(descriptions)
    # Twice each prompt sentence, so that rare label words still pass min_frequency=2.
    for word, count in split_words(prompt_sentences() * 2).items():
        counts[word] += count
    merges = learn_merges(counts, max_merges)
    vocab = build_vocab(merges)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    tokenizer.model_max_length = context_length
    check_tokenizer(tokenizer, len(vocab))
    return tokenizer


def check_tokenizer(tokenizer: CLIPTokenizer, expected_size: int) -> None:
    """transformers v5 can hand back an empty or 2-token tokenizer silently: verify it, and
    that BOS and EOS are the last two ids, where ``Architecture.to_config`` expects them."""
    if len(tokenizer) != expected_size:
        raise FineCLIPERError(f"tokenizer has {len(tokenizer)} tokens, expected {expected_size}")
    specials = [tokenizer.convert_tokens_to_ids(token) for token in (BOS, EOS)]
    if specials != [expected_size - 2, expected_size - 1]:
        raise FineCLIPERError(f"{BOS} and {EOS} have ids {specials}, not the last two")
    negation = ModelConfig().negation_word
    words = [
        *prompt_names(DFEW_CLASSES),
        *prompt_adjectives(DFEW_CLASSES),
        "person",
        "expression",
        negation,
    ]
    split = [w for w in words if len(tokenizer(w, add_special_tokens=False).input_ids) != 1]
    if split:
        raise FineCLIPERError(f"prompt words not single tokens in the learnt BPE: {split}")


def save_tokenizer(tokenizer: CLIPTokenizer, merges: Sequence[tuple[str, str]], out: Path) -> None:
    """tokenizer.json for fast loading plus CLIP's own vocab.json / merges.txt."""
    tokenizer.save_pretrained(out)
    write_json(out / "vocab.json", tokenizer.get_vocab())
    lines = ["#version: 0.2", *(f"{left} {right}" for left, right in merges)]
    write_text(out / "merges.txt", "\n".join(lines) + "\n")


def tokenizer_merges(tokenizer: CLIPTokenizer) -> list[tuple[str, str]]:
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
