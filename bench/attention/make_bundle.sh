#!/usr/bin/env bash
# Builds the GPU test and benchmark here and gathers what the device machine needs.
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake --build build-attn -j2 --target test_attention_gpu bench_attention
mkdir -p .bundle/attn
cp build-attn/tests/kernels/attention/test_attention_gpu build-attn/bench/attention/bench_attention .bundle/attn/
cp -L /usr/local/cuda/lib/libcudart.so.13 .bundle/attn/
cp bench/peers/peers_attention.py .bundle/attn/
du -sh .bundle/attn
