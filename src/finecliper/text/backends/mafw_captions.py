"""MAFW's own English captions as descriptions: the paper's Table 3 row "MAFW (video caption)".

MAFW's ``single/with_caption`` lists carry, after the clip and its label, a Chinese and an English
caption of the clip (tab separated, GBK-encoded; ``data/readers/mafw.py`` parses them). This
backend looks each clip up in those lists and returns the English caption unchanged: no model, no
prompt, no label shown (the captions are the dataset's, written by its annotators). A clip whose
line has no English field gets an error line, so its text modality is missing, as for any failed
description.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import regex

from finecliper.errors import ConfigError, LayoutError
from finecliper.text.backends import BackendOptions, ClipRequest, Reply, register_backend

NAME = "mafw-captions"
# Han, kana, hangul and full-width forms: a field with any of them is not the English caption.
_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\uff00-\uffef\u3000-\u303f]")
_LETTER = regex.compile(r"[A-Za-z]")


def english_caption(caption: str | None) -> str | None:
    """The English part of a with_caption line's caption fields, or None when it has none."""
    if not caption:
        return None
    fields = [field.strip() for field in caption.split("\t")]
    english = [f for f in fields if f and _LETTER.search(f) and not _CJK.search(f)]
    return " ".join(english) or None


def read_captions(root: Path) -> dict[str, str | None]:
    """{clip_id: English caption or None} over every fold of MAFW's with_caption lists."""
    from finecliper.data.readers.mafw import SOURCES, read_mafw

    errors: list[str] = []
    for source in SOURCES:  # the lists are the same whichever face source the release has
        try:
            index = read_mafw(root, source=source, captions=True)
        except LayoutError as exc:
            errors.append(str(exc))
            continue
        return {
            record.clip_id: english_caption(record.caption)
            for records in index.splits.values()
            for record in records
        }
    raise ConfigError(f"--backend {NAME} needs a MAFW root with captions: {'; '.join(errors)}")


class MafwCaptionsBackend:
    """Replies with each clip's English MAFW caption."""

    name = NAME
    model_id = "mafw-with-caption-lists"
    revision = None
    needs_frames = False
    uses_prompt = False
    prompt_id = "mafw-caption"
    prompt_sha256 = None

    def __init__(self, captions: dict[str, str | None], root: Path) -> None:
        self.captions = captions
        self.root = root

    @classmethod
    def from_options(cls, options: BackendOptions) -> MafwCaptionsBackend:
        if options.dataset_root is None:
            raise ConfigError(f"--backend {NAME} needs the MAFW dataset root")
        root = Path(options.dataset_root)
        return cls(read_captions(root), root)

    def settings(self) -> dict[str, Any]:
        return {"source": "single/with_caption lists, English field", "root": str(self.root)}

    def describe(self, requests: Sequence[ClipRequest]) -> list[Reply]:
        return [self._reply(request.clip_id) for request in requests]

    def _reply(self, clip_id: str) -> Reply:
        if clip_id not in self.captions:
            return Reply(None, f"clip {clip_id} is not in MAFW's with_caption lists")
        caption = self.captions[clip_id]
        if caption is None:
            return Reply(None, f"clip {clip_id} has no English caption in MAFW's lists")
        return Reply(caption)

    def complete(self, prompts: Sequence[str]) -> list[Reply]:
        raise ConfigError(f"--backend {NAME} only looks captions up; it cannot judge texts")


# The captions are the dataset's own: ``model`` only names their source, and they cannot judge.
@register_backend("mafw-captions", default_model="mafw-with-caption-lists", judge=False)
def create_mafw_captions(model: str, options: BackendOptions) -> MafwCaptionsBackend:
    return MafwCaptionsBackend.from_options(options)
