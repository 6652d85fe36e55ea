# bench: `make bench` measures sesh and sesh-pool against what users would pick
# instead (README.md, "Benchmarks", says how to read the figures).
#
# It builds an optimized, sanitizer-free tree of its own (build-bench/, so the
# everyday build/ keeps its flags), then runs the driver, which prints one table
# and writes build-bench/bench/bench.json and bench.png. It measures; it does not
# judge: it exits 0 whatever the figures are.

BENCH_BUILD ?= build-bench
BENCH_ARGS  ?=

bench: deps
	@sh tests/support/deps.sh python3-requests || \
	    echo "sesh bench: without python3-requests the Python rows read n/a" >&2
	@$(MAKE) --no-print-directory BUILD=$(BENCH_BUILD) OPT=-O2 SANITIZE= all
	$(PYTHON) tests/bench/bench.py --build $(BENCH_BUILD) $(BENCH_ARGS)
