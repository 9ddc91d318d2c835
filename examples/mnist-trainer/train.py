"""Trains a small neural network (a multi-layer perceptron) to read handwritten digits.

The data is the digits set that scikit-learn ships: 1,797 images of 8x8 pixels, the small
cousin of MNIST, so training takes seconds on a laptop's CPU and needs no download. The
model goes to $MODEL_DIR/model.pkl (default /models).
"""

import argparse
import os
import pickle
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=50, help="passes over the training set")
    parser.add_argument("--hidden", type=int, default=64, help="units in the hidden layer")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    digits = load_digits()
    x = digits.data / 16.0  # pixels are 0..16
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.25, random_state=args.seed, stratify=digits.target
    )
    model = MLPClassifier(hidden_layer_sizes=(args.hidden,), max_iter=1, warm_start=True, random_state=args.seed)
    print(f"training an MLP ({args.hidden} hidden units) on {len(x_train)} digits for {args.epochs} epochs")
    with warnings.catch_warnings():
        # One iteration per fit() call is the point: each call is an epoch.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for epoch in range(1, args.epochs + 1):
            model.fit(x_train, y_train)
            if epoch % 10 == 0 or epoch == args.epochs:
                print(f"epoch {epoch}: loss {model.loss_:.4f}, test accuracy {model.score(x_test, y_test):.3f}")

    out_dir = os.environ.get("MODEL_DIR", "/models")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "model.pkl")
    with open(path, "wb") as f:
        pickle.dump(model, f)
    print(f"model saved to {path}")


if __name__ == "__main__":
    main()
