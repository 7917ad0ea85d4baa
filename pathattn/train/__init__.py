"""Stage ``train``: Lightning systems fitted on the outputs of the earlier stages.

Shared by every system: :mod:`~pathattn.train.config` (trainer settings, no torch),
:mod:`~pathattn.train.trainer` (the Trainer with its checkpoints, early stopping and logs; which process
writes a run's files), :mod:`~pathattn.train.splits` (patient-level folds), :mod:`~pathattn.train.metrics`,
:mod:`~pathattn.train.bootstrap` (intervals, fold summaries) and :mod:`~pathattn.train.survival` (losses and time
bins). One subpackage per system: :mod:`~pathattn.train.mil` (attention-MIL on slide labels and survival),
:mod:`~pathattn.train.image` (image and slice classifiers).
"""
