"""The one version string of keras_adamwr."""

__version__ = "0.4.0"
