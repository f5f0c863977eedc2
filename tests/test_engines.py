"""Many series on Ray or Dask (`rnnkit.engines`): the same numbers as local, in input order,
each worker loading the model once; the errors of a bad engine, worker count or missing extra.

Ray and Dask run on loopback with 2 workers each, started once for the module (the engine's
own `start_ray` and `start_dask`) and shut down after it.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from rnnkit import AnomalyDetector, Forecaster, engines
from rnnkit.cli import main
from rnnkit.data.windows import as_series
from rnnkit.engines import Engine, map_partitions, partitions
from rnnkit.errors import InputError

H, S = 6, 12


# -- data and models -----------------------------------------------------------------------------
def _series(count: int, seed: int = 3) -> list[np.ndarray]:
    """Ragged noisy seasonal series, some shorter than the lookback (padded) or than 2H + 1."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 120, size=count)
    lengths[-1] = 2 * H  # too short to train on: still forecast
    return [
        10 + np.sin(2 * np.pi * np.arange(n) / S + k) + 0.1 * rng.standard_normal(n)
        for k, n in enumerate(lengths)
    ]


@pytest.fixture(scope="module")
def forecaster() -> Forecaster:
    model = Forecaster(horizon=H, season=S, lookback=24, n_models=2, hidden_size=8, steps=3)
    return model.fit(_series(30, seed=1))


@pytest.fixture(scope="module")
def detector() -> tuple[AnomalyDetector, list[np.ndarray]]:
    rng = np.random.default_rng(5)
    streams = [
        np.sin(np.arange(n) / 7.0) + 0.2 * rng.standard_normal(n)
        for n in [*rng.integers(40, 400, size=7), 300, *rng.integers(40, 400, size=3)]
    ]
    streams[4] = streams[4][:30]  # shorter than the probationary period: all zeros
    streams[7][200] += 6.0  # a spike
    det = AnomalyDetector(probation=60, steps=5, long_window=200, warmup=20, seed=2)
    return det.fit([s for s in streams if s.size >= 60]), streams


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    engines.start_ray(2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def dask_cluster():
    cluster, client = engines.start_dask(2)
    yield cluster
    client.close()
    cluster.close()


def _forecasts(model: Forecaster, engine) -> tuple[np.ndarray, np.ndarray]:
    series, _ = as_series(_series(150), None, None, "predict")
    return model.forecast_series(series, (0.1, 0.9), engine)


def _where(model, part):
    """A partition's process and the identity of the model it was given (on a worker)."""
    return os.getpid(), id(model), part


# -- the engines against local -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["ray", "dask"])
def test_forecasts_on_an_engine_equal_local_exactly_in_input_order(
    kind, forecaster, request
) -> None:
    request.getfixturevalue(f"{kind}_cluster")
    point, quant = _forecasts(forecaster, "local")
    assert point.shape == (150, H) and quant.shape == (150, H, 2)
    assert len(partitions(150, 64)) == 3  # more than one partition, the last one short
    far_point, far_quant = _forecasts(forecaster, kind)
    assert np.array_equal(far_point, point) and np.array_equal(far_quant, quant)
    # input order: forecasts of the series reversed are the forecasts reversed (the partitions
    # differ then, so only to round-off)
    series, _ = as_series(_series(150)[::-1], None, None, "predict")
    back, _ = forecaster.forecast_series(series, (), kind)
    np.testing.assert_allclose(back[::-1], point, rtol=1e-5, atol=1e-6)
    assert not np.allclose(point[0], point[1])  # different series, different forecasts


@pytest.mark.parametrize("kind", ["ray", "dask"])
def test_predict_and_intervals_take_an_engine(kind, forecaster, request) -> None:
    request.getfixturevalue(f"{kind}_cluster")
    y = _series(70)
    assert np.array_equal(forecaster.predict(y, engine=kind), forecaster.predict(y))
    lo, hi = forecaster.predict_interval(y, 0.8, engine=Engine(kind))
    assert np.array_equal(lo, forecaster.predict_interval(y, 0.8)[0])
    assert np.all(lo <= hi)


@pytest.mark.parametrize("kind", ["ray", "dask"])
def test_anomaly_scores_on_an_engine_equal_local_exactly_in_input_order(
    kind, detector, request
) -> None:
    request.getfixturevalue(f"{kind}_cluster")
    det, streams = detector
    local = det.detect(streams)
    far = det.detect(streams, engine=kind)
    assert [s.size for s in far] == [s.size for s in streams]
    assert all(np.array_equal(a, b) for a, b in zip(far, local, strict=True))
    assert not np.any(far[4]) and np.any(far[7])  # too short to score; scored
    assert np.array_equal(det.detect(streams[7], engine=kind), local[7])  # a single series


@pytest.mark.parametrize("kind", ["ray", "dask"])
def test_each_worker_loads_the_model_once(kind, forecaster, request) -> None:
    request.getfixturevalue(f"{kind}_cluster")
    import cloudpickle

    picklers = [cloudpickle]
    if kind == "ray":
        import ray.cloudpickle

        picklers.append(ray.cloudpickle)
    for pickler in picklers:  # _where goes to the workers by value: they cannot import tests
        pickler.register_pickle_by_value(sys.modules[__name__])
    try:
        done = map_partitions(_where, forecaster, list(range(12)), kind)
    finally:
        for pickler in picklers:
            pickler.unregister_pickle_by_value(sys.modules[__name__])
    assert [d[2] for d in done] == list(range(12))  # results in the partitions' order
    pids = {pid for pid, _, _ in done}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    for pid in pids:  # one model object per worker process, whatever it scored
        assert len({model for p, model, _ in done if p == pid}) == 1


def test_dask_at_the_address_of_a_running_cluster(dask_cluster, forecaster, detector) -> None:
    at = Engine("dask", address=dask_cluster.scheduler_address)
    assert at.address.startswith("tcp://127.0.0.1:")
    assert np.array_equal(_forecasts(forecaster, at)[0], _forecasts(forecaster, "local")[0])
    det, streams = detector
    assert np.array_equal(det.detect(streams, at)[7], det.detect(streams)[7])


# -- the command line ----------------------------------------------------------------------------
def test_cli_forecast_and_detect_on_dask_write_the_local_files(
    tmp_path, forecaster, dask_cluster
) -> None:
    import rnnkit

    model = tmp_path / "f.safetensors"
    rnnkit.save(forecaster, model)
    rows = ["unique_id,ds,y"]
    for k, y in enumerate(_series(70)):
        rows += [f"s{k},{t + 1},{v:.6f}" for t, v in enumerate(y)]
    csv = tmp_path / "long.csv"
    csv.write_text("\n".join(rows) + "\n")
    det_csv = tmp_path / "nab.csv"
    rng = np.random.default_rng(0)
    det_rows = ["id,timestamp,value"] + [
        f"m{k},{t},{v:.5f}" for k in range(6) for t, v in enumerate(rng.standard_normal(120))
    ]
    det_csv.write_text("\n".join(det_rows) + "\n")
    outs = {}
    for kind in ("local", "dask"):
        extra = ["--engine", kind, "--engine-address", dask_cluster.scheduler_address]
        out, scores = tmp_path / f"{kind}.csv", tmp_path / f"{kind}-scores.csv"
        argv = ["forecast", str(model), "--csv", str(csv), "--out", str(out)]
        assert main(argv + (extra if kind == "dask" else [])) == 0
        argv = ["detect", "--csv", str(det_csv), "--id-column", "id", "--out", str(scores)]
        assert main([*argv, "--seed", "1", *(extra if kind == "dask" else [])]) == 0
        outs[kind] = (out.read_text(), scores.read_text())
    assert outs["dask"] == outs["local"]
    assert outs["local"][0].count("\n") == 1 + 70 * H


# -- errors --------------------------------------------------------------------------------------
def test_unknown_engine_and_bad_worker_counts_are_errors(forecaster) -> None:
    with pytest.raises(InputError, match="engine: expected one of local, ray, dask, got 'spark'"):
        forecaster.predict(_series(3), engine="spark")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="workers must be a positive integer"):
            Engine("ray", workers=bad)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="workers and address go with engine 'ray' or 'dask'"):
        Engine("local", workers=2)
    with pytest.raises(InputError, match="not both"):
        Engine("dask", workers=2, address="tcp://127.0.0.1:1")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--engine", "spark"], "argument --engine: invalid choice: 'spark'"),
        (["--engine", "ray", "--workers", "0"], "argument --workers: expected a positive"),
        (["--workers", "2"], "--workers: goes with --engine ray or dask"),
        (["--engine", "dask", "--workers", "2", "--engine-address", "tcp://127.0.0.1:1"], "own"),
    ],
)
def test_cli_engine_errors_are_one_line_with_status_2(tmp_path, capsys, argv, message) -> None:
    csv = tmp_path / "s.csv"
    csv.write_text("timestamp,value\n" + "".join(f"{t},{t % 7}\n" for t in range(100)))
    try:
        status = main(["detect", "--csv", str(csv), "--out", str(tmp_path / "o.csv"), *argv])
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2 and message in err
    assert err.strip().splitlines()[-1].count(message) == 1  # one line says it
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("kind, module", [("ray", "ray"), ("dask", "distributed")])
def test_a_missing_extra_is_one_line_naming_it(kind, module, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import ray` fails as if not installed
    with pytest.raises(engines.MissingExtra) as info:
        map_partitions(_where, None, [0], kind)
    name = {"ray": "Ray", "dask": "Dask"}[kind]
    assert str(info.value) == (
        f"engine {kind!r} needs {name}, which is not installed; pip install 'rnnkit[{kind}]'"
    )
