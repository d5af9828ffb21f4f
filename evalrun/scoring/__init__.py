"""Scorers: the protocol and the built-in types (one module each)."""
