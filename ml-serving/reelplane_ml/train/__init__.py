"""Training the two-tower model (PyTorch: the `train` extra).

`data` (numpy) turns the interaction log into examples; `model` is the torch
module and its export to numpy TowerWeights; `loop.fit` trains it;
`cli` is `reelplane ml train`. Nothing under reelplane_ml outside this
package imports torch.
"""
