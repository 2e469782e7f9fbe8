"""Label-free objectives: the number a tuning sweep maximises (`objective=`, the Optuna sweeper's return).

None of them reads labels, so a study tuned on them is honest clustering. What they promise is a
better model of the data, not a better match with the classes: README's "Tuning" section shows the gap.
"""

from __future__ import annotations

from typing import Any

# name -> what it is; every one is "higher is better".
OBJECTIVES = {
    "final_elbo": "the ELBO per sample at the last epoch (the training objective itself)",
    "init_log_likelihood": "the prior init's log-likelihood (scores the autoencoder + init settings only)",
    "max_q": "mean max q(c|x) at the last epoch (how confidently the clusters separate)",
}


def evaluate(name: str, history: list[dict[str, Any]], snapshot: dict[str, Any]) -> dict[str, Any]:
    """{"name", "value"} for report.json; value None when the run has nothing to score (no epoch, no init LL)."""
    last = history[-1] if history else {}
    values = {
        "final_elbo": -last["loss"] if "loss" in last else None,
        "init_log_likelihood": snapshot.get("log_likelihood"),
        "max_q": last.get("max_q"),
    }
    value = values[name]
    return {"name": name, "value": None if value is None else float(value)}
