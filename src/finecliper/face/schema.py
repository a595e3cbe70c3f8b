"""The shared vocabulary of the middle-semantic inputs: parsing classes, colours, 68-point layout.

Every producer (SynthDFER ground truth, the face pipeline, user-supplied parsers) writes parsing
label maps with these class ids and landmarks in the iBUG 68-point order, so the transforms and
renderers work on all of them alike. "left"/"right" are the subject's own sides.
"""

from __future__ import annotations

PARSING_CLASSES: tuple[str, ...] = (
    "background",
    "skin",
    "left_brow",
    "right_brow",
    "left_eye",
    "right_eye",
    "nose",
    "upper_lip",
    "lower_lip",
    "inner_mouth",
    "hair",
)
PARSING_INDEX = {name: i for i, name in enumerate(PARSING_CLASSES)}

# docs/method.md 2.1: skin, nose and hair colours are the paper's; the rest are ours, chosen
# distinct.
PARSING_COLOURS: dict[str, tuple[int, int, int]] = {
    "background": (0, 0, 0),
    "skin": (0, 153, 255),
    "left_brow": (102, 255, 102),
    "right_brow": (0, 204, 102),
    "left_eye": (255, 255, 102),
    "right_eye": (204, 204, 0),
    "nose": (255, 153, 0),
    "upper_lip": (255, 51, 51),
    "lower_lip": (204, 0, 0),
    "inner_mouth": (153, 0, 204),
    "hair": (255, 0, 102),
}
LANDMARK_COLOUR = (255, 255, 0)


def _swap_pairs(size: int, pairs: list[tuple[int, int]]) -> tuple[int, ...]:
    order = list(range(size))
    for a, b in pairs:
        order[a], order[b] = b, a
    return tuple(order)


# A horizontal flip turns the subject's left brow/eye into the right one.
PARSING_FLIP: tuple[int, ...] = _swap_pairs(
    len(PARSING_CLASSES),
    [
        (PARSING_INDEX["left_brow"], PARSING_INDEX["right_brow"]),
        (PARSING_INDEX["left_eye"], PARSING_INDEX["right_eye"]),
    ],
)

NUM_LANDMARKS = 68
# iBUG 68-point groups (0-indexed): jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67.
LANDMARK_GROUPS: dict[str, range] = {
    "jaw": range(0, 17),
    "right_brow": range(17, 22),
    "left_brow": range(22, 27),
    "nose": range(27, 36),
    "right_eye": range(36, 42),
    "left_eye": range(42, 48),
    "outer_lips": range(48, 60),
    "inner_lips": range(60, 68),
}

# Index permutation that maps the landmarks of a mirrored face back to the 68-point order.
LANDMARK_FLIP: tuple[int, ...] = _swap_pairs(
    NUM_LANDMARKS,
    [(i, 16 - i) for i in range(8)]
    + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22)]
    + [(31, 35), (32, 34)]
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]
    + [(60, 64), (61, 63), (65, 67)],
)
