"""The CLIP tokenizer, checked against the text tower it feeds.

transformers v5 does not fail when a tokenizer cannot be found: offline, or pointed at a directory
without vocabulary files, ``CLIPTokenizer.from_pretrained`` returns a 2-token tokenizer that maps
every word to "unknown". :class:`TextTokenizer` therefore always checks that the vocabulary has
exactly as many tokens as the text tower's embedding table and that an end-of-text token exists
(the text embedding is pooled there), and raises a clear error otherwise.

OpenAI ``.pt`` and open_clip checkpoints, and directories without tokenizer files, get CLIP's own
BPE tokenizer over the vocabulary bundled with the package (:mod:`finecliper.model.bpe`, source
name ``clip-bpe``): no download, and the exact tokenization of OpenAI's ``clip.tokenize``.

Texts come out right-padded to the longest text of the call, truncated to the context length
with the end-of-text token kept (what the text encoder pools).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import CLIPTokenizer, PreTrainedTokenizerBase

from finecliper.assets_paths import resolve_backbone
from finecliper.errors import FineCLIPERError
from finecliper.model.architectures import known_architecture
from finecliper.model.bpe import ClipBPE, bundled_bpe

# model.tokenizer value for the bundled CLIP BPE tokenizer (all OpenAI CLIP models share it).
CLIP_BPE = "clip-bpe"
# A directory has its own tokenizer if it holds either of these file sets.
TOKENIZER_FILE_SETS = (("tokenizer.json",), ("vocab.json", "merges.txt"))


@dataclass
class TokenizedText:
    """Right-padded token ids (N, L) and their attention mask (N, L), both int64."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str) -> TokenizedText:
        return TokenizedText(self.input_ids.to(device), self.attention_mask.to(device))


class TextTokenizer:
    """A CLIP BPE tokenizer whose vocabulary is known to fit the text tower."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase | ClipBPE,
        vocab_size: int,
        context_length: int,
        source: str = "tokenizer",
    ) -> None:
        if len(tokenizer) != vocab_size:
            raise FineCLIPERError(
                f"tokenizer {source!r} has {len(tokenizer)} tokens but the CLIP text tower has "
                f"{vocab_size}: wrong tokenizer, or its files were not found (transformers then "
                "returns an almost empty tokenizer, e.g. offline with a hub id); set "
                f"model.tokenizer to a directory with the backbone's tokenizer files, or to "
                f"{CLIP_BPE} for the bundled OpenAI CLIP vocabulary"
            )
        if tokenizer.eos_token_id is None:
            raise FineCLIPERError(f"tokenizer {source!r} has no end-of-text token")
        if not isinstance(tokenizer, ClipBPE):
            tokenizer.padding_side = "right"
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.source = source

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @property
    def eos_token_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    def __call__(self, texts: Sequence[str]) -> TokenizedText:
        if isinstance(texts, str):
            raise TypeError("TextTokenizer takes a list of texts, not one string")
        if isinstance(self.tokenizer, ClipBPE):
            return TokenizedText(*self.tokenizer.tokenize(list(texts), self.context_length))
        encoded = self.tokenizer(
            list(texts),
            padding="longest",
            truncation=True,
            max_length=self.context_length,
            return_tensors="pt",
        )
        return TokenizedText(encoded["input_ids"].long(), encoded["attention_mask"].long())


def tokenizer_source(backbone: str, tokenizer: str | None = None) -> str:
    """Where the tokenizer of a backbone lives unless ``model.tokenizer`` says otherwise."""
    if tokenizer:
        return tokenizer
    path = Path(resolve_backbone(backbone)).expanduser()
    if path.is_dir():
        return str(path) if has_tokenizer_files(path) else CLIP_BPE
    if path.is_file():
        return CLIP_BPE
    architecture = known_architecture(backbone)
    return architecture.hub_id if architecture else backbone


def has_tokenizer_files(directory: Path) -> bool:
    return any(all((directory / name).is_file() for name in files) for files in TOKENIZER_FILE_SETS)


def load_tokenizer(source: str, vocab_size: int, context_length: int) -> TextTokenizer:
    """Load a CLIP tokenizer from a directory or hub id (or ``clip-bpe``, the bundled one) and
    check it against the text tower."""
    if source == CLIP_BPE:
        return TextTokenizer(bundled_bpe(), vocab_size, context_length, CLIP_BPE)
    try:
        tokenizer = CLIPTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise FineCLIPERError(f"cannot load a CLIP tokenizer from {source!r}: {exc}") from None
    return TextTokenizer(tokenizer, vocab_size, context_length, source)
