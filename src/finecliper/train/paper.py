"""The FineCLIPER paper's reported numbers (docs/method.md section 6), as data for reports.

All numbers are percentages as printed in the paper (UAR / WAR). Our metrics are fractions in
0..1; reports convert ours to percent before putting them next to these.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperScore:
    uar: float  # percent
    war: float  # percent


@dataclass(frozen=True)
class PaperMethod:
    name: str
    tunable: str  # tunable parameters as printed ("13M", "-")
    scores: dict[str, PaperScore]  # dataset -> score


def _scores(dfew: tuple[float, float], ferv39k: tuple[float, float], mafw: tuple[float, float]):
    return {
        "dfew": PaperScore(*dfew),
        "ferv39k": PaperScore(*ferv39k),
        "mafw": PaperScore(*mafw),
    }


# Table 1, in the paper's row order; the first four rows are FineCLIPER's variants.
TABLE1: tuple[PaperMethod, ...] = (
    PaperMethod("FineCLIPER", "13M", _scores((62.81, 72.86), (42.88, 52.01), (42.19, 53.12))),
    PaperMethod("FineCLIPER*", "19M", _scores((64.89, 75.05), (44.15, 52.12), (43.02, 54.69))),
    PaperMethod("FineCLIPER†", "14M", _scores((65.72, 75.01), (43.86, 53.02), (43.91, 54.11))),
    PaperMethod("FineCLIPER*†", "20M", _scores((65.98, 76.21), (45.22, 53.98), (45.01, 56.91))),
    PaperMethod(
        "DFER-CLIP (ViT-B/32)", "90M", _scores((59.61, 71.25), (41.27, 51.65), (39.89, 52.55))
    ),
    PaperMethod(
        "S2D (ViT-B/16, AffectNet pre-trained)",
        "9M",
        _scores((65.45, 74.81), (43.97, 46.21), (43.40, 52.55)),
    ),
    PaperMethod(
        "A3lign-DFER (ViT-L/14)", "-", _scores((64.09, 74.20), (41.87, 51.77), (42.07, 53.24))
    ),
)

# Our config's variant names (model/config.py) -> the paper's method names.
VARIANT_METHOD: dict[str, str] = {
    "base": "FineCLIPER",
    "mid": "FineCLIPER*",
    "high": "FineCLIPER†",
    "full": "FineCLIPER*†",
}

DATASET_NAMES: dict[str, str] = {"dfew": "DFEW", "ferv39k": "FERV39k", "mafw": "MAFW"}

# How the paper evaluates each dataset (docs/method.md section 1).
PAPER_PROTOCOL: dict[str, str] = {
    "dfew": "mean over the 5 official folds",
    "ferv39k": "the official train/test split",
    "mafw": "mean over the 5 official folds",
}

# Seed Fig. 1: FineCLIPER*† on DFEW with fixed modality weights; video weight -> score.
FIXED_WEIGHT_DFEW: dict[float, PaperScore] = {
    0.1: PaperScore(59.13, 71.12),
    0.3: PaperScore(62.26, 73.51),
    0.5: PaperScore(64.03, 74.15),
    0.7: PaperScore(63.15, 73.49),
    0.9: PaperScore(62.99, 73.01),
}
ADAPTIVE_DFEW = PaperScore(65.98, 76.21)

# Table 3: FineCLIPER† trained without expression labels (fine-grained captions only).
ZERO_SHOT: dict[str, PaperScore] = {
    "dfew": PaperScore(57.48, 65.45),
    "mafw": PaperScore(38.77, 46.12),
}


def method_for_variant(variant: str) -> PaperMethod:
    """The Table 1 row of one of our variants ("base", "mid", "high", "full")."""
    if variant not in VARIANT_METHOD:
        raise ValueError(f"unknown variant {variant!r}; expected one of {sorted(VARIANT_METHOD)}")
    name = VARIANT_METHOD[variant]
    return next(method for method in TABLE1 if method.name == name)


def paper_score(dataset: str, variant: str, zero_shot: bool = False) -> PaperScore | None:
    """The paper's score for a dataset and variant, or None where the paper reports none
    (our synthetic or custom datasets; zero-shot numbers exist only for the † variant)."""
    if zero_shot:
        return ZERO_SHOT.get(dataset) if variant == "high" else None
    return method_for_variant(variant).scores.get(dataset)
