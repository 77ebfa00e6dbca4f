"""The one version string of keras_adamwr."""

__version__ = "0.5.0"
