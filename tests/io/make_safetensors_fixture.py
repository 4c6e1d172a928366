"""Writes tests/data/safetensors_fixture.safetensors with the reference safetensors library.

wick's tests read the file back and compare every value with the ones below, so a reader that disagrees with
the reference library's layout, padding or dtype names fails there. Run from anywhere:

    pip install safetensors numpy && python3 tests/io/make_safetensors_fixture.py
"""

import os

import numpy as np
from safetensors import TensorSpec, serialize_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "safetensors_fixture.safetensors")


def bf16(values):
    """float32 values whose low 16 bits are zero (exact in bf16), as bf16 bit patterns."""
    bits = np.asarray(values, dtype="<f4").view("<u4")
    assert np.all(bits & 0xFFFF == 0), "values must be exact in bf16"
    return (bits >> 16).astype("<u2")


# name -> (reference dtype name, little-endian array). numpy has no bf16, so it is passed as raw bits.
TENSORS = {
    "f32": ("float32", (np.arange(6, dtype="<f4") * 0.5 - 1.0).reshape(2, 3)),
    "f64": ("float64", np.array([np.pi, -np.e, 1e300], dtype="<f8")),
    "f16": ("float16", np.array([[1.0, -2.5], [65504.0, 2.0**-24]], dtype="<f2")),
    "bf16": ("bfloat16", bf16([1.0, -0.5, 3.140625, -(2.0**100)])),
    "i64": ("int64", np.array([-(2**40), 2**62], dtype="<i8")),
    "i32": ("int32", np.array([-7, 0, 123456], dtype="<i4")),
    "u8": ("uint8", np.array([0, 1, 128, 255], dtype="u1")),
    "bool": ("bool", np.array([True, False, True])),
    "i8": ("int8", np.array([-1, 5], dtype="i1")),
    "scalar": ("float32", np.array(42.0, dtype="<f4")),
    "empty": ("float32", np.zeros((0, 4), dtype="<f4")),
}


def main():
    # copy(order="C"), not ascontiguousarray, which turns the 0-d scalar into shape [1].
    arrays = {name: array.copy(order="C") for name, (_, array) in TENSORS.items()}
    specs = {
        name: TensorSpec(
            dtype=dtype, shape=list(arrays[name].shape), data_ptr=arrays[name].ctypes.data,
            data_len=arrays[name].nbytes)
        for name, (dtype, _) in TENSORS.items()
    }
    serialize_file(specs, OUT, metadata={"format": "np", "producer": "make_safetensors_fixture.py"})
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
