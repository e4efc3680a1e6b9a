"""The ``ingest`` component."""
