"""SynthDFER, the procedural dataset of ``finecliper synth``: read by ``finecliper.data.synth``.

Only the registration lives here; the SynthDFER package is imported when a folder is read.
"""

from __future__ import annotations

from pathlib import Path

from finecliper.data.readers import register_reader
from finecliper.data.records import DatasetIndex


@register_reader("synth", options={"deep": "deep"})
def read_synth_folder(root: Path, *, fold: int | None = None, deep: bool = False) -> DatasetIndex:
    """Read a SynthDFER folder (see ``finecliper.data.synth.read_synth``)."""
    from finecliper.data.synth import read_synth

    return read_synth(root, fold=fold, deep=deep)
