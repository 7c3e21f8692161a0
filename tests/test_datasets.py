"""Tests for backprop_course.datasets: the shipped digits and the generated sets."""
import hashlib

import numpy as np
import pytest

from backprop_course import datasets

# Facts about scikit-learn's digits.csv.gz (sha256 09f66e6d...aa22), computed with plain
# Python from the CSV itself, independently of the npz and of this module.
FIRST_IMAGE = [
    [0, 0, 5, 13, 9, 1, 0, 0],
    [0, 0, 13, 15, 10, 15, 5, 0],
    [0, 3, 15, 2, 0, 11, 8, 0],
    [0, 4, 12, 0, 0, 8, 8, 0],
    [0, 5, 8, 0, 0, 9, 8, 0],
    [0, 4, 11, 0, 1, 12, 7, 0],
    [0, 2, 14, 5, 10, 12, 0, 0],
    [0, 0, 6, 13, 10, 0, 0, 0],
]
FIRST_LABEL, FIRST_SUM = 0, 294
LAST_LABEL, LAST_SUM = 8, 392
TOTAL_PIXEL_SUM = 561718
CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
TEST_COUNTS = [36, 37, 35, 37, 36, 36, 36, 36, 35, 36]  # the stored split
DIGITS_FINGERPRINT = "6a91130f6ee1e4487f291d2a9497b2a2f0bba2ee0c1519f008fb5c5b5c1ad258"


# ---------------------------------------------------------------- digits: raw data


def test_digits_raw_matches_source_csv():
    images, labels = datasets.digits_images("all")
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (1797,) and labels.dtype == np.int64
    np.testing.assert_array_equal(images[0], FIRST_IMAGE)
    assert labels[0] == FIRST_LABEL and int(images[0].sum()) == FIRST_SUM
    assert labels[-1] == LAST_LABEL and int(images[-1].sum()) == LAST_SUM
    assert int(images.sum(dtype=np.int64)) == TOTAL_PIXEL_SUM
    assert images.min() == 0 and images.max() == 16
    assert np.bincount(labels, minlength=10).tolist() == CLASS_COUNTS


def _fingerprint(arrays):
    h = hashlib.sha256()
    for name, dtype in [("images", "u1"), ("labels", "u1"),
                        ("train_index", "<i8"), ("test_index", "<i8")]:
        h.update(np.ascontiguousarray(arrays[name], dtype=dtype).tobytes())
    return h.hexdigest()


def test_digits_shipped_file_is_unchanged():
    # Fingerprint of the pixels, labels and split as built; any edit to the data file
    # (or a reordering of the split) changes it. Recompute it only on purpose.
    assert _fingerprint(datasets._digits_arrays()) == DIGITS_FINGERPRINT


# ---------------------------------------------------------------- digits: split


def test_digits_split_shapes_dtypes_and_range():
    X_train, y_train, X_test, y_test = datasets.digits()
    assert X_train.shape == (1437, 64) and X_test.shape == (360, 64)
    assert y_train.shape == (1437,) and y_test.shape == (360,)
    assert X_train.dtype == np.float64 and y_train.dtype == np.int64
    for X in (X_train, X_test):
        assert X.min() == 0.0 and X.max() == 1.0
    # the scaling is raw / 16 exactly
    images, _ = datasets.digits_images("train")
    np.testing.assert_array_equal(X_train * 16, images.reshape(-1, 64))


def test_digits_split_is_disjoint_covering_and_stratified():
    all_images, all_labels = datasets.digits_images("all")
    tr_images, tr_labels = datasets.digits_images("train")
    te_images, te_labels = datasets.digits_images("test")
    # the two splits, as multisets of (image, label) rows, make up the whole set
    def rows(images, labels):
        return sorted(im.tobytes() + bytes([lab]) for im, lab in zip(images, labels))

    assert sorted(rows(tr_images, tr_labels) + rows(te_images, te_labels)) == rows(
        all_images, all_labels
    )
    # disjoint by index: check the stored index arrays directly
    arrays = datasets._digits_arrays()
    tr, te = arrays["train_index"], arrays["test_index"]
    assert len(np.intersect1d(tr, te)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, te])), np.arange(1797))
    # every digit present in both splits, 20% of each class (within one) in test
    tr_counts = np.bincount(tr_labels, minlength=10)
    te_counts = np.bincount(te_labels, minlength=10)
    assert tr_counts.min() > 0 and te_counts.min() > 0
    assert te_counts.tolist() == TEST_COUNTS
    np.testing.assert_array_equal(tr_counts + te_counts, CLASS_COUNTS)
    assert np.all(np.abs(te_counts - 0.2 * np.array(CLASS_COUNTS)) < 1)


def test_digits_is_deterministic_and_returns_fresh_arrays():
    a = datasets.digits()
    a.X_train[:] = -1.0  # a learner scribbling on the data must not corrupt the cache
    for split in ("train", "test", "all"):
        images, labels = datasets.digits_images(split)
        images[:] = 99
        labels[:] = 99
    b = datasets.digits()
    assert b.X_train.min() == 0.0
    for split in ("train", "test", "all"):
        images, labels = datasets.digits_images(split)
        assert images.max() == 16 and labels.max() == 9
    # the cached arrays themselves are read-only
    assert not any(a.flags.writeable for a in datasets._digits_arrays().values())
    c = datasets.digits()
    for u, v in zip(b, c):
        np.testing.assert_array_equal(u, v)


def test_digits_images_helper_round_trips():
    X_train, *_ = datasets.digits()
    im = datasets.Digits.images(X_train)
    assert im.shape == (1437, 8, 8)
    images, _ = datasets.digits_images("train")
    np.testing.assert_array_equal(im * 16, images)
    with pytest.raises(ValueError, match=r"\(n, 64\)"):
        datasets.Digits.images(np.zeros((3, 8, 8)))


@pytest.mark.parametrize("split", ["validation", "TRAIN", "", None])
def test_digits_bad_split_names_the_value(split):
    with pytest.raises(ValueError, match="split must be one of"):
        datasets.digits_images(split)


def test_digits_license_ships_with_data():
    from importlib import resources

    text = (resources.files("backprop_course") / "data" / "DIGITS_LICENSE.md").read_text()
    for needed in ("Alpaydin", "Kaynak", "10.24432/C50P49", "CC BY 4.0", "1797"):
        assert needed in text


# ---------------------------------------------------------------- xor, symmetry


def test_xor_is_the_truth_table():
    X, y = datasets.xor()
    assert X.dtype == np.float64 and y.dtype == np.int64
    assert X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert y.tolist() == [int(a) ^ int(b) for a, b in X]


def test_mirror_symmetry_has_exactly_the_palindromes():
    X, y = datasets.mirror_symmetry()
    assert X.shape == (64, 6) and y.shape == (64, 1)
    assert X.dtype == np.float64 and y.dtype == np.float64
    assert set(np.unique(X)) == {0.0, 1.0} and set(np.unique(y)) == {0.0, 1.0}
    # all 64 patterns, each once, row i is i in binary (MSB first)
    as_int = [int("".join(str(int(b)) for b in row), 2) for row in X]
    assert as_int == list(range(64))
    assert int(y.sum()) == 8
    for row, target in zip(X, y[:, 0]):
        s = "".join(str(int(b)) for b in row)
        assert target == float(s == s[::-1]), s
    positives = sorted("".join(str(int(b)) for b in r) for r in X[y[:, 0] == 1])
    assert positives == sorted(
        a + b + c + c + b + a for a in "01" for b in "01" for c in "01"
    )


# ---------------------------------------------------------------- generated 2-D sets

GENERATORS = {
    "spirals2": lambda seed: datasets.spirals(n_per_class=50, n_classes=2, seed=seed),
    "spirals3": lambda seed: datasets.spirals(n_per_class=40, n_classes=3, seed=seed),
    "moons": lambda seed: datasets.moons(n=120, seed=seed),
    "circles": lambda seed: datasets.circles(n=120, seed=seed),
}
EXPECTED = {"spirals2": (100, 2), "spirals3": (120, 3), "moons": (120, 2),
            "circles": (120, 2)}


@pytest.mark.parametrize("name", GENERATORS)
def test_generated_shapes_dtypes_balance(name):
    X, y = GENERATORS[name](0)
    n, k = EXPECTED[name]
    assert X.shape == (n, 2) and X.dtype == np.float64
    assert y.shape == (n,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [n // k] * k
    assert np.all(np.isfinite(X))


@pytest.mark.parametrize("name", GENERATORS)
def test_generated_seeded(name):
    X0, y0 = GENERATORS[name](0)
    X0b, y0b = GENERATORS[name](0)
    X1, y1 = GENERATORS[name](1)
    np.testing.assert_array_equal(X0, X0b)
    np.testing.assert_array_equal(y0, y0b)
    assert not np.allclose(X0, X1)
    # a Generator is accepted and drawn from
    rng = np.random.default_rng(0)
    Xa, _ = GENERATORS[name](rng)
    Xb, _ = GENERATORS[name](rng)
    np.testing.assert_array_equal(Xa, X0)
    assert not np.allclose(Xa, Xb)


def test_default_sizes():
    assert datasets.spirals()[0].shape == (200, 2)
    assert datasets.spirals(n_classes=3)[0].shape == (300, 2)
    assert datasets.moons()[0].shape == (200, 2)
    assert datasets.circles()[0].shape == (200, 2)


def test_odd_n_puts_extra_point_in_class_0():
    for make in (datasets.moons, datasets.circles):
        _, y = make(n=7)
        assert np.bincount(y).tolist() == [4, 3]


def test_noise_free_geometry():
    # circles: radius 1 for class 0, factor for class 1
    X, y = datasets.circles(n=100, noise=0.0, factor=0.3)
    r = np.linalg.norm(X, axis=1)
    np.testing.assert_allclose(r[y == 0], 1.0)
    np.testing.assert_allclose(r[y == 1], 0.3)
    # moons: class 0 on the upper unit half circle, class 1 on its shifted mirror image
    X, y = datasets.moons(n=100, noise=0.0)
    np.testing.assert_allclose(np.linalg.norm(X[y == 0], axis=1), 1.0)
    assert X[y == 0, 1].min() >= -1e-12
    centre = np.array([1.0, 0.5])
    np.testing.assert_allclose(np.linalg.norm(X[y == 1] - centre, axis=1), 1.0)
    assert X[y == 1, 1].max() <= 0.5 + 1e-12
    # spirals: radius runs 0..1 along each arm; two arms are point reflections
    X, y = datasets.spirals(n_per_class=30, n_classes=2, noise=0.0)
    np.testing.assert_allclose(np.linalg.norm(X[y == 0], axis=1), np.linspace(0, 1, 30))
    np.testing.assert_allclose(X[y == 1], -X[y == 0], atol=1e-12)
    # three arms are rotations by 120 degrees of each other
    X, y = datasets.spirals(n_per_class=30, n_classes=3, noise=0.0)
    a = np.deg2rad(-120)  # (r sin t, r cos t): adding to t turns the point clockwise
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    np.testing.assert_allclose(X[y == 1], X[y == 0] @ R.T, atol=1e-12)


def test_noise_scale_is_noise():
    X0, _ = datasets.circles(n=4000, noise=0.0)
    X1, _ = datasets.circles(n=4000, noise=0.05, seed=3)
    assert abs((X1 - X0).std() - 0.05) < 0.003


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda: datasets.spirals(n_per_class=0), "n_per_class"),
        (lambda: datasets.spirals(n_per_class=2.5), "n_per_class"),
        (lambda: datasets.spirals(n_classes=1), "n_classes"),
        (lambda: datasets.spirals(noise=-0.1), "noise"),
        (lambda: datasets.spirals(turns=float("nan")), "turns"),
        (lambda: datasets.moons(n=0), "n must"),
        (lambda: datasets.moons(n=-5), "-5"),
        (lambda: datasets.moons(n=True), "n must"),
        (lambda: datasets.moons(noise=-1), "noise"),
        (lambda: datasets.moons(noise="0.1"), "noise"),
        (lambda: datasets.circles(n=1), "n must"),
        (lambda: datasets.circles(factor=1.0), "factor"),
        (lambda: datasets.circles(factor=0), "factor"),
        (lambda: datasets.circles(noise=float("inf")), "noise"),
        (lambda: datasets.moons(seed=-1), "seed"),
        (lambda: datasets.moons(seed=1.5), "seed"),
        (lambda: datasets.one_hot([0, 3], 3), "0..2"),
        (lambda: datasets.one_hot([0, -1], 3), "0..2"),
        (lambda: datasets.one_hot([0.0, 1.0], 3), "integers"),
        (lambda: datasets.one_hot([[0, 1]], 3), "1-D"),
        (lambda: datasets.one_hot([0, 1], 0), "num_classes"),
    ],
)
def test_bad_arguments_raise_clear_valueerror(call, needle):
    with pytest.raises(ValueError, match=needle):
        call()


# ---------------------------------------------------------------- one_hot


def test_one_hot_values():
    out = datasets.one_hot(np.array([2, 0, 1, 2]), 4)
    assert out.dtype == np.float64 and out.shape == (4, 4)
    np.testing.assert_array_equal(
        out, [[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
    )
    np.testing.assert_array_equal(out.argmax(axis=1), [2, 0, 1, 2])
    assert datasets.one_hot([], 3).shape == (0, 3)


def test_module_imports_only_numpy_stdlib_and_the_argument_checks():
    import ast

    tree = ast.parse(open(datasets.__file__).read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= ({f"{node.module}.{a.name}" for a in node.names}
                         if node.module == "backprop_course" else {node.module})
    allowed = {"__future__", "functools", "math", "numbers", "importlib", "typing",
               "backprop_course.arguments"}
    assert imported - allowed == {"numpy"}
