"""The emotion lexicon: words that name an emotion or an affective state, with their word forms.

Fine-grained descriptions must describe facial *movements* (brows, eyes, gaze, mouth, head), not
name the emotion, or the text branch learns a label oracle. This list is shared by the SynthDFER
description generator (which must never produce these words) and the text-refinement stage
(which removes clauses containing them). Movement words such as "smile", "frown", "grimace",
"pout", "squint" and "raise" are deliberately *not* in it: they describe what the face does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# concept -> word forms (lower case, space separated). Grouped by the concept they name, so a
# caller can ask which concept a matched word belongs to (EMOTION_CONCEPT_OF).
_LEXICON_TEXT: dict[str, str] = {
    "happiness": (
        "happy happier happiest happily happiness joy joys joyful joyfully joyous amusement "
        "amused amusing delight delighted delightful glad gladness cheerful cheerfully cheer "
        "pleased pleasure elated elation contentment excited excitement enjoy enjoying "
        "enjoyment merry merriment satisfied satisfaction euphoric ecstatic playful"
    ),
    "sadness": (
        "sad sadder saddest sadly sadness sorrow sorrows sorrowful unhappy unhappiness upset "
        "grief grieving grieve depressed depression melancholy melancholic gloomy gloom "
        "miserable misery heartbroken despair despairing dejected mournful mourning "
        "tearful somber sombre lonely loneliness"
    ),
    "neutral": ("neutral neutrality expressionless impassive indifferent indifference"),
    "anger": (
        "angry angrier angriest angrily anger angered furious furiously fury rage raging "
        "enraged irritated irritation irritable annoyed annoyance annoying hostile hostility "
        "mad outraged outrage irate resentful resentment frustrated frustration indignant "
        "indignation aggressive aggression wrath"
    ),
    "surprise": (
        "surprise surprised surprising surprisingly astonished astonishing astonishment "
        "amazed amazement amazing shocked shock shocking startled startle stunned dumbfounded "
        "bewildered bewilderment incredulous disbelief"
    ),
    "disgust": (
        "disgust disgusted disgusting disgustedly revulsion revolted repulsed repulsion "
        "repulsive repugnance loathing distaste distasteful nauseated aversion grossed"
    ),
    "fear": (
        "fear fears feared fearful fearfully afraid scared scary frightened fright "
        "frightening terrified terror terrifying panic panicked panicky alarmed dread horror "
        "horrified"
    ),
    "contempt": ("contempt contemptuous scorn scornful disdain disdainful"),
    "anxiety": (
        "anxious anxiously anxiety worried worry worrying nervous nervously nervousness "
        "uneasy unease apprehensive apprehension distressed distress stressed"
    ),
    "helplessness": ("helpless helplessly helplessness powerless hopeless hopelessness"),
    "disappointment": (
        "disappointed disappointment disappointing disheartened discouraged dissatisfied "
        "dissatisfaction let-down"
    ),
    "affect": (
        "emotion emotions emotional emotionally mood moods feeling feelings sentiment "
        "sentiments calm calmly calmness relief relieved embarrassed embarrassment shame "
        "ashamed shy guilt guilty pride proud love loving hate hatred jealous jealousy envy "
        "bored boredom confused confusion curious curiosity pain painful suffering distraught "
        "pensive thoughtful serene serenity"
    ),
}
EMOTION_LEXICON: dict[str, tuple[str, ...]] = {
    concept: tuple(words.split()) for concept, words in _LEXICON_TEXT.items()
}
EMOTION_WORDS: frozenset[str] = frozenset(w for forms in EMOTION_LEXICON.values() for w in forms)
EMOTION_CONCEPT_OF: dict[str, str] = {
    word: concept for concept, forms in EMOTION_LEXICON.items() for word in forms
}


def _compile(words: Iterable[str]) -> re.Pattern[str]:
    # Longest first so "happiness" wins over "happy"; \b keeps "mad" from matching in "made".
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


_PATTERN = _compile(EMOTION_WORDS)


def find_emotion_words(text: str) -> list[str]:
    """Every emotion word in ``text``, lower-cased, in order of occurrence (repeats kept).

    Matching is case-insensitive and on word boundaries: "Happily" and the "sad" of
    "sad-looking" match, "mad" inside "made" does not.
    """
    return [match.group(0).lower() for match in _PATTERN.finditer(text)]


def has_emotion_words(text: str) -> bool:
    return _PATTERN.search(text) is not None
