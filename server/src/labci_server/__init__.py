"""labci server."""
