"""Claims of "Reservoir Transformers" (reservoir.md §5, §6).

Paper scale: R1–R9 as the spec lists them. `python -m lib.repro check` decides R1 and R2
(time saved to the best validation BLEU, reservoir vs regular at equal updatable layers: > 0),
R7 (test BLEU difference ≥ 0) and R9 (the regular Transformer's IWSLT'14 test BLEU, 34.5 ± 1)
on finished runs of configs/iwslt.py and configs/wmt.py; R3–R6 and R8 are registered
qualitative comparisons, not decided by a number.
Small scale (configs/synthetic.py): the four encoders of spec §6 and LFLFLFL with identity
backskipping, seed 0, and the hard assertions (1)–(7) and the soft ones.
"""

from __future__ import annotations

import pathlib

from lib.claims import PaperClaim, SmallClaim, measure_runs

TITLE = (  # the paper, as the reproduction report names it
    "Reservoir Transformers (Shen et al., 2012.15045)")
REPORTED = (  # what it reports at paper scale, in a line
    "frozen random (reservoir) encoder layers interleaved with trainable ones save up to 22 %"
    " (WMT 24 layers: 27 %) of the wall-clock time to the best validation BLEU at equal "
    "updatable layers; FFN reservoirs work best; test BLEU equal or better")

ENCODERS = ("LLLL", "LFLFLFL", "LTLTLTL", "LLLLLLL")
BACKSKIPPED = "LFLFLFL+backskip"
STEPS = 1500
DETERMINISM_STEPS = 100
MIN_ACCURACY, MARGIN = 0.8, 0.03

IWSLT = "experiments/reservoir/configs/iwslt.py"
WMT = "experiments/reservoir/configs/wmt.py"


def _saving(claim_id, description, source, config, versus):
    return PaperClaim(claim_id, description, source, "verified", None, metric="time saved",
                      config=config, versus=versus, pairwise="time_saved", bounds=(0.0, 1.0),
                      hard=False)


PAPER_CLAIMS = [
    _saving("R1", "FFN reservoir vs regular at 6 updatable encoder layers (IWSLT'14): less "
            "wall-clock time to the best validation BLEU (paper: up to 22 % saved)",
            "Tables 1–2 (text)", f"{IWSLT}:layers=11,reservoirs=5", f"{IWSLT}:layers=6"),
    _saving("R2", "24 updatable layers, WMT'16: less time to convergence (paper: up to 27 % "
            "saved)", "Table 2 (text)", f"{WMT}:layers=36,reservoirs=12", f"{WMT}:layers=24"),
    PaperClaim("R3", "T Reservoir vs LayerDrop: similar per-epoch time and time-to-best",
               "text", "verified", None, hard=False),
    PaperClaim("R4", "FFN Reservoir vs LayerDrop: much better per-epoch efficiency, similar or "
               "better BLEU in less time", "text", "verified", None, hard=False),
    PaperClaim("R5", "the best reservoir type is the FFN Reservoir (IWSLT, WMT)", "text",
               "verified", None, hard=False),
    PaperClaim("R6", "WMT: reservoirs need a minimum encoder depth to match the regular "
               "Transformer's AUCC", "text", "verified", None, hard=False),
    PaperClaim("R7", "MT test BLEU of reservoir models ≥ regular for almost all encoder depths "
               "(here: IWSLT'14, FFN reservoirs, 6 updatable layers; test BLEU difference)",
               "text", "verified", None, metric="eval_test/bleu",
               config=f"{IWSLT}:layers=11,reservoirs=5", versus=f"{IWSLT}:layers=6",
               bounds=(0.0, 100.0), hard=False),
    PaperClaim("R8", "RoBERTa reservoir: better SST-2 and MNLI-m accuracy than regular at all "
               "depths, large gains at low depth; frozen-finetuned helps only a little", "text",
               "verified", None, hard=False),
    PaperClaim("R9", "regular Transformer (6 encoder layers), IWSLT'14 De-En test BLEU ≈ 34–35",
               "standard fairseq level", "recollection", 34.5, 1.0, metric="eval_test/bleu",
               config=f"{IWSLT}:layers=6", hard=False),
]


def time_saved(reservoir_runs: list, regular_runs: list) -> float:
    """1 − (mean wall-clock time to the best validation BLEU of the reservoir runs) / (that
    of the regular runs), each run's time on its training clock (lib.metrics.eval_curve)."""
    from experiments.reservoir import analysis

    def mean_time(runs):
        return sum(analysis.time_to_best(w, "eval/bleu") for w in runs) / len(runs)

    return 1.0 - mean_time(reservoir_runs) / mean_time(regular_runs)


def measure(workdir: pathlib.Path) -> dict:
    """Spec §6: each encoder for STEPS steps, LFLFLFL again with identity backskipping, two
    identical short runs for determinism; then the exact checks and the run summaries."""
    from experiments.reservoir import analysis
    from lib import config as config_lib
    from lib import train

    config_file = pathlib.Path(__file__).parent / "configs" / "synthetic.py"

    def run(name, arg):
        return train.run(config_lib.load_file(config_file, arg), workdir / name)

    plan = [(e, f"{e} seed 0", lambda e=e: run(e, f"encoder={e}")) for e in ENCODERS]
    plan.append((BACKSKIPPED, "LFLFLFL, identity backskip, seed 0",
                 lambda: run(BACKSKIPPED, "encoder=LFLFLFL,backskip=identity")))
    plan += [(f"repeat{i}", f"LFLFLFL {DETERMINISM_STEPS} steps, run {i}",
              lambda i=i: run(f"repeat{i}", f"encoder=LFLFLFL,steps={DETERMINISM_STEPS}"))
             for i in (1, 2)]
    results = measure_runs(workdir, plan, lambda r: f"validation token accuracy "
                                                    f"{r['eval/accuracy']:.3f}, clock "
                                                    f"{r['clock/train_seconds']:.0f} s")
    names = [*ENCODERS, BACKSKIPPED]
    clocks = {n: results[n][0]["clock/train_seconds"] for n in names}
    horizon = min(clocks.values())  # T̂: every curve is observed up to it
    summaries = {n: analysis.curve_summary(workdir / n, horizon, STEPS) for n in names}
    repeats = [analysis.curve_summary(workdir / f"repeat{i}", 1.0, DETERMINISM_STEPS)
               for i in (1, 2)]
    return {
        "horizon_seconds": horizon,
        "runs": summaries,
        "trainable": {n: results[n][0]["trainable_params"] for n in names},
        "frozen": {n: analysis.frozen_check(workdir / n) for n in ("LFLFLFL", "LTLTLTL")},
        "repeat_aucc_steps": [r["aucc_steps"] for r in repeats],
        "repeat_curves": [r["curve"]["values"] for r in repeats],
        "placement": analysis.placement_checks(),
        "aucc_cases": analysis.aucc_checks(),
        "backskip": analysis.backskip_checks(),
    }


def plot(measurements: dict, workdir: pathlib.Path) -> None:
    from experiments.reservoir import analysis

    analysis.plot(measurements["runs"], measurements["horizon_seconds"], workdir)


def _placement(m):
    p = m["placement"]
    ok = p["n7k3"] == "LRLRLRL" and p["n7k2"] == "LLRLRLL" and p["refuses_n4k2"]
    return (f"n=7,k=3 → {p['n7k3']}; n=7,k=2 → {p['n7k2']}; n=4,k=2 "
            f"{'refused' if p['refuses_n4k2'] else 'accepted'}"), ok


def _frozen(m):
    texts, ok = [], True
    for name, f in m["frozen"].items():
        good = f["bit_identical"] and not f["with_optimizer_state"]
        ok &= good
        texts.append(f"{name}: {f['reservoir_params']} reservoir tensors "
                     f"{'bit-identical' if f['bit_identical'] else 'CHANGED'}, "
                     f"{len(f['with_optimizer_state'])} with optimizer state")
    return "; ".join(texts), ok


def _orthogonal(m):
    texts, ok = [], True
    for name, f in m["frozen"].items():
        err = f["orthogonality"]
        ok &= err is not None and err <= 1e-5
        texts.append(f"{name}: {f['projections']} projections, max |WWᵀ − I| {err:.1e}"
                     if err is not None else f"{name}: no projections")
    return "; ".join(texts), ok


def _aucc(m):
    errors = [abs(c["measured"] - c["expected"]) for c in m["aucc_cases"]]
    return (", ".join(f"{c['measured']:.4g} vs {c['expected']:g}" for c in m["aucc_cases"]),
            max(errors) <= 1e-12)


def _backskip(m):
    b = m["backskip"]
    ok = b["scaled_error"] <= 1e-6 and b["forward_error"] == 0 and b["zero_f_error"] <= 1e-6
    return (f"η = {b['eta']}: |grad − η·g| ≤ {b['scaled_error']:.1e}, forward change "
            f"{b['forward_error']:.1e}; F ≡ 0: |backskip − exact| ≤ {b['zero_f_error']:.1e}"), ok


def _accuracy(m):
    finals = {n: m["runs"][n]["final"] for n in ENCODERS}
    ok = (min(finals.values()) >= MIN_ACCURACY
          and finals["LFLFLFL"] >= finals["LLLL"] - MARGIN)
    return ", ".join(f"{n} {v:.3f}" for n, v in finals.items()), ok


def _step_aucc(m):
    areas = {n: m["runs"][n]["aucc_steps_norm"] for n in ENCODERS}
    repeat = m["repeat_aucc_steps"]
    ok = len(areas) == len(ENCODERS) and repeat[0] == repeat[1] and (
        m["repeat_curves"][0] == m["repeat_curves"][1])
    return (", ".join(f"{n} {v:.3f}" for n, v in areas.items())
            + f"; two {DETERMINISM_STEPS}-step runs: {repeat[0]:.6g} and {repeat[1]:.6g}"), ok


def _wall_aucc(m):
    text = ", ".join(
        f"{n} {s['aucc_seconds_norm']:.3f}"
        f" (0.9 at {s['time_to_target']:.0f} s)" if s["time_to_target"] is not None else
        f"{n} {s['aucc_seconds_norm']:.3f} (never 0.9)" for n, s in m["runs"].items())
    return f"T̂ = {m['horizon_seconds']:.0f} s: {text}", True


def _step_times(m):
    ms = {n: 1000 * m["runs"][n]["seconds_per_step"] for n in ("LFLFLFL", "LTLTLTL", "LLLLLLL")}
    ok = ms["LFLFLFL"] < ms["LTLTLTL"] < ms["LLLLLLL"]
    return ", ".join(f"{n} {v:.0f} ms" for n, v in ms.items()), ok


def _backskip_speed(m):
    plain = 1000 * m["runs"]["LFLFLFL"]["seconds_per_step"]
    skipped = 1000 * m["runs"][BACKSKIPPED]["seconds_per_step"]
    return f"LFLFLFL {plain:.0f} ms, backskipped {skipped:.0f} ms", skipped < plain


def _ffn_vs_t(m):
    f, t = m["runs"]["LFLFLFL"]["final"], m["runs"]["LTLTLTL"]["final"]
    return f"FFN {f:.3f}, T {t:.3f}", f >= t


def _direction(m):
    f, ll = m["runs"]["LFLFLFL"]["aucc_seconds_norm"], m["runs"]["LLLL"]["aucc_seconds_norm"]
    return f"wall-clock AUCC/T̂: LFLFLFL {f:.3f}, LLLL {ll:.3f} (seed 0 only)", f >= ll


SMALL_CLAIMS = [
    SmallClaim("(1) placement: alternating from the middle", "n = 7 with k = 3 and k = 2; "
               "n < 2k + 1 refused", "LRLRLRL, LLRLRLL, refused", _placement),
    SmallClaim("(2) reservoirs bit-identical after training, no optimizer state",
               "LFLFLFL and LTLTLTL after 1,500 steps", "identical, none", _frozen),
    SmallClaim("(3) every reservoir projection orthogonal", "WWᵀ (wide) or WᵀW (tall) against "
               "I", "≤ 1e-5", _orthogonal),
    SmallClaim("(4) AUCC equals the trapezoid area by hand", "start at (0, 0), carry-forward, "
               "clipping at T̂", "equal", _aucc),
    SmallClaim("(5) identity backskip: gradient = η × incoming; exact when F ≡ 0",
               "an FFN reservoir, η = 0.5", "≤ 1e-6", _backskip),
    SmallClaim("(6) validation token accuracy at 1,500 steps", "every encoder; LFLFLFL against "
               "LLLL", f"≥ {MIN_ACCURACY}; ≥ LLLL − {MARGIN}", _accuracy),
    SmallClaim("(7) step-based AUCC computed and deterministic", "x = step, T̂ = 1,500; two "
               "identical runs", "equal", _step_aucc),
    SmallClaim("soft: wall-clock AUCC/T̂ and time to 0.9", "T̂ = the shortest run's clock",
               "reported", _wall_aucc, hard=False),
    SmallClaim("soft: time per step LFLFLFL < LTLTLTL < LLLLLLL", "training clock / steps",
               "ordered", _step_times, hard=False),
    SmallClaim("soft: backskipping lowers the time per step", "LFLFLFL, identity", "lower",
               _backskip_speed, hard=False),
    SmallClaim("soft: FFN reservoir final accuracy ≥ T reservoir", "LFLFLFL vs LTLTLTL", "≥",
               _ffn_vs_t, hard=False),
    SmallClaim("soft: the paper's direction, reservoir ≥ regular at equal updatable layers",
               "LFLFLFL vs LLLL", "≥", _direction, hard=False),
]
