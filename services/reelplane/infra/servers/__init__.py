"""One module per real server; `reelplane.infra.registry` lists them."""
