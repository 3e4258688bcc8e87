"""mimekit's click front end. Commands are thin: parse options, call the engine, map errors."""
