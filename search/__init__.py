"""fsearch: Optuna hyperparameter search for Keras MLPs on Fashion-MNIST."""

__version__ = "0.1.0"
