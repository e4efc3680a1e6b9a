"""The ``monitor`` component."""
