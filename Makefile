.PHONY: serve test bench

serve:  ## install and run one node on the embedded defaults
	./scripts/serve.sh

test:   ## install, start the services, run the whole test suite
	./scripts/test.sh

bench:  ## run the benchmark suite (quick profile)
	.venv/bin/python -m bench
