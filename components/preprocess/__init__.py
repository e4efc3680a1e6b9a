"""The ``preprocess`` component."""
