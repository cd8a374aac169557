# Sourced on the GPU machine (Python 3.12, CUDA 13, no TVM): unpack the runtime-only TVM carried in
# .device/ and point Python and the loader at it.
site=/tmp/edgepart-site
rm -rf "$site" && mkdir -p "$site"
tar xzf .device/tvm_runtime.tar.gz -C "$site"
python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" .device/apache_tvm_ffi-*.whl
export PYTHONPATH="$site:$PWD" TVM_USE_RUNTIME_LIB=1 PYTHONUNBUFFERED=1
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
