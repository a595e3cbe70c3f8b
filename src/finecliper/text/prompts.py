"""The description prompt of the seed's Fig. 3, with and without the human-annotation line.

The paper shows the MLLM the clip's ground-truth label ("human-annotation: {Label}"). That is
acceptable for training clips only: a test clip described with its label carries the answer
into the text branch. So by default training clips get the labelled prompt and every other clip
(test splits, new videos) the same prompt without the annotation line; ``LabelPolicy`` "all"
reproduces the paper's choice of labels everywhere, "never" shows no labels at all. Every
description records which prompt made it (id and SHA-256 of the template).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from finecliper.errors import ConfigError

LabelPolicy = Literal["train", "all", "never"]
LABEL_POLICIES: tuple[str, ...] = ("train", "all", "never")

# Seed Fig. 3, verbatim apart from line breaks.
FIG3_BODY = """Instruction:
You are a facial expression analyst. Identify emotions by analyzing the detailed movements of \
various facial features (mouth, chin, eyes, etc.) and implied actions (breathing rate, gaze \
direction) across a sequence. Provide a detailed description of the movements of various \
facial features and implied actions concisely.

Example:
[Input Video]: Initial neutrality transitions to anger; mouth corners downturn, chin protrudes, \
eyes narrow, gaze intensifies, and breathing appears heavier.
Answer: Downward mouth, protruding chin, narrowed eyes, intense gaze, and heavy breathing \
collectively signify anger.

Requirements:
1. Format: [Detailed feature and action analysis].
2. Focus on detailed progression of multiple facial parts and implied actions to emotions.
3. Role: analyze nuanced facial and action cues.
4. Use the human-annotated video.
5. Don't include emotional words.
6. Max 100 tokens."""

ANNOTATION_LINE = "For the given video, human-annotation: {Label}"


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt with an optional ``{Label}`` slot; ``sha256`` identifies its exact wording."""

    prompt_id: str
    template: str

    @property
    def shows_label(self) -> bool:
        return "{Label}" in self.template

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.template.encode("utf-8")).hexdigest()

    def render(self, label: str | None) -> str:
        if not self.shows_label:
            return self.template
        if not label:
            raise ConfigError(f"prompt {self.prompt_id!r} needs a label, got {label!r}")
        return self.template.replace("{Label}", label)


FIG3_LABELLED = PromptTemplate("fig3-label", f"{FIG3_BODY}\n\n{ANNOTATION_LINE}")
FIG3_UNLABELLED = PromptTemplate("fig3-nolabel", FIG3_BODY)


def check_policy(policy: str) -> LabelPolicy:
    if policy not in LABEL_POLICIES:
        raise ConfigError(f"label policy {policy!r}: expected one of {', '.join(LABEL_POLICIES)}")
    return policy  # type: ignore[return-value]


def is_training_split(split: str) -> bool:
    """``train`` and ``foldK/train`` are training splits; test, val and anything else are not."""
    return split.rsplit("/", 1)[-1] == "train"


def prompt_for(policy: LabelPolicy, training: bool) -> PromptTemplate:
    """The prompt a clip gets under ``policy``, for its use as a training or evaluation clip."""
    if policy == "all" or (policy == "train" and training):
        return FIG3_LABELLED
    return FIG3_UNLABELLED
