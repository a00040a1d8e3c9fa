.PHONY: serve test bench

serve:  ## install and run one node on the embedded defaults
	./scripts/serve.sh

test:   ## install, start the services, run the whole test suite
	./scripts/test.sh

bench:  ## install the benchmark's tools and peers, run the quick profile
	EXTRAS=bench bash scripts/install.sh
	.venv/bin/python -m bench
