"""The ``train`` component."""
