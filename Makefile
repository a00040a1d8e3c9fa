.PHONY: serve test bench chaos

serve:  ## install and run one node on the embedded defaults
	./scripts/serve.sh

test:   ## install, start the services, run the whole test suite
	./scripts/test.sh

bench:  ## install the benchmark's tools and peers, run the quick profile
	EXTRAS=bench bash scripts/install.sh
	.venv/bin/python -m bench

chaos:  ## the whole fault suite: every fault on every broker and store, storm, 100,000 cycles
	TIDINGS_CHAOS=full .venv/bin/python -m pytest -q -o timeout=900 tests/chaos
