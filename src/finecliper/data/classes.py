"""Class orders: one canonical order per dataset, and mapping tables to the orders of public code.

Every label index inside finecliper refers to the canonical order of its dataset. Checkpoints,
prediction files and confusion matrices from other projects often use another order (FERV39k and
MAFW code disagree with each other); ``remap_labels`` and ``remap_probabilities`` convert between
any two orders of the same class set, so a result is never compared under the wrong order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from finecliper.errors import ConfigError

# DFEW's official CSVs number these 1..7 in this order; FERV39k's lists spell the same names.
DFEW_CLASSES: tuple[str, ...] = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")
FERV39K_CLASSES: tuple[str, ...] = DFEW_CLASSES
MAFW_CLASSES: tuple[str, ...] = (
    "anger",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
    "contempt",
    "anxiety",
    "helplessness",
    "disappointment",
)

# Names for plots and reports (axis labels of confusion matrices).
DFEW_DISPLAY: tuple[str, ...] = DFEW_CLASSES
MAFW_DISPLAY: tuple[str, ...] = tuple(name.capitalize() for name in MAFW_CLASSES)

# The orders found in public DFER code, by dataset. "canonical" is the one finecliper uses.
CLASS_ORDERS: dict[str, dict[str, tuple[str, ...]]] = {
    "dfew": {
        "canonical": DFEW_CLASSES,
        "alphabetical": tuple(sorted(DFEW_CLASSES)),
    },
    "ferv39k": {
        "canonical": FERV39K_CLASSES,
        "alphabetical": tuple(sorted(FERV39K_CLASSES)),
    },
    "mafw": {
        "canonical": MAFW_CLASSES,
        # DFEW's seven basic classes first (in DFEW's order), then MAFW's four extra classes.
        "dfew_like": (
            "happiness",
            "sadness",
            "neutral",
            "anger",
            "surprise",
            "disgust",
            "fear",
            "contempt",
            "anxiety",
            "helplessness",
            "disappointment",
        ),
        "alphabetical": tuple(sorted(MAFW_CLASSES)),
    },
}

# Spellings of the basic emotions used across datasets (DFEW/FERV39k adjectives, MAFW nouns).
_SYNONYMS: dict[str, str] = {
    "anger": "angry",
    "happiness": "happy",
    "sadness": "sad",
    "surprised": "surprise",
    "disgusted": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
}


def canonical_classes(dataset: str) -> tuple[str, ...]:
    return class_order(dataset, "canonical")


def class_order(dataset: str, order: str = "canonical") -> tuple[str, ...]:
    """The class names of ``dataset`` in the named order (see ``CLASS_ORDERS``)."""
    orders = CLASS_ORDERS.get(dataset)
    if orders is None:
        known = ", ".join(CLASS_ORDERS)
        raise ConfigError(f"no class orders for dataset {dataset!r} (known: {known})")
    if order not in orders:
        known = ", ".join(orders)
        raise ConfigError(f"{dataset}: unknown class order {order!r} (known: {known})")
    return orders[order]


def _normalise(name: str, synonyms: bool) -> str:
    key = name.strip().lower()
    return _SYNONYMS.get(key, key) if synonyms else key


def resolve_label(name: str, classes: Sequence[str], *, synonyms: bool = True) -> int | None:
    """Index of ``name`` in ``classes``: exact, else case-insensitive, else (optionally) by
    synonym ("anger" for "Angry"); None when it is not a class."""
    if name in classes:
        return list(classes).index(name)
    wanted = _normalise(name, synonyms)
    for index, candidate in enumerate(classes):
        if _normalise(candidate, synonyms) == wanted:
            return index
    return None


def order_mapping(source: Sequence[str], target: Sequence[str]) -> tuple[int, ...]:
    """For each source index, the index of the same class in ``target``.

    Names are matched case-insensitively and by synonym, so DFEW's "Angry" matches MAFW's
    "anger"; both orders must hold the same set of classes.
    """
    mapping = []
    for name in source:
        index = resolve_label(name, target)
        if index is None:
            raise ConfigError(f"class {name!r} of order {list(source)} is not in {list(target)}")
        mapping.append(index)
    if len(source) != len(target) or len(set(mapping)) != len(mapping):
        raise ConfigError(f"class orders {list(source)} and {list(target)} differ as sets")
    return tuple(mapping)


def mapping_table(dataset: str, source: str, target: str) -> tuple[int, ...]:
    """Mapping from label indices in order ``source`` to order ``target`` of ``dataset``."""
    return order_mapping(class_order(dataset, source), class_order(dataset, target))


def remap_labels(labels: Any, mapping: Sequence[int]) -> Any:
    """Translate label indices (an int or an array-like) through ``mapping``."""
    table = np.asarray(mapping, dtype=np.int64)
    values = np.asarray(labels)
    if values.size and (values.min() < 0 or values.max() >= len(table)):
        raise ConfigError(f"label indices must be in 0..{len(table) - 1}, got {labels!r}")
    remapped = table[values.astype(np.int64)]
    return int(remapped) if remapped.ndim == 0 else remapped


def remap_probabilities(scores: Any, mapping: Sequence[int]) -> Any:
    """Reorder the last axis of ``scores`` (numpy array or torch tensor) through ``mapping``.

    ``mapping`` goes from the scores' current order to the target order, as returned by
    ``mapping_table(dataset, current, target)``; column ``mapping[i]`` of the result is column
    ``i`` of the input.
    """
    if scores.shape[-1] != len(mapping):
        raise ConfigError(
            f"scores have {scores.shape[-1]} classes on the last axis, mapping has {len(mapping)}"
        )
    inverse = [0] * len(mapping)
    for source_index, target_index in enumerate(mapping):
        inverse[target_index] = source_index
    return scores[..., inverse]


# Nouns for the label prompts ("A person with an expression of {label}."); other names are
# used lower-cased as they are.
PROMPT_NAMES = {
    "happy": "happiness",
    "sad": "sadness",
    "angry": "anger",
    "surprised": "surprise",
    "disgusted": "disgust",
    "fearful": "fear",
}


def prompt_names(classes: Sequence[str]) -> list[str]:
    """The label text each class puts into the PN templates."""
    return [PROMPT_NAMES.get(name.lower(), name.lower()) for name in classes]
