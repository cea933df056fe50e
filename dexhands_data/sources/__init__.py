"""Source readers: one per raw format, each yielding episodes in one internal shape."""
