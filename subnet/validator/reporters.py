"""Where each finished round is reported: the log (`subnet.validator.report`) and, when configured,
Weights & Biases. Reporting never stops validating: the daemon catches a reporter's failure."""

from __future__ import annotations

import logging
from typing import Callable

from subnet.validator.config import ValidatorConfig
from subnet.validator.round import RoundSummary
from subnet.validator.state import ValidatorState

log = logging.getLogger("subnet.validator.daemon")


def round_reporters(config: ValidatorConfig, state: ValidatorState) -> list[Callable[[RoundSummary], None]]:
    """What each finished round is reported to: the log, and Weights & Biases when configured."""
    from subnet.validator.report import round_reporter

    reporters = [round_reporter(state)]
    if config.wandb_project:
        reporter = wandb_reporter(config.wandb_project, config)
        if reporter:
            reporters.append(reporter)
    return reporters


def wandb_reporter(project: str, config: ValidatorConfig) -> Callable[[RoundSummary], None] | None:
    """Optional: per-round numbers to Weights & Biases when installed and a project is configured."""
    try:
        import wandb
    except ImportError:
        log.warning("WANDB_PROJECT is set but wandb is not installed; not logging to wandb")
        return None
    run = wandb.init(project=project, config={k: str(v) for k, v in vars(config).items()}, reinit=True)

    def report(summary: RoundSummary) -> None:
        data: dict[str, float] = {"block": summary.block, "round_seconds": summary.seconds}
        for cid, o in summary.competitions.items():
            data[f"{cid}/tokens_per_s"] = o.tokens_per_s
            for key, w in o.ema.items():
                data[f"{cid}/weight/{key[:8]}"] = w
            for key, loss in o.mean_loss.items():
                data[f"{cid}/loss/{key[:8]}"] = loss
        run.log(data)

    return report
