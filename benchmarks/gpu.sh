#!/bin/sh
# The fit-loop benchmark on a CUDA machine (after `make install`): the reference loop and dlx's on
# the GPU, 1 warm-up + 3 timed epochs; the "Fit loop (cuda)" section of RESULTS.md gets the GPU's name.
exec "$(dirname "$0")/../.venv/bin/python" "$(dirname "$0")/fit_loop.py" --device cuda --epochs 3 "$@"
