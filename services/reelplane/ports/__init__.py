"""Ports: the small typed interfaces services depend on.

Each port has an embedded adapter (for `reelplane dev` and newcomers) and a real
one (for clusters), both under `reelplane.adapters` and chosen by URL in
`reelplane.backends`. Services import from here, never from redis, aiokafka,
cassandra or aioboto3 directly.
"""
