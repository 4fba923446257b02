"""Adapters: one module per (port, backend). `reelplane.backends` picks them by URL."""
