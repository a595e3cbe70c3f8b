"""Movement descriptions of SynthDFER clips, generated from the clip's parameters.

A description says which parts of the face move, how much and when, plus the distractors
(blinks, speech, gaze shifts, brow flashes, head motion), in varied wording. It never names an
emotion (checked against finecliper.text.lexicon). It is measured from the per-frame parameters
with a jittered threshold, so faint movements are sometimes missed or mentioned, and it
describes a blended clip's movements as they are: informative, but not a label oracle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from finecliper.data.synth.scenario import AU, AU_NAMES, ClipScript

CLAUSES: dict[str, tuple[str, ...]] = {
    "brow_inner_raise": (
        "the inner ends of the brows {adv}lift",
        "the inner corners of the eyebrows {adv}rise",
        "the brows {adv}lift at their inner ends",
    ),
    "brow_outer_raise": (
        "the outer parts of the brows {adv}rise",
        "the eyebrows {adv}arch up at the sides",
        "the outer brows {adv}lift",
    ),
    "brows_raise": ("the eyebrows {adv}rise", "both brows are {adv}raised"),
    "brow_lower": (
        "the brows {adv}lower",
        "the eyebrows are {adv}pulled down",
        "the brows {adv}drop toward the eyes",
    ),
    "brow_together": (
        "the brows {adv}draw together",
        "the eyebrows {adv}pull toward each other",
        "the gap between the brows {adv}narrows",
    ),
    "eye_widen": (
        "the eyes {adv}widen",
        "the upper eyelids {adv}lift, opening the eyes wider",
        "the eyes {adv}open wide, showing more white",
    ),
    "lid_tighten": (
        "the eyelids {adv}tighten",
        "the eyes {adv}narrow",
        "the lids {adv}squeeze around the eyes",
    ),
    "cheek_raise": (
        "the cheeks {adv}lift",
        "the cheeks {adv}rise, pushing up the lower lids",
        "the cheeks are {adv}raised",
    ),
    "gaze_down": (
        "the gaze {adv}lowers",
        "the eyes {adv}look downward",
        "the eyes {adv}drop toward the floor",
    ),
    "nose_wrinkle": (
        "the nose {adv}wrinkles",
        "the skin on the nose bridge {adv}creases",
        "the nose {adv}scrunches up",
    ),
    "upper_lip_raise": (
        "the upper lip {adv}rises",
        "the upper lip is {adv}pulled up",
        "the upper lip {adv}lifts, showing the teeth",
    ),
    "lip_corner_pull": (
        "the corners of the mouth {adv}pull up and out",
        "the lip corners {adv}turn upward",
        "the mouth {adv}curves into a smile",
    ),
    "lip_corner_depress": (
        "the corners of the mouth {adv}turn down",
        "the lip corners are {adv}pulled downward",
        "the mouth corners {adv}sink",
    ),
    "lip_stretch": (
        "the lips {adv}stretch sideways",
        "the mouth is {adv}pulled wide horizontally",
        "the lips {adv}spread to the sides",
    ),
    "lip_press": (
        "the lips {adv}press together",
        "the lips are {adv}pressed into a thin line",
        "the mouth {adv}tightens into a thin line",
    ),
    "jaw_drop": (
        "the jaw {adv}drops, opening the mouth",
        "the mouth {adv}falls open",
        "the lower jaw {adv}lowers, parting the lips",
    ),
}
UPPER_FACE = (
    "brow_inner_raise",
    "brow_outer_raise",
    "brow_lower",
    "brow_together",
    "eye_widen",
    "lid_tighten",
    "cheek_raise",
    "gaze_down",
)
ADVERBS = (
    (0.33, ("slightly ", "faintly ", "barely ")),
    (0.66, ("", "visibly ", "moderately ")),
    (np.inf, ("clearly ", "strongly ", "markedly ")),
)
OPENERS = ("At first the face is still.", "The clip begins with a still face.", "")
WHEN = (
    (0.3, ("Early in the clip", "Soon after the start", "Almost at once")),
    (0.55, ("About midway", "Partway through", "After a short while")),
    (np.inf, ("Late in the clip", "Toward the end", "Near the end")),
)
PACE = {
    "quick": ("the face changes quickly", "the face shifts fast"),
    "slow": (
        "the face slowly changes",
        "the face gradually changes",
    ),
}
STILL = (
    "No clear movement of the brows, eyes or mouth appears.",
    "The features stay largely in place.",
    "The brows, eyes and mouth hardly move.",
)
RELAXES = ("Toward the end the movement eases a little.", "The movement partly fades at the end.")
HOLDS = ("The face holds this position to the end.", "It stays that way until the clip ends.")
BLINKS = {
    1: ("The person blinks once.", "There is a single blink."),
    2: ("The eyes blink twice.", "The person blinks twice."),
    3: ("The person blinks several times.", "There are a few quick blinks."),
}
DISTRACTORS = {
    "speech": (
        "The lips move as if speaking.",
        "The mouth opens and closes as in talking.",
        "The jaw moves rhythmically, as if the person is saying something.",
    ),
    "gaze_shift": ("The gaze shifts to the side.", "The eyes glance sideways."),
    "brow_flash": ("The brows flick up briefly and settle.", "There is a quick brow flash."),
    "nod": ("The head nods.", "The head bobs up and down."),
    "turn": ("The head turns to one side.", "The head turns slightly."),
    "tilt": ("The head tilts to one side.", "The head leans slightly."),
}
THRESHOLD = 0.17  # peak parameter change that gets described, before jitter
OMIT_PROBABILITY = 0.12  # a moderate movement is sometimes left out
SPURIOUS_PROBABILITY = 0.05  # and sometimes a movement that barely happened is mentioned


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _banded(
    rng: np.random.Generator, value: float, bands: tuple[tuple[float, tuple[str, ...]], ...]
) -> str:
    for limit, options in bands:
        if value < limit:
            return _pick(rng, options)
    raise ValueError(value)


def _join(clauses: list[str]) -> str:
    return clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]


def _movements(rng: np.random.Generator, au: np.ndarray) -> dict[str, float]:
    """Parameters whose change from the first frame passes the (jittered) threshold."""
    peaks = au.max(axis=0) - au[0]
    threshold = THRESHOLD + rng.normal(0.0, 0.03)
    moved = {}
    for name in AU_NAMES:
        peak = float(peaks[AU[name]])
        if peak >= threshold and not (peak < 0.45 and rng.random() < OMIT_PROBABILITY):
            moved[name] = peak
    if rng.random() < SPURIOUS_PROBABILITY:
        quiet = [name for name in AU_NAMES if name not in moved]
        moved[_pick(rng, tuple(quiet))] = 0.1
    return moved


def _clause(rng: np.random.Generator, key: str, peak: float) -> str:
    return _pick(rng, CLAUSES[key]).format(adv=_banded(rng, peak, ADVERBS))


def _clauses(rng: np.random.Generator, moved: dict[str, float]) -> tuple[list[str], list[str]]:
    """Clauses for the upper face and for the nose and mouth, in anatomical order."""
    upper, lower = [], []
    merge = "brow_inner_raise" in moved and "brow_outer_raise" in moved and rng.random() < 0.5
    for name, peak in moved.items():
        if merge and name == "brow_outer_raise":
            continue
        key = "brows_raise" if merge and name == "brow_inner_raise" else name
        value = max(peak, moved.get("brow_outer_raise", 0.0)) if key == "brows_raise" else peak
        (upper if name in UPPER_FACE else lower).append(_clause(rng, key, value))
    return upper, lower


def _timing(au: np.ndarray, moved: dict[str, float]) -> tuple[float, float]:
    """Onset (fraction of the clip) and rise time (fraction) of the described movements."""
    columns = [AU[name] for name in moved]
    change = au[:, columns] - au[0, columns]
    progress = (change / np.maximum(change.max(axis=0), 1e-6)).max(axis=1)
    last = max(len(au) - 1, 1)
    start = int(np.argmax(progress >= 0.25))
    end = int(np.argmax(progress >= 0.9))
    return start / last, max(end - start, 0) / last


def _capital(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def describe_clip(script: ClipScript, rng: np.random.Generator) -> str:
    moved = _movements(rng, script.au)
    sentences = [_pick(rng, OPENERS)]
    if moved:
        onset, rise = _timing(script.au, moved)
        when = _banded(rng, onset, WHEN)
        pace = _pick(rng, PACE["quick" if rise < 0.2 else "slow"])
        upper, lower = _clauses(rng, moved)
        first, second = (upper, lower) if upper else (lower, [])
        sentences.append(f"{when} {pace}: {_join(first)}.")
        if second:
            lead = _pick(rng, ("At the same time, ", "Meanwhile, ", ""))
            sentences.append(_capital(f"{lead}{_join(second)}."))
        sentences.append(_pick(rng, RELAXES if script.events["relaxes"] else HOLDS))
    else:
        sentences.append(_pick(rng, STILL))
    sentences += _distractor_sentences(rng, script.events)
    return " ".join(s for s in sentences if s)


def _distractor_sentences(rng: np.random.Generator, events: dict[str, Any]) -> list[str]:
    found = []
    if events["blinks"]:
        found.append(_pick(rng, BLINKS[min(int(events["blinks"]), 3)]))
    for key in ("speech", "gaze_shift", "brow_flash"):
        if events[key]:
            found.append(_pick(rng, DISTRACTORS[key]))
    found += [_pick(rng, DISTRACTORS[name]) for name in events["head"]]
    order = rng.permutation(len(found))
    return [found[i] for i in order]
