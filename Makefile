# Switchboard — the two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip
# numpy's BLAS must not spread the media tick's small matrix products over every core.
export OPENBLAS_NUM_THREADS ?= 1
# The Silero VAD model ships in silero-vad, whose own dependencies would pull torch: take the file only.
SILERO := silero-vad==6.2.3
# Embeddings (sentence-transformers) need torch: installed first, so that pip keeps this CPU build instead of
# pulling gigabytes of CUDA packages as a dependency.
TORCH := torch==2.13.0

.PHONY: run test install install-test lint bench-api bench-sip bench-v2v bench-media bench-knowledge bench-stt bench-tts clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	./scripts/install-system-deps.sh
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e .
	$(PIP) install -q --no-deps $(SILERO)
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	./scripts/install-system-deps.sh --test
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps $(SILERO)
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## Start the server on embedded defaults (embedded PostgreSQL, local voice).
run: install
	$(BIN)/switchboard serve

## Install everything the tests need and run the whole suite.
test: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench-api: install-test
	$(BIN)/python -m bench.api_load $(BENCH_ARGS)

## N concurrent TALKING sipp calls (G.711; a sentence, 4 s of listening, the next) against one worker, every
## process it starts counted as its CPU; frames on time, STT latency p50/p90. Other loads:
##   make bench-sip BENCH_ARGS="--calls 100 --seconds 30 --audio tone"      (callers that never speak)
##   make bench-sip BENCH_ARGS="--calls 200 --workers 2 --stt cloud"        (Deepgram-protocol stand-in, two workers)
bench-sip: install-test
	$(BIN)/python -m bench.sip_load $(BENCH_ARGS)

## Voice-to-voice at the caller of a real SIP call, ≥ 30 turns, cloud-like stand-ins (STT 150 ms, LLM 300 ms,
## TTS 100 ms); speculative replies, their waste and the cut-off rate: make bench-v2v BENCH_ARGS="--speculate-ms 0"
bench-v2v: install-test
	$(BIN)/python -m bench.v2v $(BENCH_ARGS)

# pipecat-ai (the comparison in bench-media) pins soxr and protobuf versions of its own: its own venv.
.venv-pipecat/bin/python:
	$(PYTHON) -m venv .venv-pipecat
	.venv-pipecat/bin/pip install -q pipecat-ai==1.14.0

bench-media: install-test .venv-pipecat/bin/python
	$(BIN)/python -m bench.media_tick $(BENCH_ARGS)

## Knowledge bases: ingestion chunks/s and query p50/p99 at 10,000 chunks, retrieval accuracy top-1/top-3.
bench-knowledge: install-test
	$(BIN)/python -m bench.knowledge $(BENCH_ARGS)

## Local recogniser on the demo phrases (2 espeak-ng voices x 130-190 wpm through G.711): WER, phrase accuracy,
## latency p50/p90, CPU per utterance, first call after start. make bench-stt BENCH_ARGS="--engines pocketsphinx"
bench-stt: install-test
	$(BIN)/python -m bench.stt $(BENCH_ARGS)

## Local voices (espeak-ng, flite kal16/slt/rms/awb, festival if installed) on 20 phone-agent sentences (249 words,
## bench/data/tts_sentences.txt) through 8 kHz G.711 and the local Whisper base: round-trip WER, time to first audio
## p50, CPU seconds per second of audio, real-time factor. make bench-tts BENCH_ARGS="--engines flite:kal16 --show"
bench-tts: install-test
	$(BIN)/python -m bench.tts $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-pipecat .pytest_cache
