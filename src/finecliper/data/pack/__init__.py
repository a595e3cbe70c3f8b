"""Packed clip cache: a prepared dataset in a few large files, read by memory mapping.

``finecliper pack DATASET ROOT --out PACKED`` reads a dataset (any reader), its middle-level
data (a ``prepare faces`` cache, or SynthDFER's own files) and its descriptions, and writes every
clip into shards of large files. At training time a worker maps them into memory and reads only
the sampled frames of a clip: no per-frame files, no npz archives, no directory listings.
Modules: ``format`` (records and settings), ``plan`` (where a clip's data comes from),
``write`` (encoding, shards, the job), ``read`` (:class:`PackedClips`, the Dataset).

Layout of PACKED::

    settings.json               written first: what a resumed run must match
    shards/NNNNN.bin            blobs: each frame (JPEG bytes, or raw uint8 H x W x 3), each
                                parsing map (zlib of uint8 H x W), each description (UTF-8)
    shards/NNNNN.frames.npy     (F,) FRAME_DTYPE: offset and length of each frame's image and
                                parsing blob in the shard's .bin
    shards/NNNNN.landmarks.npy  float32 (F, 68, 2), NaN rows where a clip has no face data
    shards/NNNNN.json           written after the shard's other files: its clips' entries
    clips.npy                   (N,) CLIP_DTYPE: shard, first frame row, frame count, frame
                                size, label, has_middle, description blobs (train, eval)
    pack.json                   written last (no pack.json: incomplete): format, dataset, classes,
                                clip ids, source paths, splits, problems, shards, settings

Clip ``i`` is the ``i``-th clip id in sorted order; shard ``k`` holds clips ``[k*S, (k+1)*S)``.
Frames: a JPEG file whose size matches the clip's first frame is copied byte for byte; other
images and video frames are encoded as JPEG at ``quality``; ``frame_format="raw"`` stores every
frame as decoded uint8 instead (no decoding when reading, ~15x larger). Every frame is decoded
once while packing, so a corrupt file is found here, not in the middle of training.

Middle-level rows follow the frames: row ``t`` holds the landmarks and parsing map of frame
``t``. A face cache's frames are the cached crops when it made crops, else the source frames it
processed (``frame_files`` / ``source_indices``), so the three always line up. Shorter arrays
repeat their last row, as the unpacked loader does.

Clips keep their place. A clip whose frames cannot be read, or whose parsing maps and landmarks
do not fit its frames, is packed with 0 frames and its error (training leaves it out and lists
it; evaluation reports it skipped), as the unpacked loader fails it. A clip without middle-level
data (not in the face cache, no face found, unreadable files) is packed without it, and the
reason is listed in ``problems``.

Resuming: each shard is written to temporary files that are renamed into place; a shard is
finished once its ``.json`` exists, and a rerun with the same arguments skips it.
"""
