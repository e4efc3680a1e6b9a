"""The ``census`` family (issue 17, in progress): Census-scale streamed counts with categorical metadata.

Built so far: the metadata vocabularies (:mod:`._vocab`) and the synthetic generator with planted context
effects (:mod:`._synthetic`). The family is not registered yet: ``params.yaml`` cannot name it until its
store, sources, loader and split exist.
"""
