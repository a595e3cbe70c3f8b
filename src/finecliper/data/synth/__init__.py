"""SynthDFER: the embedded default dataset, procedural face videos of the 7 DFEW classes.

``finecliper synth OUT --clips N --seed S [--size 112] [--frames 16]`` (``generate_synth``)
renders short clips of drawn faces, each a different identity (face shape, skin tone, hair,
glasses, beard, hat, background, lighting), with head motion, blinks, gaze shifts and
speech-like mouth motion in every class, and one expression per clip unfolding from neutral to
its apex as action-unit-like parameters (brows, lids, cheeks, nose, lips, jaw). Some clips are
subtle (low apex intensity) and some ambiguous (a weaker second class blended in). For every
clip it also writes the exact 68-point landmarks, the parsing label maps, the per-frame
parameters and a movement description that names no emotion. Deterministic for a seed, for any
number of worker processes. Details and the class signatures: docs/synthdfer.md.

Layout of OUT::

    manifest.csv          path,label,split,fold  (custom-manifest format: 5 rows per clip, one
                          per fold; split "test" in the clip's own fold, "train" in the other 4;
                          folds stratified by class). Written last: no manifest = incomplete.
    classes.txt           Happy, Sad, Neutral, Angry, Surprise, Disgust, Fear (DFEW order)
    descriptions.jsonl    {"clip_id", "text", "label"} per clip (label = class name)
    meta.json             generator, version, seed, clips, frames, size, complete, counts,
                          parameter summary
    clips/<clip_id>/      clip_id = synth_00000, synth_00001, ...
        frames/00000.jpg  the frames, JPEG, size x size
        landmarks.npy     float32 (T, 68, 2): x, y in pixels (pixel centres at integers), iBUG
        parsing.npz       key "maps": uint8 (T, size, size), finecliper.face.schema ids
        params.json       label, kind, intensity, blend, onset, per-frame parameters ("au"),
                          distractors, pose, identity and the description

A clip folder is built under a temporary name and renamed when complete, so every clip folder
that exists is whole; a rerun with the same settings keeps them. ``read_synth`` (used by
``finecliper data check synth OUT``) checks the layout and reads the manifest with the custom
reader; its records are named by clip id.
"""

from finecliper.data.synth.generate import SynthResult, generate_synth
from finecliper.data.synth.reader import read_synth
from finecliper.data.synth.scenario import AU_NAMES, CLASSES, SIGNATURES

__all__ = ["AU_NAMES", "CLASSES", "SIGNATURES", "SynthResult", "generate_synth", "read_synth"]
