"""labci spec."""
