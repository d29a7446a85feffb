"""The CIFAR loader on tiny archives written in the official python-pickle format."""

import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from assd.data.cifar import CIFAR_MEAN, CIFAR_STD, load_cifar
from assd.data.scenarios import load_dataset, make_scenario


def images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def dump(obj, *, proto):
    return pickle.dumps(obj, protocol=proto)


def cifar10_files(bytes_keys=False):
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    proto = 4 if bytes_keys else 2
    files = {}
    for i in range(1, 6):
        files[f"data_batch_{i}"] = dump(
            {key("data"): images(4, i), key("labels"): [(i + j) % 10 for j in range(4)]},
            proto=proto,
        )
    files["test_batch"] = dump({key("data"): images(3, 9), key("labels"): [7, 8, 9]}, proto=proto)
    names = [f"name{i}".encode() if bytes_keys else f"name{i}" for i in range(10)]
    files["batches.meta"] = dump({key("label_names"): names}, proto=proto)
    return files


def cifar100_files():
    fine_train = np.arange(200) % 100
    fine_test = np.arange(100)
    coarse = lambda f: (f * 7) % 20  # noqa: E731  (an arbitrary fixed fine -> coarse map)
    return {
        "train": dump({"data": images(200, 1), "fine_labels": fine_train.tolist(),
                       "coarse_labels": coarse(fine_train).tolist()}, proto=2),
        "test": dump({"data": images(100, 2), "fine_labels": fine_test.tolist(),
                      "coarse_labels": coarse(fine_test).tolist()}, proto=2),
        "meta": dump({"fine_label_names": [f"fine{i}" for i in range(100)],
                      "coarse_label_names": [f"coarse{i}" for i in range(20)]}, proto=2),
    }  # fmt: skip


def write_folder(root, folder, files):
    (root / folder).mkdir(parents=True)
    for name, blob in files.items():
        (root / folder / name).write_bytes(blob)


def write_archive(path, folder, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def expected_pixels(row):
    """Independent decoding: 1024 red, then green, then blue values, each row-major 32x32."""
    x = row.reshape(3, 32, 32).astype(np.float64) / 255.0
    return (x - np.array(CIFAR_MEAN)[:, None, None]) / np.array(CIFAR_STD)[:, None, None]


def test_cifar10_folder(tmp_path):
    files = cifar10_files()
    write_folder(tmp_path, "cifar-10-batches-py", files)
    data = load_cifar("cifar10", tmp_path)
    assert tuple(data.x_train.shape) == (20, 3, 32, 32) and tuple(data.x_test.shape) == (
        3,
        3,
        32,
        32,
    )
    assert data.y_train.tolist() == [(i + j) % 10 for i in range(1, 6) for j in range(4)]
    assert data.y_test.tolist() == [7, 8, 9] and data.class_names[3] == "name3"
    second = images(4, 2)[1]  # data_batch_2, second image = training row 5
    np.testing.assert_allclose(data.x_train[5].double().numpy(), expected_pixels(second), atol=1e-5)
    assert data.coarse_of is None


def test_cifar10_archive_with_bytes_keys(tmp_path):
    write_archive(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", cifar10_files(True))
    data = load_dataset("cifar10", data_dir=tmp_path)
    assert len(data.y_train) == 20 and data.class_names[0] == "name0"
    np.testing.assert_allclose(data.x_test[2].double().numpy(), expected_pixels(images(3, 9)[2]),
                               atol=1e-5)  # fmt: skip


def test_cifar100_and_cifar20(tmp_path):
    write_archive(tmp_path / "cifar-100-python.tar.gz", "cifar-100-python", cifar100_files())
    fine = load_cifar("cifar100", tmp_path)
    assert fine.level == "fine" and len(fine.class_names) == 100 and fine.y_train[150] == 50
    assert torch.equal(fine.coarse_of, (torch.arange(100) * 7) % 20)
    coarse = load_cifar("cifar20", tmp_path)
    assert coarse.level == "coarse"
    full = make_scenario("full-class", coarse, "coarse3")
    assert full.n_classes == 20
    assert torch.equal(full.forget, (fine.coarse_of[fine.y_train] == 3))
    sub = make_scenario("sub-class", coarse, "fine69")
    assert sub.forget_label == (69 * 7) % 20 and int(sub.forget.sum()) == 2
    assert set(sub.forget_train()[1].tolist()) == {sub.forget_label}


class Boom:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_a_pickle_that_runs_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = cifar10_files()
    files["test_batch"] = pickle.dumps({"data": Boom(), "labels": [1]}, protocol=2)
    write_folder(tmp_path, "cifar-10-batches-py", files)
    with pytest.raises(ValueError, match="refusing to load"):
        load_cifar("cifar10", tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_missing_data_names_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        load_cifar("cifar20", tmp_path)


def test_inconsistent_labels_are_refused(tmp_path):
    files = cifar10_files()
    files["test_batch"] = dump({"data": images(3, 9), "labels": [1, 2]}, proto=2)
    write_folder(tmp_path, "cifar-10-batches-py", files)
    with pytest.raises(ValueError, match="corrupt"):
        load_cifar("cifar10", tmp_path)
