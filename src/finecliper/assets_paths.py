"""Where the files bundled inside the package live, checked before anyone loads them.

The demo backbone (``assets/demo_backbone``) is a small CLIP-style ``transformers.CLIPModel``
with its tokenizer, pre-trained on SynthDFER by ``scripts/pretrain_demo_backbone.py``. A broken
install (files missing, e.g. package data left out of a wheel) is reported here by name, instead
of as a deep transformers error.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from finecliper.errors import FineCLIPERError

DEMO_BACKBONE = "demo_backbone"
# What CLIPModel.from_pretrained and CLIPTokenizer.from_pretrained need, plus our metadata.
DEMO_BACKBONE_FILES: tuple[str, ...] = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "metadata.json",
)


def assets_dir() -> Path:
    """The package's ``assets`` folder on disk."""
    return Path(str(resources.files("finecliper") / "assets"))


def demo_backbone_dir() -> Path:
    """The bundled demo backbone directory, loadable with ``CLIPModel.from_pretrained``.

    Raises FineCLIPERError naming the directory and the missing files when it is incomplete.
    """
    directory = assets_dir() / DEMO_BACKBONE
    if not directory.is_dir():
        raise FineCLIPERError(
            f"the bundled demo backbone is missing: no directory {directory} "
            "(reinstall finecliper, or rebuild it with scripts/pretrain_demo_backbone.py)"
        )
    missing = [name for name in DEMO_BACKBONE_FILES if not (directory / name).is_file()]
    if missing:
        raise FineCLIPERError(
            f"the bundled demo backbone in {directory} is incomplete: missing "
            f"{', '.join(missing)} (rebuild it with scripts/pretrain_demo_backbone.py)"
        )
    return directory


# The name that configs and checkpoints use for the bundled backbone, so they stay portable.
DEMO_BACKBONE_NAME = "finecliper/demo-backbone"


def resolve_backbone(name: str) -> str:
    """Map the bundled backbone's portable name to its directory; other names pass through."""
    return str(demo_backbone_dir()) if name == DEMO_BACKBONE_NAME else name
