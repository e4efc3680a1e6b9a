"""What the data families share: the on-disk form (``data.h5mu`` + ``schema.json``), the one split, table
reading and value checks. Everything about one kind of data lives in its family (:mod:`xmodal.families`)."""

from __future__ import annotations

from xmodal.data._h5mu import DATA_FILE, SCHEMA_FILE, read_h5mu, write_h5mu
from xmodal.data._split import SPLITS, split_cells, split_names
from xmodal.data._tables import first_entry, first_nonfinite

__all__ = ["DATA_FILE", "SCHEMA_FILE", "SPLITS", "first_entry", "first_nonfinite", "read_h5mu", "split_cells",
           "split_names", "write_h5mu"]
