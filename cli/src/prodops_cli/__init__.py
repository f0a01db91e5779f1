"""The prodops command line and the development tooling: it may import the services.

The `prodops` library never imports this package, nor any service.
"""
