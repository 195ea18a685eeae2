"""mixq.planner.search: objective, greedy / coordinate descent / exhaustive, Pareto fronts, baselines,
the resumable evaluation cache and the sensitivity scores -- on a synthetic problem (no model).

The synthetic problem (6 layers x {fp32, w8a8, w4a8}):

- accuracy = 100 - sum of per-layer penalties - an interaction penalty (5 points) when the
  pair ("big", "small") is *both* at w4a8;
- AI = total FLOPs / total bytes, bytes_l = weights_l * (4 | 1 | 0.5) + activations_l * (4 | 1 | 1).

It is built so that greedy and coordinate descent provably reach the exhaustive optimum
(for λ in [0.2, 0.9]; the test checks against exhaustive search anyway):

- "body1" loses nothing at any precision: lowering it always improves the loss, so any
  final state of either algorithm has it at w4a8 (else that move would still improve);
- "stem" and "head" lose 100 points at w4a8: (1-λ)*100 exceeds λ * the largest possible
  AI/AI0 (< 10) for λ <= 0.9, so no algorithm ever takes that step; w8a8 costs them
  0 / 0.02 points, far less than its byte savings are worth, so they end at w8a8;
- "big" (40 000 weights) and "small" (4 000) cost 0.1 point each at w4a8 but 5 more together:
  the optimum lowers exactly one of them, the bigger. Greedy takes the best move each round
  and every move of "big" saves more bytes (>= 0.5*40 000) for no more penalty than any
  w4a8 move of "small" (<= 3.5*4 000 + 3*500); coordinate descent sweeps "big" first;
- "body2" costs 0.05 at w8a8 and 1.5 at w4a8: its choice depends on λ (w8a8 at small λ,
  w4a8 at large). Lowering another layer only makes lowering it more valuable (saving d
  bytes lowers the AI term -λ·B0/B by λ·B0·d / (B·(B-d)), more as B shrinks), so a greedy
  stop and a coordinate-descent fixed point both make the optimal choice for the final
  bytes of the other layers, which are optimal by the points above.

With ``max_drop=1`` the λ=0.8 optimum (body2 at w4a8, drop 1.67) is infeasible: the
constraint binds and only removes body2's w4a8 option (the other penalties sum to 0.17).
"""
from __future__ import annotations

import json
import math
import warnings
from collections import Counter

import numpy as np
import pytest

from mixq.planner.search import (
    EvalCache,
    Evaluation,
    HistoryEntry,
    Objective,
    Problem,
    SearchResult,
    best_of,
    cached,
    canonical_config,
    coordinate_descent,
    exhaustive,
    greedy,
    hutchinson_trace,
    lambda_sweep,
    pareto_front,
    random_configs,
    sensitivity_order,
    uniform,
    weight_sqnr,
)

CANDS = ["fp32", "w8a8", "w4a8"]
WBYTES = {"fp32": 4.0, "w8a8": 1.0, "w4a8": 0.5}
ABYTES = {"fp32": 4.0, "w8a8": 1.0, "w4a8": 1.0}
# name: (weights, input activations, flops, penalty at w8a8, penalty at w4a8)
LAYERS = {
    "stem": (1_000, 3_000, 2e6, 0.0, 100.0),
    "body1": (20_000, 2_000, 4e6, 0.0, 0.0),
    "body2": (30_000, 2_000, 6e6, 0.05, 1.5),
    "big": (40_000, 1_000, 8e6, 0.0, 0.1),
    "small": (4_000, 500, 1e6, 0.0, 0.1),
    "head": (5_000, 500, 1e6, 0.02, 100.0),
}
PAIR_PENALTY = 5.0


def synth_evaluate(cfg: dict) -> Evaluation:
    acc = 100.0 - sum(LAYERS[x][3 if p == "w8a8" else 4] for x, p in cfg.items() if p != "fp32")
    if cfg["big"] == "w4a8" and cfg["small"] == "w4a8":
        acc -= PAIR_PENALTY
    flops = sum(v[2] for v in LAYERS.values())
    nbytes = sum(LAYERS[x][0] * WBYTES[p] + LAYERS[x][1] * ABYTES[p] for x, p in cfg.items())
    return Evaluation(accuracy=acc, ai=flops / nbytes, latency_s=nbytes * 1e-9)


class Counting:
    """evaluate that counts calls per config and can raise KeyboardInterrupt after `limit` calls."""

    def __init__(self, limit: int | None = None, counter: Counter | None = None):
        self.limit = limit
        self.n = 0
        self.per_config = Counter() if counter is None else counter

    def __call__(self, cfg):
        if self.limit is not None and self.n >= self.limit:
            raise KeyboardInterrupt
        self.n += 1
        self.per_config[canonical_config(cfg)] += 1
        return synth_evaluate(cfg)


def make_problem(evaluate=synth_evaluate, allowed=None) -> Problem:
    return Problem(layers=list(LAYERS), candidates=list(CANDS), evaluate=evaluate, allowed=allowed)


REF = synth_evaluate({x: "fp32" for x in LAYERS})


def aiq(lam, **kw) -> Objective:
    return Objective.from_reference(REF, lam, **kw)


# ------------------------------------------------------------------------------- objective


def test_objective_formula_on_hand_values():
    obj = Objective(lam=0.25, acc0=90.0, ai0=10.0, delta0=2.0)
    # -0.25 * 30/10 + 0.75 * (90-87)/2
    assert obj(Evaluation(87.0, 30.0)) == pytest.approx(-0.75 + 1.125)
    # more accurate than the reference: the accuracy term is clipped at 0
    assert obj(Evaluation(91.0, 10.0)) == pytest.approx(-0.25)
    assert obj.terms(Evaluation(87.0, 30.0)) == pytest.approx((-3.0, 1.5))

    lat = Objective(lam=0.5, acc0=90.0, kind="latency", lat0=2.0)
    assert lat(Evaluation(88.0, 1.0, latency_s=1.0)) == pytest.approx(0.5 * 0.5 + 0.5 * 2.0)
    lat1 = Objective(lam=None, acc0=90.0, kind="latency", lat0=2.0, max_drop=1.0)
    assert lat1.lam == 1.0
    assert lat1(Evaluation(80.0, 1.0, latency_s=3.0)) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="latency_s"):
        lat1(Evaluation(90.0, 1.0))

    hard = Objective(lam=0.5, acc0=90.0, ai0=10.0, max_drop=1.0)
    assert hard.feasible(Evaluation(89.0, 1.0))          # exactly at the floor
    assert not hard.feasible(Evaluation(88.9, 1.0))
    assert not hard.feasible(Evaluation(float("nan"), 1.0))
    assert Objective(lam=0.5, acc0=90.0, ai0=10.0).feasible(Evaluation(0.0, 1.0))
    # ranking: any feasible beats any infeasible; infeasible ones by their violation
    assert hard.key(Evaluation(89.5, 1.0)) < hard.key(Evaluation(80.0, 1e9))
    assert hard.key(Evaluation(88.0, 1.0)) < hard.key(Evaluation(87.0, 1e9))

    ref = Objective.from_reference(Evaluation(93.0, 12.0, 0.01), 0.5)
    assert (ref.acc0, ref.ai0, ref.lat0, ref.delta0) == (93.0, 12.0, 0.01, 1.0)
    assert ref(Evaluation(93.0, 12.0)) == pytest.approx(-0.5)


@pytest.mark.parametrize("kw", [dict(lam=None), dict(lam=1.5), dict(lam=0.5, ai0=0.0), dict(lam=0.5, delta0=0),
                                dict(lam=0.5, max_drop=-1), dict(lam=0.5, kind="speed"),
                                dict(lam=0.5, kind="latency", lat0=None)])
def test_objective_rejects_bad_parameters(kw):
    args = dict(acc0=90.0, ai0=10.0)
    args.update(kw)
    with pytest.raises(ValueError):
        Objective(**args)


def test_problem_validation():
    with pytest.raises(ValueError, match="duplicate"):
        Problem(["a", "a"], CANDS, synth_evaluate)
    with pytest.raises(ValueError, match="not candidates"):
        Problem(["a"], CANDS, synth_evaluate, allowed={"a": ["w2a8"]})
    with pytest.raises(ValueError, match="not in the problem"):
        Problem(["a"], CANDS, synth_evaluate, allowed={"b": ["fp32"]})
    p = make_problem(allowed={"stem": ["w8a8", "fp32"], "head": ["w8a8"]})
    assert p.choices("stem") == ["fp32", "w8a8"] and p.choices("body1") == CANDS
    assert p.start_config()["head"] == "w8a8" and p.reference_config()["head"] == "fp32"
    assert p.n_configs() == 2 * 1 * 3 ** 4
    with pytest.raises(ValueError, match="not allowed"):
        p.check_config({**p.start_config(), "stem": "w4a8"})
    with pytest.raises(ValueError, match="missing"):
        p.check_config({"stem": "fp32"})


# ------------------------------------------------------------------------------- algorithms


@pytest.mark.parametrize("lam", [0.2, 0.5, 0.8, 0.9])
def test_greedy_and_coordinate_descent_find_the_exhaustive_optimum(lam):
    obj = aiq(lam)
    ex = exhaustive(make_problem(), obj)
    assert ex.evaluations == 3 ** 6 and len(ex.history) == 3 ** 6
    # the exhaustive best really is the minimum over everything it saw
    assert ex.best_loss == min(h.loss for h in ex.history)
    for run in (greedy, coordinate_descent):
        ev = Counting()
        res = run(make_problem(ev), obj)
        assert isinstance(res, SearchResult)
        assert res.best == ex.best and res.best_eval == ex.best_eval
        assert res.best_loss == pytest.approx(ex.best_loss)
        assert res.feasible and res.converged
        assert res.evaluations == ev.n < 3 ** 6 // 5      # far cheaper than exhaustive
        assert max(ev.per_config.values()) == 1          # no config evaluated twice
        assert res.trajectory[0].note == "start" and res.trajectory[-1].config == res.best
        assert all(isinstance(h, HistoryEntry) for h in res.history)
        assert len({canonical_config(h.config) for h in res.history}) == len(res.history)
    # the λ-dependent layer flips as designed
    assert ex.best["body2"] == ("w4a8" if lam >= 0.8 else "w8a8")
    assert ex.best["big"] == "w4a8" and ex.best["small"] == "w8a8"
    assert ex.best["stem"] == ex.best["head"] == "w8a8" and ex.best["body1"] == "w4a8"


def test_hard_constraint_binds():
    free = exhaustive(make_problem(), aiq(0.8))
    assert REF.accuracy - free.best_eval.accuracy > 1.0     # the unconstrained optimum drops 1.67 points
    obj = aiq(0.8, max_drop=1.0)
    ex = exhaustive(make_problem(), obj)
    feasible = [h for h in ex.history if obj.feasible(h.evaluation)]
    assert ex.feasible and ex.best_loss == min(h.loss for h in feasible)
    assert ex.best != free.best and ex.best["body2"] == "w8a8"
    # infeasible configs with a lower loss exist, and none is returned
    assert min(h.loss for h in ex.history) < ex.best_loss
    for run in (greedy, coordinate_descent):
        res = run(make_problem(), obj)
        assert res.best == ex.best and res.feasible
        assert REF.accuracy - res.best_eval.accuracy <= 1.0
        assert all(obj.feasible(t.evaluation) for t in res.trajectory)


def test_latency_objective_matches_exhaustive():
    obj = Objective.from_reference(REF, None, kind="latency", max_drop=1.0)   # λ = 1: minimize latency
    ex = exhaustive(make_problem(), obj)
    assert ex.best_eval.latency_s < REF.latency_s and REF.accuracy - ex.best_eval.accuracy <= 1.0
    assert greedy(make_problem(), obj).best == ex.best
    assert coordinate_descent(make_problem(), obj).best == ex.best


def test_greedy_variants_allowed_and_progress():
    obj = aiq(0.5)
    once = greedy(make_problem(), obj, lower_further=False)
    # one-shot greedy never lowers a layer twice: each layer appears at most once in the trajectory
    moved = [t.note.split(": ")[1].split()[0] for t in once.trajectory[1:]]
    assert len(moved) == len(set(moved))
    p = make_problem(allowed={"body1": ["fp32", "w8a8"]})
    res = greedy(p, obj, progress=True)      # tqdm if installed; must not disturb the result
    assert res.best["body1"] == "w8a8"
    assert all(h.config["body1"] != "w4a8" for h in res.history)
    assert res.best == exhaustive(p, obj).best


def test_coordinate_descent_start_and_infeasible_start():
    obj = aiq(0.5, max_drop=1.0)
    lowest = {x: "w4a8" for x in LAYERS}
    assert not obj.feasible(synth_evaluate(lowest))
    res = coordinate_descent(make_problem(), obj, start=lowest)
    assert res.feasible and res.best == exhaustive(make_problem(), obj).best
    with pytest.raises(ValueError):
        coordinate_descent(make_problem(), obj, start={"stem": "fp32"})
    with pytest.raises(ValueError):
        coordinate_descent(make_problem(), obj, max_sweeps=0)
    short = coordinate_descent(make_problem(), obj, start=lowest, max_sweeps=1)
    assert not short.converged


def test_no_feasible_config_warns_and_reports():
    obj = Objective(lam=0.5, acc0=101.0, ai0=REF.ai, max_drop=0.5)    # nothing reaches 100.5
    with pytest.warns(RuntimeWarning, match="max_drop"):
        res = greedy(make_problem(), obj)
    assert not res.feasible and res.best == make_problem().start_config()


def test_exhaustive_guard():
    ev = Counting()
    p = Problem([f"l{i}" for i in range(11)], CANDS, ev)     # 3^11 = 177 147 configs
    with pytest.raises(ValueError, match="177147 configs"):
        exhaustive(p, aiq(0.5))
    assert ev.n == 0


def test_lambda_sweep_shares_evaluations_and_is_monotone():
    ev = Counting()
    lams = [0.2, 0.5, 0.8, 0.9]
    results = lambda_sweep(make_problem(ev), lams, aiq, algorithm="greedy")
    assert [r.lam for r in results] == lams
    assert max(ev.per_config.values()) == 1                 # shared memo: never twice
    assert sum(r.evaluations for r in results) == ev.n
    assert results[1].evaluations < results[0].evaluations
    ais = [r.best_eval.ai for r in results]
    accs = [r.best_eval.accuracy for r in results]
    assert ais == sorted(ais) and accs == sorted(accs, reverse=True) and ais[0] < ais[-1]
    for r, lam in zip(results, lams):
        assert r.best == exhaustive(make_problem(), aiq(lam)).best
    cd = lambda_sweep(make_problem(), lams[:2], aiq, algorithm="coordinate")
    assert [r.best for r in cd] == [r.best for r in results[:2]]
    with pytest.raises(ValueError, match="algorithm"):
        lambda_sweep(make_problem(), lams, aiq, algorithm="annealing")


# ------------------------------------------------------------------------------- pareto


def test_pareto_front_by_hand():
    a = Evaluation(94.0, 10.0, 3.0)
    b = Evaluation(93.0, 20.0, 2.0)
    c = Evaluation(92.0, 15.0, 1.0)      # dominated by b on (accuracy, ai), not on latency
    d = Evaluation(90.0, 40.0, 1.5)
    e = Evaluation(93.0, 20.0, 2.0)      # same metrics as b: neither dominates the other
    f = Evaluation(94.0, 9.0, 4.0)       # dominated by a
    pts = [c, a, e, b, d, f]
    front = pareto_front(pts)
    assert front == [a, e, b, d] and front[1] is e and front[2] is b     # by accuracy, then input order
    uniq = pareto_front(pts, unique=True)
    assert uniq == [a, e, d] and uniq[1] is e                            # first of the repeats
    lat = pareto_front(pts, maximize=("accuracy",), minimize=("latency",), unique=True)
    assert lat == [a, e, c]
    dicts = [dict(accuracy=p.accuracy, ai=p.ai, label=str(i)) for i, p in enumerate(pts)]
    dfront = pareto_front(dicts)
    assert [x["label"] for x in dfront] == ["1", "2", "3", "4"] and dfront[0] is dicts[1]
    with pytest.raises(ValueError, match="latency_s"):
        pareto_front(dicts, minimize=("latency_s",))
    assert pareto_front([a], maximize=("ai",)) == [a]
    entries = [HistoryEntry({"x": "fp32"}, a, 0.0), ({"x": "w8a8"}, b), HistoryEntry({"x": "w4a8"}, f, 0.0)]
    assert pareto_front(entries) == entries[:2]
    with pytest.raises(ValueError, match="latency_s"):
        pareto_front([Evaluation(1.0, 1.0)], minimize=("latency_s",))
    with pytest.raises(TypeError):
        pareto_front([1.0])


def test_pareto_front_matches_definition_on_random_points():
    rng = np.random.default_rng(0)
    vals = rng.integers(0, 12, size=(300, 3)).astype(float)       # many ties
    pts = [Evaluation(float(a), float(b), float(c)) for a, b, c in vals]
    pts += [Evaluation(p.accuracy, p.ai, p.latency_s) for p in pts]     # every point twice
    front = pareto_front(pts, maximize=("accuracy", "ai"), minimize=("latency_s",))

    def dominates(p, q):
        ge = p.accuracy >= q.accuracy and p.ai >= q.ai and p.latency_s <= q.latency_s
        return ge and (p.accuracy, p.ai, p.latency_s) != (q.accuracy, q.ai, q.latency_s)

    expected = [i for i, p in enumerate(pts) if not any(dominates(q, p) for q in pts)]
    assert sorted(map(id, front)) == sorted(id(pts[i]) for i in expected)
    uniq = pareto_front(pts, maximize=("accuracy", "ai"), minimize=("latency_s",), unique=True)
    got = [(p.accuracy, p.ai, p.latency_s) for p in uniq]
    assert len(got) == len(set(got)) and set(got) == {(p.accuracy, p.ai, p.latency_s) for p in front}
    assert 2 * len(uniq) == len(front)


def test_pareto_of_search_history():
    ex = exhaustive(make_problem(), aiq(0.5))
    front = pareto_front(ex.history)
    assert any(h.config == ex.best for h in front)     # a scalarized optimum lies on the front
    accs = [h.evaluation.accuracy for h in front]
    ais = [h.evaluation.ai for h in front]
    assert accs == sorted(accs, reverse=True) and ais == sorted(ais)


# ------------------------------------------------------------------------------- baselines


def test_uniform():
    p = make_problem(allowed={"stem": ["fp32", "w8a8"], "head": ["w4a8"]})
    cfg = uniform(p, "w4a8")
    assert cfg["stem"] == "w8a8" and cfg["body1"] == "w4a8" and list(cfg) == list(LAYERS)
    assert uniform(p, "fp32")["head"] == "w4a8"          # nothing above: the closest below
    with pytest.raises(ValueError, match="does not allow"):
        uniform(p, "w4a8", strict=True)
    with pytest.raises(ValueError, match="not a candidate"):
        uniform(p, "w2a8")


@pytest.mark.parametrize("n_layers,n_lowered,count", [(6, 2, 40), (20, 5, 50)])   # enumerated / rejection paths
def test_random_configs(n_layers, n_lowered, count):
    layers = [f"l{i}" for i in range(n_layers)]
    p = Problem(layers, CANDS, synth_evaluate, allowed={"l1": ["fp32", "w8a8"]})
    cfgs = random_configs(p, n_lowered, count, seed=3)
    assert len(cfgs) == count
    assert len({canonical_config(c) for c in cfgs}) == count          # distinct
    for c in cfgs:
        assert list(c) == layers
        assert sum(v != "fp32" for v in c.values()) == n_lowered
        assert set(c.values()) <= set(CANDS) and c["l1"] in ("fp32", "w8a8")
        p.check_config(c)
    assert cfgs == random_configs(p, n_lowered, count, seed=3)        # deterministic
    assert cfgs != random_configs(p, n_lowered, count, seed=4)
    seen_prec = {v for c in cfgs for v in c.values()}
    assert {"w8a8", "w4a8"} <= seen_prec


def test_random_configs_limits():
    p = Problem(["a", "b", "c"], CANDS, synth_evaluate)
    assert len(random_configs(p, 3, 8, seed=0)) == 8                   # all 2^3 configs
    with pytest.raises(ValueError, match="only 8"):
        random_configs(p, 3, 9)
    with pytest.raises(ValueError, match="can be lowered"):
        random_configs(p, 4, 1)
    assert random_configs(p, 0, 1) == [p.start_config()]


def test_best_of_random_baseline():
    p = make_problem()
    obj = aiq(0.5, max_drop=1.0)
    res = best_of(p, obj, random_configs(p, 3, 30, seed=1), name="random")
    feas = [h for h in res.history if obj.feasible(h.evaluation)]
    assert res.feasible and res.best_loss == min(h.loss for h in feas)
    assert res.best_loss >= exhaustive(p, obj).best_loss


@pytest.mark.parametrize("mode", ["lowest", "step"])
def test_sensitivity_order(mode):
    # the true sensitivities (the w4a8 penalties) as scores
    scores = {x: v[4] for x, v in LAYERS.items()}
    obj = aiq(0.5, max_drop=1.0)
    ev = Counting()
    res = sensitivity_order(make_problem(ev), scores, obj, mode=mode)
    assert res.feasible and res.evaluations == ev.n
    steps = [t.note for t in res.trajectory[1:]]
    lowered = [s.split(": ")[1].split()[0] for s in steps]
    # lowering "small" next to "big" triggers the pair penalty: the walk stops there (the
    # baseline's blind spot, which greedy avoids by skipping to other layers)
    last = res.history[-1]
    assert not obj.feasible(last.evaluation) and last.config["small"] == "w4a8" and last.config["big"] == "w4a8"
    if mode == "lowest":   # body1 (score 0) first, then big / small (0.1, in layer order)
        assert lowered == ["body1", "big"]
        assert res.best == {**make_problem().start_config(), "body1": "w4a8", "big": "w4a8"}
    else:                  # step mode: one precision step per pass
        assert lowered == ["body1", "big", "small", "body2", "stem", "head", "body1", "big"]
        assert res.best == exhaustive(make_problem(), obj).best    # here the step walk happens to be optimal
    assert res.best_loss == min(t.loss for t in res.trajectory)
    with pytest.raises(ValueError, match="missing"):
        sensitivity_order(make_problem(), {"stem": 1.0}, obj)


# ------------------------------------------------------------------------------- cache


def test_cache_resume_after_interrupt(tmp_path):
    obj = aiq(0.8, max_drop=1.0)
    full = greedy(make_problem(), obj)
    path = tmp_path / "evals.jsonl"
    counter = Counter()

    cache1 = EvalCache(path, "model-abc")
    ev1 = Counting(limit=7, counter=counter)
    with pytest.raises(KeyboardInterrupt):
        greedy(make_problem(cached(ev1, cache1)), obj)
    cache1.close()
    assert ev1.n == 7 and len(path.read_text().splitlines()) == 7

    cache2 = EvalCache(path, "model-abc", fsync=True)
    assert len(cache2) == 7
    ev2 = Counting(counter=counter)
    wrapped = cached(ev2, cache2)
    res = greedy(make_problem(wrapped), obj)
    cache2.close()
    assert max(counter.values()) == 1                       # nothing evaluated twice across both runs
    assert sum(counter.values()) == full.evaluations
    assert (wrapped.hits, wrapped.misses) == (7, full.evaluations - 7)
    assert res.best == full.best and res.best_eval == full.best_eval and res.best_loss == full.best_loss
    assert [(h.config, h.evaluation) for h in res.history] == [(h.config, h.evaluation) for h in full.history]

    # a third run is free; another namespace sees nothing
    with EvalCache(path, "model-abc") as cache3:
        ev3 = Counting()
        assert greedy(make_problem(cached(ev3, cache3)), obj).best == full.best
        assert ev3.n == 0
    assert len(EvalCache(path, "other-model")) == 0


def test_cache_tolerates_corrupt_lines(tmp_path):
    path = tmp_path / "evals.jsonl"
    with EvalCache(path, "ns") as c:
        c.put({"b": "w8a8", "a": "fp32"}, Evaluation(91.5, 12.25, None))
        c.put({"a": "w8a8", "b": "w8a8"}, Evaluation(float("nan"), float("inf"), 0.5))
    text = path.read_text()
    assert json.loads(text.splitlines()[0])["config"] == {"a": "fp32", "b": "w8a8"}   # canonical
    path.write_text(text + '{"ns": "ns", "config": {"a": "w4a8", "b"')           # killed mid-write
    with pytest.warns(RuntimeWarning, match="last line"):
        c = EvalCache(path, "ns")
    assert len(c) == 2 and c.skipped == 1
    assert c.get({"a": "fp32", "b": "w8a8"}) == Evaluation(91.5, 12.25, None)
    odd = c.get({"b": "w8a8", "a": "w8a8"})
    assert math.isnan(odd.accuracy) and odd.ai == math.inf and odd.latency_s == 0.5
    c.put({"a": "w4a8", "b": "w4a8"}, Evaluation(80.0, 30.0))                     # appended on a fresh line
    c.close()
    with pytest.warns(RuntimeWarning, match="line 3"):
        again = EvalCache(path, "ns")
    assert len(again) == 3 and again.skipped == 1
    assert {"a": "w4a8", "b": "w4a8"} in again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(EvalCache(tmp_path / "missing.jsonl", "ns")) == 0
    with pytest.raises(ValueError):
        EvalCache(path, "")


class ReversedBatches:
    """An evaluate that runs a batch at once (what a parallel executor's `many` does) and reports
    its results last-first."""

    def __init__(self):
        self.batches = []

    def __call__(self, cfg):
        return synth_evaluate(cfg)

    def many(self, configs, done):
        self.batches.append(len(configs))
        evs = [synth_evaluate(c) for c in configs]
        for i in reversed(range(len(evs))):
            done(i, evs[i])
        return evs


@pytest.mark.parametrize("algorithm", [greedy, coordinate_descent, exhaustive])
def test_batched_evaluations_in_any_order_give_the_same_run(algorithm, tmp_path):
    obj = aiq(0.5, max_drop=1.0)
    plain = algorithm(make_problem(), obj)
    batched = ReversedBatches()
    path = tmp_path / "evals.jsonl"
    with EvalCache(path, "ns") as cache:
        res = algorithm(make_problem(cached(batched, cache)), obj, progress=True)
    assert max(batched.batches) > 1                                        # configs went together
    assert res.best == plain.best and res.evaluations == plain.evaluations
    assert [(h.config, h.evaluation, h.note) for h in res.history] == \
        [(h.config, h.evaluation, h.note) for h in plain.history]
    stored = Counter(json.dumps(json.loads(line)["config"], sort_keys=True) for line in path.read_text().splitlines())
    assert set(stored.values()) == {1} and len(stored) == plain.evaluations  # each stored once, as it finished


# ------------------------------------------------------------------------------- sensitivity


def test_weight_sqnr_decreases_with_bits():
    rng = np.random.default_rng(0)
    weights = {"fc": rng.standard_normal((64, 256)).astype(np.float32),
               "conv": rng.standard_normal((32, 16, 3, 3)).astype(np.float32)}
    by_prec = {p: weight_sqnr(weights, p) for p in ("fp32", "bf16", "w8a8", "w4a8-g128", "w4a8-g32", "w2a8-g64")}
    for name in weights:
        s = [by_prec[p][name] for p in ("fp32", "bf16", "w8a8", "w4a8-g128", "w2a8-g64")]
        assert s[0] == math.inf and all(a > b for a, b in zip(s, s[1:])), s
        assert by_prec["w4a8-g32"][name] > by_prec["w4a8-g128"][name]     # smaller groups, less noise
        assert 35 < by_prec["w8a8"][name] < 45 and 15 < by_prec["w4a8-g128"][name] < 25
    # 8-bit is per output channel: the order within a row does not matter
    cl = weight_sqnr(weights, "w8a8", channels_last=True)
    assert cl["conv"] == pytest.approx(by_prec["w8a8"]["conv"])
    assert np.isfinite(weight_sqnr(weights, "w4a8", channels_last=True)["conv"])
    with pytest.raises(ValueError):
        weight_sqnr({"b": np.ones(4, np.float32)}, "w8a8")
    with pytest.raises(ValueError):
        weight_sqnr(weights, "int3")


def test_hutchinson_trace_tiny_model():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    model.train()
    model[0].weight.requires_grad_(False)                       # flags must be restored
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(16, 6, generator=g), torch.randn(16, 3, generator=g)) for _ in range(2)]
    loss_fn = torch.nn.MSELoss()
    names = ["0", "2"]
    t1 = hutchinson_trace(model, names, batches, loss_fn, samples=8, seed=0)
    t2 = hutchinson_trace(model, names, batches, loss_fn, samples=8, seed=0)
    t3 = hutchinson_trace(model, names, batches, loss_fn, samples=8, seed=1)
    assert t1 == t2 and t1 != t3
    assert set(t1) == set(names) and all(v > 0 for v in t1.values())
    assert model.training and not model[0].weight.requires_grad and model[2].weight.requires_grad

    # against the exact trace of each diagonal block (averaged over batches, per element)
    exact = {}
    for name in names:
        mod = dict(model.named_modules())[name]
        w0 = mod.weight.detach().clone()
        tr = 0.0
        for x, y in batches:
            def f(w, x=x, y=y, mod=mod):
                out = x
                for m in model:
                    out = torch.nn.functional.linear(out, w, m.bias) if m is mod else m(out)
                return loss_fn(out, y)
            tr += float(torch.autograd.functional.hessian(f, w0).reshape(w0.numel(), w0.numel()).diagonal().sum())
        exact[name] = tr / len(batches) / w0.numel()
    est = hutchinson_trace(model, names, batches, loss_fn, samples=200, seed=0)
    for name in names:
        assert est[name] == pytest.approx(exact[name], rel=0.15)
    # bare-input batches: loss_fn(output)
    bare = hutchinson_trace(model, ["2"], [x for x, _ in batches], lambda out: (out ** 2).mean(), samples=2)
    assert bare["2"] > 0
    with pytest.raises(ValueError, match="no module"):
        hutchinson_trace(model, ["nope"], batches, loss_fn)
    with pytest.raises(ValueError, match="no float weight"):
        hutchinson_trace(model, ["1"], batches, loss_fn)


def test_last_confirmed_steps_back_to_a_config_that_holds_on_held_out_images():
    """mixq.planner.study confirms the AIQ pick on held-out images: the last accepted step within the floor
    there, walking back from the end; the start when none holds."""
    from types import SimpleNamespace

    from mixq.planner.study import last_confirmed

    steps = [SimpleNamespace(config={"a": p}) for p in ("fp32", "w8a8", "w4a8", "w2a8")]
    drop = {"fp32": 0.0, "w8a8": 0.2, "w4a8": 0.6, "w2a8": 1.4}
    entry, back = last_confirmed(steps, lambda c: drop[c["a"]], 1.0)
    assert entry.config == {"a": "w4a8"} and back == 1
    entry, back = last_confirmed(steps, lambda c: drop[c["a"]], 2.0)
    assert entry.config == {"a": "w2a8"} and back == 0
    entry, back = last_confirmed(steps, lambda c: 5.0, 1.0)
    assert entry is steps[0] and back == 3
