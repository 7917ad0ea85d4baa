"""Attention-MIL on slide-level labels and survival: the system, its bags and the cross-validation.

* :mod:`~pathattn.train.mil.config`: :class:`TrainConfig`, the options of ``pathattn train`` (no torch);
* :mod:`~pathattn.train.mil.data`: the sample sheet, feature bags and their padded batches;
* :mod:`~pathattn.train.mil.system`: :class:`MILSystem`, the LightningModule around a MIL network;
* :mod:`~pathattn.train.mil.crossval`: :func:`train_cv`, patient-level cross-validation.
"""
