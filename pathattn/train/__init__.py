"""Stage ``train``: Lightning systems fitted on the outputs of the earlier stages.

Built on :mod:`pathattn.fitting` (trainer settings and builder, patient-level splits, bootstrap intervals, DDP
gathering), shared with the other stages that fit networks. Here: :mod:`~pathattn.train.metrics`,
:mod:`~pathattn.train.survival` (losses and time bins) and one subpackage per system:
:mod:`~pathattn.train.mil` (attention-MIL on slide labels and survival), :mod:`~pathattn.train.image` (image and
slice classifiers).
"""
