"""The ``register`` component."""
