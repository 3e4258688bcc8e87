"""`mimekit send` (not built yet: its issue's owner replaces this module)."""

COMMANDS = []
