"""Trains a classifier on the iris data set that scikit-learn ships and saves it.

The model goes to $MODEL_DIR/model.pkl (default /app/artifacts), so mounting a host
directory there (`-v ./artifacts:/app/artifacts`) keeps it after the container is gone.
"""

import argparse
import os
import pickle

from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-estimators", type=int, default=100, help="trees in the forest")
    parser.add_argument("--test-size", type=float, default=0.2, help="share of rows held out")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    iris = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        iris.data, iris.target, test_size=args.test_size, random_state=args.seed, stratify=iris.target
    )
    print(f"training a random forest ({args.n_estimators} trees) on {len(x_train)} samples")
    model = RandomForestClassifier(n_estimators=args.n_estimators, random_state=args.seed)
    model.fit(x_train, y_train)
    accuracy = accuracy_score(y_test, model.predict(x_test))
    print(f"accuracy on {len(x_test)} held-out samples: {accuracy:.3f}")

    out_dir = os.environ.get("MODEL_DIR", "/app/artifacts")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "model.pkl")
    with open(path, "wb") as f:
        pickle.dump({"model": model, "target_names": list(iris.target_names)}, f)
    print(f"model saved to {path}")


if __name__ == "__main__":
    main()
