"""Random-weight FineCLIPER models and inputs for the benchmarks: no download, real classes.

The backbone is a ``transformers.CLIPModel`` built from a built-in architecture (ViT-B/16 by
default, or ``tiny`` for tests) with random weights. No CLIP tokenizer is available offline, so
:func:`word_tokenizer` builds a real ``CLIPTokenizer`` whose vocabulary has the architecture's
size and OpenAI's special-token layout, and in which each word of the benchmark texts is one BPE
token, as it is in OpenAI's vocabulary: prompts and descriptions get realistic token counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from transformers import CLIPModel, CLIPTokenizer

from finecliper.data.classes import DFEW_CLASSES, prompt_names
from finecliper.data.dataset import ClipBatch
from finecliper.errors import ConfigError
from finecliper.face.schema import NUM_LANDMARKS, PARSING_CLASSES
from finecliper.model.architectures import KNOWN_ARCHITECTURES, Architecture, known_architecture
from finecliper.model.config import ModelConfig
from finecliper.model.network import FineCLIPER, build_model, label_prompts
from finecliper.model.tiny import tiny_architecture
from finecliper.model.tokenizer import TextTokenizer

TINY = "tiny"
CLASSES = prompt_names(DFEW_CLASSES)
# A fine-grained description as `finecliper describe` makes them; it fills the 77-token context.
DESCRIPTION = (
    "The person starts with a neutral face, then the inner corners of the brows rise and draw "
    "together while the upper eyelids droop. The corners of the mouth pull down slightly and the "
    "chin wrinkles. The head tilts down and to the left, the gaze drops, and the eyes blink "
    "slowly twice before the face relaxes a little near the end of the clip."
)
_WORDS = re.compile(r"[a-z]+|[^\sa-z]")  # what CLIP's pre-tokenizer makes of plain lower text


def bench_architecture(name: str, image_size: int | None = None) -> Architecture:
    """A built-in architecture by name, or ``tiny``; ``image_size`` overrides the tower's."""
    if name == TINY:
        architecture = tiny_architecture(vocab_size=1024)
    else:
        found = known_architecture(name)
        if found is None:
            known = ", ".join([TINY, *KNOWN_ARCHITECTURES])
            raise ConfigError(f"benchmark backbone {name!r}: unknown (known: {known})")
        architecture = found
    return architecture if image_size is None else replace(architecture, image_size=image_size)


def random_clip(architecture: Architecture, attention: str = "sdpa", seed: int = 0) -> CLIPModel:
    """A float32 ``CLIPModel`` of ``architecture`` with seeded random weights."""
    torch.manual_seed(seed)
    config = architecture.to_config()
    return CLIPModel._from_config(config, attn_implementation=attention).float().eval()


def word_tokenizer(texts: Iterable[str], vocab_size: int, context_length: int) -> TextTokenizer:
    """A real CLIP BPE tokenizer of ``vocab_size`` tokens in which every word of ``texts`` is one
    token; filler entries pad the vocabulary, start/end of text are its last two ids."""
    words = sorted({word for text in texts for word in _WORDS.findall(text.lower())})
    vocab: dict[str, int] = {}
    merges: list[tuple[str, str]] = []

    def add(token: str) -> None:
        vocab.setdefault(token, len(vocab))

    for word in words:
        symbols = [*word[:-1], word[-1] + "</w>"]
        for symbol in symbols:
            add(symbol)
        merged = symbols[0]
        for symbol in symbols[1:]:  # build the word left to right, one merge per symbol
            merges.append((merged, symbol))
            merged += symbol
            add(merged)
    if len(vocab) + 2 > vocab_size:
        raise ConfigError(f"benchmark texts need {len(vocab) + 2} tokens, vocabulary {vocab_size}")
    for filler in range(vocab_size - 2 - len(vocab)):
        add(f"<|unused{filler}|>")
    add("<|startoftext|>")
    add("<|endoftext|>")
    merges = list(dict.fromkeys(merges))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    return TextTokenizer(tokenizer, vocab_size, context_length, "benchmark word tokenizer")


def build_bench_model(
    variant: str,
    backbone: str = "ViT-B/16",
    *,
    image_size: int | None = None,
    num_frames: int = 16,
    attention: str = "sdpa",
    seed: int = 0,
) -> FineCLIPER:
    """FineCLIPER ``variant`` over a random CLIP, with the DFEW classes set."""
    architecture = bench_architecture(backbone, image_size)
    config = ModelConfig(variant=variant, backbone=backbone)
    texts = [*label_prompts(CLASSES, config)[0], *label_prompts(CLASSES, config)[1], DESCRIPTION]
    tokenizer = word_tokenizer(texts, architecture.vocab_size, architecture.context_length)
    clip = random_clip(architecture, attention, seed)
    torch.manual_seed(seed + 1)
    return build_model(config, CLASSES, num_frames, clip=clip, tokenizer=tokenizer)


@dataclass(frozen=True)
class ClipShape:
    batch: int
    frames: int
    size: int


def random_clip_batch(shape: ClipShape, seed: int = 0) -> ClipBatch:
    """A collated batch of random uint8 clips with parsing maps, landmarks and descriptions."""
    generator = torch.Generator().manual_seed(seed)
    batch, frames, size = shape.batch, shape.frames, shape.size
    pixels = torch.randint(0, 256, (batch, frames, 3, size, size), generator=generator)
    maps = torch.randint(0, len(PARSING_CLASSES), (batch, frames, size, size), generator=generator)
    points = torch.rand(batch, frames, NUM_LANDMARKS, 2, generator=generator) * (size - 1)
    return ClipBatch(
        index=torch.arange(batch),
        labels=torch.randint(0, len(CLASSES), (batch,), generator=generator),
        frames=pixels.to(torch.uint8),
        parsing=maps.to(torch.uint8),
        landmarks=points,
        has_middle=torch.ones(batch, dtype=torch.bool),
        descriptions=[DESCRIPTION] * batch,
        failed=[],
    )


@contextmanager
def cached_label_embeddings(model: FineCLIPER) -> Iterator[None]:
    """Encode the 2C label prompts once and reuse them for every forward inside the block.

    For inference only: the label adapters must not change meanwhile. (FineCLIPER itself
    re-encodes the prompts in every forward, which training needs.)
    """
    with torch.no_grad():
        cached = model.label_embeddings()
    model.label_embeddings = lambda: cached  # type: ignore[method-assign]
    try:
        yield
    finally:
        del model.label_embeddings  # the class's method again
