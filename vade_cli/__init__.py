"""vade-cli: Variational Deep Embedding (Jiang et al., IJCAI 2017) as a reproducible command-line runner."""

__version__ = "0.1.0"
