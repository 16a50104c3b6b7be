"""The source material's Keras MNIST CNN, as its tf.keras code trains it: the peer of
`dlx train +experiment=seed_mnist_cnn_keras` in benchmarks/keras_race.py. Needs TensorFlow
(`pip install tensorflow-cpu`); the race skips it when absent.

    python benchmarks/keras_mnist_cnn.py ROOT EPOCHS [N_TRAIN]

The one change to the source: the images are read from MNIST's IDX files under ROOT/MNIST/raw
(what `dlx train ... dataset.root=ROOT` reads), not downloaded by keras.datasets.mnist.load_data.
"""

import struct
import sys
from pathlib import Path

import numpy as np


def read_idx(path: Path) -> np.ndarray:
    data = path.read_bytes()
    ndim = data[3]
    shape = struct.unpack(f">{ndim}i", data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_data(root: Path):
    raw = root / "MNIST" / "raw"
    return ((read_idx(raw / "train-images-idx3-ubyte"), read_idx(raw / "train-labels-idx1-ubyte")),
            (read_idx(raw / "t10k-images-idx3-ubyte"), read_idx(raw / "t10k-labels-idx1-ubyte")))


root, epochs = Path(sys.argv[1]), int(sys.argv[2])
n_train = int(sys.argv[3]) if len(sys.argv) > 3 else None

# --- the source's code from here on
import tensorflow as tf  # noqa: E402

(x_train, y_train), (x_test, y_test) = load_data(root)
x_train, y_train = x_train[:n_train], y_train[:n_train]
x_train, x_test = x_train / 255.0, x_test / 255.0
x_train = x_train.reshape(-1, 28, 28, 1)
x_test = x_test.reshape(-1, 28, 28, 1)

model = tf.keras.models.Sequential([
    tf.keras.layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
    tf.keras.layers.MaxPooling2D((2, 2)),
    tf.keras.layers.Flatten(),
    tf.keras.layers.Dense(128, activation="relu"),
    tf.keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=2)
test_loss, test_acc = model.evaluate(x_test, y_test, verbose=2)
print(f"Test accuracy: {test_acc:.4f}")
