"""Source readers by name (imported lazily: a reader's optional dependencies load only when used)."""

from __future__ import annotations

from ..registry import LazyRegistry
from .base import Source

SOURCES = LazyRegistry("source", {
    "videos": "dexhands_data.sources.videos:VideosSource",
    "ego4d": "dexhands_data.sources.ego4d:Ego4DSource",
    "egodex": "dexhands_data.sources.egodex:EgoDexSource",
    "aria": "dexhands_data.sources.aria:AriaSource",
    "droid": "dexhands_data.sources.droid.source:DroidSource",
})


def create_source(name: str, **options) -> Source:
    """Instantiate the reader registered as ``name`` with its options."""
    return SOURCES.create(name, **options)
