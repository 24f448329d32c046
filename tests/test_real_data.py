"""The real CIFAR-10 in ../shared/data (a JPEG q75 copy): sizes, class balance, statistics."""
from __future__ import annotations

import numpy as np
import pytest

from cifarlab.data import channel_stats, load_cifar10
from conftest import REAL_DATA

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.slow,  # reads all of CIFAR-10 (180 MB)
    pytest.mark.skipif(not (REAL_DATA / "cifar-10-batches-py" / "test_batch").is_file(),
                       reason=f"real CIFAR-10 not found in {REAL_DATA}/cifar-10-batches-py: set CIFARLAB_DATA"),
]

PUBLISHED_MEAN = (0.4914, 0.4822, 0.4465)  # official release, pixel/255
PUBLISHED_STD = (0.2470, 0.2435, 0.2616)


@pytest.fixture(scope="module")
def arrays():
    return load_cifar10(REAL_DATA)


def test_sizes_and_class_balance(arrays) -> None:
    assert arrays.train_images.shape == (50_000, 32, 32, 3)
    assert arrays.test_images.shape == (10_000, 32, 32, 3)
    assert np.bincount(arrays.train_labels).tolist() == [5_000] * 10
    assert np.bincount(arrays.test_labels).tolist() == [1_000] * 10
    assert arrays.class_names == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_statistics_match_the_published_ones(arrays) -> None:
    mean, std = channel_stats(arrays.train_images)
    np.testing.assert_allclose(mean, PUBLISHED_MEAN, atol=0.002)
    np.testing.assert_allclose(std, PUBLISHED_STD, atol=0.004)


def test_jpeg_copy_is_recorded_as_a_checksum_mismatch(arrays) -> None:
    assert arrays.checksum.status == "mismatch" and "test_batch" in arrays.checksum.mismatched
