"""``dualdann`` (seed 001, in progress): dual-encoder class-conditional domain-adversarial phase transfer.

Only the networks and their losses exist so far (:mod:`._module`); the method is not in the registry yet.
"""
