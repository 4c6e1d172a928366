// Every op of wick's device-agnostic API.
#pragma once

#include "wick/ops/activation.h"
#include "wick/ops/attention.h"
#include "wick/ops/cache_update.h"
#include "wick/ops/decode.h"
#include "wick/ops/elementwise.h"
#include "wick/ops/embedding.h"
#include "wick/ops/encoder.h"
#include "wick/ops/gemm.h"
#include "wick/ops/lora.h"
#include "wick/ops/loss.h"
#include "wick/ops/norm.h"
#include "wick/ops/optim.h"
#include "wick/ops/rope.h"
#include "wick/ops/sampling.h"
#include "wick/ops/select.h"
#include "wick/ops/softmax.h"
