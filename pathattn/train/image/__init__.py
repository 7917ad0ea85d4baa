"""Image and slice classifiers of the train stage (``pathattn classify``): data, splits, the Lightning system, runs."""
