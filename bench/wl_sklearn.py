"""wl_sklearn.py: the real program of issue 12's `.json.gz` target, a
scikit-learn GridSearchCV(n_jobs=2) whose fits run in joblib's loky
workers (two worker processes besides the parent).

    python wl_sklearn.py

The search: a pipeline of StandardScaler and SGDClassifier on the
built-in digits dataset (1,797 images of 8x8 pixels), 5-fold
cross-validation over a grid of regularisation strengths, penalties and
losses.  SGDClassifier fits one binary classifier per class through
Python code around a small Cython loop, so the workers make many small
Python and C calls, as most scikit-learn estimators do.  Every fit has a
fixed random_state: the result is the same in every run, traced or not.

Sizes from the environment: BENCH_SKLEARN_ALPHAS (default 4: values of
alpha in the grid, which has 4 x ALPHAS candidates, 20 x ALPHAS fits),
BENCH_SKLEARN_ITER (default 8: SGD's max_iter); the defaults take about
3.5 s (6.5 CPU-s) on two idle cores, and about 8.5 M calls traced
(most of them in the three processes' imports of scikit-learn and
SciPy, the rest in the fits).  Prints one JSON line:
the fits a complete run made, the best candidate, a checksum of every
candidate's mean test score (equal across runs: compare it to check that
tracing changed nothing), and the wall time of the search."""
import json
import os
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ALPHAS = int(os.environ.get("BENCH_SKLEARN_ALPHAS") or 4)
ITER = int(os.environ.get("BENCH_SKLEARN_ITER") or 8)
FOLDS = 5


def main():
    # Few iterations are the point (many small fits); their warnings would
    # only fill the output.  Workers inherit this through the environment.
    os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning")
    warnings.simplefilter("ignore", ConvergenceWarning)
    x, y = load_digits(return_X_y=True)
    pipe = make_pipeline(StandardScaler(),
                         SGDClassifier(max_iter=ITER, tol=None,
                                       random_state=0))
    grid = {
        "sgdclassifier__alpha": list(np.logspace(-5, 0, ALPHAS)),
        "sgdclassifier__penalty": ["l2", "l1"],
        "sgdclassifier__loss": ["hinge", "log_loss"],
    }
    t0 = time.perf_counter()
    search = GridSearchCV(pipe, grid, cv=FOLDS, n_jobs=2)
    search.fit(x, y)
    wall = time.perf_counter() - t0
    scores = search.cv_results_["mean_test_score"]
    best = {k.split("__")[1]: (float(v) if isinstance(v, np.floating) else v)
            for k, v in search.best_params_.items()}
    print(json.dumps({
        "fits": len(scores) * FOLDS,
        "best_params": best,
        "best_score": round(float(search.best_score_), 6),
        "checksum": round(float(np.sum(scores)), 6),
        "wall_s": round(wall, 3),
    }))


if __name__ == "__main__":
    main()
