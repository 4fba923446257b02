"""Planners: for one custom resource, what to apply and how to read its health and
status from the live children. One module per kind; pure (no API client), like
CloudNativePG's specs beside its controllers. `reconcile` applies what they return.
"""
