# folk: open-vocabulary 3D instance segmentation for robots. `make help` lists the targets.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: help setup test test-fast lint format demo data data-dev2 data-dev3 data-dev4 data-test teacher train eval sweep report bench clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

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

TRAIN_SCENES ?= 300
DEV_SCENES ?= 20
TEST_SCENES ?= 24

data:  ## synthetic rooms: 300 train + 20 dev into data/synth (resumable, ~11 s a room: ~1 h)
	$(VENV)/bin/folk-synth --out data/synth --scenes $(TRAIN_SCENES) --seed 0 --split train --preview
	$(VENV)/bin/folk-synth --out data/synth --scenes $(DEV_SCENES) --seed 1 --split dev --preview

data-dev2:  ## 20 fresh dev rooms (seed 2, dev meshes) into data/dev2: confirm a choice made on dev rooms
	$(VENV)/bin/folk-synth --out data/dev2 --scenes 20 --seed 2 --split dev --first-index 2000

data-dev3:  ## 20 more fresh dev rooms (seed 3) into data/dev3: a second confirmation set
	$(VENV)/bin/folk-synth --out data/dev3 --scenes 20 --seed 3 --split dev --first-index 3000

data-dev4:  ## 20 more fresh dev rooms (seed 4): with dev..dev3, the label-score map's fit (make train)
	$(VENV)/bin/folk-synth --out data/dev4 --scenes 20 --seed 4 --split dev --first-index 4000

data-test:  ## 24 frozen test rooms (seed 5, test meshes only) into data/test; report only, never tune
	$(VENV)/bin/folk-synth --out data/test --scenes $(TEST_SCENES) --seed 5 --split test --preview

teacher:  ## 2D teacher embeddings for every training room of data/synth (resumable)
	$(VENV)/bin/folk-teacher data/synth --split train --out data/synth/teacher --config folk_model/folk_model/configs/teacher_offline.yaml --picture

STAGE3 := runs/demo_offline_stage3/student.pt
train:  ## the demo weights' whole recipe: 3 stages, dev-room choices, proposal refit, score map (make data-dev2 data-dev3 data-dev4 first)
	$(VENV)/bin/folk-train --config folk_model/folk_model/configs/train_demo_offline_stage1.yaml
	$(VENV)/bin/folk-train --config folk_model/folk_model/configs/train_demo_offline.yaml
	$(VENV)/bin/folk-train --config folk_model/folk_model/configs/train_demo_offline_stage3.yaml
	$(VENV)/bin/folk-calibrate --weights $(STAGE3) --data-root data/synth --split dev --out runs/calib --write
	$(VENV)/bin/folk-train --config folk_model/folk_model/configs/train_demo_offline_prop14.yaml
	$(PY) bench/sweep_proposals.py --data-root data/synth --split dev --weights runs/demo_offline_prop14/student.pt --write
	$(VENV)/bin/folk-calibrate --weights runs/demo_offline_prop14/student.pt --data-root data/synth data/dev2 data/dev3 data/dev4 --split dev --out runs/calib_map --keep-temperature --write
	@echo "runs/demo_offline_prop14/student.pt is the recipe's result (the shipped file's counterpart)"

WEIGHTS ?= folk_model/folk_model/weights/folk_demo_offline.pt

eval:  ## AP of student and teacher pipeline on the dev rooms (for choosing settings)
	$(VENV)/bin/folk-eval --data-root data/synth --split dev --weights $(WEIGHTS) --out out/eval_dev --gt-masks

sweep:  ## choose the proposal settings on dev rooms (clean scan, fused map, noisy map); refuses test
	$(PY) bench/sweep_proposals.py --data-root data/synth --split dev --weights $(WEIGHTS) --json out/sweep_proposals_dev.json

report:  ## a release's figures on the frozen test rooms (make data-test first); never tune on them
	$(VENV)/bin/folk-eval --data-root data/test --split test --weights $(WEIGHTS) --out out/eval_test --gt-masks --bootstrap 2000
	$(PY) bench/bench_online.py --data-root data/test --split test --weights $(WEIGHTS) --json out/online_test.json
	$(PY) bench/bench_robustness.py --data-root data/test --split test --weights $(WEIGHTS) --json out/robustness_test.json --md out/robustness_test.md

bench:  ## benchmarks (print figures): speed, mesh vs fused-map AP, robustness (test rooms), node
	$(PY) bench/bench_student_vs_teacher.py --data-root data/test --split test --max-scenes 8
	$(PY) bench/bench_online.py --data-root data/test --split test --max-scenes 8
	$(PY) bench/bench_robustness.py --data-root data/test --split test --max-scenes 8
	$(PY) bench/bench_node.py

clean:  ## remove build outputs (keeps .venv and data)
	rm -rf build install log out .pytest_cache .ruff_cache
