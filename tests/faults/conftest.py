"""Faults-tier fixtures: none of their own. ``alone_on_the_stack`` (``tests/conftest.py``):
a test module that restarts the stack's parts (``test_restarts.py``) or loads the whole
node (``test_concurrency.py``) uses it, so under ``scripts/suite`` it waits until the other
stack part (``--part=stack-b``), which shares the stack, has finished;
``tests/conftest.py`` runs such modules last. The kills of the release process
(``test_kill.py``) touch only their own endpoint and run before them, beside stack-b."""
