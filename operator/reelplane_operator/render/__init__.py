"""Pure renderers: a custom resource's spec in, its children's manifests out.

Nothing here talks to the API server; the handlers apply what these return.
"""
