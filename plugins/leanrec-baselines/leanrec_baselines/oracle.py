"""The ceiling of a synthetic log: the generator's own click probability, served as a model.

On leanrec's synthetic logs (:mod:`leanrec.data.synthetic`) the label is drawn from a known probability, so the
best any model can do is known too: ``oracle`` serves the generator's logit as a function of the encoded fields
(:func:`leanrec.data.synthetic.encoded_logit`) and the harness scores it on the test split like any row. Its
test AUC is the log's ceiling, its gap to a model is what is left to learn, and a table whose best rows sit
within noise of it cannot show one model gaining on another. It trains nothing, and real logs have no such
ceiling: on them it refuses to run. Family ``reference``: the leaderboard shows it above the ranked rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from leanrec.data import synthetic
from leanrec.errors import ConfigError
from leanrec.methods import FitResult, Method, MethodConfig
from leanrec.space import tunable

if TYPE_CHECKING:
    from leanrec.context import RunContext
    from leanrec.data import EncodedDataset


class EncodedLogitModel(nn.Module):
    """Serves a :class:`leanrec.data.synthetic.LogitTables` of codes (numpy, on the host; no trained parameters)."""

    def __init__(self, logit: synthetic.LogitTables, columns: dict[str, int]):
        super().__init__()
        self.logit, self.columns = logit, columns

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        z = self.logit(X.detach().cpu().numpy().astype(np.int64, copy=False), self.columns)
        return torch.as_tensor(z, dtype=torch.float64, device=X.device)


@dataclass
class OracleConfig(MethodConfig):
    """No settings of its own: the training keys it inherits are ignored (nothing is trained), and none is
    searchable (`leanrec tune -m oracle` says there is nothing to tune)."""

    embedding_dim: int = tunable(10, None)
    batch_size: int = tunable(1024, None)
    lr: float = tunable(1e-3, None)


class Oracle(Method):
    """The generator's true click probability on a synthetic log (the log's AUC ceiling; trains nothing)."""

    name = "oracle"
    paper = "leanrec: the synthetic generator's known click probability (Bayes-optimal prediction)"
    family = "reference"
    Config = OracleConfig

    def fit(self, data: "EncodedDataset", ctx: "RunContext") -> FitResult:
        options = ((getattr(data, "meta", None) or {}).get("config") or {}).get("synthetic")
        if not options:
            raise ConfigError(f"oracle serves the synthetic generator's own click probability; dataset {data.name!r} "
                              "is not synthetic, so it has no known ceiling (run it on `-d synthetic`)")
        cfg = synthetic.SyntheticConfig.from_options(options, where=f"{data.name} synthetic options")
        columns = {f: j for j, f in enumerate(data.field_names)}
        read = synthetic.logit_fields(cfg)   # only these fields' vocabularies are needed
        missing = [f for f in read if f not in columns]
        if missing:
            raise ConfigError(f"oracle: dataset {data.name!r} lacks the generator's fields {missing}")
        vocab = {f: np.asarray(data.vocab(f)["value"].to_numpy(zero_copy_only=False), dtype=np.int64) for f in read}
        logit = synthetic.encoded_logit(cfg, vocab)
        return FitResult(model=EncodedLogitModel(logit, columns), extra={
            "reference": "the generator's click logit given the encoded fields (no training)",
            # per field the generator reads: probability mass of its values merged into the OOV code
            "merged_value_mass": {f: round(m, 8) for f, m in logit.merged_share.items()},
        })
