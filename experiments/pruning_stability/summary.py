"""A pruning run's summary from its metrics.jsonl (pruning_stability.md §2, "Epoch loop").

Per epoch t (its last step is (t+1)·steps_per_epoch): train accuracy (the epoch's mean minibatch
accuracy: the configs log once per epoch), A_post = eval/accuracy, and at events A_pre and the
filters removed. Summaries per run:
- mean instability / stability over the events that removed at least one filter (stability 100
  for runs without such events: unpruned, scratch);
- best test accuracy: max A_post over epochs ≥ the last epoch that removed filters (all epochs
  when none did);
- generalization gap: train accuracy − A_post at the first epoch of the best test accuracy, in
  points.
"""

from __future__ import annotations

import math


def epochs(rows: list[dict], steps_per_epoch: int) -> dict[int, dict]:
    """{epoch: {train_acc, test_acc, acc_pre?, removed?}} from the logged rows."""
    out: dict[int, dict] = {}
    for row in rows:
        step = row["step"]
        if step == 0 or step % steps_per_epoch:
            continue
        entry = out.setdefault(step // steps_per_epoch - 1, {})
        for key, name in (("train/accuracy", "train_acc"), ("eval/accuracy", "test_acc"),
                          ("prune/acc_pre", "acc_pre"), ("prune/removed", "removed")):
            if key in row:
                entry[name] = row[key]
    return out


def run_summary(rows: list[dict], steps_per_epoch: int) -> dict[str, float]:
    per_epoch = epochs(rows, steps_per_epoch)
    events = {t: e for t, e in per_epoch.items() if e.get("removed", 0) > 0 and "acc_pre" in e}
    drops = [(e["acc_pre"] - e["test_acc"]) / e["acc_pre"] for e in events.values()]
    mean_instability = sum(drops) / len(drops) if drops else 0.0
    last_event = max(events) if events else -1
    scored = {t: e["test_acc"] for t, e in per_epoch.items() if t >= last_event
              and "test_acc" in e}
    if not scored:
        raise ValueError("the run logged no test accuracy after its last pruning event; set "
                         "eval_every to the steps of one epoch")
    best = max(scored.values())
    best_epoch = min(t for t, a in scored.items() if a == best)
    train_acc = per_epoch[best_epoch].get("train_acc", math.nan)
    return {
        "events": len(events),
        "last_event_epoch": last_event,
        "mean_instability": mean_instability,
        "max_instability": max(drops, default=0.0),
        "max_drop_points": 100.0 * max((e["acc_pre"] - e["test_acc"] for e in events.values()),
                                       default=0.0),
        "mean_stability": 100.0 * (1.0 - mean_instability),
        "best_test_accuracy": best,
        "best_epoch": best_epoch,
        "generalization_gap": 100.0 * (train_acc - best),
    }
