"""FineCLIPER: multi-modal fine-grained CLIP with adapters for dynamic facial expression recognition."""

__version__ = "0.1.0"
