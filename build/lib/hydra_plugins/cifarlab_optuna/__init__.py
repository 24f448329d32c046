"""cifarlab's Hydra plugins, found by Hydra in the ``hydra_plugins`` namespace: the Optuna sweeper."""
