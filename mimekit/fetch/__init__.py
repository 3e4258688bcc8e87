"""Fetching into an output, durably: the run, its state, the outputs, local sources."""
