"""prodops shared library: the contract and conventions the three services share."""

__version__ = "0.1.0"
