"""What runs in a model's pod: the scoring server, its metrics, and drill fault injection.

``python -m modelrelease.serving`` (the images' entrypoint, ``__main__``) runs
:func:`modelrelease.serving.app.main`; ``metrics`` is the Prometheus middleware around
MLflow's scoring app, ``faults`` the fault a rollback drill injects into its canary.
"""
