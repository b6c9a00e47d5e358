"""``python -m modelrelease.serving``: the model images' entrypoint."""

from modelrelease.serving.app import main

main()
