"""Each image's hash-pinned lock: the pylock model and its resolution with uv."""
