"""Writing: sniffing, the part tree being composed, the streaming writer, the 7-bit downgrade."""
