"""``cycleae`` (seed 002, issue 17, in progress): the context-conditioned cycle autoencoder.

Built so far: the networks, losses and training step (:mod:`._module`). Not registered as a method yet: it
needs the ``census`` family's store, split and evaluation.
"""
