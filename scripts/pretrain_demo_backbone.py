"""Pre-train the small CLIP-style backbone that ships inside finecliper for ``finecliper demo``.

The demo trains FineCLIPER*† on SynthDFER with a frozen backbone, as the real method freezes
CLIP ViT-B/16. No CLIP weights can be downloaded on the machines the demo must run on, and a
ViT-B/16 is far too slow on two CPU cores, so this script builds a tiny ``transformers.CLIPModel``
(ViT, 112x112 input, 16x16 patches) and pre-trains it on a SynthDFER generated with a different
seed (1234) than the demo's (0), so the demo's clips are never seen.

Objectives (all on the same forward pass of a few frames per clip):

- CLIP's symmetric contrastive loss between the frame stack (mean of its unit frame
  embeddings) and one of the clip's two movement descriptions, drawn per sample: SynthDFER's
  own (in the role of the MLLM's) or the landmark template backend's (the text ``predict``
  makes for new videos, and the demo trains with); a share of the captions are class prompts
  ("A person with an expression of happiness."), the stand-in for the emotion words CLIP met on
  the web, without which the label words of the PN descriptors would be untrained embeddings.
- Face read-outs from the generator's ground truth, with heads used only here: the parsing
  class of every 4x4-pixel cell from its patch token, the 68 landmarks and the 15 action units
  from the image embedding. Contrastive learning alone did not work at this scale: the tiny
  ViT memorised the identity of each training clip (chance-level probe and held-out retrieval
  after 500 steps), and even plain landmark or action-unit regression from the embedding did not
  start to generalise within 1,000 steps; the dense per-patch parsing loss is what makes the
  patch tokens learn face geometry within minutes, and the rest builds on it.

Frames get the demo's own train transform (random resized crop and flip, shared by a clip's
frames, parsing maps and landmarks), and a share of the samples are shown as the parsing or
landmark renderings that the demo's middle-level streams feed through the same tower.

The tokenizer is a byte-level BPE in CLIP's format (vocab.json + merges.txt, "</w>" word ends,
<|startoftext|> / <|endoftext|>), learnt here from the descriptions plus the label-prompt
vocabulary. Context length 128: a fifth of the SynthDFER descriptions exceed CLIP's 77 tokens.

Outputs (``--out``, by default the package's ``assets/demo_backbone``): config.json,
model.safetensors (float32), tokenizer.json, tokenizer_config.json, vocab.json, merges.txt,
preprocessor_config.json, metadata.json (data, settings, losses, timings, retrieval, read-out
and probe numbers) and a README.md written from it.

``--probe`` adds the linear-probe check on demo-seed clips (fold 1: logistic regression on the
training clips, UAR/WAR on the test clips) from frozen image features mean-pooled over 16
frames, and from that mean next to the change from the first to the last frames; the same for a
randomly initialised backbone. ``--probe-only`` probes an existing ``--out``.

The architecture config, label prompts and LR schedule are the package's
(``Architecture.to_config``, ``ModelConfig``'s templates, ``train.schedule.warmup_cosine``). The
bundled weights predate that: their warm-up rose as ``(step + 1) / warmup`` instead of
``(step + 1) / (warmup + 1)``, so a rerun gives slightly different weights.

Run with ``OMP_WAIT_POLICY=PASSIVE`` on a shared machine: with the default (spinning) OpenMP
threads, 2 threads ran 6x slower than 1 when other jobs held the cores.

    OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 .venv/bin/python scripts/pretrain_demo_backbone.py \
        --probe
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import resource
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from finecliper.data.classes import DFEW_CLASSES, PROMPT_NAMES, prompt_names
from finecliper.data.sampling import segment_indices
from finecliper.data.transforms import (
    CLIP_MEAN,
    CLIP_STD,
    ClipSample,
    ClipTransform,
    clip_normalize,
)
from finecliper.errors import FineCLIPERError
from finecliper.face.arrays import DamagedArraysError, read_arrays, read_landmarks
from finecliper.face.render import render_landmarks, render_parsing
from finecliper.face.schema import NUM_LANDMARKS, PARSING_CLASSES
from finecliper.io import write_json, write_text
from finecliper.model.architectures import Architecture
from finecliper.model.config import ModelConfig
from finecliper.model.network import label_prompts
from finecliper.text.backends.template import describe_landmarks
from finecliper.train.metrics import classification_report
from finecliper.train.schedule import warmup_cosine

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "finecliper" / "assets" / "demo_backbone"

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
END_OF_WORD = "</w>"
# Besides the demo model's PN label prompts (ModelConfig's templates), each class also appears
# as an adjective ("A happy face."), the other way emotion words meet faces in captions.
ADJECTIVE_TEMPLATE = "A {label} face."
PROBE_CS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # logistic-regression C grid of the probes

# The backbone's size, chosen for CPU speed: 16 frames x 3 streams per clip must be cheap. Four
# heads of width 32 per tower; vocab_size is set to the learnt tokenizer's size.
BACKBONE = Architecture(
    vision_width=128,
    vision_layers=4,
    patch_size=16,
    image_size=112,
    text_width=128,
    text_layers=3,
    embed_dim=128,
    context_length=128,  # 20% of SynthDFER descriptions exceed 77 tokens (max ~122)
    head_width=32,
)


# ---------------------------------------------------------------- tokenizer


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


# ---------------------------------------------------------------- model


def build_model(tokenizer: CLIPTokenizer, seed: int) -> CLIPModel:
    """The backbone with random weights, its text tower sized to ``tokenizer``."""
    architecture = replace(BACKBONE, vocab_size=len(tokenizer))
    config = architecture.to_config()
    # Also on the towers, so CLIP{Text,Vision}ModelWithProjection load the same projections.
    config.text_config.projection_dim = architecture.embed_dim
    config.vision_config.projection_dim = architecture.embed_dim
    torch.manual_seed(seed)
    return CLIPModel(config)


def image_features(model: CLIPModel, pixels: torch.Tensor) -> torch.Tensor:
    """Projected image embeddings (written out: get_image_features' return type varies)."""
    return model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)


def text_features(model: CLIPModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    pooled = model.text_model(input_ids=ids, attention_mask=mask).pooler_output
    return model.text_projection(pooled)


# ---------------------------------------------------------------- SynthDFER


@dataclass
class ClipSet:
    """Decoded SynthDFER clips, 16 frames each: uint8 frames (N, 16, 3, H, W), labels,
    descriptions, each clip's split ("train"/"test") in the fold it was read with, and, for
    pre-training, the generator's ground truth of those frames: action-unit values
    (N, 16, AUs), parsing maps (N, 16, H, W) and landmarks (N, 16, 68, 2)."""

    ids: list[str]
    frames: torch.Tensor
    labels: np.ndarray
    texts: list[str]
    template_texts: list[str]
    splits: list[str]
    classes: tuple[str, ...]
    aus: torch.Tensor | None = None
    parsing: torch.Tensor | None = None
    landmarks: torch.Tensor | None = None

    def subset(self, index: torch.Tensor) -> ClipSet:
        rows = index.tolist()
        return ClipSet(
            ids=[self.ids[i] for i in rows],
            frames=self.frames[index],
            labels=self.labels[rows],
            texts=[self.texts[i] for i in rows],
            template_texts=[self.template_texts[i] for i in rows],
            splits=[self.splits[i] for i in rows],
            classes=self.classes,
            aus=None if self.aus is None else self.aus[index],
            parsing=None if self.parsing is None else self.parsing[index],
            landmarks=None if self.landmarks is None else self.landmarks[index],
        )


def generate(work: Path, clips: int, seed: int, size: int) -> Path:
    """SynthDFER with these settings under ``work``; a complete earlier run is reused (the
    generator keeps finished clips and checks that the settings match)."""
    from finecliper.data.synth import generate_synth

    out = work / f"synth_seed{seed}_n{clips}"
    print(f"SynthDFER ({clips} clips, seed {seed}) -> {out}", flush=True)
    generate_synth(out, clips=clips, seed=seed, size=size, frames=16, workers=2, progress=True)
    return out


def load_synth(root: Path, size: int, fold: int = 1, *, ground_truth: bool = False) -> ClipSet:
    """Every clip of a SynthDFER folder (read with its reader), 16 frames each, decoded; with
    ``ground_truth`` also the per-frame action units, parsing maps and landmarks."""
    from finecliper.data.synth import read_synth
    from finecliper.data.video import frames_to_tensor, read_frames

    index = read_synth(root, fold=fold)
    if index.problems:
        first = index.problems[0]
        raise FineCLIPERError(
            f"{root}: {len(index.problems)} problems, e.g. {first.path}: {first.problem}"
        )
    records = sorted(
        index.records("train", fold) + index.records("test", fold), key=lambda r: r.clip_id
    )
    descriptions = _read_descriptions(root / "descriptions.jsonl")
    missing = [record.clip_id for record in records if record.clip_id not in descriptions]
    if missing:
        raise FineCLIPERError(f"{root}: {len(missing)} clips have no description: {missing[0]}")
    frames, truth, template_texts = [], [], []
    for record in tqdm(records, desc=f"decoding {root.name}", unit="clip"):
        template_texts.append(_template_description(record.path.parent))
        indices = segment_indices(record.num_frames or 16, 16, train=False)
        stack = frames_to_tensor(read_frames(record.path, indices))
        if stack.shape[-2:] != (size, size):
            raise FineCLIPERError(
                f"{record.path}: frames are {tuple(stack.shape[-2:])}, the backbone takes "
                f"{size}x{size}; generate SynthDFER with size={size}"
            )
        frames.append(stack)
        if ground_truth:
            truth.append(_read_ground_truth(record.path.parent, indices))
    aus, parsing, landmarks = (
        (torch.stack(column) for column in zip(*truth, strict=True)) if truth else [None] * 3
    )
    return ClipSet(
        ids=[record.clip_id for record in records],
        frames=torch.stack(frames),
        labels=np.asarray([record.label for record in records]),
        texts=[descriptions[record.clip_id] for record in records],
        template_texts=template_texts,
        splits=[record.split for record in records],
        classes=index.classes,
        aus=aus,
        parsing=parsing,
        landmarks=landmarks,
    )


def _read_ground_truth(
    clip_dir: Path, indices: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A clip's per-frame action units, parsing maps and landmarks, at frames ``indices``."""
    try:
        aus = json.loads((clip_dir / "params.json").read_text(encoding="utf-8"))["au"]
        arrays = read_arrays(clip_dir)
    except (OSError, ValueError, KeyError, DamagedArraysError) as exc:
        raise FineCLIPERError(f"{clip_dir}: unreadable SynthDFER ground truth ({exc})") from exc
    rows = list(indices)
    return (
        torch.tensor(aus, dtype=torch.float32)[rows],
        torch.from_numpy(arrays.parsing[rows]),
        torch.from_numpy(arrays.landmarks[rows].astype(np.float32)),
    )


def _template_description(clip_dir: Path) -> str:
    """What the landmark template backend (``finecliper describe --backend template``, and
    ``predict`` on new videos) says about the clip, from its ground-truth landmarks."""
    try:
        points = read_landmarks(clip_dir).astype(np.float64)
    except DamagedArraysError as exc:
        raise FineCLIPERError(str(exc)) from exc
    return describe_landmarks(points[~np.isnan(points).any(axis=(1, 2))])


def _read_descriptions(path: Path) -> dict[str, str]:
    with open(path, encoding="utf-8") as handle:
        entries = [json.loads(line) for line in handle if line.strip()]
    return {entry["clip_id"]: entry["text"] for entry in entries}


# ---------------------------------------------------------------- pre-training


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    batch_size: int
    frames_per_sample: int
    lr: float
    prompt_fraction: float
    render_fraction: float
    parsing_weight: float
    landmark_weight: float
    movement_weight: float
    text_weight: float
    seed: int


class FaceHeads(torch.nn.Module):
    """Read-outs used only while pre-training (not saved): parsing classes of 4x4-pixel cells
    from each patch token, landmarks and action units from the image embedding, and the clip's
    movement (peak rise of each action unit) from its description's text embedding."""

    cell = 4

    def __init__(self, config: CLIPConfig, num_aus: int) -> None:
        super().__init__()
        vision = config.vision_config
        self.cells_per_patch = (vision.patch_size // self.cell) ** 2
        self.num_classes = len(PARSING_CLASSES)
        self.parsing = torch.nn.Linear(vision.hidden_size, self.cells_per_patch * self.num_classes)
        self.landmarks = torch.nn.Linear(config.projection_dim, 2 * NUM_LANDMARKS)
        self.aus = torch.nn.Linear(config.projection_dim, num_aus)
        self.text_movement = torch.nn.Linear(config.projection_dim, num_aus)

    def parsing_logits(self, patch_tokens: torch.Tensor) -> torch.Tensor:
        """(N, patches, width) -> (N, patches, cells, classes)."""
        logits = self.parsing(patch_tokens)
        return logits.view(*patch_tokens.shape[:2], self.cells_per_patch, self.num_classes)


def parsing_cell_targets(maps: torch.Tensor, patch: int, cell: int) -> torch.Tensor:
    """(N, H, W) class ids -> (N, patches, cells, classes): class shares of each cell, with
    patches and cells in row-major order (the ViT's patch order)."""
    classes = len(PARSING_CLASSES)
    onehot = F.one_hot(maps.long().clamp_max(classes - 1), classes).permute(0, 3, 1, 2)
    shares = F.avg_pool2d(onehot.float(), cell)  # (N, classes, H / cell, W / cell)
    n, _, rows, cols = shares.shape
    per = patch // cell
    shares = shares.view(n, classes, rows // per, per, cols // per, per)
    return shares.permute(0, 2, 4, 3, 5, 1).reshape(n, -1, per * per, classes)


@dataclass(frozen=True)
class Captions:
    """Every caption of the pre-training set, tokenised once: the distinct descriptions, then
    the class prompts (positive template for each class, then adjective template)."""

    ids: torch.Tensor
    mask: torch.Tensor
    description_of_clip: torch.Tensor  # (N, 2) caption rows: dataset and template description
    prompts_of_clip: torch.Tensor  # (N, 2) caption rows of each clip's class prompts
    prompt_rows: torch.Tensor  # (2C,) caption rows of the prompts
    prompt_movement: torch.Tensor  # (2C, AUs) mean movement of each prompt's class

    def features(self, model: CLIPModel, rows: torch.Tensor) -> torch.Tensor:
        """Projected text embeddings of caption ``rows``, padding trimmed to the longest."""
        length = int(self.mask[rows].sum(dim=1).max())
        return text_features(model, self.ids[rows, :length], self.mask[rows, :length])


def build_captions(tokenizer: CLIPTokenizer, clips: ClipSet) -> Captions:
    unique = sorted(set(clips.texts) | set(clips.template_texts))
    position = {text: i for i, text in enumerate(unique)}
    prompts = class_prompts(clips.classes)[0] + adjective_prompts(clips.classes)
    ids, mask = tokenize(tokenizer, unique + prompts)
    num_classes = len(clips.classes)
    label = torch.from_numpy(clips.labels)
    movement = clip_movement(clips.aus)
    class_movement = torch.stack([movement[label == c].mean(dim=0) for c in range(num_classes)])
    return Captions(
        ids=ids,
        mask=mask,
        description_of_clip=torch.tensor(
            [
                [position[a], position[b]]
                for a, b in zip(clips.texts, clips.template_texts, strict=True)
            ]
        ),
        prompts_of_clip=torch.stack([len(unique) + label, len(unique) + num_classes + label], 1),
        prompt_rows=torch.arange(len(unique), len(unique) + len(prompts)),
        prompt_movement=class_movement.repeat(2, 1),
    )


def tokenize(tokenizer: CLIPTokenizer, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    batch = tokenizer(list(texts), padding="max_length", truncation=True, return_tensors="pt")
    return batch.input_ids, batch.attention_mask


def sample_frames(num_frames: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """One frame from the clip's start (still neutral) and k - 1 from its last three quarters,
    where the expression unfolds and peaks."""
    early = torch.randint(0, max(1, num_frames // 8), (1,), generator=generator)
    late = torch.randint(num_frames // 4, num_frames, (k - 1,), generator=generator)
    return torch.cat([early, late.sort().values])


def augmented_batch(
    clips: ClipSet,
    batch: torch.Tensor,
    frame_index: torch.Tensor,
    render_fraction: float,
    generator: torch.Generator,
) -> ClipSample:
    """The demo's train transform (random resized crop + flip, shared by a sample's frames,
    parsing maps and landmarks); a share of the samples become parsing or landmark renderings,
    the middle-level inputs the demo also runs through this tower."""
    rows, cols = batch[:, None], frame_index
    sample = ClipSample(
        clips.frames[rows, cols], clips.parsing[rows, cols], clips.landmarks[rows, cols]
    )
    sample = ClipTransform(clips.frames.shape[-1], train=True)(sample, generator)
    frames = sample.frames
    stream = torch.rand(len(batch), generator=generator)[:, None, None, None, None]
    frames = torch.where(
        stream < render_fraction / 2, render_parsing(frames, sample.parsing), frames
    )
    as_landmarks = (stream >= render_fraction / 2) & (stream < render_fraction)
    frames = torch.where(as_landmarks, render_landmarks(frames, sample.landmarks), frames)
    return ClipSample(frames, sample.parsing, sample.landmarks)


def clip_movement(aus: torch.Tensor) -> torch.Tensor:
    """(..., T, AUs) -> (..., AUs): how far each action unit rises above its first frame."""
    return (aus.amax(dim=-2) - aus[..., 0, :]).clamp_min(0)


def motion_embeddings(frame_features: torch.Tensor) -> torch.Tensor:
    """Unit clip embeddings of the expression change: mean of the unit embeddings of the later
    frames minus that of the first frame(s) of each clip (frames on dim 1, in time order)."""
    unit = F.normalize(frame_features, dim=-1)
    early = max(1, unit.shape[1] // 8)
    return F.normalize(unit[:, early:].mean(dim=1) - unit[:, :early].mean(dim=1), dim=-1)


def soft_clip_loss(logits: torch.Tensor, caption_ids: torch.Tensor) -> torch.Tensor:
    """Symmetric CLIP loss; samples sharing a caption are all positives of each other."""
    same = (caption_ids[:, None] == caption_ids[None, :]).float()
    targets = same / same.sum(dim=1, keepdim=True)
    image_loss = torch.sum(-targets * F.log_softmax(logits, dim=1), dim=1).mean()
    text_loss = torch.sum(-targets * F.log_softmax(logits.t(), dim=1), dim=1).mean()
    return (image_loss + text_loss) / 2


def pretrain(
    model: CLIPModel, tokenizer: CLIPTokenizer, clips: ClipSet, settings: TrainSettings
) -> tuple[list[dict[str, float]], FaceHeads]:
    """Pre-train the whole model; returns the mean losses of every 25 steps and the heads."""
    captions = build_captions(tokenizer, clips)
    heads = FaceHeads(model.config, clips.aus.shape[-1])
    generator = torch.Generator().manual_seed(settings.seed)
    parameters = [*model.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=0.05)
    schedule = warmup_cosine(optimizer, settings.steps, max(1, settings.steps // 20))
    weights = {
        "contrastive": 1.0,
        "parsing": settings.parsing_weight,
        "landmarks": settings.landmark_weight,
        "movement": settings.movement_weight,
        "text": settings.text_weight,
    }
    model.train()
    history, window = [], []
    batches = _batches(len(clips.ids), settings, generator)
    progress = tqdm(batches, desc="pre-training", unit="step", total=settings.steps)
    for step, batch in enumerate(progress):
        losses = _step_losses(model, heads, clips, captions, batch, settings, generator)
        loss = sum(weights[name] * value for name, value in losses.items())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        with torch.no_grad():  # CLIP's cap on the logit scale (temperature >= 0.01)
            model.logit_scale.clamp_(0, math.log(100))
        window.append({name: value.item() for name, value in losses.items()})
        if len(window) == 25 or step == settings.steps - 1:
            means = {name: round(float(np.mean([w[name] for w in window])), 5) for name in losses}
            history.append({"step": step + 1, **means})
            progress.set_postfix(means)
            window = []
    model.eval()
    return history, heads


def _batches(
    num_clips: int, settings: TrainSettings, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """``settings.steps`` batches of clip indices, walking through shuffled epochs."""
    order, cursor = torch.randperm(num_clips, generator=generator), 0
    for _ in range(settings.steps):
        if cursor + settings.batch_size > num_clips:
            order, cursor = torch.randperm(num_clips, generator=generator), 0
        yield order[cursor : cursor + settings.batch_size]
        cursor += settings.batch_size


def _step_losses(
    model: CLIPModel,
    heads: FaceHeads,
    clips: ClipSet,
    captions: Captions,
    batch: torch.Tensor,
    settings: TrainSettings,
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    num_frames = clips.frames.shape[1]
    frame_index = torch.stack(
        [sample_frames(num_frames, settings.frames_per_sample, generator) for _ in batch]
    )
    sample = augmented_batch(clips, batch, frame_index, settings.render_fraction, generator)
    aus = clips.aus[batch[:, None], frame_index].flatten(0, 1)
    pixels = clip_normalize(sample.frames.flatten(0, 1))
    tokens = model.vision_model(pixel_values=pixels)
    features = model.visual_projection(tokens.pooler_output)
    patch = model.config.vision_config.patch_size
    cells = parsing_cell_targets(sample.parsing.flatten(0, 1), patch, heads.cell)
    parsing_logits = heads.parsing_logits(tokens.last_hidden_state[:, 1:])
    points = sample.landmarks.flatten(0, 1).flatten(1) / (pixels.shape[-1] / 2) - 1
    seen = torch.isfinite(points)  # frames without a face have NaN landmarks
    # Each sample is paired with one of its two descriptions (the dataset's, in the role of the
    # MLLM's, or the landmark template's), or for a share with its class prompt.
    use_prompt = torch.rand(len(batch), generator=generator) < settings.prompt_fraction
    which = torch.randint(0, 2, (len(batch),), generator=generator)
    style = torch.randint(0, 2, (len(batch),), generator=generator)
    description = captions.description_of_clip[batch, style]
    caption = torch.where(use_prompt, captions.prompts_of_clip[batch, which], description)
    motion = motion_embeddings(features.view(*frame_index.shape, -1))
    text_rows = torch.cat([description, captions.prompt_rows])
    text_targets = torch.cat([clip_movement(clips.aus[batch]), captions.prompt_movement])
    return {
        "contrastive": _contrastive_loss(model, captions, motion, caption),
        "parsing": torch.sum(-cells * F.log_softmax(parsing_logits, dim=-1), dim=-1).mean(),
        "landmarks": F.mse_loss(heads.landmarks(features)[seen], points[seen]),
        "movement": F.mse_loss(heads.aus(features), aus),
        "text": F.mse_loss(heads.text_movement(captions.features(model, text_rows)), text_targets),
    }


def _contrastive_loss(
    model: CLIPModel, captions: Captions, motion: torch.Tensor, caption: torch.Tensor
) -> torch.Tensor:
    """CLIP loss between each sample's motion embedding and its caption; the text tower
    encodes each distinct caption of the batch once."""
    unique, inverse = torch.unique(caption, return_inverse=True)
    text = F.normalize(captions.features(model, unique), dim=-1)
    logits = model.logit_scale.exp() * motion @ text[inverse].t()
    return soft_clip_loss(logits, inverse)


# ---------------------------------------------------------------- evaluation


@torch.inference_mode()
def frame_embeddings(model: CLIPModel, frames: torch.Tensor, batch_clips: int = 16) -> torch.Tensor:
    """Projected image embeddings (N, 16, D) of every clip's 16 frames, CLIP-normalised input."""
    model.eval()
    outputs = []
    for start in tqdm(range(0, len(frames), batch_clips), desc="encoding clips", leave=False):
        chunk = frames[start : start + batch_clips]
        features = image_features(model, clip_normalize(chunk.flatten(0, 1)))
        outputs.append(features.view(*chunk.shape[:2], -1))
    return torch.cat(outputs)


@torch.inference_mode()
def description_features(
    model: CLIPModel, tokenizer: CLIPTokenizer, clips: ClipSet, *, template: bool = False
) -> torch.Tensor:
    """Projected (not normalised) text embeddings of the clips' dataset (or template)
    descriptions."""
    model.eval()
    return text_features(
        model, *tokenize(tokenizer, clips.template_texts if template else clips.texts)
    )


@torch.inference_mode()
def caption_embeddings(
    model: CLIPModel, tokenizer: CLIPTokenizer, texts: Sequence[str]
) -> torch.Tensor:
    ids, mask = tokenize(tokenizer, texts)
    return F.normalize(text_features(model, ids, mask), dim=-1)


def retrieval(
    model: CLIPModel, tokenizer: CLIPTokenizer, clips: ClipSet, frame_features: torch.Tensor
) -> dict[str, float]:
    """Description <-> clip retrieval with motion embeddings; a hit is the clip's own pair (or
    a clip with the very same description text, since templated descriptions can repeat)."""
    video = motion_embeddings(frame_features)
    text = caption_embeddings(model, tokenizer, clips.texts)
    similarity = text @ video.t()
    same_text = torch.tensor([[a == b for b in clips.texts] for a in clips.texts], dtype=torch.bool)
    result = {"clips": len(clips.ids), "chance_top1": round(1 / len(clips.ids), 4)}
    for name, scores in (("text_to_clip", similarity), ("clip_to_text", similarity.t())):
        ranked = scores.argsort(dim=1, descending=True)
        hits = torch.gather(same_text, 1, ranked)
        for k in (1, 5):
            result[f"{name}_top{k}"] = round(hits[:, :k].any(dim=1).float().mean().item(), 4)
    return result


def zero_shot(
    model: CLIPModel, tokenizer: CLIPTokenizer, clips: ClipSet, frame_features: torch.Tensor
) -> dict[str, float]:
    """Classify clips by the class prompts alone: positive and PN (positive minus negative)."""
    video = motion_embeddings(frame_features)
    positive_prompts, negative_prompts = class_prompts(clips.classes)
    positive = caption_embeddings(model, tokenizer, positive_prompts)
    negative = caption_embeddings(model, tokenizer, negative_prompts)
    result = {}
    for name, scores in (
        ("positive", video @ positive.t()),
        ("pn", video @ positive.t() - video @ negative.t()),
    ):
        report = classification_report(clips.labels, scores.argmax(dim=1).numpy(), clips.classes)
        result[f"{name}_uar"], result[f"{name}_war"] = round(report.uar, 4), round(report.war, 4)
    return result


@torch.inference_mode()
def face_readout(
    heads: FaceHeads, clips: ClipSet, frame_features: torch.Tensor, text: torch.Tensor
) -> dict:
    """R^2 of the pre-training read-outs on held-out clips: how linearly the image embedding
    carries the action units and the landmarks, and the text embedding the movement."""
    size = clips.frames.shape[-1]
    points = clips.landmarks.flatten(0, 1).flatten(1) / (size / 2) - 1
    features = frame_features.flatten(0, 1)
    return {
        "action_units_r2": _r2(heads.aus(features), clips.aus.flatten(0, 1)),
        "landmarks_r2": _r2(heads.landmarks(features), points),
        "text_movement_r2": _r2(heads.text_movement(text), clip_movement(clips.aus)),
    }


def _r2(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over output columns of the coefficient of determination."""
    residual = ((predicted - target) ** 2).sum(dim=0)
    total = ((target - target.mean(dim=0)) ** 2).sum(dim=0).clamp_min(1e-8)
    return round((1 - residual / total).mean().item(), 4)


def linear_probe(clips: ClipSet, features: torch.Tensor) -> dict[str, object]:
    """Logistic regression on frozen clip features, trained on the train clips (its inverse
    regularisation C chosen by 5-fold cross-validation among them), scored on the test clips."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, test = _fold_split(clips)
    smallest = min(int(n) for n in np.bincount(clips.labels[train]) if n > 0)
    if smallest < 2:
        raise FineCLIPERError(
            "probe data too small: a class has a single training clip (generate more clips)"
        )
    probe = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        {"logisticregression__C": list(PROBE_CS)},
        scoring="balanced_accuracy",
        cv=StratifiedKFold(min(5, smallest), shuffle=True, random_state=0),
    )
    probe.fit(features[train].numpy(), clips.labels[train])
    predicted = probe.predict(features[test].numpy())
    report = classification_report(clips.labels[test], predicted, clips.classes)
    return {
        "c": probe.best_params_["logisticregression__C"],
        "train_clips": int(train.sum()),
        "test_clips": int(test.sum()),
        "uar": round(report.uar, 4),
        "war": round(report.war, 4),
        "chance_uar": round(1 / len(clips.classes), 4),
        "per_class_recall": {
            k: round(v, 4) for k, v in report.per_class_recall.items() if v is not None
        },
    }


def probe_features(frame_features: torch.Tensor) -> dict[str, torch.Tensor]:
    """Clip features for the probes: the mean over the 16 frames of the unit frame embeddings
    (the brief's check), and that mean next to the change from the first 2 frames to the last
    4 (what a temporal module can read; the expression unfolds over the clip)."""
    unit = F.normalize(frame_features, dim=-1)
    mean = unit.mean(dim=1)
    change = unit[:, -4:].mean(dim=1) - unit[:, :2].mean(dim=1)
    return {"mean_pooled": mean, "mean_and_change": torch.cat([mean, change], dim=1)}


def _fold_split(clips: ClipSet) -> tuple[np.ndarray, np.ndarray]:
    test = np.asarray(clips.splits) == "test"
    if not test.any() or test.all():
        raise FineCLIPERError("the probe data needs both training and test clips")
    return ~test, test


# ---------------------------------------------------------------- driver


def held_out_split(num_clips: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(num_clips, generator=torch.Generator().manual_seed(seed))
    held = max(1, int(num_clips * fraction))
    return order[held:].sort().values, order[:held].sort().values


def cpu_seconds() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "user_seconds": round(own.ru_utime + children.ru_utime, 1),
        "system_seconds": round(own.ru_stime + children.ru_stime, 1),
    }


def save_backbone(model: CLIPModel, tokenizer: CLIPTokenizer, metadata: dict, out: Path) -> None:
    """Write into a sibling folder, then swap it in: a crash never leaves half a backbone."""
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging, safe_serialization=True)
    save_tokenizer(tokenizer, tokenizer_merges(tokenizer), staging)
    write_json(
        staging / "preprocessor_config.json",
        preprocessor_config(model.config.vision_config.image_size),
    )
    write_json(staging / "metadata.json", metadata)
    write_text(staging / "README.md", readme(metadata))
    for file in staging.iterdir():  # package data must be readable by every user
        file.chmod(0o644)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)


def preprocessor_config(size: int) -> dict:
    """CLIPImageProcessor settings (written by hand: the class needs torchvision in v5)."""
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_convert_rgb": True,
        "do_resize": True,
        "size": {"shortest_edge": size},
        "resample": 3,  # bicubic
        "do_center_crop": True,
        "crop_size": {"height": size, "width": size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(CLIP_MEAN),
        "image_std": list(CLIP_STD),
    }


def readme(metadata: dict) -> str:
    pre = metadata["pretraining"]
    shape = metadata["architecture"]
    lines = [
        "# finecliper demo backbone",
        "",
        "A small CLIP-style `transformers.CLIPModel` (ViT, "
        f"{shape['image_size']}x{shape['image_size']} input, {shape['patch_size']}-pixel "
        f"patches, {shape['vision_layers']} vision and {shape['text_layers']} text layers of "
        f"width {shape['vision_width']}, {shape['context_length']}-token context) with its own "
        "byte-level BPE tokenizer in CLIP's format, for `finecliper demo`, where it is frozen as "
        "CLIP is in the real method. Built by `scripts/pretrain_demo_backbone.py` on SynthDFER "
        f"generated with seed {pre['data_seed']} ({pre['data_clips']} clips); the demo uses seed "
        "0, so its clips are never seen.",
        "",
        "Pre-training: CLIP's symmetric contrastive loss between a clip's motion embedding "
        "(mean unit embedding of later frames minus that of its first frame) and one of its two"
        " movement descriptions (SynthDFER's own, or the landmark template backend's, the text "
        "`predict` and the demo use) or a class prompt, plus read-outs of the generator's "
        "ground truth used only for pre-training (parsing classes per 4x4-pixel cell from the "
        "patch tokens; landmarks and action units from the image embedding; the clip's movement"
        " from the description's text embedding). Frames get the demo's crop-and-flip "
        "transform; a share are shown as the parsing and landmark renderings of the demo's "
        "middle-level streams.",
        "",
        "Load with `CLIPModel.from_pretrained(dir)` and `CLIPTokenizer.from_pretrained(dir)` "
        "(`finecliper.assets_paths.demo_backbone_dir()` gives `dir`); images are RGB, "
        "CLIP mean/std normalised (preprocessor_config.json). Weights are float32.",
        "",
        "Numbers, all measured by the script (full record, losses included, in metadata.json):",
        "",
        "```",
        json.dumps(
            {
                "parameters": metadata["parameters"],
                "tokenizer": metadata["tokenizer"],
                "pretraining": {k: v for k, v in pre.items() if k != "losses"},
                "retrieval": metadata.get("retrieval"),
                "face_readout": metadata.get("face_readout"),
                "zero_shot": metadata.get("zero_shot"),
                "probe": metadata.get("probe"),
            },
            indent=2,
        ),
        "```",
        "",
    ]
    return "\n".join(lines)


def run_pretraining(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    size = BACKBONE.image_size
    root = args.pretrain_data or generate(args.work, args.clips, args.data_seed, size)
    clips = load_synth(root, size, ground_truth=True)
    train_index, held_index = held_out_split(len(clips.ids), 0.1, args.seed)
    train_clips, held_clips = clips.subset(train_index), clips.subset(held_index)
    tokenizer = train_tokenizer(
        train_clips.texts + train_clips.template_texts, BACKBONE.context_length
    )
    model = build_model(tokenizer, args.seed)
    settings = train_settings(args)
    train_start = time.perf_counter()
    losses, heads = pretrain(model, tokenizer, train_clips, settings)
    train_seconds = time.perf_counter() - train_start
    metadata = {
        "format": 1,
        "architecture": asdict(replace(BACKBONE, vocab_size=len(tokenizer))),
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokenizer": tokenizer_record(tokenizer, clips),
        "pretraining": {
            "data_seed": args.data_seed,
            "data_clips": len(clips.ids),
            "train_clips": len(train_clips.ids),
            "held_out_clips": len(held_clips.ids),
            **asdict(settings),
            "train_wall_seconds": round(train_seconds, 1),
            "total_wall_seconds": round(time.perf_counter() - start, 1),
            "threads": torch.get_num_threads(),
            **cpu_seconds(),
            "final_losses": losses[-1],
            "losses": losses,
        },
        **held_out_evaluation(model, tokenizer, heads, held_clips),
    }
    save_backbone(model, tokenizer, metadata, args.out)
    shown = ("tokenizer", "retrieval", "face_readout", "zero_shot")
    print(json.dumps({k: metadata[k] for k in shown}, indent=2))


def train_settings(args: argparse.Namespace) -> TrainSettings:
    return TrainSettings(
        steps=args.steps,
        batch_size=args.batch_size,
        frames_per_sample=args.frames_per_sample,
        lr=args.lr,
        prompt_fraction=args.prompt_fraction,
        render_fraction=args.render_fraction,
        parsing_weight=args.parsing_weight,
        landmark_weight=args.landmark_weight,
        movement_weight=args.movement_weight,
        text_weight=args.text_weight,
        seed=args.seed,
    )


def tokenizer_record(tokenizer: CLIPTokenizer, clips: ClipSet) -> dict[str, int]:
    """The learnt tokenizer's size and how the descriptions fit its context."""
    lengths = [len(ids) for ids in tokenizer(clips.texts + clips.template_texts).input_ids]
    return {
        "vocab_size": len(tokenizer),
        "merges": len(tokenizer_merges(tokenizer)),
        "description_tokens_max": max(lengths),
        "descriptions_truncated": sum(n > BACKBONE.context_length for n in lengths),
    }


def held_out_evaluation(
    model: CLIPModel, tokenizer: CLIPTokenizer, heads: FaceHeads, held_clips: ClipSet
) -> dict[str, dict]:
    """Retrieval, face read-outs and zero-shot accuracy on the clips held out of pre-training."""
    features = frame_embeddings(model, held_clips.frames)
    text = description_features(model, tokenizer, held_clips)
    return {
        "retrieval": retrieval(model, tokenizer, held_clips, features),
        "face_readout": face_readout(heads, held_clips, features, text),
        "zero_shot": {"held_out": zero_shot(model, tokenizer, held_clips, features)},
    }


def run_probe(args: argparse.Namespace) -> dict:
    """Linear probe (and zero-shot) on demo-seed clips with the saved backbone, plus the same
    probe on a randomly initialised backbone of the same shape for comparison."""
    root = args.probe_data or generate(args.work, args.probe_clips, 0, BACKBONE.image_size)
    clips = load_synth(root, BACKBONE.image_size, args.fold)
    model = CLIPModel.from_pretrained(args.out).eval()
    tokenizer = CLIPTokenizer.from_pretrained(args.out)
    check_tokenizer(tokenizer, model.config.text_config.vocab_size)
    features = frame_embeddings(model, clips.frames)
    untrained = build_model(tokenizer, args.seed)
    random_init = frame_embeddings(untrained, clips.frames)
    seed = json.loads((root / "meta.json").read_text(encoding="utf-8"))["seed"]
    result = {
        "data": f"SynthDFER seed {seed}, {len(clips.ids)} clips, test fold {args.fold}",
        **{
            f"pretrained_{name}": linear_probe(clips, values)
            for name, values in probe_features(features).items()
        },
        **{
            f"random_init_{name}": linear_probe(clips, values)
            for name, values in probe_features(random_init).items()
        },
        "pretrained_text": linear_probe(clips, description_features(model, tokenizer, clips)),
        "random_init_text": linear_probe(clips, description_features(untrained, tokenizer, clips)),
        "pretrained_template_text": linear_probe(
            clips, description_features(model, tokenizer, clips, template=True)
        ),
        "random_init_template_text": linear_probe(
            clips, description_features(untrained, tokenizer, clips, template=True)
        ),
        "zero_shot_all_clips": zero_shot(model, tokenizer, clips, features),
    }
    metadata = json.loads((args.out / "metadata.json").read_text(encoding="utf-8"))
    metadata["probe"] = result
    write_json(args.out / "metadata.json", metadata)
    write_text(args.out / "README.md", readme(metadata))
    print(json.dumps(result, indent=2))
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="backbone directory")
    parser.add_argument(
        "--work",
        type=Path,
        default=REPO / "runs" / "demo_backbone",
        help="where generated SynthDFER data is cached",
    )
    parser.add_argument("--pretrain-data", type=Path, help="existing SynthDFER to pre-train on")
    parser.add_argument("--probe-data", type=Path, help="existing demo-seed SynthDFER to probe")
    parser.add_argument("--data-seed", type=int, default=1234, help="pre-training data seed")
    parser.add_argument("--clips", type=int, default=3000, help="pre-training clips to generate")
    parser.add_argument("--probe-clips", type=int, default=700)
    parser.add_argument("--fold", type=int, default=1, help="probe test fold")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--frames-per-sample", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--prompt-fraction",
        type=float,
        default=0.2,
        help="share of samples paired with a class prompt, not a description",
    )
    parser.add_argument(
        "--render-fraction",
        type=float,
        default=0.3,
        help="share of samples shown as parsing or landmark renderings instead of frames",
    )
    parser.add_argument(
        "--parsing-weight", type=float, default=1.0, help="patch-token parsing loss weight"
    )
    parser.add_argument(
        "--landmark-weight", type=float, default=50.0, help="landmark regression loss weight"
    )
    parser.add_argument(
        "--movement-weight", type=float, default=10.0, help="action-unit regression weight"
    )
    parser.add_argument(
        "--text-weight", type=float, default=10.0, help="description -> movement weight"
    )
    parser.add_argument("--seed", type=int, default=0, help="initialisation and sampling seed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--probe", action="store_true", help="run the linear probe afterwards")
    parser.add_argument("--probe-only", action="store_true", help="probe the existing --out")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        if not args.probe_only:
            run_pretraining(args)
        if args.probe or args.probe_only:
            run_probe(args)
    except FineCLIPERError as exc:
        print(f"pretrain_demo_backbone: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
