"""labci runner."""
