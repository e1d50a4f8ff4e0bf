"""The paired ablation: one variant table, one runner, its statistics and its tables.

``mosa ablate`` runs it end to end (docs/ablation.md has the protocol):

* :mod:`~pipeline.ablation.variants`: the variants, each one switch away from full;
* :mod:`~pipeline.ablation.data_seeds`: the caches of each extra data seed;
* :mod:`~pipeline.ablation.runner`: train and test every (data seed, variant, training seed);
* :mod:`~pipeline.ablation.statistics`: per-video statistics, paired bootstrap, power;
* :mod:`~pipeline.ablation.tables`: the markdown and CSV tables the report shows.
"""
