"""Reads digits with the trained model from $MODEL_DIR/model.pkl (default /models).

Prints the model's accuracy on the held-out digits and, for the first few, the image as
text next to the digit the model reads in it.
"""

import argparse
import os
import pickle

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--show", type=int, default=3, help="digits to draw")
    parser.add_argument("--seed", type=int, default=0, help="the split train.py used")
    args = parser.parse_args()

    path = os.path.join(os.environ.get("MODEL_DIR", "/models"), "model.pkl")
    if not os.path.exists(path):
        raise SystemExit(f"no model at {path}: train first, with -v ./models:/models")
    with open(path, "rb") as f:
        model = pickle.load(f)

    digits = load_digits()
    x = digits.data / 16.0
    _, x_test, _, y_test = train_test_split(
        x, digits.target, test_size=0.25, random_state=args.seed, stratify=digits.target
    )
    predicted = model.predict(x_test)
    for i in range(min(args.show, len(x_test))):
        rows = x_test[i].reshape(8, 8)
        art = "\n".join("".join(" .:#"[min(3, int(p * 4))] for p in row) for row in rows)
        print(f"{art}\nread as {predicted[i]} (labelled {y_test[i]})\n")
    accuracy = (predicted == y_test).mean()
    print(f"accuracy on {len(x_test)} held-out digits: {accuracy:.3f}")


if __name__ == "__main__":
    main()
