"""Generic test setup shared by every test module."""

from __future__ import annotations

import os

# Set before anything imports transformers: a hub lookup without network stalls for ~50 s.
os.environ["HF_HUB_OFFLINE"] = "1"
