"""Reading: parser events, the streaming parser, the lazy tree, the strict checker, extraction."""
