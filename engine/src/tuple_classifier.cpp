// SPDX-License-Identifier: MIT
// Out-of-line instantiation of the IPv4 5-tuple classifier (its non-template members are compiled
// here once, with the engine's optimisation flags).
#include "lfp/engine/tuple_classifier.hpp"

namespace lfp::cls {
template class TupleClassifier<32, 32, 16, 16, 8>;
}  // namespace lfp::cls
