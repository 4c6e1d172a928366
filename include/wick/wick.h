// The whole public API of wick.
#pragma once

#include "wick/device.h"
#include "wick/dtype.h"
#include "wick/error.h"
#include "wick/matrix_view.h"
#include "wick/numeric_check.h"
#include "wick/ops.h"
#include "wick/random.h"
#include "wick/tensor.h"
