"""Anomaly detection: the NAB scorer on hand-made cases, `AnomalyDetector`, ``rnnkit detect``."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rnnkit
from rnnkit import nab
from rnnkit.cli import main
from rnnkit.errors import InputError
from rnnkit.estimators import echo, likelihood
from rnnkit.estimators import level as recent_level
from rnnkit.estimators.familiar import Familiar
from rnnkit.estimators.season import Alarm, find_period
from rnnkit.tasks.detect import LineScorer

SRC = Path(__file__).resolve().parent.parent / "src"


# -- the NAB scorer ----------------------------------------------------------------------------
def _times(n: int) -> np.ndarray:
    return np.datetime64("2020-01-01T00:00") + np.arange(n) * np.timedelta64(5, "m")


def _window(ts: np.ndarray, a: int, b: int) -> tuple[str, str]:
    return (str(ts[a]), str(ts[b]))


def _corpus():
    """Two files of 1,000 rows (probation 150): one with windows at 300-339 and 700-739, one
    with none."""
    ts = _times(1000)
    lab1 = nab.label_rows(ts, [_window(ts, 300, 339), _window(ts, 700, 739)], "a")
    lab2 = nab.label_rows(ts, [], "b")
    return ts, lab1, lab2


def test_probation_length_is_nabs_rule():
    assert nab.probation_length(1000) == 150
    assert nab.probation_length(22695) == 750  # capped at 15 % of 5000


def test_scaled_sigmoid_values_from_nabs_docs():
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert nab.scaled_sigmoid(0.0) == pytest.approx(0.0, abs=1e-12)
    assert nab.scaled_sigmoid(3.0) == -1.0


def test_perfect_detector_scores_100_and_null_0_in_every_profile():
    _, lab1, lab2 = _corpus()
    perfect = np.zeros(1000)
    perfect[[300, 700]] = 1.0
    for profile in nab.PROFILES:
        r = nab.score_corpus({"a": (perfect, lab1), "b": (np.zeros(1000), lab2)}, profile)
        assert r.score == pytest.approx(100.0)
        assert (r.tp, r.fn, r.fp) == (2, 0, 0)
        null = nab.score_corpus({"a": (np.zeros(1000), lab1), "b": (np.zeros(1000), lab2)}, profile)
        assert null.score == pytest.approx(0.0)


def test_late_detection_false_positive_and_probation_by_hand():
    _, lab1, lab2 = _corpus()
    s1 = np.zeros(1000)
    s1[319] = 1.0  # window 300-339 (width 40) at relative position -(339 - 319 + 1) / 40
    s1[100] = 1.0  # in the probationary period: does not count
    s2 = np.zeros(1000)
    s2[500] = 1.0  # a file without windows: a false positive worth -A_fp
    p = nab.PROFILES["standard"]
    tp = nab.scaled_sigmoid(-21 / 40) / nab.scaled_sigmoid(-1.0)
    raw = tp * p.tp - p.fn - p.fp  # one window late, one missed, one false positive
    r = nab.score_corpus({"a": (s1, lab1), "b": (s2, lab2)}, "standard")
    assert r.raw == pytest.approx(raw)
    assert r.score == pytest.approx(100 * (raw + 2) / 4)
    # a false positive just after a window costs less than -A_fp
    s3 = np.zeros(1000)
    s3[[300, 700, 742]] = 1.0
    r3 = nab.score_corpus({"a": (s3, lab1)}, "standard")
    after = nab.scaled_sigmoid(3 / 39) * p.fp
    assert r3.raw == pytest.approx(2 * p.tp + after)
    assert -p.fp < after < 0


def test_threshold_is_optimised_over_the_corpus():
    _, lab1, lab2 = _corpus()
    s1 = np.full(1000, 0.1)
    s1[[300, 700]] = 0.9
    s2 = np.full(1000, 0.1)
    s2[400] = 0.95  # above the windows' level: the best threshold lies between 0.1 and 0.9
    r = nab.score_corpus({"a": (s1, lab1), "b": (s2, lab2)}, "standard")
    assert r.threshold == pytest.approx(0.9)
    assert (r.tp, r.fp) == (2, 1)
    # with the low-FN profile's costlier misses, the same threshold still wins
    assert nab.score_corpus({"a": (s1, lab1), "b": (s2, lab2)}, "reward_low_FN_rate").tp == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_points_lost_per_file_add_up_to_what_the_score_misses(seed):
    _, lab1, lab2 = _corpus()
    rng = np.random.default_rng(seed)
    files = {"a": (rng.random(1000), lab1), "b": (rng.random(1000) * 0.9, lab2)}
    r = nab.score_corpus(files, "standard")
    lost = nab.points_lost(files, r.threshold)
    assert sum(f["lost"] for f in lost.values()) == pytest.approx(100.0 - r.score)
    assert sum(f["missed"] for f in lost.values()) == r.fn
    assert sum(f["fp_rows"] for f in lost.values()) == r.fp
    assert lost["b"]["windows"] == 0 and lost["b"]["late"] == 0.0
    for f in lost.values():
        assert len(f["missed_highest"]) == f["missed"]
        assert all(high < r.threshold for high in f["missed_highest"])


# -- the detector ------------------------------------------------------------------------------
def _smooth(n: int = 1200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.sin(2 * np.pi * t / 50) + 0.05 * rng.standard_normal(n)


@pytest.fixture(scope="module")
def detector() -> rnnkit.AnomalyDetector:
    return rnnkit.AnomalyDetector(probation=200, steps=40, seed=0).fit(_smooth())


def test_spike_in_a_smooth_series_scores_highest_in_its_window(detector):
    x = _smooth(seed=1)
    x[900] += 1.2  # inside the sine's range: found by the network, not the range check
    det = rnnkit.AnomalyDetector(probation=200, steps=40, seed=0, range_check=None)
    scores = det.fit(x).detect(x)
    window = slice(880, 940)
    assert np.argmax(scores[window]) + 880 in (900, 901, 902)
    assert scores[900:903].max() > np.quantile(scores[200:880], 0.999)
    assert np.all(scores[:200] == 0) and np.all((scores >= 0) & (scores <= 1))


def test_streaming_equals_batch(detector):
    x = _smooth(seed=2)
    x[700] -= 2.0
    batch = detector.detect(x)
    pool = detector.pool()
    streamed = np.array([pool.update("s", v) for v in x])
    np.testing.assert_allclose(streamed, batch, rtol=0, atol=1e-9)
    # two series stepped together in one batched network step each time
    y = _smooth(seed=3)
    pool2 = detector.pool()
    both = [pool2.update_many({"x": a, "y": b}) for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose([d["x"] for d in both], batch, atol=1e-9)
    np.testing.assert_allclose([d["y"] for d in both], detector.detect(y), atol=1e-9)


def test_memory_per_stream_is_constant(detector):
    pool = detector.pool()
    x = _smooth(3000, seed=4)
    sizes = []
    for k, v in enumerate(x):
        pool.update("s", v)
        if k in (500, 2999):
            st = pool._streams["s"]
            assert st.season is not None
            assert st.level is not None
            assert st.means is not None and st.variances is not None  # surprise="members"
            assert st.loglevel is None  # not on the log scale: no second recent level
            held = st.lik.nbytes + st.slik.nbytes + st.season.nbytes
            held += st.means.nbytes + st.variances.nbytes
            assert st.alarm is not None and st.alarm.familiar is not None  # familiar=0.1
            held += st.alarm.familiar.window.nbytes + st.alarm.familiar.events.nbytes
            assert st.echo is not None  # echo=2.0: the window that tells an outlier's echo
            held += st.echo.nbytes
            sizes.append((st.buffer, held + st.level.nbytes + st.llik.nbytes))
    assert st.season.size == 50  # the sine's period, found in the probationary values
    # transform=None: the most such a series holds (no recent level on the log scale)
    fixed = rnnkit.AnomalyDetector(probation=200, season=50, learn_every=1000, transform=None)
    learning = fixed.memory_per_stream() - fixed.set_params(learn_every=0).memory_per_stream()
    assert learning > 0  # its own network (test_online_learning_memory_is_constant)
    state = fixed.hidden_size * fixed.members  # the network's state, then the scalars
    scalars = 6 + 3 + 2 + 5  # the last 5: the familiar spikes' range, value before, settings
    assert sizes[0] == sizes[1] == (None, fixed.memory_per_stream() - 8 * (state + scalars))
    assert detector.memory_per_stream() > fixed.memory_per_stream()  # "auto": at most


def test_find_period():
    rng = np.random.default_rng(0)
    t = np.arange(600)
    assert find_period(np.sin(2 * np.pi * t / 48) + 0.1 * rng.standard_normal(600)) == 48
    assert find_period(rng.standard_normal(600)) == 0  # no period
    assert find_period(np.zeros(100)) == 0  # flat


def test_find_period_with_rise_ignores_a_slowly_decaying_autocorrelation():
    rng = np.random.default_rng(1)
    ar = np.zeros(600)  # AR(1), 0.98: no period, an autocorrelation that decays slowly
    for t in range(1, 600):
        ar[t] = 0.98 * ar[t - 1] + rng.standard_normal()
    assert find_period(ar) > 0  # a bump on the decay, read as a period
    assert find_period(ar, rise=True) == 0  # it does not stand above the lags before it
    t = np.arange(600)
    sine = np.sin(2 * np.pi * t / 48) + 0.1 * rng.standard_normal(600)
    assert find_period(sine, rise=True) == find_period(sine) == 48
    det = rnnkit.AnomalyDetector(probation=600, steps=5).fit(ar)
    assert det._season_of(ar)[0] == 0
    assert det.set_params(season_rise=False)._season_of(ar)[0] == find_period(ar)


def test_a_missing_daily_peak_is_found_by_the_seasonal_difference():
    rng = np.random.default_rng(0)
    t = np.arange(3000)
    x = np.where(t % 100 < 20, 5.0, 0.0) + 0.1 * rng.standard_normal(3000)
    x[2400:2420] = 0.1 * rng.standard_normal(20)  # one day without its peak
    scores = {}
    for season in ("auto", None):
        det = rnnkit.AnomalyDetector(probation=400, steps=20, season=season, alarm=None)
        scores[season] = det.fit_detect(x)
    late = slice(2400, 2425)
    assert scores["auto"][late].max() > scores["auto"][400:2400].max()  # the highest
    assert scores["auto"][late].max() > scores[None][late].max()


def test_a_periodic_series_is_scored_by_its_better_predictor():
    # a clean square wave: the network cannot time the jumps, the value a period earlier can;
    # chosen by its likelihood on the probationary values, it raises no alarm at the jumps
    rng = np.random.default_rng(1)
    t = np.arange(3000)
    x = np.where(t % 288 < 90, 5.0, 0.0) + 0.01 * rng.standard_normal(3000)
    det = rnnkit.AnomalyDetector(probation=600, steps=20, alarm=None)
    assert det.fit_detect(x)[600:].max() < 0.5
    det.set_params(season=None)
    assert det.fit_detect(x)[600:].max() > 0.5  # the network alone is surprised by them


def test_network_weight_scales_the_networks_part_alone(detector):
    det = copy.deepcopy(detector).set_params(season=None)  # the sine's period: no network
    x = _smooth(seed=5)
    x[700] += 5.0
    parts = det._parts(x)
    full = det.set_params(network_weight=1.0)._parts(x)
    assert full["network"].max() > 0  # a part that could differ
    np.testing.assert_allclose(parts["network"], 0.95 * full["network"])
    for name in full.keys() - {"network"}:  # the other parts as they were
        np.testing.assert_array_equal(parts[name], full[name])
    det.set_params(network_weight=0.95, level=False, range_check=None, alarm=None)
    weighted = det.detect(x)  # only the network's part left: the score is it, weighted
    pool = det.pool()
    np.testing.assert_allclose([pool.update("s", v) for v in x], weighted, atol=1e-12)
    np.testing.assert_allclose(weighted, 0.95 * det.set_params(network_weight=1.0).detect(x))


def test_alarm_damps_the_rest_period():
    alarm = Alarm(level=0.5, rest=2, damp=0.5)
    out = alarm.run(np.array([0.1, 0.6, 0.8, 0.8, 0.8, 0.4]))
    np.testing.assert_allclose(out, [0.1, 0.6, 0.4, 0.4, 0.8, 0.2])


def test_familiar_spike_alarms_are_halved_and_new_ones_are_not():
    head = np.sin(np.arange(100) / 5)  # range 2: -1 .. 1
    alarm = Alarm(level=0.4, rest=3, damp=0.5, familiar=Familiar(0.1, 0.5, head))
    values = np.zeros(60)
    scores = np.full(60, 0.1)
    for row, height in ((10, 10.0), (25, 10.0), (40, 7.0), (50, 0.0)):
        values[row] = height
        scores[row] = 0.6  # an alarm at each: three spikes, then a value without a jump
    beyond = np.arange(60) == 10  # the first spike is beyond the range so far
    out = alarm.run(scores, values, beyond)
    assert out[10] == 0.6  # new (and beyond the range): alarmed, remembered
    assert out[25] == 0.3  # the same height and jump again: familiar, halved
    assert out[40] == 0.6  # a spike of another height: new
    assert out[50] == 0.6  # no jump: not a spike, left alone
    np.testing.assert_allclose(out[[11, 26, 41]], 0.05)  # each began its rest period
    assert alarm.familiar is not None and alarm.familiar.count == 2  # the two new spikes
    with pytest.raises(ValueError, match="needs the values"):  # not zeros remembered
        alarm.run(scores)


def test_familiar_streams_as_it_detects_and_only_lowers_scores(detector):
    x = _smooth(2000, seed=7)
    x[[500, 800, 1100, 1400, 1700]] += 6.0  # the same spike, again and again
    det = copy.deepcopy(detector).set_params(familiar=0.1)
    scores = det.detect(x)
    before = det.set_params(familiar=None).detect(x)
    assert np.all(scores <= before)
    assert scores[800] < before[800]  # a spike like the first: halved
    assert scores[500] == before[500]  # the first one is new
    pool = det.set_params(familiar=0.1).pool()
    np.testing.assert_allclose([pool.update("s", v) for v in x], scores, atol=1e-9)
    assert det.memory_per_stream() == det.set_params(familiar=None).memory_per_stream() + (
        Familiar.nbytes(det.probation)
    )


def test_echo_is_an_ordinary_value_just_after_an_outlier():
    state = echo.new_state(500)
    for z in np.tile([1.0, -1.0], 250):  # the window: mean 0, sd 1
        assert not echo.step(state, float(z), 2.0, 3)  # no outlier before: no echo
    assert not echo.step(state, 9.0, 2.0, 3)  # the outlier itself is not ordinary
    found = [echo.step(state, 0.1, 2.0, 3) for _ in range(5)]
    assert found == [True, True, True, False, False]  # the 3 values after it (back=3)
    assert not echo.step(state, 9.0, 2.0, 3)
    assert not echo.step(state, 1.5, 2.0, 3)  # beyond half of 2 sds: not ordinary
    assert echo.step(state, -0.5, 2.0, 3)


def _ar1(n: int = 2000, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n)
    x = np.zeros(n)
    for t in range(1, n):
        x[t] = 0.8 * x[t - 1] + e[t]
    return x


def test_echo_halves_the_networks_alarms_after_an_outlier_and_streams_as_it_detects():
    x = _ar1()
    x[[1000, 1400]] += 12.0  # outliers; the network is surprised after them too
    det = rnnkit.AnomalyDetector(probation=200, steps=40, seed=0, echo=None).fit(x)
    before = det.detect(x)
    scores = det.set_params(echo=2.0).detect(x)
    assert np.all(scores <= before)
    changed = np.flatnonzero(scores != before)
    assert changed.size and set(changed) <= {1001, 1002, 1003, 1401, 1402, 1403}
    np.testing.assert_allclose(scores[changed], before[changed] * 0.5)
    pool = det.pool()
    np.testing.assert_allclose([pool.update("s", v) for v in x], scores, rtol=0, atol=1e-9)
    assert det.memory_per_stream() == det.set_params(echo=None).memory_per_stream() + (
        echo.nbytes(det.probation)
    )
    # no alarms, nothing to halve: no memory for it either
    off = rnnkit.AnomalyDetector(alarm=None, echo=None).memory_per_stream()
    assert rnnkit.AnomalyDetector(alarm=None).memory_per_stream() == off


def test_small_is_a_change_within_the_limit_of_the_window_mean():
    state = recent_level.new_state(10)
    assert not recent_level.small(state, 0.0, 1.0)  # an empty window: no mean yet
    lik = likelihood.new_state(3, 10)
    for z in (1.0, 3.0):
        recent_level.step(state, lik, z, 3, 10, 100)  # joins the window: mean 2
    assert recent_level.small(state, 2.9, 1.0) and recent_level.small(state, 1.1, 1.0)
    assert not recent_level.small(state, 3.0, 1.0) and not recent_level.small(state, 2.0, -1.0)


def test_resolution_halves_the_recent_levels_alarms_at_a_change_small_beside_the_range():
    x = _ar1(seed=5)
    x[300] += 60.0  # one huge spike: the range so far is large from here on
    x[1200:] += 12.0  # then a level shift that stays, a fifth of that range
    det = rnnkit.AnomalyDetector(probation=200, steps=40, seed=0, resolution=None).fit(x)
    before = det.detect(x)
    scores = det.set_params(resolution=0.3).detect(x)
    assert before[300] == scores[300] == 1.0  # the range check is left alone
    assert scores[1202] < det.alarm <= before[1202]  # the shift's alarm is halved
    pool = det.pool()
    np.testing.assert_allclose([pool.update("s", v) for v in x], scores, rtol=0, atol=1e-9)
    assert det.memory_per_stream() == det.set_params(resolution=None).memory_per_stream()
    assert np.array_equal(det.set_params(resolution=0.01).detect(x), before)  # none so small


def test_network_resolution_halves_the_networks_alarms_at_a_small_change():
    x = _ar1(seed=5)
    x[300] += 60.0  # one huge spike: the range so far is large from here on
    x[[800, 1300]] += 8.0  # outliers a seventh of that range from the recent mean
    det = rnnkit.AnomalyDetector(probation=200, steps=40, seed=0, echo=None, resolution=None)
    det.set_params(network_resolution=None).fit(x)
    parts = det._parts(x)
    before = det.detect(x)
    scores = det.set_params(network_resolution=0.2).detect(x)
    after = det._parts(x)
    net = parts["network"]
    halved = np.flatnonzero(after["network"] != net)
    assert halved.size and np.all(net[halved] >= det.alarm)  # only its alarms, ...
    np.testing.assert_allclose(after["network"][halved], net[halved] * 0.5)  # ... halved
    assert np.array_equal(after["level"], parts["level"])  # the other parts left alone
    assert not np.array_equal(scores, before)
    pool = det.pool()
    np.testing.assert_allclose([pool.update("s", v) for v in x], scores, rtol=0, atol=1e-9)
    # with resolution too, and without a recent level (nothing to judge the change by)
    det.set_params(resolution=0.2)
    pool = det.pool()
    np.testing.assert_allclose([pool.update("s", v) for v in x], det.detect(x), atol=1e-9)
    det.set_params(level=False)
    assert np.array_equal(det.detect(x), det.set_params(network_resolution=None).detect(x))


def test_familiar_holds_no_memory_without_alarms():
    # with alarm=None no Alarm remembers spikes (`_alarm`), so none is counted per stream
    off = rnnkit.AnomalyDetector(alarm=None, familiar=None).memory_per_stream()
    assert rnnkit.AnomalyDetector(alarm=None).memory_per_stream() == off


def test_detector_save_load_round_trip(detector, tmp_path):
    path = tmp_path / "det.safetensors"
    rnnkit.save(detector, path)
    back = rnnkit.load(path)
    x = _smooth(seed=5)
    np.testing.assert_array_equal(back.detect(x), detector.detect(x))


def test_checkpoint_from_before_level_and_transform_loads_as_it_scored(detector, tmp_path):
    old = {
        "level": False,
        "transform": None,
        "learn_every": 0,
        "surprise": "mixture",
        "level_log": False,
        "season_rise": False,
        "network_weight": 1.0,
        "familiar": None,
        "familiar_jump": 0.5,
        "echo": None,
        "resolution": None,
        "network_resolution": None,
    }
    meta = detector._metadata()
    for name in old:  # written before these parameters
        del meta["params"][name]
    path = tmp_path / "old.safetensors"
    rnnkit.save(detector.model_, path, metadata=meta)
    back = rnnkit.load(path)
    assert back.get_params() == {**detector.get_params(), **old}
    new = {"level": True, "transform": "auto", "surprise": "members", "level_log": True}
    new["season_rise"] = True
    new["network_weight"] = 0.95
    new["familiar"] = 0.1
    before = rnnkit.load(tmp_path / "old.safetensors").set_params(**new)
    x = _smooth(seed=5)
    x[700] += 5.0
    assert not np.array_equal(back.detect(x), before.detect(x))  # the parameters matter


def test_detector_bad_input():
    with pytest.raises(rnnkit.NotFittedError):
        rnnkit.AnomalyDetector().detect(np.zeros(10))
    with pytest.raises(InputError, match="value 3 is nan"):
        rnnkit.AnomalyDetector(probation=20).fit([0.0, 1.0, 2.0, math.nan] + [1.0] * 30)
    with pytest.raises(InputError, match="probation must be"):
        rnnkit.AnomalyDetector(probation=3).fit(np.zeros(100))
    with pytest.raises(InputError, match="season 150 is longer than half"):
        rnnkit.AnomalyDetector(probation=200, season=150).fit(np.zeros(300))
    with pytest.raises(InputError, match="season must be"):
        rnnkit.AnomalyDetector(season="weekly").fit(np.zeros(800))
    with pytest.raises(InputError, match=r"alarm must be in \(0, 1\]"):
        rnnkit.AnomalyDetector(alarm=2.0).fit(np.zeros(800))
    with pytest.raises(InputError, match="rest must be"):
        rnnkit.AnomalyDetector(rest=-1).fit(np.zeros(800))
    with pytest.raises(InputError, match="level must be True or False"):
        rnnkit.AnomalyDetector(level="yes").fit(np.zeros(800))
    with pytest.raises(InputError, match="transform must be 'auto' or None"):
        rnnkit.AnomalyDetector(transform="boxcox").fit(np.zeros(800))
    with pytest.raises(InputError, match="surprise must be 'members' or 'mixture', got 'median'"):
        rnnkit.AnomalyDetector(surprise="median").fit(np.zeros(800))
    with pytest.raises(InputError, match="level_log must be True or False"):
        rnnkit.AnomalyDetector(level_log=1).fit(np.zeros(800))
    with pytest.raises(InputError, match="season_rise must be True or False"):
        rnnkit.AnomalyDetector(season_rise="yes").fit(np.zeros(800))
    with pytest.raises(InputError, match=r"network_weight must be in \(0, 1\], got 0"):
        rnnkit.AnomalyDetector(network_weight=0).fit(np.zeros(800))
    with pytest.raises(InputError, match="echo must be a positive number of standard deviations"):
        rnnkit.AnomalyDetector(echo=-1.0).fit(np.zeros(800))
    with pytest.raises(InputError, match="resolution must be a positive share of the range"):
        rnnkit.AnomalyDetector(resolution=0).fit(np.zeros(800))
    with pytest.raises(InputError, match="network_resolution must be a positive share"):
        rnnkit.AnomalyDetector(network_resolution="fine").fit(np.zeros(800))


def _bursty(n: int = 1500, seed: int = 0) -> np.ndarray:
    """Counts with multiplicative bursts (as tweet volumes): noise proportional to the level."""
    rng = np.random.default_rng(seed)
    level = 20 * np.exp(0.8 * np.sin(2 * np.pi * np.arange(n) / 97) + 0.4 * rng.standard_normal(n))
    return np.round(level)


def test_log_is_chosen_for_multiplicative_counts_only():
    from rnnkit.estimators.anomaly import log_fits_better

    assert log_fits_better(_bursty())
    assert not log_fits_better(_smooth())  # negative values: never the log
    assert not log_fits_better(_smooth() + 5.0)  # additive noise: the values as they are
    assert not log_fits_better(np.full(300, 3.0))  # flat


def test_log_transform_streams_as_it_detects_and_can_be_turned_off():
    x = _bursty(seed=1)
    x[1200] = 4 * x[1100:1200].max()  # a burst beyond the range so far
    x[1300] = 0.0
    det = rnnkit.AnomalyDetector(probation=300, steps=20, seed=0).fit(x)  # transform="auto"
    batch = det.detect(x)
    pool = det.pool()
    assert pool.update("s", x[0]) == 0.0
    streamed = [0.0] + [pool.update("s", v) for v in x[1:]]
    assert pool._streams["s"].log  # the stream reads log(1 + x)
    np.testing.assert_allclose(streamed, batch, rtol=0, atol=1e-9)
    assert batch[1200] == 1.0  # the range check is on the values as they came
    off = rnnkit.AnomalyDetector(probation=300, steps=20, seed=0, transform=None).fit(x)
    assert not np.allclose(off.detect(x), batch)
    pool_off = off.pool()
    for v in x[:301]:
        pool_off.update("s", v)
    assert not pool_off._streams["s"].log


# -- rnnkit detect -----------------------------------------------------------------------------
def _write_csv(path: Path, values: np.ndarray, header: str = "timestamp,value") -> Path:
    ts = _times(values.size)
    lines = [header] + [
        f"{str(t).replace('T', ' ')},{v:.6f}" for t, v in zip(ts, values, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_csv_end_to_end_and_stream_equals_csv(tmp_path, capsys):
    x = _smooth(400, seed=6)
    x[330] += 3.0
    src = _write_csv(tmp_path / "series.csv", x)
    out, png = tmp_path / "scores.csv", tmp_path / "scores.png"
    args = ["detect", "--csv", str(src), "--out", str(out), "--plot", str(png)]
    assert main([*args, "--probation", "100", "--json"]) == 0
    rows = out.read_text().splitlines()
    assert rows[0] == "timestamp,value,anomaly_score" and len(rows) == 401
    scores = np.array([float(r.split(",")[2]) for r in rows[1:]])
    assert np.argmax(scores) == 330 and np.all(scores[:100] == 0)
    assert png.read_bytes().startswith(b"\x89PNG")
    assert '"rows": 400' in capsys.readouterr().out.splitlines()[-1]
    # the same file line by line through --stream (fitted the same way, on the same rows)
    scorer = LineScorer(100, {"seed": 0})
    lines = src.read_text().splitlines()
    answers = [scorer.handle(line) for line in lines]
    assert answers[0] is None  # the header
    streamed = np.array([float(a.split(",")[2]) for a in answers[1:]])
    np.testing.assert_allclose(streamed, scores, atol=1e-8)
    # a second run replaces its own output; a file that is not rnnkit's is refused
    assert main([*args, "--probation", "100"]) == 0
    (tmp_path / "mine.csv").write_text("precious\n")
    assert main(["detect", "--csv", str(src), "--out", str(tmp_path / "mine.csv")]) == 2
    assert (tmp_path / "mine.csv").read_text() == "precious\n"


def test_cli_learn_every_keeps_learning_after_the_probation(tmp_path, capsys):
    x = _smooth(600, seed=6)
    src = _write_csv(tmp_path / "series.csv", x)
    scores = {}
    for every in ("0", "150"):
        out = tmp_path / f"scores-{every}.csv"
        args = ["detect", "--csv", str(src), "--out", str(out), "--probation", "100"]
        assert main([*args, "--learn-every", every]) == 0
        rows = out.read_text().splitlines()[1:]
        scores[every] = np.array([float(r.split(",")[2]) for r in rows])
    assert np.array_equal(scores["0"][:251], scores["150"][:251])  # first update after row 249
    assert not np.array_equal(scores["0"][251:], scores["150"][251:])
    bad = ["detect", "--csv", str(src), "--out", str(tmp_path / "b.csv"), "--learn-every", "-1"]
    assert main(bad) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("--learn-every: expected 0 (fixed) or a positive row count, got -1")


def test_cli_stream_answers_each_line_at_once(tmp_path):
    x = _smooth(120, seed=7)
    text = "".join(f"{k},{v:.5f}\n" for k, v in enumerate(x))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnkit.cli", "detect", "--stream", "--probation", "100"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(SRC), "OPENBLAS_THREAD_TIMEOUT": "4", "PATH": "/usr/bin:/bin"},
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("0,1.5\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "0,1.5,0\n"  # before the input ends
    out, err = proc.communicate(text)  # its first line repeats timestamp 0
    assert proc.returncode == 2 and out == ""
    assert "line 2" in err and "repeats" in err


@pytest.mark.parametrize(
    "content, message",
    [
        ("time,value\n2020-01-01 00:00:00,1\n", "no column 'timestamp'"),
        ("timestamp,value\n2020-01-01 00:00:00,abc\n", "row 2, column 'value': expected a finite"),
        ("timestamp,value\n2020-01-01 00:00:00,NaN\n", "row 2, column 'value'"),
        (
            "timestamp,value\n2020-01-01 00:05:00,1\n2020-01-01 00:00:00,2\n",
            "row 3, column 'timestamp': timestamp '2020-01-01 00:00:00' comes before",
        ),
        ("timestamp,value\n2020-01-01 00:05:00,1\n2020-01-01 00:05:00,2\n", "row 3.*repeats"),
        ("timestamp,value\nyesterday,1\n", "row 2, column 'timestamp': expected a timestamp"),
    ],
)
def test_cli_bad_csv_is_one_line_naming_file_row_column(tmp_path, capsys, content, message):
    src = tmp_path / "bad.csv"
    src.write_text(content)
    assert main(["detect", "--csv", str(src), "--out", str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.csv" in err
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "s.csv").exists()


def test_cli_time_order_file_scores_repeats_in_file_order(tmp_path, capsys):
    # NAB's files repeat an hour where daylight saving time ends: strict refuses them, naming
    # the way out; --time-order file scores every row as it comes, the same numbers as the
    # values under timestamps that do increase, in batch and in --stream
    x = _smooth(300, seed=8)
    plain = _write_csv(tmp_path / "plain.csv", x)
    lines = plain.read_text().splitlines()
    lines[201] = lines[200].split(",")[0] + "," + lines[201].split(",")[1]  # a repeat
    lines[202] = lines[150].split(",")[0] + "," + lines[202].split(",")[1]  # a step back
    src = tmp_path / "dst.csv"
    src.write_text("\n".join(lines) + "\n")
    base = ["--probation", "100", "--out"]
    assert main(["detect", "--csv", str(src), *base, str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "row 202" in err and "repeats" in err and "--time-order file" in err
    assert not (tmp_path / "s.csv").exists()
    out = tmp_path / "file.csv"
    assert main(["detect", "--csv", str(src), *base, str(out), "--time-order", "file"]) == 0
    rows = out.read_text().splitlines()
    assert [r.rsplit(",", 1)[0] for r in rows] == lines  # every row, as it was written
    ref = tmp_path / "ref.csv"
    assert main(["detect", "--csv", str(plain), *base, str(ref)]) == 0
    got = [r.rsplit(",", 1)[1] for r in rows[1:]]
    assert got == [r.rsplit(",", 1)[1] for r in ref.read_text().splitlines()[1:]]
    scorer = LineScorer(100, {"seed": 0}, "file")
    streamed = [scorer.handle(line) for line in lines]
    assert [a.rsplit(",", 1)[1] for a in streamed[1:] if a] == got
    with pytest.raises(InputError, match="stdin line 202.*repeats"):
        strict = LineScorer(100, {"seed": 0})
        for line in lines:
            strict.handle(line)


def test_stream_bad_line_names_the_line():
    scorer = LineScorer(100)
    assert scorer.handle("timestamp,value\n") is None
    assert scorer.handle("1,2.0\n") is not None
    with pytest.raises(InputError, match="stdin line 3, column 'value'"):
        scorer.handle("2,nan\n")
    with pytest.raises(InputError, match="stdin line 4: expected 2"):
        scorer.handle("3,1,2\n")


def test_stream_many_series_share_one_pool():
    scorer = LineScorer(20, {"steps": 5})  # the default: the network fixed, shared
    rng = np.random.default_rng(0)
    for k in range(60):
        for sid in ("a", "b"):
            assert scorer.handle(f"{sid},{k},{rng.standard_normal():.4f}\n") is not None
    assert len(scorer.pool) == 2 and scorer.pool._pool is not None
    assert len(scorer.pool._pool) == 2  # both series in the one StreamPool
    learning = LineScorer(20, {"steps": 5, "learn_every": 30})  # each series its own network
    for k in range(60):
        for sid in ("a", "b"):
            assert learning.handle(f"{sid},{k},{rng.standard_normal():.4f}\n") is not None
    own = [learning.pool._streams[sid].own for sid in ("a", "b")]
    assert own[0] is not None and own[1] is not None and own[0].model is not own[1].model


def test_lstm_detector_streams_as_it_detects():
    x = _smooth(500, seed=8)
    det = rnnkit.AnomalyDetector(cell="lstm", probation=100, steps=5, seed=0).fit(x)
    pool = det.pool()
    streamed = np.array([pool.update(7, v) for v in x])
    np.testing.assert_allclose(streamed, det.detect(x), atol=1e-9)


# -- an ensemble of small networks (members) ---------------------------------------------------
def test_members_are_independent_networks_in_one_stack():
    from rnnkit.estimators.anomaly import _train
    from rnnkit.models.predictive import NextValueModel

    z = _smooth(300)
    x = z[:, None, None]
    big = NextValueModel("gru", 6, seed=3, members=3)
    spawned = np.random.SeedSequence(3).spawn(3)
    seeds = [3] + [int(s.generate_state(1)[0]) for s in spawned[1:]]
    singles = [NextValueModel("gru", 6, seed=s) for s in seeds]
    out, _ = big.stream_forward(x)  # (T, 1, 6): d_1..d_3, s_1..s_3
    for k, m in enumerate(singles):
        own, _ = m.stream_forward(x)
        np.testing.assert_allclose(out[..., [k, 3 + k]], own, atol=1e-12)
    masks = big.block_masks()
    _train(big, [z], 5, 1e-2, 64)
    params = {**big.rnn.params, "head.weight": big.head.params["weight"]}
    for key, mask in masks.items():  # nothing flows across members, however trained
        assert np.all(params[key][mask == 0] == 0), key
        assert np.any(params[key][mask == 1] != 0), key
    assert big.config.hidden_size == 6 and big.config.members == 3


def test_members_prediction_is_the_moment_matched_mixture():
    from rnnkit.models.predictive import NextValueModel

    out = np.array([[0.1, 0.3, math.log(0.5), math.log(1.5)]])  # d = 0.1, 0.3; var = 0.5, 1.5
    mean, var = NextValueModel.gaussian(np.array([[2.0]]), out)
    assert mean[0] == pytest.approx(2.2)
    assert var[0] == pytest.approx(1.0 + 0.01)  # the mean variance + the spread of the means
    one, var1 = NextValueModel.gaussian(np.array([[2.0]]), out[:, [0, 2]])
    assert one[0] == pytest.approx(2.1) and var1[0] == pytest.approx(0.5)


def test_members_stream_as_they_detect_and_round_trip(tmp_path):
    x = _smooth(seed=6)
    x[800] += 1.5
    det = rnnkit.AnomalyDetector(probation=200, steps=10, members=2, hidden_size=8, seed=0)
    batch = det.fit_detect(x)
    pool = det.pool()
    streamed = np.array([pool.update("s", v) for v in x])
    np.testing.assert_allclose(streamed, batch, rtol=0, atol=1e-9)
    path = tmp_path / "ens.safetensors"
    rnnkit.save(det, path)
    np.testing.assert_array_equal(rnnkit.load(path).detect(x), batch)
    single = rnnkit.AnomalyDetector(probation=200, hidden_size=8, members=1, learn_every=0)
    fixed = rnnkit.AnomalyDetector(**{**det.get_params(), "learn_every": 0})
    # 8 more numbers of state; each member's own prediction, a mean and a variance (members)
    assert fixed.memory_per_stream() == single.memory_per_stream() + 8 * (8 + 2 * 2)


def test_members_surprise_is_the_mean_of_each_members_own():
    from rnnkit.estimators.anomaly import _member_gaussians, _member_surprise

    out = np.array([[0.1, 0.3, math.log(0.5), math.log(1.5)]])  # d = 0.1, 0.3; var = 0.5, 1.5
    means, variances = _member_gaussians(np.array([2.0]), out)
    raw = _member_surprise(np.array([[3.0]]), means, variances)
    own = [math.log1p(0.9**2 / 0.5), math.log1p(0.7**2 / 1.5)]
    assert raw[0] == pytest.approx(np.mean(own))
    mixture, var = rnnkit.models.predictive.NextValueModel.gaussian(np.array([[2.0]]), out)
    assert raw[0] != pytest.approx(math.log1p((3.0 - mixture[0]) ** 2 / var[0]))
    # on a series: a different score from the mixture's, and a stream steps as detect does
    x = _smooth(seed=6)
    x[800] += 1.5
    det = rnnkit.AnomalyDetector(probation=200, steps=10, members=3, seed=0, season=None)
    det.fit(x)  # the network's surprise alone (not the sine's seasonal difference)
    scores = {how: det.set_params(surprise=how).detect(x) for how in ("mixture", "members")}
    assert not np.allclose(scores["members"], scores["mixture"], atol=1e-6)
    for how, batch in scores.items():
        pool = det.set_params(surprise=how).pool()
        streamed = np.array([pool.update("s", v) for v in x])
        np.testing.assert_allclose(streamed, batch, rtol=0, atol=1e-9)
        assert (pool._streams["s"].means is None) == (how == "mixture")


def test_regressor_and_next_value_model_share_their_construction():
    from rnnkit.models import SequenceRegressor
    from rnnkit.models.predictive import NextValueModel

    a = SequenceRegressor("gru", 1, 8, 2, seed=11, dtype="float64")
    b = NextValueModel("gru", 8, seed=11)
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[key])
    with pytest.raises(InputError, match="NextValueModel: unknown cell 'tcn'"):
        NextValueModel("tcn", 8)
    with pytest.raises(InputError, match="SequenceRegressor: unknown cell 'tcn'"):
        SequenceRegressor("tcn", 1, 8, 2)


def test_a_level_shift_inside_the_range_is_found_by_the_recent_level():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(2000)
    x[400] = 12.0  # an early spike: the range check will not see the shift below
    x[1200:] += 4.0  # a level shift the one-step network follows at once
    scores = {}
    for level in (True, False):
        det = rnnkit.AnomalyDetector(probation=300, steps=20, seed=0, level=level, alarm=None)
        scores[level] = det.fit(x).detect(x)
    quiet = scores[True][500:1200].max()  # the same for both: the level is steady there
    assert scores[False][500:1200].max() == pytest.approx(quiet)
    assert scores[True][1200:1210].max() > 0.5 > 2 * quiet  # the shift stands out
    assert scores[False][1200:1210].max() < 0.4  # the network alone: a blip, then nothing
    assert scores[False][1205:1212].max() < quiet < scores[True][1205:1212].min()  # it lasts
    pool = rnnkit.AnomalyDetector(probation=300, steps=20, seed=0, alarm=None).fit(x).pool()
    streamed = [pool.update("s", v) for v in x]
    np.testing.assert_allclose(streamed, scores[True], rtol=0, atol=1e-9)


def test_a_level_shift_of_bursty_counts_is_found_by_the_recent_level_on_the_log_scale():
    rng = np.random.default_rng(0)
    x = rng.poisson(3.0, 2400).astype(float)
    x[rng.random(2400) < 0.01] += 400.0  # rare bursts: the spread of the values as they came
    x[1500:] = rng.poisson(30.0, 900) + np.where(rng.random(900) < 0.01, 400.0, 0.0)
    scores = {}
    for level_log in (True, False):
        det = rnnkit.AnomalyDetector(probation=400, steps=20, seed=0, alarm=None)
        scores[level_log] = det.set_params(level_log=level_log).fit_detect(x)
    shift = slice(1500, 1520)  # 3 to 30: small beside the bursts, large on the log scale
    assert scores[True][shift].max() > 2 * scores[False][shift].max()
    pool = det.set_params(level_log=True).pool()
    streamed = [pool.update("s", v) for v in x]
    assert pool._streams["s"].log and pool._streams["s"].loglevel is not None
    np.testing.assert_allclose(streamed, scores[True], rtol=0, atol=1e-9)
    off = rnnkit.AnomalyDetector(probation=400, steps=20, seed=0, alarm=None, transform=None)
    assert off.memory_per_stream() < det.memory_per_stream()  # "auto": counts it, at most
    parts = det._parts(x)  # the parts of the score, the largest taken (no alarm's rest here)
    assert {"network", "level", "level_log", "range"} <= set(parts)
    raw = np.maximum.reduce([v for k, v in parts.items() if k != "range"])
    raw[parts["range"] > 0] = 1.0
    np.testing.assert_array_equal(raw, scores[True][400:])


# -- online learning (learn_every) --------------------------------------------------------------
def _with(detector: rnnkit.AnomalyDetector, every: int, **params: Any) -> rnnkit.AnomalyDetector:
    """The fitted ``detector`` whose network keeps learning every ``every`` values."""
    det = rnnkit.AnomalyDetector(**{**detector.get_params(), "learn_every": every, **params})
    det.model_, det.losses_ = detector.model_, detector.losses_
    return det


def test_online_learning_streams_as_it_detects(detector):
    det = _with(detector, 100, season=None)  # the network's surprise alone, not the sine's
    before = {k: v.copy() for k, v in detector.model_.state_dict().items()}
    x = _smooth(seed=2)
    x[700] -= 2.0
    batch = det.detect(x)
    fixed = _with(detector, 0, season=None).detect(x)
    assert np.array_equal(batch[:301], fixed[:301])  # the first update is after row 299
    assert not np.allclose(batch[301:], fixed[301:], atol=1e-6)  # then it did learn
    pool = det.pool()
    streamed = np.array([pool.update("s", v) for v in x])
    np.testing.assert_allclose(streamed, batch, rtol=0, atol=1e-9)
    y = np.abs(_smooth(seed=3)) * 40 + 1  # two series, one on the log scale, stepped together
    both = [pool.update_many({"x2": a, "y": b}) for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose([d["x2"] for d in both], batch, atol=1e-9)
    np.testing.assert_allclose([d["y"] for d in both], det.detect(y), atol=1e-9)
    for key, value in det.model_.state_dict().items():  # each stream learns on its own copy
        np.testing.assert_array_equal(value, before[key])


def test_online_learning_is_causal(detector):
    det = _with(detector, 100)
    x = _smooth(seed=6)
    scores = det.detect(x)
    for r in (299, 300, 301, 650):  # around an update (after rows 299, 399, ...) and between
        y = x.copy()
        y[r:] += np.linspace(1.0, 3.0, y.size - r)  # a different future from row r on
        changed = det.detect(y)
        np.testing.assert_array_equal(changed[:r], scores[:r])  # scored before it came
        assert changed[r:].max() > scores[r:].max() or changed[r] != scores[r]


def test_online_learning_memory_is_constant(detector):
    det = _with(detector, 100)
    pool = det.pool()
    held = []
    for k, v in enumerate(_smooth(3000, seed=4)):
        pool.update("s", v)
        if k in (500, 2999):
            st = pool._streams["s"]
            arrays = [st.recent, st.lik, st.slik, st.season, st.level, st.llik]
            arrays += list(st.learner.model.state_dict().values())
            arrays += list(st.learner.opt.buffers.values())
            held.append(sum(a.nbytes for a in arrays))
    assert held[0] == held[1]
    params = det.model_.num_parameters()
    extra = det.memory_per_stream() - _with(detector, 0).memory_per_stream()
    assert extra == 8 * (4 * params + det.probation + 1)  # weights, grads, 2 moments, ring


def test_cli_detector_options_reach_the_detector(tmp_path, monkeypatch):
    import rnnkit.tasks.detect as detect_task

    made: list[dict] = []

    class Spy(rnnkit.AnomalyDetector):
        def __init__(self, **params) -> None:
            made.append(params)
            super().__init__(**params)

    monkeypatch.setattr(detect_task, "AnomalyDetector", Spy)
    src = _write_csv(tmp_path / "series.csv", _smooth(200, seed=6))
    args = ["detect", "--csv", str(src), "--out", str(tmp_path / "s.csv"), "--probation", "100"]
    assert main([*args, "--steps", "2"]) == 0  # the defaults are the detector's own
    defaults = rnnkit.AnomalyDetector().get_params()
    given_params = {k: v for k, v in made[-1].items() if k not in ("probation", "steps")}
    assert {"surprise", "level_log", "season_rise", "network_weight"} <= set(given_params)
    assert given_params == {k: defaults[k] for k in given_params}
    given = ["--network-weight", "0.5", "--surprise", "mixture", "--no-level-log"]
    given += ["--no-season-rise", "--season", "12", "--transform", "none", "--range-check", "off"]
    given += ["--alarm", "off", "--rest", "7", "--members", "2", "--hidden", "4", "--steps", "3"]
    given += ["--familiar", "0.2", "--familiar-jump", "0.3", "--echo", "3"]
    given += ["--resolution", "0.25", "--network-resolution", "0.04"]
    assert main([*args, *given]) == 0
    expected = dict(network_weight=0.5, surprise="mixture", level_log=False, season_rise=False)
    expected |= dict(season=12, transform=None, range_check=None, alarm=None, rest=7)
    expected |= dict(members=2, hidden_size=4, steps=3, level=True, probation=100)
    expected |= dict(familiar=0.2, familiar_jump=0.3, echo=3.0, resolution=0.25)
    expected |= dict(network_resolution=0.04)
    assert {k: made[-1][k] for k in expected} == expected
    # and the streamed path takes them too
    scorer = detect_task.LineScorer(100, {"network_weight": 0.5, "level": False})
    assert scorer.pool.detector.network_weight == 0.5 and scorer.pool.detector.level is False
