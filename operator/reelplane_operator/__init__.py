"""Kopf operator: TranscodePool, FeedShard, EdgePoP and Recommender -> Deployments,
Services, ConfigMaps and Ray Serve applications. Pure renderers, thin handlers."""
