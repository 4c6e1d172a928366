// The whole public API of wick.
#pragma once

#include "wick/device.h"
#include "wick/dtype.h"
#include "wick/error.h"
#include "wick/io/safetensors.h"
#include "wick/io/tokenizer.h"
#include "wick/matrix_view.h"
#include "wick/models/bert.h"
#include "wick/models/config.h"
#include "wick/models/decoder.h"
#include "wick/numeric_check.h"
#include "wick/ops.h"
#include "wick/random.h"
#include "wick/tensor.h"
