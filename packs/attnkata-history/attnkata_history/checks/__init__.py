"""Hidden checks of the history pack, one module per kata (``common`` holds shared helpers)."""
