"""Stage (a) of the refinement: remove what names or interprets an emotion, keep the movements.

A description is cut into sentences and each sentence into clauses: a comma, semicolon or dash
starts a new clause only when what follows opens one (a pronoun or determiner such as "his" or
"the", "with", "which", or a participle such as "indicating"), so lists like "a downturned
mouth, puffy eyes, and a furrowed brow" stay whole. A clause is dropped when it

- names an emotion (the shared lexicon, finecliper.text.lexicon, with its word forms), after
  first trimming a trailing "in surprise" / "with a hint of joy" phrase that alone carries it; or
- interprets the face (INTERPRETIVE: "indicating ...", "suggesting a feeling of ...", "conveys
  a sense of ...", "the overall impression is ...", "which is a common sign of ...", "possibly").

The remaining clauses are rejoined with their own separators; a sentence whose first clause went
loses the now-leading "and"/"with" and is capitalised ("..., with his facial expression showing
a downturned mouth" -> "His facial expression showing a downturned mouth."). Compared with the
paper's refined texts (seed Fig. 4) this drops every interpretive clause, also harmless ones
such as "suggesting a momentary pause in speech or thought" that the paper's annotators kept:
an interpretation is where label information hides, and the movements are what the text branch
needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from finecliper.text.lexicon import EMOTION_WORDS, find_emotion_words

INTERPRETIVE = re.compile(
    r"\b(?:indicat\w*|suggest\w*|convey\w*|impl(?:y|ies|ying)|signif\w*|signal(?:s|ing|led)?"
    r"|emphasi[sz]\w*|reflect(?:s|ing)?|reveal\w*|express(?:es|ing)|portray\w*|hint(?:s|ing)?"
    r"|denot\w*|betray\w*|evok\w*|demeanou?r|impression|atmosphere|a\s+sense\s+of"
    r"|a\s+feeling\s+of|sign\s+of|possibly|perhaps|probably|likely"
    r"|overall|experienc\w*|attitude|personality|state\s+of\s+mind)\b",
    re.IGNORECASE,
)
# Words that name a mood or describe a movement ("downcast eyes"); the lexicon leaves them out.
# They count as emotion words unless the clause names a facial part they can describe.
SENSE_DEPENDENT: dict[str, re.Pattern[str]] = {
    "downcast": re.compile(r"\b(?:eyes?|eyelids?|gaze|glance|head)\b", re.IGNORECASE),
}
_CLAUSE_START = re.compile(
    r"^(?:(?:and|but|while|whereas|yet|or|so|then)\s+)?"
    r"(?:his|her|their|its|the|this|these|that|those|he|she|they|it|there|which|who|whose"
    r"|with|without|as|possibly|perhaps|probably|likely|further|furthermore|also|overall"
    r"|[a-z]+ing)\b",
    re.IGNORECASE,
)
_LEADING_LINK = re.compile(r"^(?:and|but|while|whereas|yet|so|then|also|with)\s+", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[a-z][.!?])(?=[A-Z])")
_SEPARATOR = re.compile(r"\s*(?:[,;:]|\s-\s|\s—\s|—)\s*")
_PARENTHESIS = re.compile(r"\s*\(([^()]*)\)")
_EMOTION_ALTERNATIVES = "|".join(sorted(map(re.escape, EMOTION_WORDS), key=len, reverse=True))
# "in surprise", "with a hint of joy", "out of sheer frustration" at the end of a clause.
_TRAILING_EMOTION_PHRASE = re.compile(
    r"\s+(?:in|with|out\s+of|from)\s+(?:(?:a|an|the|his|her|their|some|slight|mild|apparent"
    r"|evident|obvious|great|sheer|deep|clear|visible|hint|touch|trace|look|of)\s+)*"
    rf"(?:{_EMOTION_ALTERNATIVES})(?:\s+(?:and|or)\s+(?:{_EMOTION_ALTERNATIVES}))?\s*$",
    re.IGNORECASE,
)


@dataclass
class Refined:
    """A cleaned text and what was removed from it (shown to reviewers)."""

    text: str
    removed: list[str] = field(default_factory=list)


def emotion_words(text: str) -> list[str]:
    """Lexicon words in ``text`` plus sense-dependent ones used of a mood ("he looks downcast")."""
    words = find_emotion_words(text)
    for word, physical in SENSE_DEPENDENT.items():
        if re.search(rf"\b{word}\b", text, re.IGNORECASE) and not physical.search(text):
            words.append(word)
    return words


def is_interpretive(text: str) -> bool:
    return INTERPRETIVE.search(text) is not None


def refine_text(text: str) -> Refined:
    """Stage (a) cleaning of one description."""
    kept, removed = [], []
    for sentence in split_sentences(text):
        cleaned, dropped = _clean_sentence(sentence)
        removed.extend(dropped)
        if cleaned:
            kept.append(cleaned)
    return Refined(" ".join(kept), removed)


def split_sentences(text: str) -> list[str]:
    """Sentences, also where a period is glued to the next capital ("slow.The")."""
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def _clean_sentence(sentence: str) -> tuple[str, list[str]]:
    terminal = sentence[-1] if sentence[-1] in ".!?" else "."
    sentence, removed = _drop_parentheses(sentence.rstrip(".!? "))
    kept: list[tuple[str, str]] = []
    for separator, clause in split_clauses(sentence):
        trimmed = _TRAILING_EMOTION_PHRASE.sub("", clause)
        if emotion_words(trimmed) or is_interpretive(trimmed):
            removed.append(clause)
            continue
        if trimmed != clause:
            removed.append(clause[len(trimmed) :].strip())
        kept.append((separator, trimmed))
    if not kept:
        return "", removed
    first = _LEADING_LINK.sub("", kept[0][1])
    body = first[:1].upper() + first[1:] + "".join(sep + clause for sep, clause in kept[1:])
    return body + terminal, removed


def _drop_parentheses(sentence: str) -> tuple[str, list[str]]:
    removed: list[str] = []

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        if emotion_words(inner) or is_interpretive(inner):
            removed.append(inner)
            return ""
        return match.group(0)

    return _PARENTHESIS.sub(replace, sentence), removed


def split_clauses(sentence: str) -> list[tuple[str, str]]:
    """(separator before, clause) pairs; list items stay inside their clause."""
    pieces = _SEPARATOR.split(sentence)
    separators = _SEPARATOR.findall(sentence)
    clauses: list[tuple[str, str]] = [("", pieces[0])]
    for separator, piece in zip(separators, pieces[1:], strict=True):
        if _CLAUSE_START.match(piece):
            clauses.append((separator, piece))
        else:
            previous_sep, previous = clauses[-1]
            clauses[-1] = (previous_sep, previous + separator + piece)
    return [(sep, clause) for sep, clause in clauses if clause.strip()]
