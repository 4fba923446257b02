"""Reelplane's For You recommender: features, two-tower retrieval, ranker, exploration.

`reelplane_ml.core.RecommenderCore` is the one class both deployment modes run
(Ray Serve and embedded in `reelplane dev`). Serving imports numpy and faiss
only; torch is imported by `reelplane_ml.train` alone (the `train` extra).
"""
