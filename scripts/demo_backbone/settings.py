"""Settings shared by the pre-training script's modules: where the backbone goes, its size,
the tokenizer's special tokens and the probes' regularisation grid."""

from __future__ import annotations

from pathlib import Path

from finecliper.model.architectures import Architecture

REPO = Path(__file__).resolve().parents[2]
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
