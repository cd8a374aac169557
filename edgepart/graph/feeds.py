"""Model inputs: seeded ones (standard-normal floats, zeros for integer inputs: valid token ids and
indices) and the user's .npz files of samples.

One rule for every place edgepart has to run a model on made-up data (profiling, the shape probe,
verify's default inputs), so their numbers describe the same inputs; and one rule for reading
samples from a file (verify --inputs, calibration and test data).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Sequence

import numpy as np

from edgepart import checks
from edgepart.errors import BadInputError

MAX_VALUE = 1e30  # of a float in a data file
ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
              "tensor(bool)": "bool"}


def read_npz(path: str, option: str, nan_allowed: bool = False) -> dict[str, np.ndarray]:
    """The arrays of an .npz file named by `option`; a missing or non-.npz file is one line naming both.
    `nan_allowed`: inputs to run as they are (verify's and run's --inputs: IsNaN has to be fed NaN);
    calibration and scoring data may not hold NaN."""
    checks.readable_file(path, option)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a single .npy array
            raise ValueError("not an archive")
        with loaded as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # numpy reports a non-zip file as "pickled data"
        raise BadInputError(f"{option} {path}: not an .npz file of arrays") from None
    except MemoryError:  # a header claiming an array larger than this machine
        raise BadInputError(f"{option} {path}: an array is too large to load") from None
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray):  # a member that is not an .npy array
            raise BadInputError(f"{option} {path}: member '{name}' is not an array")
        if array.dtype.kind not in "biuf":
            raise BadInputError(f"{option} {path}: array '{name}' is {array.dtype}, not numbers")
        # Infinities are data (an additive attention mask holds -inf); huge finite values are not.
        if array.dtype.kind == "f" and not nan_allowed and np.isnan(array).any():
            raise BadInputError(f"{option} {path}: array '{name}' holds NaN values")
        finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array[:0]
        if finite.size and np.abs(finite).max() > MAX_VALUE:
            raise BadInputError(f"{option} {path}: array '{name}' holds values beyond ±{MAX_VALUE:g}, which overflow "
                                "a model's float32 arithmetic (infinities are taken as they are)")
    return arrays


def as_dtype(samples: np.ndarray, dtype: np.dtype, where: str) -> np.ndarray:
    """Samples cast to an input's dtype: integers to floats, floats to wider floats; never floats to
    integers, which would drop what follows the point."""
    dtype = np.dtype(dtype)
    if samples.dtype.kind == "f" and dtype.kind in "iub":
        raise BadInputError(f"{where} is {samples.dtype}, but the model's input is {dtype}; give integers")
    return samples.astype(dtype, copy=False)


def as_samples(array: np.ndarray, shape: Sequence[int]) -> np.ndarray | None:
    """`array` as [N, *shape], or None when it does not fit: one sample at exactly `shape`, or samples
    along the first axis, each with `shape`'s number of elements and reshaped to it ((N, *shape),
    (N, 1, 8, 8) or (N, 64) for a (1, 1, 8, 8) input). The one rule for every file of inputs."""
    shape = tuple(int(d) for d in shape)
    if array.shape == shape:
        return array[None]
    if array.ndim >= 1 and len(array) and int(np.prod(array.shape[1:])) == int(np.prod(shape)):
        return array.reshape((len(array), *shape))
    return None


def seeded(specs: Iterable[tuple[str, Sequence[int], str]], seed: int = 0) -> dict[str, np.ndarray]:
    """{name: array} for (name, shape, numpy dtype name) specs."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape, dtype in specs:
        dtype = np.dtype(dtype)
        feeds[name] = (rng.standard_normal(tuple(shape)).astype(dtype) if dtype.kind == "f"
                       else np.zeros(tuple(shape), dtype=dtype))
    return feeds


def for_graph(graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for a LayerGraph's inputs, at their static shapes and dtypes."""
    return seeded(graph_specs(graph), seed)


def session_specs(session) -> list[tuple[str, Sequence[int], str]]:
    """(name, shape, numpy dtype name) of an onnxruntime InferenceSession's inputs."""
    return [(i.name, i.shape, ORT_DTYPES.get(i.type, "float32")) for i in session.get_inputs()]


def graph_specs(graph) -> list[tuple[str, Sequence[int], str]]:
    """(name, shape, numpy dtype name) of a LayerGraph's inputs."""
    return [(n, graph.tensors[n].shape, graph.tensors[n].dtype) for n in graph.inputs]


def for_session(session, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for an onnxruntime InferenceSession."""
    return seeded(session_specs(session), seed)
