"""SavedModel writing from checkpoints: the only package that imports tensorflow (inside functions)."""
