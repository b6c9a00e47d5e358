"""Running a release: the world the state machine acts on, and the loop that drives it."""
