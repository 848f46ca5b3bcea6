"""Named benchmark suites: `leanrec bench NAME` runs one and prints its leaderboard."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from leanrec.errors import UnknownNameError


@dataclass(frozen=True)
class Suite:
    description: str
    datasets: list[str]
    methods: list[str]
    seeds: int
    max_epochs: int | None = None
    data_overrides: dict[str, Any] = field(default_factory=dict)


SUITES: dict[str, Suite] = {
    # The README's first command: a few minutes on 2 CPU cores, on data embedded in the package.
    "default": Suite(
        description="Embedded synthetic CTR data (planted informative, interaction, redundant and noise fields): "
                    "baselines vs parameter-efficient methods, 3 seeds, short training budget.",
        datasets=["synthetic"],
        # Paper defaults, except a smaller MLP everywhere so the whole suite runs in minutes on a laptop CPU.
        methods=["lr", "fm", "dnn:hidden=[128,128]", "deepfm:hidden=[128,128]",
                 'mi:keep_ratio=0.5,backbone_config={"hidden":[128,128]}',
                 'lightfmp:prune_ratio=0.5,backbone_config={"hidden":[128,128]}',
                 'irazor:backbone_config={"hidden":[128,128]}', "ssr-s:b=8,d_v=64", "reaction",
                 # the log's ceiling (the generator's own click probability): listed above the ranked rows
                 "oracle"],
        seeds=3,
        max_epochs=4,
        data_overrides={"synthetic": {"n_rows": 50000}},
    ),
}


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise UnknownNameError("suite", name, SUITES)
    return SUITES[name]
