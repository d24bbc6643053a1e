"""Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks").

One scalar T divides the logits before the sigmoid or softmax. It is fitted by
minimising the negative log-likelihood on held-out data, so it changes confidence
without changing the ranking of the outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sahay.analysis import Task

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 100.0


def probabilities(logits: torch.Tensor, temperature: float, task: Task) -> torch.Tensor:
    scaled = logits / temperature
    return torch.sigmoid(scaled) if task == "multilabel" else torch.softmax(scaled, dim=-1)


def _nll(logits: torch.Tensor, targets: torch.Tensor, task: Task) -> torch.Tensor:
    if task == "multilabel":
        known = ~torch.isnan(targets)  # uncertain labels left out, as in training
        per_entry = F.binary_cross_entropy_with_logits(
            logits, torch.nan_to_num(targets.float()), reduction="none"
        )
        return (per_entry * known).sum() / known.sum().clamp(min=1)
    return F.cross_entropy(logits, targets.long())


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, task: Task, max_iter: int = 200) -> float:
    """Return the temperature that minimises held-out NLL.

    ``targets`` is (N, K) of 0/1 (NaN for an ignored uncertain label) for multilabel, (N,) of class
    indices for multiclass. The result is clamped to [``MIN_TEMPERATURE``, ``MAX_TEMPERATURE``].

    >>> logits = torch.tensor([[4.0], [-4.0], [4.0], [-4.0]])
    >>> t = fit_temperature(logits, torch.tensor([[1.0], [0.0], [0.0], [1.0]]), "multilabel")
    >>> t > 4  # half of these confident outputs are wrong: soften them
    True
    """
    logits = logits.detach().float().clone()  # also frees tensors made under inference_mode
    log_t = torch.zeros(1, requires_grad=True)  # optimise log T so that T stays positive
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = _nll(logits / log_t.exp(), targets, task)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp().clamp(MIN_TEMPERATURE, MAX_TEMPERATURE))
