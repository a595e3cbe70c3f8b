import re

import pytest
from text_fixtures import FIG4

from finecliper.text.lexicon import find_emotion_words
from finecliper.text.refine import emotion_words, refine_text, split_clauses, split_sentences

_STOPWORDS = "a an the and or of in on to is are be his her their its he she it with as at by for"
STOPWORDS = set(_STOPWORDS.split()) | {"from", "that", "this", "these", "those", "which", "more"}
# Interpretive clauses the paper's annotators kept and our stricter cleaning removes.
DROPPED_BY_POLICY = [
    {"suggesting", "momentary", "pause", "speech", "thought"},
    {"indicating", "friendly", "approachable", "demeanor"},
    set(),
    set(),
]
MOVEMENTS = [
    {"eyes", "widen", "eyebrows", "raise", "mouth", "open", "chin", "tucked", "gaze", "upwards"},
    {"eyes", "bright", "focused", "chin", "uplifted", "gaze", "camera", "muscles", "relaxed"},
    {"eyes", "downcast", "eyebrows", "furrowed", "corners", "mouth", "turned", "down", "chin"}
    | {"protruding", "gaze", "downwards", "breathing", "slower", "shallow"},
    {"downturned", "mouth", "puffy", "eyes", "furrowed", "brow", "gaze", "downwards", "chin"}
    | {"tucked", "breathing", "shallow", "slow"},
]


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z']+", text.lower()) if w not in STOPWORDS}


@pytest.mark.parametrize("case", range(4))
def test_fig4_generated_texts_refine_to_the_papers_refined_texts(case):
    generated, paper_refined = FIG4[case]
    refined = refine_text(generated).text

    assert find_emotion_words(generated)  # the input does leak
    assert emotion_words(refined) == []
    assert find_emotion_words(refined) == []
    ours, theirs = content_words(refined), content_words(paper_refined)
    assert ours <= theirs, f"kept words the annotators removed: {ours - theirs}"
    assert theirs - ours == DROPPED_BY_POLICY[case]
    assert MOVEMENTS[case] <= ours


@pytest.mark.parametrize("case", [2, 3])
def test_fig4_pairs_without_harmless_interpretations_match_exactly(case):
    generated, paper_refined = FIG4[case]
    assert refine_text(generated).text == paper_refined


def test_removed_clauses_are_reported():
    removed = refine_text(FIG4[0][0]).removed
    assert "The man in the video displays a surprised expression" in removed
    assert "indicating a sudden and unexpected event" in removed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "His eyes widen in surprise, and his mouth opens.",
            "His eyes widen, and his mouth opens.",
        ),
        (
            "She frowns with a hint of frustration.",
            "She frowns.",
        ),
        (
            "She shows raised brows, wide eyes, and an open mouth, suggesting shock.",
            "She shows raised brows, wide eyes, and an open mouth.",
        ),
        (
            "The lips press together (a sign of anger) and the jaw tightens.",
            "The lips press together and the jaw tightens.",
        ),
        (
            "The person looks angry; the brows are lowered.",
            "The brows are lowered.",
        ),
        (
            "He looks downcast. His eyelids droop slightly.",
            "His eyelids droop slightly.",
        ),
        (
            "Overall, his head stays still.",
            "His head stays still.",
        ),
        (
            "The woman is smiling, which reveals her delight.",
            "The woman is smiling.",
        ),
    ],
)
def test_clause_level_cleaning(text, expected):
    assert refine_text(text).text == expected


def test_downcast_is_an_emotion_word_only_when_no_facial_part_is_described():
    assert emotion_words("He looks downcast") == ["downcast"]
    assert emotion_words("Her eyes appear to be downcast") == []


def test_movement_only_text_is_unchanged():
    text = (
        "The eyebrows rise clearly midway through the clip and then settle back. The lip corners "
        "pull upwards slightly towards the end of the clip. The head stays still."
    )
    assert refine_text(text).text == text
    assert refine_text(text).removed == []


def test_fully_emotional_text_refines_to_empty():
    refined = refine_text("The man is happy. Overall, he conveys a sense of joy.")
    assert refined.text == ""
    assert len(refined.removed) == 3


def test_sentences_split_where_a_period_is_glued_to_the_next_word():
    assert split_sentences("breathing is slow.The eyes close") == [
        "breathing is slow.",
        "The eyes close",
    ]


def test_lists_stay_inside_their_clause():
    clauses = [c for _, c in split_clauses("He shows a low brow, puffy eyes, and a tight mouth")]
    assert clauses == ["He shows a low brow, puffy eyes, and a tight mouth"]
