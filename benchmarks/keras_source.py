"""The source material's tf.keras examples, as its code trains them: the peers of dlx's presets
in benchmarks/keras_race.py. Needs TensorFlow (`pip install tensorflow-cpu`); the race skips
them when it is absent.

    python benchmarks/keras_source.py linear EPOCHS
    python benchmarks/keras_source.py logistic EPOCHS
    python benchmarks/keras_source.py mnist_cnn EPOCHS ROOT        # MNIST's IDX files under ROOT/MNIST/raw
    python benchmarks/keras_source.py cifar10_cnn EPOCHS ROOT      # ROOT/cifar-10-batches-py

The one change to the source: the images are read from the files `dlx train ...
dataset.root=ROOT` reads, not downloaded by keras.datasets; the models, optimizers, losses,
batch size (Keras' default, 32) and epochs are the source's.
"""

import pickle
import struct
import sys
from pathlib import Path

import numpy as np


def read_idx(path: Path) -> np.ndarray:
    data = path.read_bytes()
    ndim = data[3]
    shape = struct.unpack(f">{ndim}i", data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def mnist(root: Path):
    raw = root / "MNIST" / "raw"
    return ((read_idx(raw / "train-images-idx3-ubyte"), read_idx(raw / "train-labels-idx1-ubyte")),
            (read_idx(raw / "t10k-images-idx3-ubyte"), read_idx(raw / "t10k-labels-idx1-ubyte")))


def cifar10(root: Path):
    base = root / "cifar-10-batches-py"

    def batch(name):
        with open(base / name, "rb") as f:
            d = pickle.load(f, encoding="latin1")
        return d["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(d["labels"])

    parts = [batch(f"data_batch_{i}") for i in range(1, 6)]
    return ((np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])),
            batch("test_batch"))


example, epochs = sys.argv[1], int(sys.argv[2])
root = Path(sys.argv[3]) if len(sys.argv) > 3 else None

# --- the source's code from here on (tf.keras)
import tensorflow as tf  # noqa: E402

if example == "linear":  # y = 2x + 1 + noise, one dense unit, SGD on MSE
    X = np.random.uniform(-5, 5, (100, 1))
    y = 2 * X + 1 + np.random.randn(100, 1)
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(1,))])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X, y, epochs=epochs, verbose=0)
    print("weight, bias:", [float(w.ravel()[0]) for w in model.get_weights()])

elif example == "logistic":  # label x0 + x1 > 1, dense + sigmoid, SGD on binary cross-entropy
    X = np.random.rand(100, 2)
    y = (X[:, 0] + X[:, 1] > 1).astype(int)
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, activation="sigmoid", input_shape=(2,))])
    model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate=0.5), loss="binary_crossentropy",
                  metrics=["accuracy"])
    model.fit(X, y, epochs=epochs, verbose=0)
    print("accuracy:", model.evaluate(X, y, verbose=0)[1])

elif example == "mnist_cnn":  # conv32-pool-flatten-dense128-dense10, Adam
    (x_train, y_train), (x_test, y_test) = mnist(root)
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
    model.fit(x_train, y_train, epochs=epochs, verbose=2)
    print("Test accuracy:", model.evaluate(x_test, y_test, verbose=0)[1])

elif example == "cifar10_cnn":  # conv32-pool-conv64-pool-conv128-pool-dense128-dense10, Adam
    (x_train, y_train), (x_test, y_test) = cifar10(root)
    x_train, x_test = x_train / 255.0, x_test / 255.0
    model = tf.keras.models.Sequential([
        tf.keras.layers.Conv2D(32, (3, 3), activation="relu", padding="same",
                               input_shape=(32, 32, 3)),
        tf.keras.layers.MaxPooling2D((2, 2)),
        tf.keras.layers.Conv2D(64, (3, 3), activation="relu", padding="same"),
        tf.keras.layers.MaxPooling2D((2, 2)),
        tf.keras.layers.Conv2D(128, (3, 3), activation="relu", padding="same"),
        tf.keras.layers.MaxPooling2D((2, 2)),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=2)
    print("Test accuracy:", model.evaluate(x_test, y_test, verbose=0)[1])

else:
    sys.exit(f"unknown example {example}: linear, logistic, mnist_cnn or cifar10_cnn")
