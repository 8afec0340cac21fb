"""Errors, settings, logging and metrics: used by every layer, using none."""
