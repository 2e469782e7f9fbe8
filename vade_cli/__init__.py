"""vade-cli: Variational Deep Embedding (Jiang et al., IJCAI 2017) as a reproducible command-line runner."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`from vade_cli import VaDEClustering` without importing torch and Hydra for every `vade-run`."""
    if name == "VaDEClustering":
        from vade_cli.estimator import VaDEClustering

        return VaDEClustering
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
