"""Byte streams: inputs and atomic outputs, and the feed/flush filters every stage is built of."""
