"""Images/s of keras-segmentation's FCN-8 on VGG16 (TensorFlow CPU) at 384x480. One JSON line.

Run with a Python that has keras-segmentation 0.3.0 and tensorflow-cpu 2.15.1 (see
docs/benchmarks.md); called by bench_inference.py as
``PY keras_segmentation_rate.py REPEATS [BATCH ...]`` (best call of REPEATS per batch).
``fcn_8_vgg`` always downloads ImageNet weights, so the same network is built from ``fcn_8``
with its VGG encoder left random (speed does not depend on the weights). 384x480 because the
model needs multiples of 32.
"""

import functools
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from keras_segmentation.models.fcn import fcn_8  # noqa: E402
from keras_segmentation.models.vgg16 import get_vgg_encoder  # noqa: E402


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    encoder = functools.partial(get_vgg_encoder, pretrained=None)
    model = fcn_8(11, encoder=encoder, input_height=384, input_width=480)
    batches = [int(b) for b in sys.argv[2:]] or [1, 4]
    rates = {}
    for batch in batches:
        x = np.random.rand(batch, 384, 480, 3).astype("float32")
        out = model.predict_on_batch(x)  # warm-up (graph tracing)
        assert out.shape[0] == batch, out.shape
        best = 0.0
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.predict_on_batch(x)
            best = max(best, batch / (time.perf_counter() - t0))
        rates[batch] = best
    import tensorflow as tf

    threads = tf.config.threading.get_intra_op_parallelism_threads()
    backend = f"tensorflow {tf.__version__} fp32 NHWC, intra-op threads {threads or 'default'}"
    name = "keras-segmentation 0.3.0 fcn_8 (VGG16)"
    print(json.dumps({"name": name, "backend": backend, "size": "384x480", "rates": rates}))


if __name__ == "__main__":
    main()
