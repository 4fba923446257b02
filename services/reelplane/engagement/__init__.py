"""Engagement: likes, comments, views, watch events; counters, trending, watch history."""
