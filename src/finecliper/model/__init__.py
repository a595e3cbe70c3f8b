"""The FineCLIPER model library (docs/method.md sections 2 and 4).

Modules: ``network`` (FineCLIPER, its losses, ``build_model``), ``batch`` (the modalities and the
model's inputs, outputs and loss parts, plain torch), ``backbone``
(frozen CLIP: loading and the adapter-aware forward), ``adapters``, ``temporal``, ``heads``
(PN logits, modality weighting, InfoNCE), ``tokenizer``, ``convert`` (OpenAI / open_clip
checkpoints), ``architectures`` (built-in CLIP configs), ``summary`` (parameter counts) and
``config`` (the ``model`` config section). Nothing is imported here, so the CLI stays fast.
"""
