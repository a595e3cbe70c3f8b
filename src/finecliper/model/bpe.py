"""CLIP's own BPE tokenizer over the vocabulary bundled with the package.

Every OpenAI CLIP model (and the open_clip models trained with its tokenizer) uses one byte-level
BPE vocabulary of 49,408 tokens. ``assets/bpe_simple_vocab_16e6.txt.gz`` is OpenAI's merges file
(MIT, see ``assets/bpe_simple_vocab_16e6.LICENSE``), so a ``.pt`` or open_clip checkpoint needs no
tokenizer download. The steps follow OpenAI's ``simple_tokenizer.py``: ftfy repair, HTML entities
unescaped twice, whitespace runs collapsed, lower-casing, a word/number/punctuation split, then
byte-level BPE with ``</w>`` marking word ends; a text becomes ``<|startoftext|> ... <|endoftext|>``
and, if longer than the context, is cut with the end-of-text token kept last.

ftfy is a dependency; where it is absent (a machine where nothing installs), texts are only NFC
normalised, which is what ftfy does to text without mojibake, curly quotes, ligatures or
full-width characters.
"""

from __future__ import annotations

import gzip
import html
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import regex
import torch

from finecliper.assets_paths import assets_dir
from finecliper.errors import FineCLIPERError

try:
    import ftfy
except ImportError:  # pragma: no cover - exercised only where ftfy cannot be installed
    ftfy = None

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
# OpenAI's file has a header line, then more merges than CLIP used: it kept the first
# 49,152 - 256 - 2 of them (256 byte symbols and 2 special tokens fill the rest of the table).
MERGES_USED = 49152 - 256 - 2
_SPLIT = regex.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
    regex.IGNORECASE,
)
_WHITESPACE = regex.compile(r"\s+")


def byte_symbols() -> dict[int, str]:
    """One printable character per byte value (GPT-2's reversible mapping), in vocabulary order:
    the printable Latin-1 bytes stand for themselves and come first, the other bytes follow,
    shifted past 255."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    others = [b for b in range(256) if b not in printable]
    symbols = {b: chr(b) for b in printable}
    symbols.update({b: chr(256 + n) for n, b in enumerate(others)})
    return symbols


def clean_text(text: str) -> str:
    """OpenAI's normalisation before splitting: repair, unescape, collapse spaces, lower-case."""
    text = ftfy.fix_text(text) if ftfy is not None else unicodedata.normalize("NFC", text)
    text = html.unescape(html.unescape(text)).strip()
    return _WHITESPACE.sub(" ", text).strip().lower()


class ClipBPE:
    """OpenAI CLIP's tokenizer: ``len()`` tokens, ``eos_token_id``, texts to padded id tensors."""

    def __init__(self, vocab_file: str | Path | None = None) -> None:
        path = Path(vocab_file) if vocab_file else assets_dir() / VOCAB_FILE
        try:
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                lines = handle.read().split("\n")[1 : MERGES_USED + 1]
        except (OSError, EOFError) as exc:
            raise FineCLIPERError(f"cannot read CLIP's BPE vocabulary {path}: {exc}") from None
        merges = [tuple(line.split()) for line in lines]
        if len(merges) != MERGES_USED or any(len(m) != 2 for m in merges):
            raise FineCLIPERError(f"{path} is not CLIP's BPE merges file ({len(merges)} merges)")
        symbols = byte_symbols()
        self._byte_symbol = [symbols[b] for b in range(256)]
        tokens = [*symbols.values()] + [s + "</w>" for s in symbols.values()]
        tokens += ["".join(m) for m in merges] + [START_OF_TEXT, END_OF_TEXT]
        self._ids = {token: i for i, token in enumerate(tokens)}
        self._rank = {pair: i for i, pair in enumerate(merges)}
        self.sot_token_id = self._ids[START_OF_TEXT]
        self.eos_token_id = self._ids[END_OF_TEXT]
        self._merged: dict[str, tuple[str, ...]] = {}
        self.source = str(path)

    def __len__(self) -> int:
        return len(self._ids)

    def encode(self, text: str) -> list[int]:
        """BPE ids of a text, without the start and end tokens."""
        ids: list[int] = []
        for word in _SPLIT.findall(clean_text(text)):
            if word in (START_OF_TEXT, END_OF_TEXT):
                ids.append(self._ids[word])
                continue
            symbols = "".join(self._byte_symbol[b] for b in word.encode("utf-8"))
            ids.extend(self._ids[piece] for piece in self._merge(symbols))
        return ids

    def tokenize(
        self, texts: Sequence[str], context_length: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Ids (N, L) right-padded with end-of-text to the longest text, and the mask (N, L)."""
        rows = []
        for text in texts:
            ids = [self.sot_token_id, *self.encode(text)][: context_length - 1]
            rows.append([*ids, self.eos_token_id])
        length = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), length), self.eos_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row)
            attention_mask[i, : len(row)] = 1
        return input_ids, attention_mask

    def _merge(self, symbols: str) -> tuple[str, ...]:
        # Descriptions repeat their words; merging is the slow part.
        merged = self._merged.get(symbols)
        if merged is None:
            merged = self._merged[symbols] = _merge_word(symbols, self._rank)
        return merged


def _merge_word(symbols: str, rank: dict[tuple[str, str], int]) -> tuple[str, ...]:
    """Apply merges to one word, lowest rank first, until no adjacent pair has a merge."""
    parts = [*symbols[:-1], symbols[-1] + "</w>"]
    while len(parts) > 1:
        pair = min(pairwise(parts), key=lambda p: rank.get(p, MERGES_USED))
        if pair not in rank:
            break
        parts = _join_pair(parts, pair)
    return tuple(parts)


def _join_pair(parts: list[str], pair: tuple[str, str]) -> list[str]:
    """Join every non-overlapping occurrence of ``pair``, scanning left to right."""
    joined: list[str] = []
    i = 0
    while i < len(parts):
        if i + 1 < len(parts) and (parts[i], parts[i + 1]) == pair:
            joined.append(parts[i] + parts[i + 1])
            i += 2
        else:
            joined.append(parts[i])
            i += 1
    return joined


@lru_cache(maxsize=1)
def bundled_bpe() -> ClipBPE:
    """The bundled vocabulary, read once per process (~0.3 s)."""
    return ClipBPE()
