"""Switchboard: the composition root (configuration, CLI, server assembly, call control)."""

__version__ = "0.1.0"
