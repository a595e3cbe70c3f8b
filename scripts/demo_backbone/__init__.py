"""The pieces of scripts/pretrain_demo_backbone.py, one concern a module: ``bpe`` (the
tokenizer it learns), ``clips`` (SynthDFER with its ground truth), ``pretraining`` (the model,
heads and losses) and ``evaluation`` (retrieval, read-outs and linear probes)."""
