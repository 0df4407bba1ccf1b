#!/usr/bin/env bash
# Makes a relocatable bundle: the given executables plus every shared library they need that
# is not part of the C runtime, the GPU driver or the big CUDA libraries (cuBLAS, NCCL: the
# target machine's own, on its LD_LIBRARY_PATH), with LD_LIBRARY_PATH set by bundle/env.sh.
#   scripts/bundle.sh OUT_DIR EXE...
# Run the bundle elsewhere with: source OUT_DIR/env.sh; OUT_DIR/bin/EXE
set -euo pipefail
out=$1
shift
mkdir -p "$out/bin" "$out/lib"
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|libresolv|libgcc_s|libstdc\+\+|libcuda\.so|libnvidia|libnccl|libcublas)'
for exe in "$@"; do
  cp -f "$exe" "$out/bin/"
  ldd "$exe" | awk '/=> \//{print $1" "$3}' | while read -r name path; do
    [[ $name =~ $skip ]] && continue
    cp -fL "$path" "$out/lib/$name"
  done
done
cat > "$out/env.sh" <<'ENV'
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ENV
du -sh "$out" | awk '{print "bundle: "$1}'
