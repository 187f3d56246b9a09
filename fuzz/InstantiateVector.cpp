//===- InstantiateVector.cpp - Work around a clang-22 link error ---------===//
//
// clang-22 does not emit the std::vector<double> members that the
// target_clones functions of lib/Quant/Hessian.cpp call (undefined
// std::vector<double>::vector(size_t, const allocator &) and friends when
// linking recipe-fuzzer, which pulls Hessian.o in through the passes
// library); gcc does. Instantiating them here gives the linker a copy.
//
//===----------------------------------------------------------------------===//

#include <memory>
#include <vector>

template class std::allocator<double>;
template class std::vector<double>;
