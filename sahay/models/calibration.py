"""Calibration: how a bundle turns the network's logits into probabilities.

Two layers, both stored in ``bundle.json``:

- one temperature T for the whole model (Guo et al., 2017, "On Calibration of Modern Neural
  Networks"), fitted by ``sahay train`` on its validation split: logits are divided by T;
- optionally, one map per finding fitted at a site by ``sahay models calibrate``
  (``LabelCalibration``): a per-finding temperature, Platt scaling (Platt, 1999: a logistic
  regression on the logit) or isotonic regression (Zadrozny and Elkan, 2002: a monotone step
  function of the probability). A finding with a map ignores the model-wide temperature.

Every map is monotone, so none of them changes which of two images ranks higher for a finding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sahay.analysis import Task

if TYPE_CHECKING:  # torch loads only where a tensor is given or a temperature fitted
    import torch

Logits = TypeVar("Logits", "torch.Tensor", np.ndarray)

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 100.0

LabelMethod = Literal["temperature", "platt", "isotonic"]
LABEL_METHODS: tuple[LabelMethod, ...] = ("temperature", "platt", "isotonic")


class LabelCalibration(BaseModel):
    """One finding's map from its logit z to a probability.

    temperature and platt: ``p = sigmoid(slope * z + intercept)`` (temperature: slope = 1/T,
    intercept 0); isotonic: ``p = interp(sigmoid(z), knots_x, knots_y)``, flat beyond the ends.
    """

    model_config = ConfigDict(extra="forbid")

    method: LabelMethod
    slope: float = 1.0
    intercept: float = 0.0
    knots_x: list[float] = Field(default_factory=list)
    knots_y: list[float] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> LabelCalibration:
        if self.method == "isotonic":
            if len(self.knots_x) < 2 or len(self.knots_x) != len(self.knots_y):
                raise ValueError("an isotonic map needs at least two knots_x and as many knots_y")
            if any(b < a for a, b in zip(self.knots_x, self.knots_x[1:], strict=False)):
                raise ValueError("knots_x must increase")
            if any(b < a for a, b in zip(self.knots_y, self.knots_y[1:], strict=False)):
                raise ValueError("knots_y must not decrease (the map is monotone)")
        elif self.slope <= 0:
            raise ValueError(f"slope must be positive (a monotone map), got {self.slope}")
        return self

    def apply(self, logits: np.ndarray) -> np.ndarray:
        z = np.asarray(logits, dtype=np.float64)
        if self.method == "isotonic":
            return np.interp(_sigmoid(z), self.knots_x, self.knots_y)
        return _sigmoid(self.slope * z + self.intercept)


def probabilities(
    logits: Logits,
    temperature: float,
    task: Task,
    per_label: dict[int, LabelCalibration] | None = None,
) -> Logits:
    """Probabilities of (N, K) logits: the model-wide temperature, then any per-finding maps.

    ``per_label`` maps a column index to its site calibration (multilabel only). NumPy logits give
    a NumPy array (the torch-free path), a tensor gives a tensor.
    """
    if isinstance(logits, np.ndarray):
        return _probabilities_array(logits, temperature, task, per_label)
    import torch

    scaled = logits / temperature
    if task != "multilabel":
        return torch.softmax(scaled, dim=-1)
    probs = torch.sigmoid(scaled)
    if per_label:
        probs = probs.clone()
        raw = logits.detach().double().cpu().numpy()
        for column, calibration in per_label.items():
            mapped = calibration.apply(raw[..., column])
            probs[..., column] = torch.from_numpy(mapped).to(probs.dtype)
    return probs


def _probabilities_array(
    logits: np.ndarray, temperature: float, task: Task, per_label: dict[int, LabelCalibration] | None
) -> np.ndarray:
    scaled = np.asarray(logits, dtype=np.float32) / np.float32(temperature)
    if task != "multilabel":
        shifted = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
        return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True), dtype=np.float32)
    probs = _sigmoid(scaled).astype(np.float32)
    for column, calibration in (per_label or {}).items():
        probs[..., column] = calibration.apply(np.asarray(logits, dtype=np.float64)[..., column])
    return probs


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


def _nll(logits: torch.Tensor, targets: torch.Tensor, task: Task) -> torch.Tensor:
    import torch
    import torch.nn.functional as F

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

    >>> import torch
    >>> logits = torch.tensor([[4.0], [-4.0], [4.0], [-4.0]])
    >>> t = fit_temperature(logits, torch.tensor([[1.0], [0.0], [0.0], [1.0]]), "multilabel")
    >>> t > 4  # half of these confident outputs are wrong: soften them
    True
    """
    import torch

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


def fit_label(logits: np.ndarray, truth: np.ndarray, method: LabelMethod) -> LabelCalibration:
    """Fit one finding's map on its logits (n,) and 0/1 truth (n,), both with both classes present.

    Raises ``ValueError`` when Platt scaling finds scores that fall as the finding becomes present.

    >>> z = np.array([3.0, 2.0, 1.0, -1.0, -2.0, -3.0] * 5)
    >>> y = np.array([1, 1, 0, 1, 0, 0] * 5)
    >>> fit_label(z, y, "temperature").slope < 1  # the logits are too confident: soften them
    True
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    if method == "temperature":
        import torch

        t = fit_temperature(torch.from_numpy(z[:, None]), torch.from_numpy(y[:, None]), "multilabel")
        return LabelCalibration(method="temperature", slope=1.0 / t)
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        # A weak penalty only keeps separable data finite; Platt's fit is otherwise unregularised.
        fitted = LogisticRegression(C=1e4, max_iter=1000).fit(z[:, None], y.astype(int))
        slope = float(fitted.coef_[0, 0])
        if slope <= 0:
            raise ValueError("its scores do not rise with the finding in these data")
        return LabelCalibration(method="platt", slope=slope, intercept=float(fitted.intercept_[0]))
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        fitted_iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(_sigmoid(z), y)
        knots_x = [float(v) for v in fitted_iso.X_thresholds_]
        knots_y = [float(v) for v in fitted_iso.y_thresholds_]
        if len(knots_x) < 2:  # every score equal: a flat map at the observed rate
            knots_x, knots_y = [0.0, 1.0], [float(y.mean())] * 2
        return LabelCalibration(method="isotonic", knots_x=knots_x, knots_y=knots_y)
    raise ValueError(f"unknown calibration method {method!r}; use one of {', '.join(LABEL_METHODS)}")
