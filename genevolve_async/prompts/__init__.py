"""Packaged prompt texts: system prompt template and control messages."""
