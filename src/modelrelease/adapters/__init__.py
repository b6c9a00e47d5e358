"""Adapters: one module per outside system, translating its errors into ``modelrelease.errors``."""
