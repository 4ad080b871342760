#!/usr/bin/env bash
# Build the peers' virtual environments for bench_inference.py (their pins clash with fcnseg's).
# Usage: bash benchmarks/peers/setup.sh [DIR]   (default DIR: .peers, git-ignored)
# Then:  python benchmarks/bench_inference.py --torchfcn-python DIR/torchfcn/bin/python \
#            --keras-segmentation-python DIR/keras-segmentation/bin/python
set -euo pipefail
dir=${1:-.peers}
mkdir -p "$dir"
# torchfcn 1.9.7 pulls chainer/fcn, whose setup needs pkg_resources (setuptools < 81), numpy < 2
# and the standard library's distutils.
python3 -m venv "$dir/torchfcn"
"$dir/torchfcn/bin/pip" install -q torch==2.14.1 torchvision==0.29.1 'numpy<2' pytz wheel
"$dir/torchfcn/bin/pip" install -q 'setuptools<81'
SETUPTOOLS_USE_DISTUTILS=stdlib "$dir/torchfcn/bin/pip" install -q --no-build-isolation torchfcn==1.9.7
# keras-segmentation 0.3.0 runs on TensorFlow 2.15 (Keras 2).
python3 -m venv "$dir/keras-segmentation"
"$dir/keras-segmentation/bin/pip" install -q tensorflow-cpu==2.15.1 keras-segmentation==0.3.0
echo "peers ready in $dir"
