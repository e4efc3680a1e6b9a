"""The ``evaluate`` component."""
