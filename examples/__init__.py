"""Runnable examples; a package so that ``examples.webapp.app`` imports from the repo root."""
