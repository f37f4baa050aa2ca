# folk: open-vocabulary 3D instance segmentation for robots. `make help` lists the targets.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: help setup test test-fast lint format demo data data-heldout data-calib teacher train eval bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

setup:  ## create .venv and install everything (idempotent; seconds when nothing changed)
	bash scripts/setup.sh

test:  ## the whole test suite (lint included)
	$(PY) -m pytest

test-fast:  ## tests without the slow ones
	$(PY) -m pytest -m "not slow"

lint:  ## ruff
	$(VENV)/bin/ruff check .

format:  ## ruff's fixes and formatter
	$(VENV)/bin/ruff check --fix .

demo:  ## node + scene player over DDS on the embedded demo weights; prints and draws instances
	$(PY) -m folk_ros.demo --out out/demo

TRAIN_SCENES ?= 120
VAL_SCENES ?= 40

data:  ## synthetic ScanNet-layout dataset into data/synth (120 train + 40 val rooms, ~30 min)
	$(VENV)/bin/folk-synth --out data/synth --scenes $(TRAIN_SCENES) --seed 0 --split train --preview
	$(VENV)/bin/folk-synth --out data/synth --scenes $(VAL_SCENES) --seed 1 --split val --preview

HELDOUT_SCENES ?= 80

data-heldout:  ## 80 more held-out rooms into data/val_extra (seed 2; tighter novel-class AP, ~14 min)
	$(VENV)/bin/folk-synth --out data/val_extra --scenes $(HELDOUT_SCENES) --seed 2 --split val --first-index 2000

data-calib:  ## 30 calibration rooms into data/calib3 (seed 3; for choosing settings, ~6 min)
	$(VENV)/bin/folk-synth --out data/calib3 --scenes 30 --seed 3 --split val --first-index 3000

teacher:  ## 2D teacher embeddings for every scene of data/synth
	$(VENV)/bin/folk-teacher data/synth --out data/synth/teacher --config folk_model/folk_model/configs/teacher_offline.yaml --picture

train:  ## label-guided distillation of the student (the demo weights' recipe)
	$(VENV)/bin/folk-train --config folk_model/folk_model/configs/train_demo_offline.yaml

eval:  ## AP of student and teacher pipeline on the val scenes
	$(VENV)/bin/folk-eval --data-root data/synth --split val --weights folk_model/folk_model/weights/folk_demo_offline.pt --out out/eval

bench:  ## benchmarks (print figures)
	$(PY) bench/bench_student_vs_teacher.py
	$(PY) bench/bench_node.py

clean:  ## remove build outputs (keeps .venv and data)
	rm -rf build install log out .pytest_cache .ruff_cache
