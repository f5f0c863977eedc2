# rnnkit: `make run` (main job) and `make test` on a fresh machine; nothing else is needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Same BLAS/OpenMP threads everywhere (the machine has 2 cores).
export OMP_NUM_THREADS ?= 2
export OPENBLAS_NUM_THREADS ?= 2
export MKL_NUM_THREADS ?= 2
# OpenBLAS's idle threads sleep at once instead of taking a core from rnnkit's time loops; it is
# read when NumPy loads OpenBLAS, so it must be in the environment (rnnkit.tune_process)
export OPENBLAS_THREAD_TIMEOUT ?= 4

.PHONY: run demo test lint typecheck parity eval-lm eval-lm-quick eval-quant eval-sentiment eval-sentiment-quick eval-forecast eval-forecast-quick eval-anomaly eval-anomaly-quick bench bench-quick bench-pool bench-serve bench-ctc bench-distributed bench-engines clean eval-music eval-music-quick eval-translate eval-translate-quick

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

## run: the main job: a character LSTM trained for 3 minutes on the built-in corpus (the
## Python standard library's source), then a generated sample
run: $(VENV)/.installed
	$(VENV)/bin/rnnkit train lm --minutes 3

## demo: RNN, GRU and LSTM on the adding problem (about 20 s): which one remembers?
demo: $(VENV)/.installed
	$(VENV)/bin/rnnkit demo

## test: lint (ruff, mypy), then the test suite
test: $(VENV)/.installed-test lint
	$(PY) -m pytest

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests scripts benchmarks
	$(VENV)/bin/ruff format --check src tests scripts benchmarks
	$(VENV)/bin/mypy

typecheck: $(VENV)/.installed-test
	$(VENV)/bin/mypy

## parity: worst relative error against torch.nn over 400 random configurations
parity: $(VENV)/.installed-test
	$(PY) scripts/parity_sweep.py --configs 400

# Every target writes its own files: a smoke test never replaces a full run's results.
## eval-lm: 15 minutes of rnnkit and 15 of PyTorch on Tiny Shakespeare, then throughput
eval-lm: $(VENV)/.installed-test
	$(PY) benchmarks/eval_lm.py --minutes 15 --out runs/eval

## eval-lm-quick: the same with a tiny model for seconds (a smoke test), into runs/eval-quick
eval-lm-quick: $(VENV)/.installed-test
	$(PY) benchmarks/eval_lm.py --quick --out runs/eval-quick

## eval-quant: int8 and bfloat16 weights: step latency, memory, and the validation loss of
## eval-lm's model (runs/eval/shakespeare.safetensors, never the quick run's)
eval-quant: $(VENV)/.installed-test
	$(PY) benchmarks/quantization.py --checkpoint runs/eval/shakespeare.safetensors --out runs/eval

## eval-sentiment: movie-review polarity, stratified 10-fold cross-validation: rnnkit's
## SequenceClassifier beside the same network in PyTorch, TF-IDF + logistic regression and
## Kim (2014)'s CNNs; accuracy and training throughput (about 20-25 minutes on this 2-core machine)
eval-sentiment: $(VENV)/.installed-test
	$(PY) benchmarks/eval_sentiment.py

## eval-sentiment-quick: the same on 300 snippets, 2 folds, 1 epoch (a smoke test)
eval-sentiment-quick: $(VENV)/.installed-test
	$(PY) benchmarks/eval_sentiment.py --quick

## eval-forecast: M4 Hourly (414 series, horizon 48): rnnkit's Forecaster (10 minutes of
## training) beside statsforecast's AutoETS and AutoTheta, the seasonal naive and naive-2, with
## M4's published numbers; sMAPE, MASE, OWA (about 20 minutes)
eval-forecast: $(VENV)/.installed-test
	$(PY) -m pip install --quiet -e '.[forecast]'
	$(PY) benchmarks/eval_forecast.py --minutes 10 --out runs/eval-forecast

## eval-forecast-quick: the same on 40 series, 1 minute of training (a smoke test)
eval-forecast-quick: $(VENV)/.installed-test
	$(PY) -m pip install --quiet -e '.[forecast]'
	$(PY) benchmarks/eval_forecast.py --quick --out runs/eval-forecast-quick
.PHONY: eval-speech eval-speech-quick eval-speech-voices
## eval-speech: spoken digits (FSDD): classification on the usual split, leave one speaker out
## beside the same network in PyTorch, CTC transcription of an unseen speaker's digit strings,
## live streaming latency (about 5 minutes on this 2-core machine when quiet)
eval-speech: $(VENV)/.installed-test
	$(PY) benchmarks/eval_speech.py

## eval-speech-quick: the same with 1 epoch each (a smoke test)
eval-speech-quick: $(VENV)/.installed-test
	$(PY) benchmarks/eval_speech.py --quick

## eval-speech-voices: leave one speaker out (ensembles of 3) and the offline transcriber with
## 20 synthetic voices (espeak-ng and flite: apt-get install espeak-ng flite) among the training
## speakers and, for the classifier, white noise at 15-40 dB SNR on every training recording
## and the features normalised per speaker (per-speaker CMVN, since 2026-12-06): the recipe
## adopted on the held-out training speaker (about 1.5 hours, 1 thread)
eval-speech-voices: $(VENV)/.installed-test
	test -f runs/voices/manifest.csv || $(VENV)/bin/rnnkit data voices --out runs/voices --voices 20 --takes 5 --seed 0
	EVAL_SPEECH_THREADS=1 $(PY) benchmarks/eval_speech.py --parts loso,transcribe --ensemble 3 \
	    --noise-snr 15,40 --speaker-norm cmvn \
	    --synthetic runs/voices --ctc-synthetic-strings 30 --ctc-bidirectional 1 --stream 0 \
	    --out runs/eval-speech-voices

## eval-anomaly: NAB (the files in ../shared/data/anomaly/nab/): rnnkit's AnomalyDetector and a
## windowed-Gaussian detector, three profiles, mean over seeds 0-4, throughput on one core, memory per stream (about 2-5 min)
eval-anomaly: $(VENV)/.installed-test
	$(PY) benchmarks/eval_anomaly.py --seeds 0,1,2,3,4 --out runs/eval-anomaly \
	    $(if $(NAB_RESULTS),--published $(NAB_RESULTS))

## eval-anomaly-quick: the same on 4 files with a short fit (a smoke test)
eval-anomaly-quick: $(VENV)/.installed-test
	$(PY) benchmarks/eval_anomaly.py --quick --out runs/eval-anomaly-quick

## eval-music: JSB Chorales against Chung et al. (2014): rnnkit's GRU, LSTM and tanh RNN at ~20k
## parameters, a larger GRU, the joint (NADE) output and the same GRU in PyTorch, one process
## each (about 15 minutes on this 2-core machine), into runs/eval-music
eval-music: $(VENV)/.installed-test
	$(PY) benchmarks/eval_music.py --out runs/eval-music

## eval-translate: English to French and English to German (../shared/data/translation): rnnkit's
## Seq2Seq with and without attention beside the same network in PyTorch, 20 minutes each,
## one thread each, the two compared models side by side on a core each; beam 5; test BLEU,
## chrF, training pairs/s (about 75 minutes on this 2-core machine)
eval-translate: $(VENV)/.installed-test
	$(PY) benchmarks/eval_translate.py --minutes 20 --threads 1 --parallel 2 --out runs/eval-translate

## eval-translate-quick: the same with a tiny model for seconds on eng-fra (a smoke test)
eval-translate-quick: $(VENV)/.installed-test
	$(PY) benchmarks/eval_translate.py --quick --out runs/eval-translate-quick

## eval-music-quick: the same runs for 2 epochs each (a smoke test), into runs/eval-music-quick
eval-music-quick: $(VENV)/.installed-test
	$(PY) benchmarks/eval_music.py --quick --out runs/eval-music-quick

## bench: rnnkit against PyTorch and ONNX Runtime (training, inference, streaming, memory)
bench: $(VENV)/.installed-test
	$(PY) benchmarks/bench.py

bench-quick: $(VENV)/.installed-test
	$(PY) benchmarks/bench.py --quick --out runs/bench-quick

## bench-pool: does stepping many streams as one batch (StreamPool) pay? (1 min)
bench-pool: $(VENV)/.installed-test
	$(PY) benchmarks/pool.py

## bench-engines: many series on Ray or Dask: series per second of local, ray x1/x2 and dask
## x1/x2, forecasting M4 Hourly and scoring NAB, startup apart (about 15 min), into runs/bench-engines
bench-engines: $(VENV)/.installed-test
	$(PY) -m pip install --quiet -e '.[ray,dask]'
	$(PY) benchmarks/bench_engines.py --out runs/bench-engines

## bench-serve: rnnkit serve on loopback: steps/s and p50/p99 latency at 1, 100 and 1,000
## streams of a 128-unit LSTM, against --no-batch and the FastAPI path, --no-front (about 10 minutes)
bench-serve: $(VENV)/.installed-test
	$(PY) benchmarks/bench_serve.py

## bench-ctc: rnnkit's CTC loss and gradient against PyTorch's, speech and digit-string sizes,
## 1 and 2 threads (a few minutes), into runs/bench-ctc
bench-ctc: $(VENV)/.installed-test
	$(PY) benchmarks/bench_ctc.py

## bench-distributed: 2 processes x 1 thread against 1 process x 2 threads, the all-reduce's
## share, 1-8 processes on loopback, the extrapolation to 8 and 64 machines (~10 min)
bench-distributed: $(VENV)/.installed-test
	$(PY) benchmarks/bench_distributed.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
	find src -name '*.nbi' -delete -o -name '*.nbc' -delete  # numba's compiled-kernel cache
