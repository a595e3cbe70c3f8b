"""FineCLIPER: fine-grained multi-modal CLIP with adapters for dynamic facial expressions."""

__version__ = "0.1.0"
