"""Fitting networks with Lightning, shared by the stages that train (``train``, ``segment``).

:mod:`~pathattn.fitting.config` (trainer settings, no torch), :mod:`~pathattn.fitting.trainer` (the Trainer with
its checkpoints, early stopping and logs; which process writes a run's files), :mod:`~pathattn.fitting.splits`
(patient-level folds, leakage checks), :mod:`~pathattn.fitting.bootstrap` (intervals over patients, fold
summaries) and :mod:`~pathattn.fitting.gather` (a validation epoch's outputs from every DDP process).
"""
