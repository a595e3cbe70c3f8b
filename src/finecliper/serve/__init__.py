"""A trained checkpoint at work: ``finecliper predict``, ``Predictor`` and ``serve``."""
