"""Reelplane: an open, self-hostable short-video platform for Kubernetes."""

__version__ = "0.1.0"
