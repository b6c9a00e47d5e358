"""Prefect tasks: thin wrappers over the core library."""
